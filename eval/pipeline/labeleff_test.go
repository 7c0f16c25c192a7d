package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// labelFixture is a small labelled cohort with its baseline trained and a tiny
// randomly initialised encoder over a vocabulary counted from its patients:
// enough for the curves' bookkeeping, not for the encoder to be any good.
type labelFixture struct {
	c     *Cohort
	enc   *model.Model
	vocab *tokenizer.Vocab
	o     Options
}

var (
	labelOnce sync.Once
	labelFix  labelFixture
	labelErr  error
)

// labelCohort builds the fixture once for every test of this file: labelling and
// the baseline are most of their time.
func labelCohort(t *testing.T) labelFixture {
	t.Helper()
	labelOnce.Do(func() { labelFix, labelErr = newLabelFixture(t) })
	if labelErr != nil {
		t.Fatal(labelErr)
	}
	// A fixture that stopped its first test with t.Fatal leaves neither.
	if labelFix.c == nil {
		t.Fatal("building the label-efficiency fixture failed in an earlier test")
	}
	return labelFix
}

func newLabelFixture(t *testing.T) (labelFixture, error) {
	patients := synthPatients(t, 1, 3000, 2)
	var ts []tasks.Task
	for _, task := range tasks.Default() {
		if task.Name == "t2d" || task.Name == "ppi" {
			ts = append(ts, task)
		}
	}
	o := DefaultOptions()
	// Several index dates a patient, so that one task's test split (ppi's) reaches
	// eval.MinPositives and its points have intervals; t2d's does not, and so
	// covers curves without them.
	o.Grid, o.Iterations, o.Resamples, o.Threads, o.MaxIndexPerPatient, o.Seq = false, 20, 50, 1, 3, 16
	c, err := Label(patients, ts, o)
	if err != nil {
		return labelFixture{}, err
	}
	if err := c.TrainBaseline(context.Background(), o); err != nil {
		return labelFixture{}, err
	}
	counter := tokenizer.NewCounter()
	for _, p := range patients {
		counter.Add(p)
	}
	table, err := counter.Table(5)
	if err != nil {
		return labelFixture{}, err
	}
	vocab, err := tokenizer.New(table, 5)
	if err != nil {
		return labelFixture{}, err
	}
	enc, err := model.New(model.Config{Vocab: vocab.Len(), Hidden: 16, Layers: 1, Heads: 2, MaxLen: 32, Segments: 3, LNEps: 1e-5}, 1)
	if err != nil {
		return labelFixture{}, err
	}
	return labelFixture{c: c, enc: enc, vocab: vocab, o: o}, nil
}

// TestLabelEfficiencyPoints: each task's curve keeps the sizes below its labelled
// training patients, sorted and once each, then the whole split; every point's
// counts match its subset; and a size at or beyond the split adds no point.
func TestLabelEfficiencyPoints(t *testing.T) {
	f := labelCohort(t)
	ctx := context.Background()
	if len(f.c.Runs) == 0 {
		t.Fatal("no task trained: the fixture checks nothing")
	}
	huge := len(f.c.Patients) * 10
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"increasing", []int{25, 100, 400}},
		{"unsorted with a repeat", []int{400, 25, 100, 25}},
		{"beyond the split", []int{25, 100, 400, huge}},
		{"whole split only", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			curves, err := f.c.LabelEfficiency(ctx, f.enc, f.vocab, tc.sizes, f.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(curves) != len(f.c.Runs) {
				t.Fatalf("%d curves for %d runs", len(curves), len(f.c.Runs))
			}
			for k, lc := range curves {
				if lc.Task != f.c.Runs[k].Predictions.Name {
					t.Errorf("curve %d is task %s, run %s", k, lc.Task, f.c.Runs[k].Predictions.Name)
				}
				want := []int{}
				for _, n := range tc.sizes {
					if n < lc.TrainPatients && !slices.Contains(want, n) {
						want = append(want, n)
					}
				}
				slices.Sort(want)
				want = append(want, lc.TrainPatients)
				var got []int
				for i, pt := range lc.Points {
					got = append(got, pt.Patients)
					if pt.All != (i == len(lc.Points)-1) {
						t.Errorf("task %s: point %d (%d patients) All %v", lc.Task, i, pt.Patients, pt.All)
					}
					if pt.Rows < pt.Patients || pt.PositivePatients > pt.Positives || pt.Positives > pt.Rows {
						t.Errorf("task %s: point %+v: counts inconsistent", lc.Task, pt)
					}
					if pt.Skipped == "" && (!pt.Scored || pt.Encoder.AUPRC <= 0 || pt.Baseline.AUPRC <= 0) {
						t.Errorf("task %s, %d patients: fitted but not scored: %+v", lc.Task, pt.Patients, pt)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("task %s (%d labelled training patients): points at %v, want %v", lc.Task, lc.TrainPatients, got, want)
				}
			}
		})
	}
}

// TestLabelEfficiencyNested: a task's subsets are whole patients, each size's
// patients among every larger size's, the permutation shared by the tasks (a
// patient labelled for two tasks comes at the same place in both orders), and the
// last subset the task's whole training split.
func TestLabelEfficiencyNested(t *testing.T) {
	f := labelCohort(t)
	order := f.c.trainPermutation(f.o.Seed)
	if !slices.Equal(order, f.c.trainPermutation(f.o.Seed)) {
		t.Fatal("the permutation differs under the same seed")
	}
	if slices.Equal(order, f.c.trainPermutation(f.o.Seed+1)) {
		t.Error("the permutation is the same under another seed")
	}
	rank := map[int64]int{}
	for i, id := range order {
		rank[id] = i
	}
	sizes := []int{10, 50, 200, 800}
	for ti, task := range f.c.Labeler.Tasks() {
		rows := f.c.taskRows(ti)
		ns, subs := f.c.trainSubsets(rows[tasks.Train], order, sizes)
		if !slices.Equal(subs[len(subs)-1], rows[tasks.Train]) {
			t.Errorf("task %s: the last subset is not the training split's labelled rows in order", task.Name)
		}
		perPatient := map[int64]int{}
		for _, i := range rows[tasks.Train] {
			perPatient[f.c.Cohort.Examples[i].SubjectID]++
		}
		var prev map[int64]bool
		for k, sub := range subs {
			if !slices.IsSorted(sub) {
				t.Errorf("task %s, %d patients: rows not in example order", task.Name, ns[k])
			}
			got := map[int64]int{}
			last := -1
			for _, i := range sub {
				got[f.c.Cohort.Examples[i].SubjectID]++
			}
			for id, n := range got {
				if n != perPatient[id] {
					t.Errorf("task %s, %d patients: patient %d has %d of its %d rows", task.Name, ns[k], id, n, perPatient[id])
				}
				last = max(last, rank[id])
			}
			if len(got) != ns[k] {
				t.Errorf("task %s: subset %d holds %d patients, want %d", task.Name, k, len(got), ns[k])
			}
			// The first n labelled patients of the order: none labelled for the
			// task and ranked before the last one is missing.
			for id := range perPatient {
				if rank[id] < last && got[id] == 0 {
					t.Errorf("task %s, %d patients: patient %d ranks before the subset's last but is left out", task.Name, ns[k], id)
				}
			}
			for id := range prev {
				if got[id] == 0 {
					t.Errorf("task %s: patient %d is in the %d-patient subset but not the %d-patient one", task.Name, id, ns[k-1], ns[k])
				}
			}
			prev = map[int64]bool{}
			for id := range got {
				prev[id] = true
			}
		}
	}
}

// TestLabelEfficiencyWholeSplit: the whole-split point is what EncoderScores and
// TrainBaseline give for the same task, score for score, so the same AUPRC, under
// every pooling (PoolBoth's features are 2·Hidden wide).
func TestLabelEfficiencyWholeSplit(t *testing.T) {
	f := labelCohort(t)
	ctx := context.Background()
	for _, pooling := range model.Poolings() {
		t.Run(string(pooling), func(t *testing.T) {
			o := f.o
			o.Pooling = pooling
			curves, err := f.c.LabelEfficiency(ctx, f.enc, f.vocab, []int{200}, o)
			if err != nil {
				t.Fatal(err)
			}
			heads, err := f.c.EncoderScores(ctx, f.enc, f.vocab, o)
			if err != nil {
				t.Fatal(err)
			}
			for k, run := range f.c.Runs {
				p := run.Predictions
				p.Scores = map[string][]float64{eval.ModelEncoder: heads[k].Test, eval.ModelBaseline: p.Scores[eval.ModelBaseline]}
				want, err := eval.Evaluate(p, eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed})
				if err != nil {
					t.Fatal(err)
				}
				pt := curves[k].Points[len(curves[k].Points)-1]
				if !pt.All {
					t.Fatalf("task %s: last point %+v is not the whole split", p.Name, pt)
				}
				if got, w := pt.Encoder, want.Models[eval.ModelEncoder]; !reflect.DeepEqual(got, w) {
					t.Errorf("task %s: encoder %+v, EncoderScores gives %+v", p.Name, got, w)
				}
				if got, w := pt.Baseline, want.Models[eval.ModelBaseline]; !reflect.DeepEqual(got, w) {
					t.Errorf("task %s: baseline %+v, TrainBaseline gives %+v", p.Name, got, w)
				}
				if !reflect.DeepEqual(pt.Diff, want.Comparison) {
					t.Errorf("task %s: comparison %+v, want %+v", p.Name, pt.Diff, want.Comparison)
				}
				t.Logf("task %s: %d training patients, %d rows, %d positives; %d test positives: encoder AUPRC %.4f, baseline %.4f %s",
					p.Name, pt.Patients, pt.Rows, pt.Positives, want.PositivesTest, pt.Encoder.AUPRC, pt.Baseline.AUPRC, pt.Undecided)
			}
		})
	}
}

// TestLabelEfficiencyDeterministic: the same seed gives the same curves; the
// plots of one are PNGs, one per task.
func TestLabelEfficiencyDeterministic(t *testing.T) {
	f := labelCohort(t)
	ctx := context.Background()
	sizes := []int{30, 120, 480}
	a, err := f.c.LabelEfficiency(ctx, f.enc, f.vocab, sizes, f.o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.c.LabelEfficiency(ctx, f.enc, f.vocab, sizes, f.o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave different curves")
	}
	compared := 0
	for _, lc := range a {
		for _, pt := range lc.Points {
			if pt.Diff != nil {
				compared++
				if pt.Encoder.AUPRCCI == nil || pt.Baseline.AUPRCCI == nil || pt.Diff.PHolm != pt.Diff.P {
					t.Errorf("%s, %d patients: comparison %+v with intervals %v, %v", lc.Task, pt.Patients, *pt.Diff, pt.Encoder.AUPRCCI, pt.Baseline.AUPRCCI)
				}
			}
			t.Logf("%s: %4d patients %4d rows %3d positives: encoder %.4f %v, baseline %.4f %v, diff %s %s",
				lc.Task, pt.Patients, pt.Rows, pt.Positives, pt.Encoder.AUPRC, pt.Encoder.AUPRCCI, pt.Baseline.AUPRC, pt.Baseline.AUPRCCI, diffString(pt.Diff), pt.Skipped+pt.Undecided)
		}
	}
	if compared == 0 {
		t.Error("no point was compared: the fixture's test split is too small to check intervals and bands")
	}
	dir := t.TempDir()
	paths, err := PlotLabelCurves(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(a) {
		t.Errorf("%d plots for %d curves", len(paths), len(a))
	}
	for _, path := range paths {
		if !strings.HasPrefix(filepath.Base(path), "label_efficiency_") {
			t.Errorf("plot %s", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG", path)
		}
	}
}

func diffString(c *eval.Comparison) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%+.4f [%.4f, %.4f] p %.3g", c.Diff, c.CI[0], c.CI[1], c.P)
}

// TestLabelEfficiencyErrors: settings it cannot honour are refused before any
// fitting.
func TestLabelEfficiencyErrors(t *testing.T) {
	f := labelCohort(t)
	for _, tc := range []struct {
		name  string
		sizes []int
		edit  func(*Options)
		want  string
	}{
		{"fine-tuning", nil, func(o *Options) { o.Frozen = false }, "frozen probe only"},
		{"zero size", []int{0, 10}, func(*Options) {}, "size 0"},
		{"negative size", []int{10, -5}, func(*Options) {}, "size -5"},
		{"no resamples", nil, func(o *Options) { o.Resamples = 0 }, "resamples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := f.o
			tc.edit(&o)
			_, err := f.c.LabelEfficiency(context.Background(), f.enc, f.vocab, tc.sizes, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
