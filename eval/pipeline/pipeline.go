// Package pipeline is the work of fedclaims eval as a library, so that every caller
// (the eval command, the model-size sweep) labels, splits, trains and scores the same
// way: label a dataset's patients per task, build count features, train and choose
// the gradient-boosting baseline on the training and validation splits, fine-tune one
// encoder head per task on the same splits, and score the test split with
// patient-level bootstrap intervals.
//
// It lives apart from package eval because it composes baseline and model, and
// baseline already depends on eval for its predictions.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// Options are fedclaims eval's settings.
type Options struct {
	// Seed fixes index dates, baseline training, head training and bootstrap resamples.
	Seed uint64
	// Resamples is the number of patient-level bootstrap resamples.
	Resamples int
	// Grid searches the baseline's num_leaves x learning_rate on validation AUPRC.
	Grid bool
	// Iterations caps boosting (early stopping on validation).
	Iterations int
	// MinCount drops feature codes seen fewer times in training histories.
	MinCount int
	// RecentDays adds counts over the last RecentDays days (0: none).
	RecentDays int
	// Threads is the baseline's training threads (0: all cores).
	Threads int
	// SkipDegenerate leaves out tasks with a split lacking a class instead of failing.
	SkipDegenerate bool
	// Frozen keeps the encoder fixed and fits a logistic head on its pooled features.
	Frozen bool
	// Epochs caps fine-tuning epochs (0: the model package's default).
	Epochs int
	// Seq caps tokens per history for the encoder (0: the model's max_len).
	Seq int
	// Salt salts the train/validation/test split (tasks.DefaultSalt when empty). It
	// must be the salt the encoder was pretrained under, which pretrains on the
	// training split only (tasks.InPretraining).
	Salt string
	Log  *slog.Logger
}

// DefaultOptions are fedclaims eval's flag defaults.
func DefaultOptions() Options {
	return Options{Seed: 1, Resamples: 1000, Grid: true, Iterations: 500, MinCount: 5, RecentDays: 365}
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Cohort is a dataset's patients labelled for every task, with their count
// features, and once TrainBaseline has run, the baseline's run on every task that
// could be evaluated.
type Cohort struct {
	Patients []*claims.Patient
	Labeler  *tasks.Labeler
	Cohort   *baseline.Cohort
	// Runs hold one run per evaluated task, in task order; their Predictions carry
	// the test split's labels, patient ids and the baseline's scores.
	Runs []baseline.TaskRun
}

// Label labels patients for ts with data end `end` (see LoadPatients) and builds
// the count features.
func Label(patients []*claims.Patient, end int64, ts []tasks.Task, o Options) (*Cohort, error) {
	l, err := tasks.NewLabeler(ts, tasks.Options{Seed: o.Seed, End: end, Salt: o.Salt})
	if err != nil {
		return nil, err
	}
	c, _, err := baseline.NewCohort(patients, l, o.MinCount, o.RecentDays)
	if err != nil {
		return nil, err
	}
	o.log().Info("cohort", "patients", len(patients), "labelled", len(c.Examples),
		"features", c.X.NumCols, "nonzeros", c.X.NNZ())
	return &Cohort{Patients: patients, Labeler: l, Cohort: c}, nil
}

// TrainBaseline trains and chooses the baseline on every task and sets c.Runs.
func (c *Cohort) TrainBaseline(ctx context.Context, o Options) error {
	p := baseline.DefaultParams()
	p.NumIterations, p.Seed, p.NumThreads = o.Iterations, o.Seed, o.Threads
	runs, err := baseline.RunTasks(ctx, c.Cohort, c.Labeler, baseline.TaskOptions{
		Params: p, Grid: o.Grid, MinCount: o.MinCount, RecentDays: o.RecentDays,
		SkipDegenerate: o.SkipDegenerate, Log: o.Log,
	})
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return errors.New("no task could be evaluated")
	}
	c.Runs = runs
	return nil
}

// HeadConfig is the head training that Options ask for.
func (o Options) HeadConfig() model.HeadConfig {
	hc := model.DefaultHeadConfig()
	hc.Seed, hc.Frozen = o.Seed, o.Frozen
	if o.Epochs > 0 {
		hc.Epochs = o.Epochs
	}
	if hc.Frozen {
		hc.Train.LR = 1e-2
	}
	return hc
}

// EncoderScores fine-tunes one head per task of c.Runs on enc (encoded with vocab) on
// the training split, stopping on the validation split, and returns each task's
// test-split probabilities, row for row with c.Runs[i].Predictions.
func (c *Cohort) EncoderScores(ctx context.Context, enc *model.Model, vocab *tokenizer.Vocab, o Options) ([][]float64, error) {
	cfg := enc.Config()
	if vocab.Len() != cfg.Vocab {
		return nil, fmt.Errorf("the vocabulary holds %d tokens but the encoder's embeddings have %d rows", vocab.Len(), cfg.Vocab)
	}
	seqLen := cfg.MaxLen
	if o.Seq > 0 {
		seqLen = min(seqLen, o.Seq)
	}
	tok, err := tokenizer.NewEncoder(vocab, seqLen)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]*claims.Patient, len(c.Patients))
	for _, p := range c.Patients {
		byID[p.ID] = p
	}
	seqs := make([]model.Sequence, len(c.Cohort.Examples))
	var e tokenizer.Encoding
	for i, ex := range c.Cohort.Examples {
		tok.EncodeTo(&e, byID[ex.SubjectID], ex.Index)
		seqs[i] = model.FromEncoding(&e)
	}
	taskIndex := map[string]int{}
	for i, t := range c.Labeler.Tasks() {
		taskIndex[t.Name] = i
	}
	hc := o.HeadConfig()
	out := make([][]float64, len(c.Runs))
	for ri := range c.Runs {
		pred := &c.Runs[ri].Predictions
		ti := taskIndex[pred.Name]
		var split [3][]model.Example
		var testIDs []int64
		var testSeqs []model.Sequence
		for i, ex := range c.Cohort.Examples {
			lab := ex.Labels[ti]
			if !lab.Labelled() {
				continue
			}
			split[ex.Split] = append(split[ex.Split], model.Example{Seq: seqs[i], Label: lab == tasks.Positive})
			if ex.Split == tasks.Test {
				testIDs = append(testIDs, ex.SubjectID)
				testSeqs = append(testSeqs, seqs[i])
			}
		}
		if len(testIDs) != len(pred.Patient) {
			return nil, fmt.Errorf("task %s: encoder test split has %d rows, baseline's %d", pred.Name, len(testIDs), len(pred.Patient))
		}
		for k, id := range testIDs {
			if pred.Patient[k] != id {
				return nil, fmt.Errorf("task %s: encoder test row %d is patient %d, baseline's is %d", pred.Name, k, id, pred.Patient[k])
			}
		}
		c, err := model.FineTune(ctx, enc, split[tasks.Train], split[tasks.Validation], hc)
		if err != nil {
			return nil, fmt.Errorf("task %s: fine-tuning the encoder: %w", pred.Name, err)
		}
		out[ri] = c.PredictAll(testSeqs, hc.Batch)
		o.log().Info("encoder head trained", "task", pred.Name, "best_epoch", c.BestEpoch, "valid_auprc", c.ValidScore, "frozen", hc.Frozen)
	}
	return out, nil
}

// LoadPatients reads whole datasets, in order, and returns their patients and the end
// of the data: the day after the last event, which the labeler needs to leave room
// for every horizon. Patient ids must be unique across the datasets.
func LoadPatients(ctx context.Context, dirs ...string) ([]*claims.Patient, int64, error) {
	var patients []*claims.Patient
	var last int64
	seen := false
	from := map[int64]string{}
	for _, dir := range dirs {
		n := len(patients)
		if err := readAll(ctx, dir, func(p *claims.Patient) error {
			if len(dirs) > 1 {
				if other, dup := from[p.ID]; dup {
					return fmt.Errorf("subject %d is in both %s and %s: pooled datasets need distinct ids", p.ID, other, dir)
				}
				from[p.ID] = dir
			}
			for _, e := range p.Events {
				if !seen || e.Time > last {
					last, seen = e.Time, true
				}
			}
			patients = append(patients, p)
			return nil
		}); err != nil {
			return nil, 0, err
		}
		if len(patients) == n {
			return nil, 0, fmt.Errorf("%s: no patients", dir)
		}
	}
	if !seen {
		return nil, 0, fmt.Errorf("%v: no events", dirs)
	}
	const day = 86_400_000_000
	return patients, (last/day + 1) * day, nil
}

func readAll(ctx context.Context, dir string, fn func(*claims.Patient) error) error {
	src, err := claims.Open(dir)
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		p, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", dir, err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}

// Report scores every run's models with bootstrap intervals.
func Report(runs []baseline.TaskRun, o Options) (*eval.Report, error) {
	r := &eval.Report{}
	for _, run := range runs {
		res, err := eval.Evaluate(run.Predictions, eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed})
		if err != nil {
			return nil, err
		}
		r.Tasks = append(r.Tasks, res)
	}
	return r, nil
}
