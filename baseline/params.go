package baseline

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
)

// Params are LightGBM's training parameters for the binary objective, under
// LightGBM's names, with LightGBM's defaults from DefaultParams.
type Params struct {
	NumIterations         int
	LearningRate          float64
	NumLeaves             int
	MaxDepth              int
	MinDataInLeaf         int
	MinSumHessianInLeaf   float64
	LambdaL1              float64
	LambdaL2              float64
	MinGainToSplit        float64
	FeatureFraction       float64
	BaggingFraction       float64
	BaggingFreq           int
	MaxBin                int
	MinDataInBin          int
	BinConstructSampleCnt int
	IsUnbalance           bool
	ScalePosWeight        float64
	BoostFromAverage      bool
	EarlyStoppingRound    int
	// Metric decides early stopping: binary_logloss (LightGBM's default for the
	// binary objective), average_precision or auc.
	Metric string
	Seed   uint64
	// NumThreads is the number of goroutines; 0 means GOMAXPROCS. Training is
	// deterministic for a given seed and thread count; another thread count sums
	// histograms in another order and may differ in the last bits.
	NumThreads int
}

// DefaultParams returns LightGBM's defaults.
func DefaultParams() Params {
	return Params{
		NumIterations:         100,
		LearningRate:          0.1,
		NumLeaves:             31,
		MaxDepth:              -1,
		MinDataInLeaf:         20,
		MinSumHessianInLeaf:   1e-3,
		FeatureFraction:       1,
		BaggingFraction:       1,
		MaxBin:                255,
		MinDataInBin:          3,
		BinConstructSampleCnt: 200000,
		ScalePosWeight:        1,
		BoostFromAverage:      true,
		Metric:                "binary_logloss",
	}
}

// aliases maps LightGBM's parameter aliases to their canonical names.
func canonical(name string) string {
	switch name {
	case "num_iteration", "n_iter", "num_tree", "num_trees", "num_round", "num_rounds", "nrounds", "num_boost_round", "n_estimators", "max_iter":
		return "num_iterations"
	case "shrinkage_rate", "eta":
		return "learning_rate"
	case "num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes":
		return "num_leaves"
	case "min_data_per_leaf", "min_data", "min_child_samples", "min_samples_leaf":
		return "min_data_in_leaf"
	case "min_sum_hessian_per_leaf", "min_sum_hessian", "min_hessian", "min_child_weight":
		return "min_sum_hessian_in_leaf"
	case "reg_alpha", "l1_regularization":
		return "lambda_l1"
	case "reg_lambda", "lambda", "l2_regularization":
		return "lambda_l2"
	case "min_split_gain":
		return "min_gain_to_split"
	case "sub_feature", "colsample_bytree":
		return "feature_fraction"
	case "sub_row", "subsample", "bagging":
		return "bagging_fraction"
	case "subsample_freq":
		return "bagging_freq"
	case "early_stopping_rounds", "early_stopping", "n_iter_no_change":
		return "early_stopping_round"
	case "random_seed", "random_state":
		return "seed"
	case "num_thread", "nthread", "nthreads", "n_jobs":
		return "num_threads"
	case "unbalance", "unbalanced_sets":
		return "is_unbalance"
	case "subsample_for_bin":
		return "bin_construct_sample_cnt"
	case "metrics", "metric_types":
		return "metric"
	case "objective_type", "app", "application", "loss":
		return "objective"
	}
	return name
}

// Set assigns one parameter by its LightGBM name or alias, as `--set name=value` and
// LightGBM's config files spell it.
func (p *Params) Set(name, value string) error {
	name = canonical(strings.TrimSpace(name))
	value = strings.TrimSpace(value)
	var err error
	setInt := func(dst *int) { *dst, err = strconv.Atoi(value) }
	setFloat := func(dst *float64) { *dst, err = strconv.ParseFloat(value, 64) }
	setBool := func(dst *bool) { *dst, err = strconv.ParseBool(value) }
	switch name {
	case "num_iterations":
		setInt(&p.NumIterations)
	case "learning_rate":
		setFloat(&p.LearningRate)
	case "num_leaves":
		setInt(&p.NumLeaves)
	case "max_depth":
		setInt(&p.MaxDepth)
	case "min_data_in_leaf":
		setInt(&p.MinDataInLeaf)
	case "min_sum_hessian_in_leaf":
		setFloat(&p.MinSumHessianInLeaf)
	case "lambda_l1":
		setFloat(&p.LambdaL1)
	case "lambda_l2":
		setFloat(&p.LambdaL2)
	case "min_gain_to_split":
		setFloat(&p.MinGainToSplit)
	case "feature_fraction":
		setFloat(&p.FeatureFraction)
	case "bagging_fraction":
		setFloat(&p.BaggingFraction)
	case "bagging_freq":
		setInt(&p.BaggingFreq)
	case "max_bin":
		setInt(&p.MaxBin)
	case "min_data_in_bin":
		setInt(&p.MinDataInBin)
	case "bin_construct_sample_cnt":
		setInt(&p.BinConstructSampleCnt)
	case "is_unbalance":
		setBool(&p.IsUnbalance)
	case "scale_pos_weight":
		setFloat(&p.ScalePosWeight)
	case "boost_from_average":
		setBool(&p.BoostFromAverage)
	case "early_stopping_round":
		setInt(&p.EarlyStoppingRound)
	case "metric":
		p.Metric = value
	case "seed":
		p.Seed, err = strconv.ParseUint(value, 10, 64)
	case "num_threads":
		setInt(&p.NumThreads)
	case "objective":
		if value != "binary" {
			return fmt.Errorf("parameter objective=%q: only binary is supported", value)
		}
	case "boosting", "boosting_type", "boost":
		if value != "gbdt" {
			return fmt.Errorf("parameter %s=%q: only gbdt is supported", name, value)
		}
	default:
		return fmt.Errorf("parameter %q: unknown", name)
	}
	if err != nil {
		return fmt.Errorf("parameter %s=%q: %w", name, value, err)
	}
	return p.Validate()
}

// Validate checks the ranges LightGBM checks.
func (p *Params) Validate() error {
	for name, v := range map[string]float64{
		"learning_rate": p.LearningRate, "min_sum_hessian_in_leaf": p.MinSumHessianInLeaf,
		"lambda_l1": p.LambdaL1, "lambda_l2": p.LambdaL2, "min_gain_to_split": p.MinGainToSplit,
		"feature_fraction": p.FeatureFraction, "bagging_fraction": p.BaggingFraction,
		"scale_pos_weight": p.ScalePosWeight,
	} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("parameter %s=%v: want a finite number", name, v)
		}
	}
	switch {
	case p.NumIterations < 0:
		return fmt.Errorf("parameter num_iterations=%d: want >= 0", p.NumIterations)
	case !(p.LearningRate > 0):
		return fmt.Errorf("parameter learning_rate=%v: want > 0", p.LearningRate)
	case p.NumLeaves < 2 || p.NumLeaves > 131072:
		return fmt.Errorf("parameter num_leaves=%d: want 2 to 131072", p.NumLeaves)
	case p.MinDataInLeaf < 0:
		return fmt.Errorf("parameter min_data_in_leaf=%d: want >= 0", p.MinDataInLeaf)
	case p.MinSumHessianInLeaf < 0:
		return fmt.Errorf("parameter min_sum_hessian_in_leaf=%v: want >= 0", p.MinSumHessianInLeaf)
	case p.LambdaL1 < 0 || p.LambdaL2 < 0:
		return fmt.Errorf("parameters lambda_l1=%v, lambda_l2=%v: want >= 0", p.LambdaL1, p.LambdaL2)
	case p.MinGainToSplit < 0:
		return fmt.Errorf("parameter min_gain_to_split=%v: want >= 0", p.MinGainToSplit)
	case !(p.FeatureFraction > 0 && p.FeatureFraction <= 1):
		return fmt.Errorf("parameter feature_fraction=%v: want in (0, 1]", p.FeatureFraction)
	case !(p.BaggingFraction > 0 && p.BaggingFraction <= 1):
		return fmt.Errorf("parameter bagging_fraction=%v: want in (0, 1]", p.BaggingFraction)
	case p.BaggingFreq < 0:
		return fmt.Errorf("parameter bagging_freq=%d: want >= 0", p.BaggingFreq)
	case p.MaxBin < 2 || p.MaxBin > 65535:
		return fmt.Errorf("parameter max_bin=%d: want 2 to 65535", p.MaxBin)
	case p.BinConstructSampleCnt < 1:
		return fmt.Errorf("parameter bin_construct_sample_cnt=%d: want >= 1", p.BinConstructSampleCnt)
	case !(p.ScalePosWeight > 0):
		return fmt.Errorf("parameter scale_pos_weight=%v: want > 0", p.ScalePosWeight)
	case p.IsUnbalance && p.ScalePosWeight != 1:
		return fmt.Errorf("parameters is_unbalance and scale_pos_weight: set one, not both")
	case p.EarlyStoppingRound < 0:
		return fmt.Errorf("parameter early_stopping_round=%d: want >= 0", p.EarlyStoppingRound)
	case p.NumThreads < 0:
		return fmt.Errorf("parameter num_threads=%d: want >= 0", p.NumThreads)
	}
	switch p.Metric {
	case "binary_logloss", "average_precision", "auc":
	default:
		return fmt.Errorf("parameter metric=%q: want binary_logloss, average_precision or auc", p.Metric)
	}
	return nil
}

func (p *Params) threads() int {
	if p.NumThreads > 0 {
		return p.NumThreads
	}
	return runtime.GOMAXPROCS(0)
}

// lines renders the parameters as LightGBM's model file lists them.
func (p *Params) lines() []string {
	return []string{
		"[boosting: gbdt]",
		"[objective: binary]",
		"[metric: " + p.Metric + "]",
		fmt.Sprintf("[num_iterations: %d]", p.NumIterations),
		fmt.Sprintf("[learning_rate: %g]", p.LearningRate),
		fmt.Sprintf("[num_leaves: %d]", p.NumLeaves),
		fmt.Sprintf("[max_depth: %d]", p.MaxDepth),
		fmt.Sprintf("[min_data_in_leaf: %d]", p.MinDataInLeaf),
		fmt.Sprintf("[min_sum_hessian_in_leaf: %g]", p.MinSumHessianInLeaf),
		fmt.Sprintf("[lambda_l1: %g]", p.LambdaL1),
		fmt.Sprintf("[lambda_l2: %g]", p.LambdaL2),
		fmt.Sprintf("[min_gain_to_split: %g]", p.MinGainToSplit),
		fmt.Sprintf("[feature_fraction: %g]", p.FeatureFraction),
		fmt.Sprintf("[bagging_fraction: %g]", p.BaggingFraction),
		fmt.Sprintf("[bagging_freq: %d]", p.BaggingFreq),
		fmt.Sprintf("[max_bin: %d]", p.MaxBin),
		fmt.Sprintf("[min_data_in_bin: %d]", p.MinDataInBin),
		fmt.Sprintf("[bin_construct_sample_cnt: %d]", p.BinConstructSampleCnt),
		fmt.Sprintf("[is_unbalance: %d]", b2i(p.IsUnbalance)),
		fmt.Sprintf("[scale_pos_weight: %g]", p.ScalePosWeight),
		fmt.Sprintf("[boost_from_average: %d]", b2i(p.BoostFromAverage)),
		fmt.Sprintf("[early_stopping_round: %d]", p.EarlyStoppingRound),
		fmt.Sprintf("[seed: %d]", p.Seed),
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
