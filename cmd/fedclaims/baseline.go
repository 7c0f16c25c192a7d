package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

func newBaselineCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "The LightGBM-style gradient-boosting baseline",
	}
	cmd.AddCommand(newBaselineTrainCmd(a))
	return cmd
}

// newBaselineTrainCmd trains on LibSVM files, so that users can run LightGBM or
// xgboost on the very same files and compare.
func newBaselineTrainCmd(a *app) *cobra.Command {
	var trainPath, testPath, validPath, out string
	var sets []string
	cmd := &cobra.Command{
		Use:   "train --train FILE --test FILE [--set name=value ...] --out DIR",
		Short: "Train on LibSVM text with LightGBM's parameter names; write DIR/model.txt (LightGBM format) and DIR/predictions.txt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if trainPath == "" || testPath == "" || out == "" {
				return fmt.Errorf("flags --train, --test and --out are required")
			}
			p := baseline.DefaultParams()
			for _, s := range sets {
				name, value, ok := strings.Cut(s, "=")
				if !ok {
					return fmt.Errorf("flag --set %q: want name=value", s)
				}
				if err := p.Set(name, value); err != nil {
					return fmt.Errorf("flag --set: %w", err)
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("output directory: %w", err)
			}
			start := time.Now()
			train, err := loadLibSVM(trainPath, 0)
			if err != nil {
				return err
			}
			test, err := loadLibSVM(testPath, train.X.NumCols)
			if err != nil {
				return err
			}
			var valid *baseline.Dataset
			if validPath != "" {
				if valid, err = loadLibSVM(validPath, train.X.NumCols); err != nil {
					return err
				}
			}
			loadSeconds := time.Since(start).Seconds()
			start = time.Now()
			m, err := baseline.Train(cmd.Context(), train, valid, p, a.log)
			if err != nil {
				return fmt.Errorf("training on %s: %w", trainPath, err)
			}
			trainSeconds := time.Since(start).Seconds()
			pred := m.Predict(test.X, p.NumThreads)
			auprc, err := eval.AveragePrecision(pred, test.Label)
			if err != nil {
				return fmt.Errorf("scoring %s: %w", testPath, err)
			}
			auroc, err := eval.AUROC(pred, test.Label)
			if err != nil {
				return fmt.Errorf("scoring %s: %w", testPath, err)
			}
			if err := m.Save(filepath.Join(out, "model.txt")); err != nil {
				return err
			}
			if err := writePredictions(filepath.Join(out, "predictions.txt"), pred); err != nil {
				return err
			}
			return a.printJSONLine(map[string]any{
				"name": "baseline_train", "train_rows": train.X.Rows(), "test_rows": test.X.Rows(),
				"trees": len(m.Trees), "best_iteration": m.BestIteration,
				"train_seconds": trainSeconds, "load_seconds": loadSeconds,
				"auprc": auprc, "auroc": auroc,
			})
		},
	}
	cmd.Flags().StringVar(&trainPath, "train", "", "training data, LibSVM text")
	cmd.Flags().StringVar(&testPath, "test", "", "test data, LibSVM text")
	cmd.Flags().StringVar(&validPath, "valid", "", "validation data for early_stopping_round, LibSVM text")
	cmd.Flags().StringVar(&out, "out", "", "output directory")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "LightGBM parameter as name=value (repeatable)")
	return cmd
}

func loadLibSVM(path string, minCols int) (*baseline.Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, labels, err := baseline.ReadLibSVM(bufio.NewReaderSize(f, 1<<20), path, minCols)
	if err != nil {
		return nil, err
	}
	y, err := baseline.BinaryLabels(labels, path)
	if err != nil {
		return nil, err
	}
	return &baseline.Dataset{X: x, Label: y}, nil
}

// writePredictions writes one probability per line, as LightGBM's predict task does.
func writePredictions(path string, pred []float64) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		var buf []byte
		for _, v := range pred {
			buf = strconv.AppendFloat(buf[:0], v, 'g', 17, 64)
			buf = append(buf, '\n')
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}
