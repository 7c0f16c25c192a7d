package faults

import (
	"reflect"
	"testing"
	"time"
)

// The plan is a function of the seed alone, every fault is bounded in count and
// time, and the faults of one scenario fall in different rounds before the last
// while there are rounds enough, each at a point inside its round.
func TestPlan(t *testing.T) {
	sites := []string{"h01", "h02", "h03"}
	dur := []time.Duration{time.Second, 2 * time.Second, time.Second, 3 * time.Second}
	for _, name := range Scenarios {
		a, b := plan(7, name, sites, dur), plan(7, name, sites, dur)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two plans from seed 7 differ:\n%+v\n%+v", name, a, b)
		}
		if a.Fault == "" {
			t.Errorf("%s: no description", name)
		}
		if len(a.Events) > 3 {
			t.Errorf("%s: %d events, want at most 3", name, len(a.Events))
		}
		rounds := map[int]bool{}
		for _, e := range a.Events {
			if e.Round < 1 || e.Round >= len(dur) {
				t.Errorf("%s: event in round %d of %d (not the last)", name, e.Round, len(dur))
				continue
			}
			if e.Offset < 0 || e.Offset >= dur[e.Round-1] {
				t.Errorf("%s: event at %v into a round of %v", name, e.Offset, dur[e.Round-1])
			}
			if e.Hold <= 0 || e.Hold > blackholeHold {
				t.Errorf("%s: event held %v", name, e.Hold)
			}
			if rounds[e.Round] {
				t.Errorf("%s: two events in round %d of %d", name, e.Round, len(dur))
			}
			rounds[e.Round] = true
			if (e.Kind == KillAggregator) != (e.Site == "") {
				t.Errorf("%s: %s event on %q", name, e.Kind, e.Site)
			}
		}
	}
	var differs bool
	for seed := uint64(1); seed <= 5 && !differs; seed++ {
		differs = !reflect.DeepEqual(plan(seed, KillSite, sites, dur), plan(seed+1, KillSite, sites, dur))
	}
	if !differs {
		t.Error("seeds 1 to 6 all plan the same site kill")
	}
}

// The bound grows with the rounds and the parameters, and is the analytic one-round
// figure times the propagation allowance at one round.
func TestNoiseBound(t *testing.T) {
	if noiseBound(1e-7, 2, 1000) <= noiseBound(1e-7, 1, 1000) || noiseBound(1e-7, 1, 1e6) <= noiseBound(1e-7, 1, 1000) {
		t.Error("the bound does not grow with rounds and parameters")
	}
	if b := noiseBound(1, 1, 0); b != 0 {
		t.Errorf("bound without parameters %v, want 0", b)
	}
}
