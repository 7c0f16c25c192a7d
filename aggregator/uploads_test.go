package aggregator

import (
	"context"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUploadIdleTimeout: an upload that sends nothing ends at upload_idle_timeout,
// and one still open when its round ends ends with the round, so that no stream
// holds a buffer or a finished round's aggregate. Before, a stream that sent only
// its header waited forever.
func TestUploadIdleTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*manualClock, chan struct{})
		want codes.Code
	}{
		{"silent sender", func(c *manualClock, _ chan struct{}) { c.fire() }, codes.DeadlineExceeded},
		{"round ended", func(_ *manualClock, ended chan struct{}) { close(ended) }, codes.Aborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &manualClock{}
			s := &Server{clock: clk, cfg: Config{UploadIdleTimeout: time.Minute}}
			in := &inbound{s: s, ctx: context.Background(), msgs: make(chan recvd)}
			ended := make(chan struct{})
			errc := make(chan error, 1)
			go func() {
				_, err := in.next(ended)
				errc <- err
			}()
			for pending := 0; pending == 0; runtime.Gosched() {
				clk.mu.Lock()
				pending = len(clk.timers)
				clk.mu.Unlock()
			}
			tc.end(clk, ended)
			if err := <-errc; status.Code(err) != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestUploadSlots(t *testing.T) {
	u := uploadSlots{limit: 2, busy: map[string]int{}}
	if !u.acquire("a") || !u.acquire("a") {
		t.Fatal("refused within the limit")
	}
	if u.acquire("a") {
		t.Fatal("third concurrent upload admitted")
	}
	if !u.acquire("b") {
		t.Fatal("another site's slot taken by a")
	}
	u.release("a")
	if !u.acquire("a") {
		t.Fatal("slot not given back")
	}
}
