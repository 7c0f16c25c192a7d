package faults

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The scenarios, in the order they run. None is the baseline every other one is
// compared with; Rerun runs it again, to show what the CKKS noise alone changes.
const (
	None           = "none"
	Rerun          = "none-rerun"
	Latency        = "latency"
	Bandwidth      = "bandwidth"
	Drop           = "drop"
	Reset          = "reset"
	Blackhole      = "blackhole"
	KillSite       = "kill-site"
	KillAggregator = "kill-aggregator"
)

// Scenarios lists every scenario name in running order.
var Scenarios = []string{None, Rerun, Latency, Bandwidth, Drop, Reset, Blackhole, KillSite, KillAggregator}

// The faults' sizes. Every fault is bounded in count and in time.
const (
	latencyMS       = 125 // 50 to 200 ms: 125 ± 75, each way
	jitterMS        = 75
	bandwidthKBps   = 64 // each way, on every link
	dropEvents      = 3
	dropHold        = 2 * time.Second // traffic dropped, connections closed after dropClose
	dropClose       = time.Second
	resetEvents     = 3
	resetHold       = time.Second
	blackholeHold   = 30 * time.Second
	killDowntime    = time.Second
	killEvents      = 1
	maxOffsetOfFull = 0.95 // a point of a round: up to 95% of the baseline's duration of that round
)

// event is one bounded fault: at Offset into round Round (1-based, counted from the
// moment the aggregator opened it), Kind hits Site (or the aggregator) for Hold.
type event struct {
	Kind   string        `json:"kind"`
	Site   string        `json:"site,omitempty"`
	Round  int           `json:"round"`
	Offset time.Duration `json:"offset_ns"`
	Hold   time.Duration `json:"hold_ns"`
}

func (e event) String() string {
	who := e.Site
	if who == "" {
		who = "aggregator"
	}
	return fmt.Sprintf("%s r%d+%.1fs", who, e.Round, e.Offset.Seconds())
}

// scenario is what one run of the federation suffers.
type scenario struct {
	Name string
	// Fault describes it for the table, bounds included.
	Fault string
	// Whole are toxics on every link from before the processes start to the end.
	Whole []wholeToxic
	// Events fire in order.
	Events []event
}

type wholeToxic struct {
	Type  string
	Attrs map[string]any
}

// plan fixes a scenario's faults from the seed alone: which round, where in it
// (a fraction of that round's duration in the baseline, roundDur) and which site.
// Faults of one scenario fall in different rounds, the last excepted, while there
// are rounds enough.
// The same seed gives the same plan; where the fault lands in the processes' work
// (the aggregator's phase at that moment) is reported, since timing on a shared
// machine is not deterministic.
func plan(seed uint64, name string, sites []string, roundDur []time.Duration) scenario {
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	// Not the last round: its end ends the federation, so a point late in it may
	// find nothing left to hit.
	rounds := max(len(roundDur)-1, 1)
	site := func() string { return sites[rng.IntN(len(sites))] }
	events := func(kind string, n int, hold time.Duration, target func() string) []event {
		order := rng.Perm(rounds)
		var evs []event
		for i := range n {
			r := order[i%rounds]
			if i >= rounds {
				r = rng.IntN(rounds)
			}
			var d time.Duration
			if r < len(roundDur) {
				d = roundDur[r]
			}
			off := time.Duration(rng.Float64() * maxOffsetOfFull * float64(d)).Round(10 * time.Millisecond)
			evs = append(evs, event{Kind: kind, Site: target(), Round: r + 1, Offset: off, Hold: hold})
		}
		slices.SortStableFunc(evs, func(a, b event) int {
			if a.Round != b.Round {
				return a.Round - b.Round
			}
			return int(a.Offset - b.Offset)
		})
		return evs
	}
	list := func(evs []event) string {
		var s []string
		for _, e := range evs {
			s = append(s, e.String())
		}
		return strings.Join(s, ", ")
	}
	sc := scenario{Name: name}
	switch name {
	case None:
		sc.Fault = "no fault (the baseline)"
	case Rerun:
		sc.Fault = "no fault, run again (CKKS noise alone)"
	case Latency:
		sc.Fault = fmt.Sprintf("latency %d±%d ms each way on every link, whole run", latencyMS, jitterMS)
		sc.Whole = []wholeToxic{{"latency", map[string]any{"latency": latencyMS, "jitter": jitterMS}}}
	case Bandwidth:
		sc.Fault = fmt.Sprintf("bandwidth %d KB/s each way on every link, whole run", bandwidthKBps)
		sc.Whole = []wholeToxic{{"bandwidth", map[string]any{"rate": bandwidthKBps}}}
	case Drop:
		sc.Events = events(Drop, dropEvents, dropHold, site)
		sc.Fault = fmt.Sprintf("%d× a link drops all traffic for %v, its connections closed after %v: %s",
			dropEvents, dropHold, dropClose, list(sc.Events))
	case Reset:
		sc.Events = events(Reset, resetEvents, resetHold, site)
		sc.Fault = fmt.Sprintf("%d× a link's connections reset as they send, for %v: %s", resetEvents, resetHold, list(sc.Events))
	case Blackhole:
		sc.Events = events(Blackhole, 1, blackholeHold, site)
		sc.Fault = fmt.Sprintf("a site's link blackholed for %v: %s", blackholeHold, list(sc.Events))
	case KillSite:
		sc.Events = events(KillSite, killEvents, killDowntime, site)
		sc.Fault = fmt.Sprintf("kill -9 of a site, restarted %v later: %s", killDowntime, list(sc.Events))
	case KillAggregator:
		sc.Events = events(KillAggregator, killEvents, killDowntime, func() string { return "" })
		sc.Fault = fmt.Sprintf("kill -9 of the aggregator, restarted %v later: %s", killDowntime, list(sc.Events))
	}
	return sc
}
