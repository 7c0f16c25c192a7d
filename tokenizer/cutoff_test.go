package tokenizer

import (
	"testing"

	"github.com/fedclaims/fedclaims/claims"
)

func TestRandomCutoff(t *testing.T) {
	d1, d2, d3 := at(2015, 3, 2, 9), at(2015, 3, 9, 0), at(2016, 1, 1, 23)
	three := func(id int64) *claims.Patient {
		return &claims.Patient{ID: id, Events: []claims.Event{
			ev(d1, "ICD10//E11"), ev(d1+5, "ICD10//I10"), ev(d2, "ATC//C10AA05"), ev(d3, "ICD10//E11"), ev(d3+1, "PROC//K549"),
		}}
	}
	midnight := func(t int64) int64 { return claims.Day(t) * claims.MicrosPerDay }
	cases := []struct {
		name string
		p    func(id int64) *claims.Patient
		want []int64 // every cutoff the distribution may give
	}{
		{"no events", func(id int64) *claims.Patient { return &claims.Patient{ID: id} }, []int64{NoCutoff}},
		{"one visit day", func(id int64) *claims.Patient {
			return &claims.Patient{ID: id, Events: []claims.Event{ev(d1, "ICD10//E11"), ev(d1+7, "ICD10//I10")}}
		}, []int64{NoCutoff}},
		{"three visit days", three, []int64{midnight(d2), midnight(d3), NoCutoff}},
	}
	v := testVocab(t)
	enc := testEncoder(t, v, 64)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			counts := make(map[int64]int)
			const n = 3000
			for seed := range uint64(3) {
				for id := range int64(n / 3) {
					p := c.p(id)
					cut := RandomCutoff(p, seed)
					if again := RandomCutoff(c.p(id), seed); again != cut {
						t.Fatalf("seed %d id %d: %d then %d", seed, id, cut, again)
					}
					counts[cut]++
					// The encoder filters by the cutoff; check that each kept event
					// is before it and that the cut day's events are gone.
					e := enc.Encode(p, cut)
					kept := 0
					for i := range p.Events {
						if p.Events[i].Time < cut {
							kept++
						}
					}
					if cut != NoCutoff && kept == len(p.Events) {
						t.Fatalf("cutoff %d keeps every event", cut)
					}
					if cut != NoCutoff && kept == 0 {
						t.Fatalf("cutoff %d keeps no event: the first visit day is never a cut", cut)
					}
					if e.Len() > 1 && cut != NoCutoff && e.Ages[0] != AgeUnknown {
						t.Fatalf("no birth date, yet [CLS] age %v", e.Ages[0])
					}
				}
			}
			if len(counts) != len(c.want) {
				t.Fatalf("cutoffs %v, want exactly %v", counts, c.want)
			}
			for _, w := range c.want {
				// Uniform over len(want) choices: each within 5 standard deviations.
				exp := float64(n) / float64(len(c.want))
				if d := float64(counts[w]) - exp; d*d > 25*exp {
					t.Errorf("cutoff %d drawn %d times of %d, want about %.0f", w, counts[w], n, exp)
				}
			}
		})
	}
}

func TestRandomCutoffSeedMatters(t *testing.T) {
	p := &claims.Patient{ID: 1}
	for d := range int64(50) {
		p.Events = append(p.Events, ev(at(2010, 1, 1, 0)+d*claims.MicrosPerDay, "ICD10//E11"))
	}
	seen := make(map[int64]bool)
	for seed := range uint64(20) {
		seen[RandomCutoff(p, seed)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("20 seeds over 50 visit days gave %d distinct cutoffs", len(seen))
	}
}
