package claims

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// shufflePatient has visits with distinct code sets over two years, a death and a
// visit on the day of death, times of day other than midnight, and a MEDS_BIRTH
// event as some sources write one.
func shufflePatient(id int64) *Patient {
	nan := float32(math.NaN())
	day := DaysFromCivil(2015, 3, 1)
	p := &Patient{ID: id, Sex: SexFemale, Birth: (day - 20000) * MicrosPerDay, HasBirth: true,
		ObservationEnd: (day + 800) * MicrosPerDay, HasObservationEnd: true}
	p.Events = append(p.Events, Event{Time: (day - 20000) * MicrosPerDay, Code: CodeBirth, Value: nan})
	for k := range int64(12) {
		t := (day+k*61)*MicrosPerDay + k*3_600_000_000
		p.Events = append(p.Events,
			Event{Time: t, Code: "VISIT//9202", Value: nan},
			Event{Time: t, Code: fmt.Sprintf("ICD10//E%02d", k), Value: nan},
			Event{Time: t + 60_000_000, Code: "ATC//A10BA02", Value: float32(k)})
	}
	last := p.Events[len(p.Events)-1].Time
	p.Events = append(p.Events, Event{Time: last + 120_000_000, Code: CodeDeath, Value: nan})
	slices.SortStableFunc(p.Events, func(a, b Event) int {
		if a.Time != b.Time {
			return int(a.Time - b.Time)
		}
		return strings.Compare(a.Code, b.Code)
	})
	return p
}

func TestShuffleVisits(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    func() *Patient
	}{
		{"twelve visits", func() *Patient { return shufflePatient(7) }},
		{"other id", func() *Patient { return shufflePatient(8) }},
		{"one visit", func() *Patient {
			p := shufflePatient(9)
			p.Events = p.Events[:4]
			return p
		}},
		{"no events", func() *Patient { return &Patient{ID: 10} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, p := tc.p(), tc.p()
			ShuffleVisits(p, 42)
			again := tc.p()
			ShuffleVisits(again, 42)
			if !slices.EqualFunc(p.Events, again.Events, sameEvent) {
				t.Fatal("two shuffles with one seed differ")
			}
			if p.Birth != orig.Birth || p.Sex != orig.Sex || p.ObservationEnd != orig.ObservationEnd {
				t.Error("static fields changed")
			}
			codes := func(q *Patient) map[string]int {
				m := make(map[string]int)
				for _, e := range q.Events {
					m[e.Code]++
				}
				return m
			}
			days := func(q *Patient) []int64 {
				var ds []int64
				for _, e := range q.Events {
					if !isStatic(e.Code) {
						ds = append(ds, Day(e.Time))
					}
				}
				slices.Sort(ds)
				return slices.Compact(ds)
			}
			if a, b := codes(orig), codes(p); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("code counts %v, were %v", b, a)
			}
			if a, b := days(orig), days(p); !slices.Equal(a, b) {
				t.Errorf("visit days %v, were %v", b, a)
			}
			for k, e := range p.Events {
				if k > 0 {
					prev := p.Events[k-1]
					if prev.Time > e.Time || prev.Time == e.Time && prev.Code > e.Code {
						t.Fatalf("events %d and %d out of order", k-1, k)
					}
				}
				if isStatic(e.Code) && !slices.ContainsFunc(orig.Events, func(o Event) bool { return sameEvent(o, e) }) {
					t.Errorf("%s moved to %d", e.Code, e.Time)
				}
			}
			// Each visit moves whole: the value rides with its day's diagnosis.
			byDay := make(map[int64]string)
			for _, e := range p.Events {
				if System(e.Code) == SystemICD10 {
					byDay[Day(e.Time)] = e.Code
				}
			}
			for _, e := range p.Events {
				if e.Code == "ATC//A10BA02" && byDay[Day(e.Time)] != fmt.Sprintf("ICD10//E%02d", int(e.Value)) {
					t.Errorf("day %d holds %s and a refill of visit %v: a visit was split", Day(e.Time), byDay[Day(e.Time)], e.Value)
				}
			}
			moved := 0
			for k := range p.Events {
				if p.Events[k].Code != orig.Events[k].Code {
					moved++
				}
			}
			if len(days(orig)) > 2 && moved == 0 {
				t.Error("the order of visits did not change")
			}
		})
	}
	a, b := shufflePatient(7), shufflePatient(7)
	ShuffleVisits(a, 1)
	ShuffleVisits(b, 2)
	if slices.EqualFunc(a.Events, b.Events, sameEvent) {
		t.Error("seeds 1 and 2 shuffle alike")
	}
}

func sameEvent(a, b Event) bool {
	return a.Time == b.Time && a.Code == b.Code && (a.Value == b.Value || a.HasValue() == b.HasValue() && !a.HasValue())
}
