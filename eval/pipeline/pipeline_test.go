package pipeline

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/eval"
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
	pa, err := LoadPatients(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	both, err := LoadPatients(ctx, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(both) != g.Hospitals()[0].Patients+g.Hospitals()[1].Patients || len(pa) != g.Hospitals()[0].Patients {
		t.Errorf("read %d and %d patients", len(pa), len(both))
	}
	if _, err := LoadPatients(ctx, a, a); err == nil || !strings.Contains(err.Error(), "is in both") {
		t.Errorf("the same site twice: got %v, want a duplicate-id error", err)
	}
	if _, err := LoadPatients(ctx, filepath.Join(dir, "nowhere")); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("missing dataset: got %v, want an error naming it", err)
	}
}

// synthPatients generates the patients of synthetic hospitals in memory.
func synthPatients(t *testing.T, hospitals, patients int, seed uint64) []*claims.Patient {
	t.Helper()
	g, err := synth.New(synth.Config{Hospitals: hospitals, Patients: patients, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var out []*claims.Patient
	for h, hosp := range g.Hospitals() {
		for i := range hosp.Patients {
			out = append(out, g.Patient(h, i))
		}
	}
	return out
}

func TestLabelAndBaseline(t *testing.T) {
	ctx := context.Background()
	patients := synthPatients(t, 1, 3000, 2)
	o := DefaultOptions()
	// Three index dates a patient, so that some test splits reach 10 positives.
	o.Grid, o.Iterations, o.Resamples, o.Threads, o.MaxIndexPerPatient = false, 20, 50, 1, 3
	c, err := Label(patients, tasks.Default(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TrainBaseline(ctx, o); err != nil {
		t.Fatal(err)
	}
	r, err := c.Report(o)
	if err != nil {
		t.Fatal(err)
	}
	// Every task has a row: evaluated, or listed with the reason it was not.
	if len(r.Tasks) != len(tasks.Default()) || len(c.Runs) == 0 {
		t.Fatalf("%d report rows for %d tasks (%d runs, %d skipped)", len(r.Tasks), len(tasks.Default()), len(c.Runs), len(c.Skipped))
	}
	// With several index dates a patient, positive rows and positive patients
	// differ; an interval needs MinPositives of both.
	positivePatients := map[string]int{}
	for _, run := range c.Runs {
		seen := map[int64]bool{}
		for i, y := range run.Predictions.Labels {
			if y && !seen[run.Predictions.Patient[i]] {
				seen[run.Predictions.Patient[i]] = true
				positivePatients[run.Predictions.Name]++
			}
		}
	}
	withCI, rowsNotPatients := 0, 0
	for _, tr := range r.Tasks {
		m, ok := tr.Models["baseline"]
		enough := tr.PositivesTest >= eval.MinPositives && positivePatients[tr.Name] >= eval.MinPositives
		if tr.PositivesTest >= eval.MinPositives && !enough {
			rowsNotPatients++
		}
		switch {
		case !ok:
			if tr.Undecided == "" {
				t.Errorf("task %s: no baseline and no reason", tr.Name)
			}
		case m.AUPRCCI == nil:
			if enough {
				t.Errorf("task %s: %d test positives in %d patients but no interval", tr.Name, tr.PositivesTest, positivePatients[tr.Name])
			}
		default:
			withCI++
			if !enough {
				t.Errorf("task %s: an interval from %d test positives in %d patients", tr.Name, tr.PositivesTest, positivePatients[tr.Name])
			}
			if !(m.AUPRCCI[0] <= m.AUPRC && m.AUPRC <= m.AUPRCCI[1]) {
				t.Errorf("task %s: AUPRC %g outside its interval %v", tr.Name, m.AUPRC, *m.AUPRCCI)
			}
		}
	}
	if withCI == 0 || rowsNotPatients == 0 {
		t.Errorf("%d tasks with an interval, %d with 10 positive rows of fewer patients: the test data checks too little", withCI, rowsNotPatients)
	}
}

// TestReportListsUndecidableTasks: a task whose code system the data lacks is a
// row with its reason, and the other tasks are still evaluated.
func TestReportListsUndecidableTasks(t *testing.T) {
	ctx := context.Background()
	patients := synthPatients(t, 1, 2000, 3)
	ts, err := tasks.Parse("t.yaml", []byte(`version: 1
tasks:
  - {name: t2d, kind: disease, prefixes: [ICD10//E11]}
  - {name: icd9_only, kind: disease, prefixes: [ICD9CM//250]}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Grid, o.Iterations, o.Resamples, o.Threads = false, 20, 50, 1
	c, err := Label(patients, ts, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TrainBaseline(ctx, o); err != nil {
		t.Fatal(err)
	}
	r, err := c.Report(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tasks) != 2 || r.Tasks[0].Name != "t2d" || r.Tasks[1].Name != "icd9_only" {
		t.Fatalf("report rows %+v, want t2d then icd9_only", r.Tasks)
	}
	if _, ok := r.Tasks[0].Models["baseline"]; !ok {
		t.Errorf("t2d was not evaluated: %+v", r.Tasks[0])
	}
	if u := r.Tasks[1].Undecided; !strings.Contains(u, "ICD9CM") {
		t.Errorf("icd9_only: reason %q, want one naming the missing code system", u)
	}
}

// TestNoFollowUpLeakage is the leakage check at a size that runs in seconds: on
// synthetic hospitals, follow-up features (days of record before the index, index
// year) add nothing significant to age and sex for any default task. Under the old
// labelling rule (a positive kept without full follow-up, a negative not) this test
// failed on several disease tasks.
func TestNoFollowUpLeakage(t *testing.T) {
	ctx := context.Background()
	patients := synthPatients(t, 3, 3000, 11)
	o := DefaultOptions()
	o.Iterations, o.Resamples, o.Threads = 300, 500, 1
	rep, err := LeakageCheck(ctx, patients, tasks.Default(), o)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table, false); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	decided := 0
	for _, lt := range rep.Tasks {
		if lt.Comparison != nil {
			decided++
		}
		if lt.Leaks {
			t.Errorf("task %s leaks follow-up: follow-up AUPRC %.3f against age and sex %.3f, difference %+.3f [%.3f, %.3f], Holm p %.3g",
				lt.Name, lt.FollowUpAUPRC, lt.AgeSexAUPRC, lt.Comparison.Diff, lt.Comparison.CI[0], lt.Comparison.CI[1], lt.Comparison.PHolm)
		}
	}
	// A check that decides nothing cannot fail: most tasks must be testable.
	if decided < len(rep.Tasks)-2 {
		t.Errorf("only %d of %d tasks had enough positives to test", decided, len(rep.Tasks))
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
	ps, err := LoadPatients(ctx, filepath.Join(dir, g.Hospitals()[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, salt := range []string{"", tasks.DefaultSalt, "another salt"} {
		o := DefaultOptions()
		o.Salt = salt
		c, err := Label(ps, tasks.Default(), o)
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

// TestPairedHalfWidth measures how wide a paired AUPRC-difference interval is for a
// given number of test positives, on synthetic hospitals of several sizes: two real
// gradient-boosting models of the same labels (time-aware and all-time count
// features) are compared on every default task, and c in half-width = c/√P is fitted
// in log space. It checks eval.HalfWidthConstant, which `fedclaims tasks prevalence`
// prints from, against the measurement.
func TestPairedHalfWidth(t *testing.T) {
	if os.Getenv("FEDCLAIMS_LONG_TESTS") == "" {
		t.Skip("set FEDCLAIMS_LONG_TESTS=1 to run")
	}
	ctx := context.Background()
	var logC []float64
	for i, n := range []int{6000, 12000, 24000, 48000} {
		patients := synthPatients(t, 1, n, uint64(20+i))
		var scores [2][]baseline.TaskRun
		for m, fs := range []baseline.FeatureSet{baseline.FeaturesTime, baseline.FeaturesCounts} {
			o := DefaultOptions()
			o.Grid, o.Iterations, o.Resamples, o.Features = false, 200, 500, fs
			c, err := Label(patients, tasks.Default(), o)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.TrainBaseline(ctx, o); err != nil {
				t.Fatal(err)
			}
			scores[m] = c.Runs
		}
		for k, run := range scores[0] {
			other := scores[1][k]
			if other.Predictions.Name != run.Predictions.Name {
				t.Fatalf("task order differs: %s, %s", run.Predictions.Name, other.Predictions.Name)
			}
			p := run.Predictions
			cmp, err := eval.Compare(p.Scores[eval.ModelBaseline], other.Predictions.Scores[eval.ModelBaseline], p.Labels, p.Patient,
				eval.Bootstrap{Resamples: 500, Seed: 1}, eval.MetricAUPRC, 0)
			if err != nil {
				continue // too few positives
			}
			pos := 0
			for _, y := range p.Labels {
				if y {
					pos++
				}
			}
			hw := (cmp.CI[1] - cmp.CI[0]) / 2
			t.Logf("patients %5d  %-16s  positives %3d  time - counts %+.3f [%.3f, %.3f]  half-width %.4f  c %.3f",
				n, p.Name, pos, cmp.Diff, cmp.CI[0], cmp.CI[1], hw, hw*math.Sqrt(float64(pos)))
			if hw > 0 {
				logC = append(logC, math.Log(hw*math.Sqrt(float64(pos))))
			}
		}
	}
	if len(logC) < 10 {
		t.Fatalf("only %d comparisons to fit from", len(logC))
	}
	var sum float64
	for _, v := range logC {
		sum += v
	}
	c := math.Exp(sum / float64(len(logC)))
	t.Logf("fitted c = %.3f from %d comparisons (eval.HalfWidthConstant %.2f)", c, len(logC), eval.HalfWidthConstant)
	if math.Abs(c/eval.HalfWidthConstant-1) > 1.0/3 {
		t.Errorf("measured c = %.3f, more than a third away from eval.HalfWidthConstant = %.2f", c, eval.HalfWidthConstant)
	}
}
