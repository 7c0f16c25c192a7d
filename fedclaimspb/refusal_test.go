package fedclaimspb

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
)

// fakeClock is a settable clock for the guard.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestLoopbackRefusalLimit: a consortium site that is not allow-listed calls in a
// loop. Only its first refusal per interval is reported for auditing, the next ones
// are counted, past the burst it is answered ResourceExhausted, and an allow-listed
// site is not affected.
func TestLoopbackRefusalLimit(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)}
	lim := audit.NewRefusalLimiter(audit.RefusalLimits{Interval: time.Minute, Burst: 3})
	f := newFixture(t, func(c *fixtureConfig) {
		c.guard = func(_ *federationFixture, g *Guard) { g.Refusals, g.Now = lim, clk.Now }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := NewFederationClient(f.dial(t, certs.SiteFiles(f.dir, "b")))
	a := NewFederationClient(f.dial(t, certs.SiteFiles(f.dir, "a")))
	enroll := func(c FederationClient, site string) codes.Code {
		_, err := c.Enroll(ctx, &EnrollRequest{Envelope: &Envelope{FederationId: federation, SiteId: site}})
		return status.Code(err)
	}
	const method = "/fedclaims.v1.Federation/Enroll"
	reported := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.refused)
	}
	tests := []struct {
		name     string
		advance  time.Duration
		site     string
		want     codes.Code
		reported int // refusals reported so far
	}{
		{"first refusal", 0, "b", codes.PermissionDenied, 1},
		{"second: counted", time.Second, "b", codes.PermissionDenied, 1},
		{"third: counted", time.Second, "b", codes.PermissionDenied, 1},
		{"past the burst", time.Second, "b", codes.ResourceExhausted, 1},
		{"still throttled", time.Second, "b", codes.ResourceExhausted, 1},
		{"an allowed site is not limited", 0, "a", codes.OK, 1},
		{"next interval", time.Minute, "b", codes.PermissionDenied, 2},
	}
	var sums []audit.RefusalSummary
	for i, tt := range tests {
		if i == len(tests)-1 {
			sums = lim.Flush(clk.Now())
		}
		clk.Add(tt.advance)
		if got := enroll(map[string]FederationClient{"a": a, "b": b}[tt.site], tt.site); got != tt.want {
			t.Fatalf("%s: %v, want %v", tt.name, got, tt.want)
		}
		if got := reported(); got != tt.reported {
			t.Fatalf("%s: %d refusals reported, want %d", tt.name, got, tt.reported)
		}
	}
	want := audit.RefusalSummary{Peer: "fedclaims://site/b", Reason: method + " " + RefusedNotAllowed, Count: 4, Throttled: 2}
	if len(sums) != 1 || sums[0].Peer != want.Peer || sums[0].Reason != want.Reason || sums[0].Count != want.Count || sums[0].Throttled != want.Throttled {
		t.Fatalf("summaries %+v, want one like %+v", sums, want)
	}
}
