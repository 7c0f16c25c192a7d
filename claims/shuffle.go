package claims

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
)

// ShuffleVisits permutes, in place, which visit's codes fall on which visit date
// in p's history: the "shuffled visits" control of a study, which keeps what a
// patient has and how often, and destroys the order in which it came. A visit is
// the events of one UTC calendar day (see Day). The set of visit dates and the
// multiset of codes stay the same; each visit's events move together to another
// visit's date, keeping their time of day. Birth, death, sex and the end of
// observation stay where they are, as do MEDS_BIRTH, MEDS_DEATH, GENDER// and
// MEDS_OBSERVATION_END events wherever a source wrote them. The permutation is a
// function of (seed, p.ID) alone, so a dataset shuffles the same whatever the
// order its patients are read in. The events end sorted by time, ties by code, as
// Patient requires.
func ShuffleVisits(p *Patient, seed uint64) {
	// Visits in day order, each a run of the events of one day; the static events
	// are set aside at their own times.
	type visit struct {
		day    int64
		events []Event
	}
	var visits []visit
	var static []Event
	for _, e := range p.Events {
		if isStatic(e.Code) {
			static = append(static, e)
			continue
		}
		d := Day(e.Time)
		if n := len(visits); n == 0 || visits[n-1].day != d {
			visits = append(visits, visit{day: d})
		}
		v := &visits[len(visits)-1]
		v.events = append(v.events, e)
	}
	if len(visits) < 2 {
		return
	}
	r := rand.New(rand.NewPCG(seed, uint64(p.ID)))
	perm := r.Perm(len(visits))
	out := p.Events[:0]
	out = append(out, static...)
	for to, from := range perm {
		shift := (visits[to].day - visits[from].day) * MicrosPerDay
		for _, e := range visits[from].events {
			e.Time += shift
			out = append(out, e)
		}
	}
	// Reusing p.Events is safe: visits and static hold copies of every event.
	slices.SortStableFunc(out, func(a, b Event) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Code, b.Code)
	})
	p.Events = out
}

// isStatic reports whether code records a fact about the patient rather than a
// visit's finding: those events keep their dates when visits are shuffled.
func isStatic(code string) bool {
	switch code {
	case CodeBirth, CodeDeath, CodeObservationEnd:
		return true
	}
	return System(code) == SystemGender
}
