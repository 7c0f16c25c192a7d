package baseline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/fedclaims/fedclaims/eval"
)

// GridPoint is one setting the search trained and what it scored on the
// validation set. The search chooses on ValidLogLoss alone; ValidAUPRC is there to
// read, not to choose: with a few dozen validation positives it moves by chance
// more than the settings move it.
type GridPoint struct {
	// Stage is the search stage that trained the point (see GridSpace).
	Stage           string  `json:"stage"`
	NumLeaves       int     `json:"num_leaves"`
	MinDataInLeaf   int     `json:"min_data_in_leaf"`
	LambdaL2        float64 `json:"lambda_l2"`
	FeatureFraction float64 `json:"feature_fraction"`
	LearningRate    float64 `json:"learning_rate"`
	// BestIteration is the number of trees early stopping kept.
	BestIteration int `json:"best_iteration"`
	// ValidLogLoss is the mean binary log-loss on the validation set at
	// BestIteration, the criterion of both early stopping and the search.
	ValidLogLoss float64 `json:"valid_logloss"`
	// ValidAUPRC is the validation average precision, for information; 0 when the
	// validation set holds one class.
	ValidAUPRC float64 `json:"valid_auprc"`
	// Chosen marks the point whose model the search returned.
	Chosen bool `json:"chosen"`
}

// GridSpace is the space of a stepwise search: one axis per parameter, the first
// value of each the starting one, at one learning rate.
//
// The search (TrainGrid) starts from the first value of every axis and tunes one
// parameter at a time, in the order num_leaves, min_data_in_leaf, lambda_l2,
// feature_fraction: each stage trains every value of its axis with the others
// held at the best point so far and keeps the one with the lowest validation
// log-loss (the incumbent on ties). A last stage, "num_leaves_again", retries the
// num_leaves values next to the chosen one (in sorted order) under the chosen
// regularisation, since regularised trees can afford more leaves: the interaction
// that a one-at-a-time search would otherwise miss. Points already trained are not
// trained again. Every point stops early on validation log-loss.
//
// That is len(NumLeaves) + (len(MinDataInLeaf)-1) + (len(LambdaL2)-1) +
// (len(FeatureFraction)-1) + at most 2 fits, instead of the product of the axes.
type GridSpace struct {
	LearningRate    float64
	NumLeaves       []int
	MinDataInLeaf   []int
	LambdaL2        []float64
	FeatureFraction []float64
}

// DefaultGrid is the study's search space: num_leaves {4, 8, 16, 32, 64} x
// min_data_in_leaf {20, 5, 50} x lambda_l2 {0, 1, 10} x feature_fraction {1, 0.5}
// at learning_rate 0.05, 90 points of which the stepwise search trains at most 12.
// It starts from LightGBM's defaults (min_data_in_leaf 20, no L2 penalty, every
// feature), and its axes reach small trees and strong regularisation, which a few
// hundred training positives call for.
func DefaultGrid() GridSpace {
	return GridSpace{
		LearningRate:    0.05,
		NumLeaves:       []int{4, 8, 16, 32, 64},
		MinDataInLeaf:   []int{20, 5, 50},
		LambdaL2:        []float64{0, 1, 10},
		FeatureFraction: []float64{1, 0.5},
	}
}

// Points returns the number of points in the full product of the axes.
func (s GridSpace) Points() int {
	return len(s.NumLeaves) * len(s.MinDataInLeaf) * len(s.LambdaL2) * len(s.FeatureFraction)
}

func (s GridSpace) validate() error {
	if len(s.NumLeaves) == 0 || len(s.MinDataInLeaf) == 0 || len(s.LambdaL2) == 0 || len(s.FeatureFraction) == 0 {
		return fmt.Errorf("grid search: empty axis (num_leaves %v, min_data_in_leaf %v, lambda_l2 %v, feature_fraction %v)",
			s.NumLeaves, s.MinDataInLeaf, s.LambdaL2, s.FeatureFraction)
	}
	return nil
}

// gridKey is a point of the space.
type gridKey struct {
	leaves, minData int
	l2, ff          float64
}

func (k gridKey) apply(p Params) Params {
	p.NumLeaves, p.MinDataInLeaf, p.LambdaL2, p.FeatureFraction = k.leaves, k.minData, k.l2, k.ff
	return p
}

// logLoss is the mean binary log-loss of raw scores (log-odds).
func logLoss(raw []float64, label []bool) float64 {
	v, _ := validMetric("binary_logloss", raw, label)
	return -v
}

// TrainGrid searches space stepwise (see GridSpace) on valid's binary log-loss,
// every point stopping early on it too, and returns the model of the point with
// the lowest validation log-loss, with every point trained in order. base supplies
// the other parameters; its num_iterations is the cap, and early_stopping_round 0
// becomes 20. Its metric is ignored: choosing on a ranking metric, or stopping on
// one, with few validation positives picks noise.
func TrainGrid(ctx context.Context, train, valid *Dataset, base Params, space GridSpace, log *slog.Logger) (*Model, []GridPoint, error) {
	if valid == nil {
		return nil, nil, fmt.Errorf("grid search needs a validation set")
	}
	if err := space.validate(); err != nil {
		return nil, nil, err
	}
	base.Metric = "binary_logloss"
	base.LearningRate = space.LearningRate
	if base.EarlyStoppingRound == 0 {
		base.EarlyStoppingRound = 20
	}
	var (
		points    []GridPoint
		bestModel *Model
		trained   = map[gridKey]bool{}
		best      = -1 // index in points
	)
	try := func(stage string, k gridKey) error {
		if trained[k] {
			return nil
		}
		p := k.apply(base)
		m, err := Train(ctx, train, valid, p, log)
		if err != nil {
			return fmt.Errorf("grid num_leaves=%d min_data_in_leaf=%d lambda_l2=%g feature_fraction=%g: %w", k.leaves, k.minData, k.l2, k.ff, err)
		}
		raw := m.PredictRaw(valid.X, p.NumThreads)
		ap, err := eval.AveragePrecision(raw, valid.Label)
		if err != nil {
			ap = 0 // a validation set of one class; the log-loss still decides
		}
		pt := GridPoint{Stage: stage, NumLeaves: k.leaves, MinDataInLeaf: k.minData, LambdaL2: k.l2, FeatureFraction: k.ff,
			LearningRate: p.LearningRate, BestIteration: len(m.Trees), ValidLogLoss: logLoss(raw, valid.Label), ValidAUPRC: ap}
		trained[k] = true
		points = append(points, pt)
		if log != nil {
			log.Debug("grid point", "stage", stage, "num_leaves", k.leaves, "min_data_in_leaf", k.minData, "lambda_l2", k.l2,
				"feature_fraction", k.ff, "trees", len(m.Trees), "valid_logloss", pt.ValidLogLoss, "valid_auprc", ap)
		}
		if best < 0 || pt.ValidLogLoss < points[best].ValidLogLoss {
			best, bestModel = len(points)-1, m
		}
		return nil
	}
	// cur is the best point so far; before the first, the start.
	cur := func() gridKey {
		if best < 0 {
			return gridKey{space.NumLeaves[0], space.MinDataInLeaf[0], space.LambdaL2[0], space.FeatureFraction[0]}
		}
		b := points[best]
		return gridKey{b.NumLeaves, b.MinDataInLeaf, b.LambdaL2, b.FeatureFraction}
	}
	for _, v := range space.NumLeaves {
		k := cur()
		k.leaves = v
		if err := try("num_leaves", k); err != nil {
			return nil, nil, err
		}
	}
	for _, v := range space.MinDataInLeaf {
		k := cur()
		k.minData = v
		if err := try("min_data_in_leaf", k); err != nil {
			return nil, nil, err
		}
	}
	for _, v := range space.LambdaL2 {
		k := cur()
		k.l2 = v
		if err := try("lambda_l2", k); err != nil {
			return nil, nil, err
		}
	}
	for _, v := range space.FeatureFraction {
		k := cur()
		k.ff = v
		if err := try("feature_fraction", k); err != nil {
			return nil, nil, err
		}
	}
	sorted := slices.Clone(space.NumLeaves)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	at := slices.Index(sorted, cur().leaves)
	var again []int
	if at > 0 {
		again = append(again, sorted[at-1])
	}
	if at+1 < len(sorted) {
		again = append(again, sorted[at+1])
	}
	for _, v := range again {
		k := cur()
		k.leaves = v
		if err := try("num_leaves_again", k); err != nil {
			return nil, nil, err
		}
	}
	points[best].Chosen = true
	return bestModel, points, nil
}
