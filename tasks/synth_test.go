package tasks

import (
	"os"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
)

// TestDefaultTasksOnSynth labels synthetic hospitals of every archetype with the default
// tasks: each task needs positives and negatives in every hospital, or the encoder
// and the baseline have nothing to learn there. FEDCLAIMS_LONG=1 runs the issue's
// size, 5,000 patients a hospital; plain runs use fewer.
func TestDefaultTasksOnSynth(t *testing.T) {
	patients := 1500
	if os.Getenv("FEDCLAIMS_LONG") == "1" {
		patients = 5000
	}
	g, err := synth.New(synth.Config{Hospitals: 3, Patients: patients, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for hi, h := range g.Hospitals() {
		var ps []*claims.Patient
		end := int64(0)
		for i := range h.Patients {
			p := g.Patient(hi, i)
			for _, e := range p.Events {
				end = max(end, e.Time)
			}
			ps = append(ps, p)
		}
		l, err := NewLabeler(Default(), Options{Seed: 1, End: end})
		if err != nil {
			t.Fatal(err)
		}
		tally := NewTally(l)
		for _, p := range ps {
			tally.Add(l.Label(p))
		}
		for _, r := range tally.Prevalence() {
			t.Logf("%s %-16s n=%5d positives=%4d prevalence=%.4f", h.ID, r.Task, r.N, r.Positives, r.Prevalence)
			if r.Positives == 0 || r.Positives == r.N {
				t.Errorf("%s: task %s has %d positives of %d", h.ID, r.Task, r.Positives, r.N)
			}
		}
	}
}
