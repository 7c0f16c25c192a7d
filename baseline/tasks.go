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
	// MinCount drops vocabulary codes seen fewer times in the training histories.
	MinCount int
	// RecentDays adds counts over the last RecentDays days; 0 leaves them out.
	RecentDays int
	// SkipDegenerate leaves out, with a warning, a task that has a split without
	// positive or negative examples, instead of failing.
	SkipDegenerate bool
	Log            *slog.Logger
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
	// Vocab is the feature vocabulary: codes (with their ancestors) seen at least
	// MinCount times in training-split histories.
	Vocab []string
	// Names name the feature columns.
	Names []string
}

// NewCohort labels patients and builds their features of the set fs
// (DefaultFeatures when empty; recentDays is FeaturesCounts' window, see
// NewFeaturizer). The vocabulary comes from training-split histories only, so that
// nothing about validation or test patients shapes the features; the age
// normalisation likewise.
func NewCohort(patients []*claims.Patient, l *tasks.Labeler, minCount int, fs FeatureSet, recentDays int) (*Cohort, *Featurizer, error) {
	fs, err := ParseFeatureSet(string(fs))
	if err != nil {
		return nil, nil, err
	}
	if err := checkSystems(patients, l.Tasks()); err != nil {
		return nil, nil, err
	}
	c := &Cohort{Features: fs}
	var samples, trainSamples []Sample
	counts := map[string]int{}
	for _, p := range patients {
		for _, ex := range l.Examples(p) {
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
		return nil, nil, fmt.Errorf("cohort: none of %d patients has an index date in the training split", len(patients))
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

// checkSystems rejects a task whose prefix names a code system the data does not
// use at all: "ICD10//E11" against ICD10CM data would otherwise label every patient
// negative without a word.
func checkSystems(patients []*claims.Patient, ts []tasks.Task) error {
	seen := map[string]bool{}
	for _, p := range patients {
		for _, e := range p.Events {
			seen[claims.System(e.Code)] = true
		}
	}
	for _, t := range ts {
		for _, prefix := range t.Prefixes {
			sys := claims.System(prefix)
			if sys == "" {
				return fmt.Errorf("task %s: prefix %q has no code system (want e.g. ICD10//E11)", t.Name, prefix)
			}
			if !seen[sys] {
				var have []string
				for s := range seen {
					if s != "" {
						have = append(have, s)
					}
				}
				sort.Strings(have)
				return fmt.Errorf("task %s: prefix %q: no event in the data has code system %s (the data has %s)", t.Name, prefix, sys, strings.Join(have, ", "))
			}
		}
	}
	return nil
}

// RunTasks trains the baseline for every task of l on the training split, chooses
// and stops it on the validation split's log-loss, and predicts the test split. A split without
// positive or negative examples for a task is an error naming both.
func RunTasks(ctx context.Context, c *Cohort, l *tasks.Labeler, o TaskOptions) ([]TaskRun, error) {
	var runs []TaskRun
	for ti, t := range l.Tasks() {
		var rows [3][]int
		for i, ex := range c.Examples {
			if ex.Labels[ti].Labelled() {
				rows[ex.Split] = append(rows[ex.Split], i)
			}
		}
		sets := [3]*Dataset{}
		var degenerate error
		for s, rs := range rows {
			split := tasks.Split(s)
			d := &Dataset{X: c.X.SelectRows(rs), Label: make([]bool, len(rs))}
			pos := 0
			for k, i := range rs {
				d.Label[k] = c.Examples[i].Labels[ti] == tasks.Positive
				if d.Label[k] {
					pos++
				}
			}
			if pos == 0 && degenerate == nil {
				degenerate = fmt.Errorf("task %s: the %s split has no positive examples among %d labelled patients", t.Name, split, len(rs))
			}
			if pos == len(rs) && degenerate == nil {
				degenerate = fmt.Errorf("task %s: the %s split has no negative examples among %d labelled patients", t.Name, split, len(rs))
			}
			sets[s] = d
		}
		if degenerate != nil {
			if !o.SkipDegenerate {
				return nil, degenerate
			}
			if o.Log != nil {
				o.Log.Warn("task left out", "task", t.Name, "reason", degenerate.Error())
			}
			continue
		}
		train, valid, test := sets[tasks.Train], sets[tasks.Validation], sets[tasks.Test]
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
			return nil, fmt.Errorf("task %s: %w", t.Name, err)
		}
		m.FeatureNames = c.Names
		pred := eval.Predictions{
			Name: t.Name, Kind: string(t.Kind), Labels: test.Label,
			Patient: make([]int64, len(rows[tasks.Test])),
			Scores:  map[string][]float64{eval.ModelBaseline: m.Predict(test.X, p.NumThreads)},
		}
		for k, i := range rows[tasks.Test] {
			pred.Patient[k] = c.Examples[i].SubjectID
		}
		if o.Log != nil {
			o.Log.Info("baseline trained", "task", t.Name, "train", train.X.Rows(), "validation", valid.X.Rows(),
				"test", test.X.Rows(), "trees", len(m.Trees), "num_leaves", m.Params.NumLeaves, "learning_rate", m.Params.LearningRate)
		}
		runs = append(runs, TaskRun{Predictions: pred, Model: m, Grid: grid, NTrain: train.X.Rows(), NValid: valid.X.Rows()})
	}
	return runs, nil
}
