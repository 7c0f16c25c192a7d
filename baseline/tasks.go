package baseline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/tasks"
)

// TaskOptions configure RunTasks.
type TaskOptions struct {
	// Params are the booster's parameters; num_iterations caps early stopping.
	// Their metric is ignored: early stopping is on validation binary log-loss.
	Params Params
	// Grid searches DefaultGrid stepwise on validation log-loss (see GridSpace);
	// without it Params is trained as given, still stopping early on validation
	// log-loss.
	Grid bool
	Log  *slog.Logger
}

// Skipped is a task RunTasks could not train a model for, and why.
type Skipped struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Reason says why, in a sentence to print: "the validation split has no
	// positive examples among 212 labelled patients".
	Reason string `json:"reason"`
	// NTest and PositivesTest count the task's labelled test patients and the
	// positives among them.
	NTest         int `json:"n_test"`
	PositivesTest int `json:"positives_test"`
}

// TaskRun is the baseline's result on one task.
type TaskRun struct {
	// Predictions hold the test split's labels, patient ids and the baseline's
	// probabilities under eval.ModelBaseline.
	Predictions eval.Predictions
	Model       *Model
	Grid        []GridPoint
	NTrain      int
	NValid      int
}

// Cohort is the labelled patients of one dataset and their features, shared by
// every task so that features are built once.
type Cohort struct {
	Examples []tasks.Example
	X        *CSR
	// Features is the feature set X holds.
	Features FeatureSet
	// Systems are the code systems of the dataset's events, sorted: a task none of
	// whose systems (tasks.Task.Systems) is among them cannot have a positive.
	Systems []string
	// Vocab is the feature vocabulary: codes (with their ancestors) seen at least
	// MinCount times in training-split histories.
	Vocab []string
	// Names name the feature columns.
	Names []string
}

// NewCohort labels patients and builds their features of the set fs
// (DefaultFeatures when empty; recentDays is FeaturesCounts' window, see
// NewFeaturizer). Its examples are those labelled for at least one task. The
// vocabulary comes from training-split histories only, so that
// nothing about validation or test patients shapes the features; the age
// normalisation likewise. A task whose code systems the data lacks does not stop
// it: RunTasks lists that task as skipped.
func NewCohort(patients []*claims.Patient, l *tasks.Labeler, minCount int, fs FeatureSet, recentDays int) (*Cohort, *Featurizer, error) {
	fs, err := ParseFeatureSet(string(fs))
	if err != nil {
		return nil, nil, err
	}
	c := &Cohort{Features: fs, Systems: dataSystems(patients)}
	var samples, trainSamples []Sample
	counts := map[string]int{}
	for _, p := range patients {
		for _, ex := range l.Examples(p) {
			if !slices.ContainsFunc(ex.Labels, tasks.Label.Labelled) {
				// Excluded from every task (a prior target each time): it trains and
				// scores nothing, so it must not shape the features either, or the
				// same labelled examples given as MEDS labels, where it has no row,
				// would get other features.
				continue
			}
			c.Examples = append(c.Examples, ex)
			s := Sample{Patient: p, Index: ex.Index}
			samples = append(samples, s)
			if ex.Split != tasks.Train {
				continue
			}
			trainSamples = append(trainSamples, s)
			for _, e := range tasks.History(p, ex.Index).Events {
				for code, ok := e.Code, true; ok; code, ok = claims.Parent(code) {
					if claims.System(code) != "" {
						counts[code]++
					}
				}
			}
		}
	}
	if len(trainSamples) == 0 {
		return nil, nil, fmt.Errorf("cohort: %w: none of %d patients has an index date in the training split", ErrNoIndexDates, len(patients))
	}
	for code, n := range counts {
		if n >= minCount {
			c.Vocab = append(c.Vocab, code)
		}
	}
	slices.Sort(c.Vocab)
	f, err := NewFeaturizer(c.Vocab, fs, recentDays)
	if err != nil {
		return nil, nil, err
	}
	if err := f.Fit(trainSamples); err != nil {
		return nil, nil, err
	}
	if c.X, err = f.Build(samples); err != nil {
		return nil, nil, err
	}
	c.Names = f.Names()
	return c, f, nil
}

// dataSystems returns the code systems of the patients' events, sorted.
func dataSystems(patients []*claims.Patient) []string {
	seen := map[string]bool{}
	last := ""
	for _, p := range patients {
		for _, e := range p.Events {
			sys := claims.System(e.Code)
			if sys != last && sys != "" {
				seen[sys], last = true, sys
			}
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// checkSystems returns why t cannot be decided on data whose code systems are have,
// or "" when one of t's systems (tasks.Task.Systems) is among them: "ICD10//E11"
// against data holding neither ICD10 nor ICD10CM codes would otherwise label every
// patient negative without a word.
func checkSystems(t *tasks.Task, have []string) string {
	if t.Kind == tasks.Given {
		return "" // labels come from a MEDS label file, not from codes
	}
	for _, p := range t.Prefixes {
		if claims.System(p) == "" {
			return fmt.Sprintf("prefix %q has no code system (want e.g. ICD10//E11)", p)
		}
	}
	want := t.Systems()
	for _, s := range want {
		if slices.Contains(have, s) {
			return ""
		}
	}
	data := "no coded events"
	if len(have) > 0 {
		data = strings.Join(have, ", ")
	}
	return fmt.Sprintf("no event in the data has code system %s (the data has %s)", orList(want), data)
}

// orList joins "a", "a or b", "a, b or c".
func orList(v []string) string {
	switch len(v) {
	case 0:
		return "(none)"
	case 1:
		return v[0]
	}
	return strings.Join(v[:len(v)-1], ", ") + " or " + v[len(v)-1]
}

// classReason returns why a split of n labelled patients, pos of them positive,
// cannot train or choose a model, or "" when it has both classes.
func classReason(split tasks.Split, n, pos int) string {
	switch {
	case pos == 0:
		return fmt.Sprintf("the %s split has no positive examples among %d labelled patients", split, n)
	case pos == n:
		return fmt.Sprintf("the %s split has no negative examples among %d labelled patients", split, n)
	}
	return ""
}

// RunTasks trains the baseline for every task of l on the training split, chooses
// and stops it on the validation split's log-loss, and predicts the test split.
//
// A task that cannot be decided does not stop the others: a task none of whose
// code systems occurs in the data, or whose training or validation split lacks
// positive or negative examples, or whose test split has no labelled patient at
// all, is returned in the skipped list with the reason, in task order. A test split
// of one class is not skipped: its run comes back, predictions and all, for the
// evaluation to report as undecided. Errors are failures of training itself
// (a cancelled context, invalid parameters).
func RunTasks(ctx context.Context, c *Cohort, l *tasks.Labeler, o TaskOptions) ([]TaskRun, []Skipped, error) {
	var runs []TaskRun
	var skipped []Skipped
	for ti, t := range l.Tasks() {
		var rows [3][]int
		var pos [3]int
		for i, ex := range c.Examples {
			if lab := ex.Labels[ti]; lab.Labelled() {
				rows[ex.Split] = append(rows[ex.Split], i)
				if lab == tasks.Positive {
					pos[ex.Split]++
				}
			}
		}
		reason := checkSystems(&t, c.Systems)
		for _, s := range []tasks.Split{tasks.Train, tasks.Validation} {
			if reason == "" {
				reason = classReason(s, len(rows[s]), pos[s])
			}
		}
		if reason == "" && len(rows[tasks.Test]) == 0 {
			reason = "the test split has no labelled patients"
		}
		if reason != "" {
			skipped = append(skipped, Skipped{Name: t.Name, Kind: string(t.Kind), Reason: reason,
				NTest: len(rows[tasks.Test]), PositivesTest: pos[tasks.Test]})
			if o.Log != nil {
				o.Log.Warn("task skipped", "task", t.Name, "reason", reason)
			}
			continue
		}
		train, valid, test := c.TaskDataset(ti, rows[tasks.Train]), c.TaskDataset(ti, rows[tasks.Validation]), c.TaskDataset(ti, rows[tasks.Test])
		m, grid, err := c.TrainTask(ctx, train, valid, o)
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: %w", t.Name, err)
		}
		pred := eval.Predictions{
			Name: t.Name, Kind: string(t.Kind), Labels: test.Label,
			Patient: make([]int64, len(rows[tasks.Test])),
			Scores:  map[string][]float64{eval.ModelBaseline: m.Predict(test.X, o.Params.NumThreads)},
		}
		for k, i := range rows[tasks.Test] {
			pred.Patient[k] = c.Examples[i].SubjectID
		}
		if o.Log != nil {
			o.Log.Info("baseline trained", "task", t.Name, "progress", fmt.Sprintf("%d/%d", ti+1, len(l.Tasks())), "train", train.X.Rows(), "validation", valid.X.Rows(),
				"test", test.X.Rows(), "test_positives", pos[tasks.Test], "trees", len(m.Trees),
				"num_leaves", m.Params.NumLeaves, "min_data_in_leaf", m.Params.MinDataInLeaf,
				"lambda_l2", m.Params.LambdaL2, "feature_fraction", m.Params.FeatureFraction,
				"learning_rate", m.Params.LearningRate)
		}
		runs = append(runs, TaskRun{Predictions: pred, Model: m, Grid: grid, NTrain: train.X.Rows(), NValid: valid.X.Rows()})
	}
	return runs, skipped, nil
}

// TaskDataset is the rows of c.Examples (indices) with task ti's labels, a row
// positive when the task labels it so. The rows must be labelled for the task.
func (c *Cohort) TaskDataset(ti int, rows []int) *Dataset {
	d := &Dataset{X: c.X.SelectRows(rows), Label: make([]bool, len(rows))}
	for k, i := range rows {
		d.Label[k] = c.Examples[i].Labels[ti] == tasks.Positive
	}
	return d
}

// TrainTask trains one task's baseline on train and chooses and stops it on
// valid's log-loss, exactly as RunTasks does for each task, so that a caller
// training on other rows (a subset of the training split, say) gets the model
// RunTasks would have given those rows.
func (c *Cohort) TrainTask(ctx context.Context, train, valid *Dataset, o TaskOptions) (*Model, []GridPoint, error) {
	p := o.Params
	p.Metric = "binary_logloss"
	if p.EarlyStoppingRound == 0 {
		p.EarlyStoppingRound = 20
	}
	var m *Model
	var grid []GridPoint
	var err error
	if o.Grid {
		m, grid, err = TrainGrid(ctx, train, valid, p, DefaultGrid(), o.Log)
	} else {
		m, err = Train(ctx, train, valid, p, o.Log)
	}
	if err != nil {
		return nil, nil, err
	}
	m.FeatureNames = c.Names
	return m, grid, nil
}
