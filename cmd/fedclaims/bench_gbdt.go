package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/eval"
)

// newBenchGBDTCmd times the baseline booster against xgboost's CLI on the same
// synthetic sparse data, written out as LibSVM, in the same run.
func newBenchGBDTCmd(a *app) *cobra.Command {
	var (
		rows, cols, iterations, leaves, threads int
		density                                 float64
		seed                                    uint64
		xgbPath, keep                           string
	)
	cmd := &cobra.Command{
		Use:   "gbdt",
		Short: "Time the LightGBM-style baseline against xgboost (hist, lossguide) on synthetic sparse data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dir := keep
			if dir == "" {
				d, err := os.MkdirTemp("", "fedclaims-bench-gbdt-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			} else if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			data := baseline.Synthetic(rows, cols, density, seed)
			train, test := data.Split(0.8, seed+1)
			trainPath, testPath := filepath.Join(dir, "train.svm"), filepath.Join(dir, "test.svm")
			if err := baseline.SaveLibSVM(trainPath, train.X, train.Label); err != nil {
				return err
			}
			if err := baseline.SaveLibSVM(testPath, test.X, test.Label); err != nil {
				return err
			}
			// Our load time from the same text, for the comparison with xgboost's
			// wall time, which includes its parsing.
			loadStart := time.Now()
			f, err := os.Open(trainPath)
			if err != nil {
				return err
			}
			_, _, err = baseline.ReadLibSVM(bufio.NewReaderSize(f, 1<<20), trainPath, cols)
			f.Close()
			if err != nil {
				return err
			}
			loadSeconds := time.Since(loadStart).Seconds()

			p := baseline.DefaultParams()
			p.NumIterations, p.NumLeaves, p.NumThreads, p.Seed = iterations, leaves, threads, seed
			start := time.Now()
			m, err := baseline.Train(ctx, train, nil, p, a.log)
			if err != nil {
				return err
			}
			trainSeconds := time.Since(start).Seconds()
			auprc, err := eval.AveragePrecision(m.Predict(test.X, threads), test.Label)
			if err != nil {
				return err
			}
			auroc, err := eval.AUROC(m.Predict(test.X, threads), test.Label)
			if err != nil {
				return err
			}
			prev, _ := eval.Prevalence(test.Label)
			res := map[string]any{
				"name": "gbdt", "rows": rows, "cols": cols, "density": density,
				"nnz": data.X.NNZ(), "num_leaves": leaves, "num_iterations": iterations,
				"threads": threads, "test_prevalence": prev,
				"train_seconds": trainSeconds, "load_seconds": loadSeconds,
				"auprc": auprc, "auroc": auroc,
			}
			if xgbPath == "" {
				xgbPath, _ = exec.LookPath("xgboost")
			}
			if xgbPath == "" {
				res["xgboost_note"] = "xgboost CLI not found (apt-get install xgboost); xgboost fields skipped"
				return a.printJSONLine(res)
			}
			xs, xap, err := runXGBoost(ctx, xgbPath, dir, trainPath, testPath, test.Label, leaves, iterations, threads)
			if err != nil {
				return err
			}
			res["xgboost_seconds"] = xs
			res["xgboost_auprc"] = xap
			res["time_ratio"] = (trainSeconds) / xs
			res["time_ratio_with_load"] = (trainSeconds + loadSeconds) / xs
			res["auprc_difference"] = auprc - xap
			return a.printJSONLine(res)
		},
	}
	cmd.Flags().IntVar(&rows, "rows", 100000, "rows of the synthetic matrix")
	cmd.Flags().IntVar(&cols, "cols", 10000, "columns of the synthetic matrix")
	cmd.Flags().Float64Var(&density, "density", 0.005, "fraction of nonzero entries")
	cmd.Flags().IntVar(&iterations, "iterations", 200, "boosting iterations")
	cmd.Flags().IntVar(&leaves, "leaves", 31, "num_leaves (xgboost max_leaves)")
	cmd.Flags().IntVar(&threads, "threads", 2, "threads for both boosters")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "data and training seed")
	cmd.Flags().StringVar(&xgbPath, "xgboost", "", "xgboost CLI (default: xgboost on PATH)")
	cmd.Flags().StringVar(&keep, "keep", "", "directory to keep the LibSVM files and models in (default: a removed temporary one)")
	return cmd
}

// runXGBoost trains with xgboost's CLI (hist, lossguide, the same leaves, rounds and
// learning rate), timing the training process, then predicts the test file and
// returns the training seconds and the test AUPRC.
func runXGBoost(ctx context.Context, bin, dir, trainPath, testPath string, testLabel []bool, leaves, rounds, threads int) (float64, float64, error) {
	conf := filepath.Join(dir, "xgb.conf")
	model := filepath.Join(dir, "xgb.model")
	pred := filepath.Join(dir, "xgb.pred")
	text := fmt.Sprintf("booster = gbtree\nobjective = binary:logistic\ntree_method = hist\ngrow_policy = lossguide\n"+
		"max_leaves = %d\nmax_depth = 0\neta = 0.1\nnum_round = %d\nnthread = %d\nsave_period = 0\n", leaves, rounds, threads)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return 0, 0, err
	}
	run := func(args ...string) error {
		c := exec.CommandContext(ctx, bin, append([]string{conf}, args...)...)
		c.Dir = dir
		// OpenMP's default spin-waiting makes xgboost tens of times slower when
		// other processes share the cores; passive waiting is its fair setting on a
		// shared machine. A policy set by the caller wins.
		c.Env = os.Environ()
		if os.Getenv("OMP_WAIT_POLICY") == "" {
			c.Env = append(c.Env, "OMP_WAIT_POLICY=PASSIVE")
		}
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("xgboost %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	start := time.Now()
	if err := run("task=train", "data="+trainPath+"?format=libsvm", "model_out="+model); err != nil {
		return 0, 0, err
	}
	secs := time.Since(start).Seconds()
	if err := run("task=pred", "test:data="+testPath+"?format=libsvm", "model_in="+model, "name_pred="+pred); err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(pred)
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) != len(testLabel) {
		return 0, 0, fmt.Errorf("xgboost predictions %s: %d values for %d test rows", pred, len(fields), len(testLabel))
	}
	scores := make([]float64, len(fields))
	for i, s := range fields {
		if scores[i], err = strconv.ParseFloat(s, 64); err != nil {
			return 0, 0, fmt.Errorf("xgboost predictions %s: line %d: %w", pred, i+1, err)
		}
	}
	ap, err := eval.AveragePrecision(scores, testLabel)
	return secs, ap, err
}
