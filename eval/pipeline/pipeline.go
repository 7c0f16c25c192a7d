// Package pipeline is the work of fedclaims eval as a library, so that every caller
// (the eval command, the demo, the model-size sweep) labels, splits, trains and
// scores the same way: label a dataset's patients per task, build the baseline's
// features, train and choose the gradient-boosting baseline on the training and
// validation splits, fit one encoder head per task on exactly the same rows, and
// score the test split with paired, outcome-stratified patient-level bootstrap
// comparisons. A task that cannot be decided is reported with its reason, never
// fatal. It also holds the follow-up leakage check (LeakageCheck).
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
	// Grid searches the baseline's grid (baseline.DefaultGrid) on validation
	// log-loss.
	Grid bool
	// Iterations caps boosting (early stopping on validation log-loss).
	Iterations int
	// MinCount drops feature codes seen fewer times in training histories.
	MinCount int
	// Features is the baseline's feature set (empty: baseline.DefaultFeatures).
	Features baseline.FeatureSet
	// RecentDays is the window of the counts feature set's recent counts (0: none).
	RecentDays int
	// Threads is the baseline's training threads (0: all cores).
	Threads int
	// Frozen keeps the encoder fixed and fits an L2 logistic probe on its
	// standardised pooled features (the default recipe); false fine-tunes it.
	Frozen bool
	// Pooling turns the encoder's hidden states into the head's input
	// (empty: model.DefaultHeadConfig's).
	Pooling model.Pooling
	// Epochs caps fine-tuning epochs (0: the model package's default); the frozen
	// probe has none.
	Epochs int
	// Seq caps tokens per history for the encoder (0: the model's max_len).
	Seq int
	// Salt salts the train/validation/test split (tasks.DefaultSalt when empty). It
	// must be the salt the encoder was pretrained under, which pretrains on the
	// training split only (tasks.InPretraining).
	Salt string
	// End is the extraction date, a cap on every patient's follow-up (0: none;
	// follow-up then ends per patient, see tasks.Labeler).
	End int64
	// MaxIndexPerPatient is the number of index dates drawn per patient (0: one).
	MaxIndexPerPatient int
	Log                *slog.Logger
}

// DefaultOptions are fedclaims eval's flag defaults.
func DefaultOptions() Options {
	return Options{Seed: 1, Resamples: 1000, Grid: true, Iterations: 500, MinCount: 5,
		Features: baseline.FeaturesTime, RecentDays: 365, Frozen: true}
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Cohort is a dataset's patients labelled for every task, with the baseline's
// features, and once TrainBaseline has run, the baseline's run on every task that
// could be trained and the tasks that could not.
type Cohort struct {
	Patients []*claims.Patient
	Labeler  *tasks.Labeler
	Cohort   *baseline.Cohort
	// Runs hold one run per trained task, in task order; their Predictions carry
	// the test split's labels, patient ids and the baseline's scores.
	Runs []baseline.TaskRun
	// Skipped are the tasks that could not be trained, with the reason.
	Skipped []baseline.Skipped
}

// Labeler is the labeler that o asks for.
func (o Options) Labeler(ts []tasks.Task) (*tasks.Labeler, error) {
	return tasks.NewLabeler(ts, tasks.Options{Seed: o.Seed, End: o.End, Salt: o.Salt, MaxIndexPerPatient: o.MaxIndexPerPatient})
}

// Label labels patients for ts and builds the baseline's features.
func Label(patients []*claims.Patient, ts []tasks.Task, o Options) (*Cohort, error) {
	l, err := o.Labeler(ts)
	if err != nil {
		return nil, err
	}
	c, _, err := baseline.NewCohort(patients, l, o.MinCount, o.Features, o.RecentDays)
	if err != nil {
		return nil, err
	}
	o.log().Info("cohort", "patients", len(patients), "labelled", len(c.Examples),
		"features", c.X.NumCols, "nonzeros", c.X.NNZ())
	return &Cohort{Patients: patients, Labeler: l, Cohort: c}, nil
}

// TrainBaseline trains and chooses the baseline on every task and sets c.Runs and
// c.Skipped. A task that cannot be trained is skipped with its reason, not an
// error: the report lists it.
func (c *Cohort) TrainBaseline(ctx context.Context, o Options) error {
	p := baseline.DefaultParams()
	p.NumIterations, p.Seed, p.NumThreads = o.Iterations, o.Seed, o.Threads
	runs, skipped, err := baseline.RunTasks(ctx, c.Cohort, c.Labeler, baseline.TaskOptions{
		Params: p, Grid: o.Grid, Log: o.Log,
	})
	if err != nil {
		return err
	}
	for _, s := range skipped {
		o.log().Warn("task not evaluated", "task", s.Name, "reason", s.Reason)
	}
	c.Runs, c.Skipped = runs, skipped
	return nil
}

// HeadConfig is the head training that Options ask for.
func (o Options) HeadConfig() model.HeadConfig {
	hc := model.DefaultHeadConfig()
	hc.Seed, hc.Frozen = o.Seed, o.Frozen
	if o.Pooling != "" {
		hc.Pooling = o.Pooling
	}
	if o.Epochs > 0 {
		hc.Epochs = o.Epochs
	}
	return hc
}

// EncoderResult is one task's encoder head: its test-split probabilities, row for
// row with the baseline's, and its log-loss on the validation split that chose it.
type EncoderResult struct {
	Test         []float64
	ValidLogLoss float64
}

// EncoderScores fits one head per task of c.Runs on enc (encoded with vocab) on
// the training split, choosing it on the validation split, and returns each task's
// result, in c.Runs' order.
func (c *Cohort) EncoderScores(ctx context.Context, enc *model.Model, vocab *tokenizer.Vocab, o Options) ([]EncoderResult, error) {
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
	// The frozen encoder's features of an example are the same for every task (the
	// tasks share the index dates): one forward pass serves every task's probe.
	var feats []float32
	if hc.Frozen {
		if feats, err = model.PooledFeatures(ctx, enc, seqs, hc.Batch, hc.Pooling); err != nil {
			return nil, err
		}
	}
	h := cfg.Hidden
	out := make([]EncoderResult, len(c.Runs))
	for ri := range c.Runs {
		pred := &c.Runs[ri].Predictions
		ti := taskIndex[pred.Name]
		var split [3][]model.Example
		var x [3][]float32
		var testIDs []int64
		var testSeqs []model.Sequence
		for i, ex := range c.Cohort.Examples {
			lab := ex.Labels[ti]
			if !lab.Labelled() {
				continue
			}
			split[ex.Split] = append(split[ex.Split], model.Example{Seq: seqs[i], Label: lab == tasks.Positive})
			if feats != nil {
				x[ex.Split] = append(x[ex.Split], feats[i*h:(i+1)*h]...)
			}
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
		if hc.Frozen {
			head, err := model.FitProbe(ctx, enc, x[tasks.Train], labelsOf(split[tasks.Train]), x[tasks.Validation], labelsOf(split[tasks.Validation]), hc)
			if err != nil {
				return nil, fmt.Errorf("task %s: fitting the encoder's probe: %w", pred.Name, err)
			}
			out[ri] = EncoderResult{Test: head.PredictFeatures(x[tasks.Test]), ValidLogLoss: head.ValidLogLoss}
			o.log().Info("encoder probe fitted", "task", pred.Name, "lambda", head.Lambda, "valid_logloss", head.ValidLogLoss)
			continue
		}
		head, err := model.FineTune(ctx, enc, split[tasks.Train], split[tasks.Validation], hc)
		if err != nil {
			return nil, fmt.Errorf("task %s: fine-tuning the encoder: %w", pred.Name, err)
		}
		out[ri] = EncoderResult{Test: head.PredictAll(testSeqs, hc.Batch), ValidLogLoss: head.ValidLogLoss}
		o.log().Info("encoder fine-tuned", "task", pred.Name, "best_epoch", head.BestEpoch, "valid_logloss", head.ValidLogLoss)
	}
	return out, nil
}

func labelsOf(ex []model.Example) []bool {
	out := make([]bool, len(ex))
	for i, e := range ex {
		out[i] = e.Label
	}
	return out
}

// LoadPatients reads whole datasets, in order, and returns their patients. Patient
// ids must be unique across the datasets.
func LoadPatients(ctx context.Context, dirs ...string) ([]*claims.Patient, error) {
	var patients []*claims.Patient
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
			seen = seen || len(p.Events) > 0
			patients = append(patients, p)
			return nil
		}); err != nil {
			return nil, err
		}
		if len(patients) == n {
			return nil, fmt.Errorf("%s: no patients", dir)
		}
	}
	if !seen {
		return nil, fmt.Errorf("%v: no events", dirs)
	}
	return patients, nil
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

// Report scores every run's models with bootstrap intervals and paired
// comparisons, lists the skipped tasks with their reasons, all in task order, and
// corrects the comparisons for multiplicity across the report's tasks.
func (c *Cohort) Report(o Options) (*eval.Report, error) {
	byName := map[string]eval.TaskResult{}
	for _, run := range c.Runs {
		res, err := eval.Evaluate(run.Predictions, eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed})
		if err != nil {
			return nil, err
		}
		byName[res.Name] = res
	}
	for _, s := range c.Skipped {
		u := eval.Undecidable(s.Name, s.Kind, s.Reason)
		u.NTest, u.PositivesTest = s.NTest, s.PositivesTest
		if s.NTest > 0 {
			u.Prevalence = float64(s.PositivesTest) / float64(s.NTest)
		}
		byName[s.Name] = u
	}
	var results []eval.TaskResult
	for _, t := range c.Labeler.Tasks() {
		if r, ok := byName[t.Name]; ok {
			results = append(results, r)
		}
	}
	return eval.NewReport(results), nil
}
