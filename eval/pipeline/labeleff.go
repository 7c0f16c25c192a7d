package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// LabelCurve is one task's label-efficiency curve: both models' test-split
// scores as the number of labelled training patients grows.
type LabelCurve struct {
	Task string
	Kind string
	// TrainPatients is the number of training patients labelled for the task,
	// the "all" point's size.
	TrainPatients int
	// Prevalence is the test split's fraction of positive rows, AUPRC's
	// no-skill level.
	Prevalence float64
	// Points are in increasing Patients, the last the whole training split.
	Points []LabelPoint
}

// LabelPoint is both models trained on one nested subset of the training split.
type LabelPoint struct {
	// Patients is the labelled training patients used; Rows their labelled rows
	// (index dates), which is what the models train on.
	Patients int
	Rows     int
	// Positives is the positive rows among Rows, PositivePatients the patients
	// with one.
	Positives        int
	PositivePatients int
	// All marks the point of the whole training split.
	All bool
	// Scored says the test split gave metrics: it has both classes and the point
	// was not skipped.
	Scored bool
	// Encoder and Baseline are the test-split metrics, with intervals when the
	// test split has eval.MinPositives positives (rows and patients).
	Encoder, Baseline eval.Metrics
	// Diff is the paired bootstrap comparison encoder − baseline on test AUPRC,
	// on the same resamples as the intervals. Its P is uncorrected (PHolm = P):
	// a caller testing several points or tasks Holm-corrects them together, with
	// eval.Holm. Nil when the test split cannot decide (see Undecided).
	Diff *eval.Comparison
	// Undecided says why the test split gave no comparison (or no metrics at all)
	// although the point was fitted, as eval.Evaluate words it.
	Undecided string
	// Skipped says why the point was not fitted (the subset lacks a class); the
	// metrics are then zero.
	Skipped string
}

// labelStream is the PCG stream of the training patients' permutation, apart
// from every other use of Options.Seed.
const labelStream = 0x6c616265

// LabelEfficiency fits, per task of c.Runs and per training-set size n in sizes
// (plus the whole training split), the encoder's frozen probe and the baseline on
// the first n labelled training patients of one permutation of the training
// patients seeded by o.Seed, and scores both on the whole test split with the
// paired bootstrap of eval.Evaluate.
//
// The subsets are by patient, each with all of its labelled rows, and nested: a
// size's patients are among every larger size's, and the permutation is the same
// for every task (a task's subset is the permutation's first n patients labelled
// for it), so that the curves differ by the labels alone, not by which patients
// were drawn. Sizes are sorted; one not below the task's labelled training
// patients is left out rather than repeating the whole split, which is always the
// last point. A subset without both classes is a point with Skipped set.
//
// Both models are chosen on the whole validation split: the probe's L2 strength,
// and the baseline's grid (when o.Grid) and early stopping on validation log-loss,
// exactly as TrainBaseline trains it (baseline.Cohort.TrainTask), only on the
// subset's rows. The baseline's feature vocabulary and the encoder's pretraining
// stay those of the whole training split: both may use unlabelled histories, and
// the curve measures labels. The whole-split point therefore scores what
// TrainBaseline and EncoderScores give.
//
// The probe's features come from one forward pass over every example, shared by
// every task and size. Only the frozen probe is fitted: o.Frozen false is an
// error, since fine-tuning once per task and size multiplies the encoder's
// training by the number of points.
func (c *Cohort) LabelEfficiency(ctx context.Context, enc *model.Model, vocab *tokenizer.Vocab, sizes []int, o Options) ([]LabelCurve, error) {
	hc := o.HeadConfig()
	if !hc.Frozen {
		return nil, errors.New("label efficiency: fits the frozen probe only (set Frozen); fine-tuning once per task and size is not supported")
	}
	sizes = slices.Clone(sizes)
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	if len(sizes) > 0 && sizes[0] <= 0 {
		return nil, fmt.Errorf("label efficiency: training-set size %d, want positive", sizes[0])
	}
	if o.Resamples <= 0 {
		return nil, fmt.Errorf("label efficiency: %d bootstrap resamples, want at least 1", o.Resamples)
	}
	e, err := c.encode(ctx, enc, vocab, o, hc)
	if err != nil {
		return nil, fmt.Errorf("label efficiency: %w", err)
	}
	order := c.trainPermutation(o.Seed)
	p := baseline.DefaultParams()
	p.NumIterations, p.Seed, p.NumThreads = o.Iterations, o.Seed, o.Threads
	bo := baseline.TaskOptions{Params: p, Grid: o.Grid}
	taskIndex := c.taskIndex()
	curves := make([]LabelCurve, 0, len(c.Runs))
	for ri := range c.Runs {
		pred := &c.Runs[ri].Predictions
		ti := taskIndex[pred.Name]
		rows := c.taskRows(ti)
		if err := c.checkTestRows(pred, rows[tasks.Test]); err != nil {
			return nil, fmt.Errorf("label efficiency: %w", err)
		}
		valid := c.Cohort.TaskDataset(ti, rows[tasks.Validation])
		test := c.Cohort.TaskDataset(ti, rows[tasks.Test])
		xValid, xTest := e.features(rows[tasks.Validation]), e.features(rows[tasks.Test])
		ns, subs := c.trainSubsets(rows[tasks.Train], order, sizes)
		lc := LabelCurve{Task: pred.Name, Kind: pred.Kind, TrainPatients: ns[len(ns)-1]}
		if len(test.Label) > 0 {
			lc.Prevalence, _ = eval.Prevalence(test.Label)
		}
		for k, n := range ns {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			sub := subs[k]
			pt := LabelPoint{Patients: n, Rows: len(sub), All: k == len(ns)-1}
			train := c.Cohort.TaskDataset(ti, sub)
			seen := map[int64]bool{}
			for j, y := range train.Label {
				if y {
					pt.Positives++
					if id := c.Cohort.Examples[sub[j]].SubjectID; !seen[id] {
						seen[id] = true
						pt.PositivePatients++
					}
				}
			}
			switch {
			case pt.Positives == 0:
				pt.Skipped = fmt.Sprintf("no positive row among the %d patients' %d rows", n, len(sub))
			case pt.Positives == len(sub):
				pt.Skipped = fmt.Sprintf("no negative row among the %d patients' %d rows", n, len(sub))
			}
			if pt.Skipped != "" {
				o.log().Info("label-efficiency point skipped", "task", pred.Name, "patients", n, "reason", pt.Skipped)
				lc.Points = append(lc.Points, pt)
				continue
			}
			head, err := model.FitProbe(ctx, enc, e.features(sub), train.Label, xValid, valid.Label, hc)
			if err != nil {
				return nil, fmt.Errorf("label efficiency: task %s, %d patients: fitting the encoder's probe: %w", pred.Name, n, err)
			}
			m, _, err := c.Cohort.TrainTask(ctx, train, valid, bo)
			if err != nil {
				return nil, fmt.Errorf("label efficiency: task %s, %d patients: training the baseline: %w", pred.Name, n, err)
			}
			res, err := eval.Evaluate(eval.Predictions{
				Name: pred.Name, Kind: pred.Kind, Labels: test.Label, Patient: pred.Patient,
				Scores: map[string][]float64{
					eval.ModelEncoder:  head.PredictFeatures(xTest),
					eval.ModelBaseline: m.Predict(test.X, p.NumThreads),
				},
			}, eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed})
			if err != nil {
				return nil, fmt.Errorf("label efficiency: task %s, %d patients: %w", pred.Name, n, err)
			}
			pt.Encoder, pt.Baseline = res.Models[eval.ModelEncoder], res.Models[eval.ModelBaseline]
			pt.Diff, pt.Undecided, pt.Scored = res.Comparison, res.Undecided, len(res.Models) > 0
			o.log().Info("label-efficiency point", "task", pred.Name, "patients", n, "rows", len(sub),
				"positives", pt.Positives, "encoder_auprc", pt.Encoder.AUPRC, "baseline_auprc", pt.Baseline.AUPRC)
			lc.Points = append(lc.Points, pt)
		}
		curves = append(curves, lc)
	}
	return curves, nil
}

// trainSubsets returns the nested training subsets of one task: for each size
// of sizes below the number of patients labelled for the task, and then for that
// number, the rows of train (the task's labelled training rows) of the first n
// such patients in order, each patient with all of its rows, in example order.
// ns are the sizes kept.
func (c *Cohort) trainSubsets(train []int, order []int64, sizes []int) (ns []int, subs [][]int) {
	byPatient := map[int64][]int{}
	for _, i := range train {
		id := c.Cohort.Examples[i].SubjectID
		byPatient[id] = append(byPatient[id], i)
	}
	var labelled []int64
	for _, id := range order {
		if len(byPatient[id]) > 0 {
			labelled = append(labelled, id)
		}
	}
	for _, n := range sizes {
		if n < len(labelled) {
			ns = append(ns, n)
		}
	}
	ns = append(ns, len(labelled))
	for _, n := range ns {
		var sub []int
		for _, id := range labelled[:n] {
			sub = append(sub, byPatient[id]...)
		}
		// Example order, so that the whole-split subset is TrainBaseline's
		// training rows in its order, and so gives its model.
		slices.Sort(sub)
		subs = append(subs, sub)
	}
	return ns, subs
}

// trainPermutation returns the training split's patients, each once, in an order
// fixed by seed alone: first-seen order in the cohort's examples, shuffled.
func (c *Cohort) trainPermutation(seed uint64) []int64 {
	var ids []int64
	seen := map[int64]bool{}
	for _, ex := range c.Cohort.Examples {
		if ex.Split == tasks.Train && !seen[ex.SubjectID] {
			seen[ex.SubjectID] = true
			ids = append(ids, ex.SubjectID)
		}
	}
	rng := rand.New(rand.NewPCG(seed, labelStream))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids
}

// Plot writes the curve as a PNG at path (eval.PlotLabelEfficiency): both models'
// test AUPRC against labelled patients, with their intervals. Skipped points, and
// points whose test split gave no metrics, are left out.
func (lc LabelCurve) Plot(path string) error {
	models := map[string][]eval.SizePoint{}
	for _, pt := range lc.Points {
		if !pt.Scored {
			continue
		}
		models[eval.ModelEncoder] = append(models[eval.ModelEncoder], eval.SizePoint{Patients: pt.Patients, AUPRC: pt.Encoder.AUPRC, CI: pt.Encoder.AUPRCCI})
		models[eval.ModelBaseline] = append(models[eval.ModelBaseline], eval.SizePoint{Patients: pt.Patients, AUPRC: pt.Baseline.AUPRC, CI: pt.Baseline.AUPRCCI})
	}
	if len(models) == 0 {
		return fmt.Errorf("plot %s: no scored label-efficiency point", lc.Task)
	}
	return eval.PlotLabelEfficiency(path, lc.Task, models, lc.Prevalence)
}

// PlotLabelCurves writes each curve with a scored point as
// dir/label_efficiency_<task>.png and returns the paths written; a curve without
// one (every subset skipped, or a test split that scores nothing) has no plot.
func PlotLabelCurves(dir string, curves []LabelCurve) ([]string, error) {
	var paths []string
	for _, lc := range curves {
		if !slices.ContainsFunc(lc.Points, func(pt LabelPoint) bool { return pt.Scored }) {
			continue
		}
		path := filepath.Join(dir, "label_efficiency_"+lc.Task+".png")
		if err := lc.Plot(path); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}
