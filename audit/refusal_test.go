package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)

// at is t0 plus seconds.
func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func TestRefusalLimiter(t *testing.T) {
	const (
		rec   = "record"
		count = "count"
		thr   = "throttle"
	)
	type step struct {
		at           float64 // seconds after t0
		peer, reason string
		want         string // rec, count or thr
	}
	type flush struct {
		at   float64
		want []RefusalSummary
	}
	// repeat makes n steps one millisecond apart from start.
	repeat := func(n int, start float64, peer, reason string, want func(i int) string) []step {
		var s []step
		for i := range n {
			s = append(s, step{start + float64(i)/1000, peer, reason, want(i)})
		}
		return s
	}
	lim := RefusalLimits{Interval: time.Minute, Burst: 3, MaxPeers: 2, MaxReasons: 3}
	tests := []struct {
		name    string
		steps   []step
		flushes []flush
	}{
		{
			name: "first per peer and reason recorded, the rest counted",
			steps: []step{
				{0, "site/b", "Enroll not allowed", rec},
				{1, "site/b", "Enroll not allowed", count},
				{2, "site/b", "Work not allowed", rec},
				{3, "site/c", "Enroll not allowed", rec},
			},
			flushes: []flush{{10, []RefusalSummary{{Peer: "site/b", Reason: "Enroll not allowed", Count: 1, First: at(1), Last: at(1)}}}},
		},
		{
			name: "past the burst the peer is throttled until its interval ends",
			steps: append(append(
				repeat(5, 0, "site/b", "Enroll not allowed", func(i int) string { return []string{rec, count, count, thr, thr}[i] }),
				step{30, "site/b", "Work not allowed", thr},    // a new reason does not lift the throttle
				step{30, "site/c", "Enroll not allowed", rec}), // nor does it reach another peer
				step{60, "site/b", "Enroll not allowed", rec}, // a new interval
				step{60.5, "site/b", "Enroll not allowed", count},
			),
			flushes: []flush{
				{59, []RefusalSummary{
					{Peer: "site/b", Reason: "Enroll not allowed", Count: 4, Throttled: 2, First: at(0.001), Last: at(0.004)},
					{Peer: "site/b", Reason: "Work not allowed", Count: 1, Throttled: 1, First: at(30), Last: at(30)},
				}},
				{61, []RefusalSummary{{Peer: "site/b", Reason: "Enroll not allowed", Count: 1, First: at(60.5), Last: at(60.5)}}},
				{200, nil},
			},
		},
		{
			name: "a flushed count starts again at zero; the window is not reset by a flush",
			steps: []step{
				{0, "site/b", "r", rec},
				{1, "site/b", "r", count},
				{20, "site/b", "r", count}, // after the flush below, still the same window
			},
			flushes: []flush{
				{10, []RefusalSummary{{Peer: "site/b", Reason: "r", Count: 1, First: at(1), Last: at(1)}}},
				{30, []RefusalSummary{{Peer: "site/b", Reason: "r", Count: 1, First: at(20), Last: at(20)}}},
			},
		},
		{
			name: "reasons beyond MaxReasons count as other",
			steps: []step{
				{0, "site/b", "r1", rec},
				{1, "site/b", "r2", rec},
				{2, "site/b", "r3", rec}, // recorded in full, tracked as other
				{61, "site/b", "r4", rec},
				{62, "site/b", "r5", count},
			},
			flushes: []flush{{70, []RefusalSummary{{Peer: "site/b", Reason: OtherReason, Count: 1, First: at(62), Last: at(62)}}}},
		},
		{
			name: "peers beyond MaxPeers evict the least recent, whose counts survive",
			steps: []step{
				{0, "site/a", "r", rec},
				{1, "site/a", "r", count},
				{2, "site/b", "r", rec},
				{3, "site/c", "r", rec}, // evicts site/a
				{4, "site/a", "r", rec}, // a stranger again; evicts site/b
			},
			flushes: []flush{{5, []RefusalSummary{{Peer: EvictedPeers, Reason: "peers evicted before their refusals were reported", Count: 1, First: at(1), Last: at(1)}}}},
		},
		{
			name: "a clock stepped back starts a new window",
			steps: append(
				repeat(4, 100, "site/b", "r", func(i int) string { return []string{rec, count, count, thr}[i] }),
				step{50, "site/b", "r", rec},
			),
		},
		{
			name: "a loop of refusals writes Burst entries at most per interval",
			steps: repeat(1000, 0, "site/b", "r", func(i int) string {
				switch {
				case i == 0:
					return rec
				case i < lim.Burst:
					return count
				}
				return thr
			}),
			flushes: []flush{
				{60, []RefusalSummary{{Peer: "site/b", Reason: "r", Count: 999, Throttled: 997, First: at(0.001), Last: at(0.999)}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewRefusalLimiter(lim)
			f := 0
			for i, s := range tt.steps {
				for f < len(tt.flushes) && tt.flushes[f].at <= s.at {
					checkFlush(t, l, tt.flushes[f].at, tt.flushes[f].want)
					f++
				}
				d := l.Allow(at(s.at), s.peer, s.reason)
				got := count
				switch {
				case d.Record && d.Throttled:
					t.Fatalf("step %d: both record and throttle", i)
				case d.Record:
					got = rec
				case d.Throttled:
					got = thr
				}
				if got != s.want {
					t.Fatalf("step %d (%+v): %s, want %s", i, s, got, s.want)
				}
			}
			for ; f < len(tt.flushes); f++ {
				checkFlush(t, l, tt.flushes[f].at, tt.flushes[f].want)
			}
			if n := l.Tracked(); n > lim.MaxPeers {
				t.Errorf("tracking %d peers, at most %d", n, lim.MaxPeers)
			}
		})
	}
}

func checkFlush(t *testing.T, l *RefusalLimiter, sec float64, want []RefusalSummary) {
	t.Helper()
	if got := l.Flush(at(sec)); !reflect.DeepEqual(got, want) {
		t.Fatalf("flush at %vs:\n got %+v\nwant %+v", sec, got, want)
	}
}

func TestRefusalLimiterDefaults(t *testing.T) {
	l := NewRefusalLimiter(RefusalLimits{})
	want := RefusalLimits{Interval: time.Minute, Burst: 10, MaxPeers: 1024, MaxReasons: 16}
	if got := l.Limits(); got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	// Many peers, many reasons: the state stays within the bounds.
	for i := range 5000 {
		l.Allow(at(float64(i)/100), fmt.Sprintf("site/s%d", i), fmt.Sprintf("reason %d", i%40))
	}
	if n := l.Tracked(); n != want.MaxPeers {
		t.Errorf("tracking %d peers, want %d", n, want.MaxPeers)
	}
	for i := range 100 {
		l.Allow(at(60), "site/one", fmt.Sprintf("reason %d", i))
	}
	if n := len(l.peers["site/one"].reasons); n != want.MaxReasons {
		t.Errorf("tracking %d reasons for one peer, want %d", n, want.MaxReasons)
	}
	l.Flush(at(1000))
	if n := l.Tracked(); n != 0 {
		t.Errorf("%d peers left after their intervals ended", n)
	}
}

// TestRefusalSummaryEntry audits a summary: its fields must pass Append's checks,
// even for a peer name longer than a field.
func TestRefusalSummaryEntry(t *testing.T) {
	log, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Actor: "aggregator", Now: clock()})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s := RefusalSummary{Peer: string(make([]byte, 2*MaxFieldLen)), Reason: "/fedclaims.v1.Federation/Enroll not_allowed", Count: 41, Throttled: 30, First: at(1), Last: at(59)}
	e, err := log.Append(context.Background(), Entry{Type: Refusals, Federation: "f1", Fields: s.Fields()})
	if err != nil {
		t.Fatal(err)
	}
	if e.Fields["count"] != "41" || e.Fields["throttled"] != "30" || e.Fields["last"] != "2026-12-03T17:00:59Z" || len(e.Fields["peer"]) != MaxFieldLen {
		t.Errorf("entry fields %v", e.Fields)
	}
}

func TestRefusalLimiterConcurrent(t *testing.T) {
	l := NewRefusalLimiter(RefusalLimits{Burst: 1 << 20})
	var mu sync.Mutex
	records := 0
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				d := l.Allow(at(float64(i)/1000), "site/b", fmt.Sprintf("r%d", w%2))
				if d.Record {
					mu.Lock()
					records++
					mu.Unlock()
				}
			}
		})
		wg.Go(func() { l.Flush(at(0.1)) })
	}
	wg.Wait()
	if records != 2 {
		t.Errorf("%d refusals recorded, want 2 (one per reason)", records)
	}
}
