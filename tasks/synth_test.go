package tasks

import (
	"os"
	"testing"

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
		l, err := NewLabeler(Default(), Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		tally := NewTally(l)
		for i := range h.Patients {
			tally.Add(l.Examples(g.Patient(hi, i)))
		}
		all, indexed := tally.Patients()
		t.Logf("%s: %d of %d patients indexed", h.ID, indexed, all)
		for _, r := range tally.Prevalence() {
			t.Logf("%s %-16s n=%5d positives=%4d prevalence=%.4f", h.ID, r.Task, r.N, r.Positives, r.Prevalence)
			if r.Positives == 0 || r.Positives == r.N {
				t.Errorf("%s: task %s has %d positives of %d", h.ID, r.Task, r.Positives, r.N)
			}
		}
	}
}
