package baseline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fedclaims/fedclaims/eval"
)

// GridPoint is one grid setting and what it scored on the validation set.
type GridPoint struct {
	NumLeaves     int     `json:"num_leaves"`
	LearningRate  float64 `json:"learning_rate"`
	BestIteration int     `json:"best_iteration"`
	ValidAUPRC    float64 `json:"valid_auprc"`
}

// DefaultGrid is the study's small search: num_leaves {15, 31, 63} x
// learning_rate {0.03, 0.1}.
func DefaultGrid() (leaves []int, rates []float64) {
	return []int{15, 31, 63}, []float64{0.03, 0.1}
}

// TrainGrid trains one model per (num_leaves, learning_rate) pair, each stopping
// early on valid's average precision, and returns the one with the best validation
// AUPRC (the first on ties) with every point's score. base supplies the other
// parameters; its num_iterations is the cap, and early_stopping_round 0 becomes 20.
func TrainGrid(ctx context.Context, train, valid *Dataset, base Params, leaves []int, rates []float64, log *slog.Logger) (*Model, []GridPoint, error) {
	if valid == nil {
		return nil, nil, fmt.Errorf("grid search needs a validation set")
	}
	if len(leaves) == 0 || len(rates) == 0 {
		return nil, nil, fmt.Errorf("grid search: empty grid")
	}
	base.Metric = "average_precision"
	if base.EarlyStoppingRound == 0 {
		base.EarlyStoppingRound = 20
	}
	var best *Model
	var bestAP float64
	var points []GridPoint
	for _, nl := range leaves {
		for _, lr := range rates {
			p := base
			p.NumLeaves, p.LearningRate = nl, lr
			m, err := Train(ctx, train, valid, p, log)
			if err != nil {
				return nil, nil, fmt.Errorf("grid num_leaves=%d learning_rate=%g: %w", nl, lr, err)
			}
			ap, err := eval.AveragePrecision(m.PredictRaw(valid.X, p.NumThreads), valid.Label)
			if err != nil {
				return nil, nil, fmt.Errorf("grid num_leaves=%d learning_rate=%g: validation: %w", nl, lr, err)
			}
			points = append(points, GridPoint{NumLeaves: nl, LearningRate: lr, BestIteration: len(m.Trees), ValidAUPRC: ap})
			if log != nil {
				log.Debug("grid point", "num_leaves", nl, "learning_rate", lr, "trees", len(m.Trees), "valid_auprc", ap)
			}
			if best == nil || ap > bestAP {
				best, bestAP = m, ap
			}
		}
	}
	return best, points, nil
}
