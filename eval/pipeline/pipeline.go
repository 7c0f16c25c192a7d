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
	// Splits, when set, is the split to use instead of the hash under Salt: the
	// dataset's own (tasks.LoadSplits).
	Splits *tasks.Splits
	// Given, when set, are MEDS labels (task name -> rows) to evaluate instead of
	// the tasks' own labels (tasks.NewGivenLabeler).
	Given map[string][]claims.MEDSLabel
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
	to := tasks.Options{Seed: o.Seed, End: o.End, Salt: o.Salt, Splits: o.Splits, MaxIndexPerPatient: o.MaxIndexPerPatient}
	if o.Given != nil {
		return tasks.NewGivenLabeler(o.Given, to)
	}
	return tasks.NewLabeler(ts, to)
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
	// Head is the fitted head (a fine-tuned one holds its own encoder), to be
	// saved (Cohort.SavedHeads).
	Head *model.Classifier
}

// EncoderScores fits one head per task of c.Runs on enc (encoded with vocab) on
// the training split, choosing it on the validation split, and returns each task's
// result, in c.Runs' order.
func (c *Cohort) EncoderScores(ctx context.Context, enc *model.Model, vocab *tokenizer.Vocab, o Options) ([]EncoderResult, error) {
	hc := o.HeadConfig()
	e, err := c.encode(ctx, enc, vocab, o, hc)
	if err != nil {
		return nil, err
	}
	taskIndex := c.taskIndex()
	out := make([]EncoderResult, len(c.Runs))
	for ri := range c.Runs {
		pred := &c.Runs[ri].Predictions
		ti := taskIndex[pred.Name]
		rows := c.taskRows(ti)
		if err := c.checkTestRows(pred, rows[tasks.Test]); err != nil {
			return nil, err
		}
		if hc.Frozen {
			head, err := model.FitProbe(ctx, enc, e.features(rows[tasks.Train]), c.labels(ti, rows[tasks.Train]),
				e.features(rows[tasks.Validation]), c.labels(ti, rows[tasks.Validation]), hc)
			if err != nil {
				return nil, fmt.Errorf("task %s: fitting the encoder's probe: %w", pred.Name, err)
			}
			out[ri] = EncoderResult{Test: head.PredictFeatures(e.features(rows[tasks.Test])), ValidLogLoss: head.ValidLogLoss, Head: head}
			o.log().Info("encoder probe fitted", "task", pred.Name, "progress", fmt.Sprintf("%d/%d", ri+1, len(c.Runs)), "lambda", head.Lambda, "valid_logloss", head.ValidLogLoss)
			continue
		}
		head, err := model.FineTune(ctx, enc, e.examples(c, ti, rows[tasks.Train]), e.examples(c, ti, rows[tasks.Validation]), hc)
		if err != nil {
			return nil, fmt.Errorf("task %s: fine-tuning the encoder: %w", pred.Name, err)
		}
		out[ri] = EncoderResult{Test: head.PredictAll(e.sequences(rows[tasks.Test]), hc.Batch), ValidLogLoss: head.ValidLogLoss, Head: head}
		o.log().Info("encoder fine-tuned", "task", pred.Name, "progress", fmt.Sprintf("%d/%d", ri+1, len(c.Runs)), "best_epoch", head.BestEpoch, "valid_logloss", head.ValidLogLoss)
	}
	return out, nil
}

// encoded is every example of a cohort as the encoder sees it, computed once for
// all tasks (they share the index dates) and, in LabelEfficiency, all subset sizes.
type encoded struct {
	seqs []model.Sequence
	// feats are the frozen encoder's pooled features, row-major, width a row; nil
	// when fine-tuning. width is read from the features, not the encoder's Hidden,
	// since a pooling may concatenate several states.
	feats []float32
	width int
}

// encode tokenizes c's examples for enc and, when hc is frozen, computes their
// pooled features in one forward pass.
func (c *Cohort) encode(ctx context.Context, enc *model.Model, vocab *tokenizer.Vocab, o Options, hc model.HeadConfig) (*encoded, error) {
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
	e := &encoded{seqs: make([]model.Sequence, len(c.Cohort.Examples))}
	var te tokenizer.Encoding
	for i, ex := range c.Cohort.Examples {
		tok.EncodeTo(&te, byID[ex.SubjectID], ex.Index)
		e.seqs[i] = model.FromEncoding(&te)
	}
	if !hc.Frozen {
		return e, nil
	}
	if e.feats, err = model.PooledFeatures(ctx, enc, e.seqs, hc.Batch, hc.Pooling); err != nil {
		return nil, err
	}
	if n := len(e.seqs); n > 0 {
		if len(e.feats)%n != 0 {
			return nil, fmt.Errorf("pooled features: %d values for %d examples", len(e.feats), n)
		}
		e.width = len(e.feats) / n
	}
	return e, nil
}

// features returns the pooled features of rows (indices into the cohort's
// examples), in rows' order.
func (e *encoded) features(rows []int) []float32 {
	out := make([]float32, 0, len(rows)*e.width)
	for _, i := range rows {
		out = append(out, e.feats[i*e.width:(i+1)*e.width]...)
	}
	return out
}

func (e *encoded) sequences(rows []int) []model.Sequence {
	out := make([]model.Sequence, len(rows))
	for k, i := range rows {
		out[k] = e.seqs[i]
	}
	return out
}

func (e *encoded) examples(c *Cohort, ti int, rows []int) []model.Example {
	out := make([]model.Example, len(rows))
	for k, i := range rows {
		out[k] = model.Example{Seq: e.seqs[i], Label: c.Cohort.Examples[i].Labels[ti] == tasks.Positive}
	}
	return out
}

// taskIndex maps a task's name to its index in the examples' labels.
func (c *Cohort) taskIndex() map[string]int {
	m := map[string]int{}
	for i, t := range c.Labeler.Tasks() {
		m[t.Name] = i
	}
	return m
}

// taskRows returns, per split, the examples labelled for task ti, in example
// order: the rows, and the order, that baseline.RunTasks trains and predicts.
func (c *Cohort) taskRows(ti int) [3][]int {
	var rows [3][]int
	for i, ex := range c.Cohort.Examples {
		if ex.Labels[ti].Labelled() {
			rows[ex.Split] = append(rows[ex.Split], i)
		}
	}
	return rows
}

// labels returns task ti's labels of rows.
func (c *Cohort) labels(ti int, rows []int) []bool {
	out := make([]bool, len(rows))
	for k, i := range rows {
		out[k] = c.Cohort.Examples[i].Labels[ti] == tasks.Positive
	}
	return out
}

// checkTestRows checks that test, the examples the encoder scores, are the
// baseline's test rows in pred, patient for patient: the paired comparison pairs
// them by position.
func (c *Cohort) checkTestRows(pred *eval.Predictions, test []int) error {
	if len(test) != len(pred.Patient) {
		return fmt.Errorf("task %s: encoder test split has %d rows, baseline's %d", pred.Name, len(test), len(pred.Patient))
	}
	for k, i := range test {
		if id := c.Cohort.Examples[i].SubjectID; pred.Patient[k] != id {
			return fmt.Errorf("task %s: encoder test row %d is patient %d, baseline's is %d", pred.Name, k, id, pred.Patient[k])
		}
	}
	return nil
}

// LoadPatients reads whole datasets, in order, and returns their patients. Patient
// ids must be unique across the datasets.
func LoadPatients(ctx context.Context, dirs ...string) ([]*claims.Patient, error) {
	return LoadPatientsWith(ctx, nil, dirs...)
}

// LoadPatientsWith is LoadPatients with reader options (claims.CodesFile, ...).
func LoadPatientsWith(ctx context.Context, opts []claims.Option, dirs ...string) ([]*claims.Patient, error) {
	var patients []*claims.Patient
	seen := false
	from := map[int64]string{}
	for _, dir := range dirs {
		n := len(patients)
		if err := readAll(ctx, dir, opts, func(p *claims.Patient) error {
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

func readAll(ctx context.Context, dir string, opts []claims.Option, fn func(*claims.Patient) error) error {
	src, err := claims.Open(dir, opts...)
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
	r := eval.NewReport(results)
	r.Split = c.Labeler.Splits().String()
	return r, nil
}
