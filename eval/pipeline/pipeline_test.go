package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/tasks"
)

func TestLoadPatients(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g, err := synth.New(synth.Config{Hospitals: 2, Patients: 40, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Write(ctx, dir); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, g.Hospitals()[0].ID), filepath.Join(dir, g.Hospitals()[1].ID)
	pa, endA, err := LoadPatients(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	both, end, err := LoadPatients(ctx, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(both) != g.Hospitals()[0].Patients+g.Hospitals()[1].Patients || len(pa) != g.Hospitals()[0].Patients {
		t.Errorf("read %d and %d patients", len(pa), len(both))
	}
	const day = 86_400_000_000
	if end%day != 0 || end < endA {
		t.Errorf("end %d is not a midnight at or after the first site's %d", end, endA)
	}
	for _, p := range both {
		for _, e := range p.Events {
			if e.Time >= end {
				t.Fatalf("event at %d on or after the end %d", e.Time, end)
			}
		}
	}
	if _, _, err := LoadPatients(ctx, a, a); err == nil || !strings.Contains(err.Error(), "is in both") {
		t.Errorf("the same site twice: got %v, want a duplicate-id error", err)
	}
	if _, _, err := LoadPatients(ctx, filepath.Join(dir, "nowhere")); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("missing dataset: got %v, want an error naming it", err)
	}
}

func TestLabelAndBaseline(t *testing.T) {
	ctx := context.Background()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 600, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	var patients []*claims.Patient
	for i := range g.Hospitals()[0].Patients {
		patients = append(patients, g.Patient(0, i))
	}
	var last int64
	for _, p := range patients {
		for _, e := range p.Events {
			last = max(last, e.Time)
		}
	}
	const day = 86_400_000_000
	o := DefaultOptions()
	o.Grid, o.Iterations, o.Resamples, o.SkipDegenerate, o.Threads = false, 20, 50, true, 1
	c, err := Label(patients, (last/day+1)*day, tasks.Default(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TrainBaseline(ctx, o); err != nil {
		t.Fatal(err)
	}
	r, err := Report(c.Runs, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tasks) != len(c.Runs) || len(r.Tasks) == 0 {
		t.Fatalf("%d report rows for %d runs", len(r.Tasks), len(c.Runs))
	}
	for _, tr := range r.Tasks {
		m := tr.Models["baseline"]
		if !(m.AUPRCCI[0] <= m.AUPRC && m.AUPRC <= m.AUPRCCI[1]) {
			t.Errorf("task %s: AUPRC %g outside its interval %v", tr.Name, m.AUPRC, m.AUPRCCI)
		}
	}
}

// TestLabelSplitsUnderSalt: the evaluation's splits follow Options.Salt, so that a
// site evaluates the test split that its pretraining held out under the same salt.
func TestLabelSplitsUnderSalt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 300, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Write(ctx, dir); err != nil {
		t.Fatal(err)
	}
	ps, end, err := LoadPatients(ctx, filepath.Join(dir, g.Hospitals()[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, salt := range []string{"", tasks.DefaultSalt, "another salt"} {
		o := DefaultOptions()
		o.Salt = salt
		c, err := Label(ps, end, tasks.Default(), o)
		if err != nil {
			t.Fatal(err)
		}
		test := 0
		for _, ex := range c.Cohort.Examples {
			if pretrained := tasks.InPretraining(ex.SubjectID, salt); pretrained != (ex.Split == tasks.Train) {
				t.Fatalf("salt %q: subject %d is in the %v split but InPretraining says %v", salt, ex.SubjectID, ex.Split, pretrained)
			}
			if ex.Split == tasks.Test {
				test++
			}
		}
		if test == 0 {
			t.Errorf("salt %q: no test-split example among %d", salt, len(c.Cohort.Examples))
		}
	}
}
