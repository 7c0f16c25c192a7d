package aggregator

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDownloadSlots: a site holds at most perSite downloads and the aggregator at
// most limit; one more waits until a slot is given back, or until its context ends,
// and an idle site leaves nothing behind.
func TestDownloadSlots(t *testing.T) {
	d := newDownloadSlots(3, 2)
	ctx := context.Background()
	get := func(site string) func() {
		t.Helper()
		release, err := d.acquire(ctx, site)
		if err != nil {
			t.Fatal(err)
		}
		return release
	}
	waits := func(site string) (func(), <-chan error) {
		t.Helper()
		ctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() {
			release, err := d.acquire(ctx, site)
			if err == nil {
				release()
			}
			got <- err
		}()
		select {
		case err := <-got:
			t.Fatalf("%s did not wait for a slot: %v", site, err)
		case <-time.After(50 * time.Millisecond):
		}
		return cancel, got
	}

	a1, a2 := get("a"), get("a")
	// a's third waits for its own slot, though the aggregator has one free.
	cancel, got := waits("a")
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait returned %v", err)
	}
	b1 := get("b")
	if all, ofA := d.busy("a"); all != 3 || ofA != 2 {
		t.Fatalf("busy %d overall, %d of a; want 3 and 2", all, ofA)
	}
	// c waits for the aggregator's slot, then gets a's once a gives one back.
	_, got = waits("c")
	a1()
	a1() // a second release is a no-op
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// Waiting for the aggregator's slot and cancelled: the site slot is given back.
	c1 := get("c")
	cancel, got = waits("c")
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("c cancelled wait returned %v", err)
	}
	if all, ofC := d.busy("c"); all != 3 || ofC != 1 {
		t.Fatalf("busy %d overall, %d of c; want 3 and 1", all, ofC)
	}
	a2()
	b1()
	c1()
	if all, _ := d.busy("a"); all != 0 || len(d.sites) != 0 {
		t.Fatalf("idle: %d busy, %d sites kept", all, len(d.sites))
	}
}
