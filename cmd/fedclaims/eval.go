package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/tasks"
)

// evalOptions are fedclaims eval's settings.
type evalOptions struct {
	data, tasksFile, out string
	seed                 uint64
	resamples            int
	grid                 bool
	iterations           int
	minCount, recentDays int
	threads              int
	skipDegenerate       bool
	model                string
	frozen               bool
	epochs, seq          int
	salt                 string
}

// pipeline is o as package pipeline's options.
func (o evalOptions) pipeline(a *app) pipeline.Options {
	return pipeline.Options{
		Seed: o.seed, Resamples: o.resamples, Grid: o.grid, Iterations: o.iterations,
		MinCount: o.minCount, RecentDays: o.recentDays, Threads: o.threads, SkipDegenerate: o.skipDegenerate,
		Frozen: o.frozen, Epochs: o.epochs, Seq: o.seq, Salt: o.salt, Log: a.log,
	}
}

func newEvalCmd(a *app) *cobra.Command {
	var o evalOptions
	cmd := &cobra.Command{
		Use:   "eval --data DIR [--model CKPT] [--tasks TASKS.yaml] --out OUT",
		Short: "Label a site's data per task, fine-tune the encoder's heads and train the baseline, score both; write OUT/report.{json,md} and precision-recall plots",
		Long: "eval labels the patients of one dataset (MEDS or OMOP CDM) for every task of the task file " +
			"(the shipped default without --tasks), builds count features from their histories, trains the " +
			"gradient-boosting baseline on the training split, chooses it on the validation split and scores it on " +
			"the test split with patient-level bootstrap intervals. With --model it fine-tunes one binary head per task " +
			"on the pretrained encoder on the same splits and scores it beside the baseline; without, the baseline runs alone.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.data == "" || o.out == "" {
				return fmt.Errorf("flags --data and --out are required")
			}
			r, err := runEval(cmd.Context(), o, a)
			if err != nil {
				return err
			}
			return r.WriteTable(a.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "one site's dataset directory (MEDS or OMOP CDM)")
	f.StringVar(&o.tasksFile, "tasks", "", "task file (default: the shipped task definitions)")
	f.StringVar(&o.out, "out", "", "output directory for report.json, report.md and the plots")
	f.Uint64Var(&o.seed, "seed", 1, "seed for index dates, training and bootstrap resamples")
	f.IntVar(&o.resamples, "bootstrap", 1000, "patient-level bootstrap resamples for the 95% intervals")
	f.BoolVar(&o.grid, "grid", true, "search num_leaves {15,31,63} x learning_rate {0.03,0.1} on validation AUPRC")
	f.IntVar(&o.iterations, "iterations", 500, "boosting iterations at most (early stopping on validation)")
	f.IntVar(&o.minCount, "min-count", 5, "drop codes seen fewer times in training histories")
	f.IntVar(&o.recentDays, "recent-days", 365, "add counts over the last N days before the index date (0: none)")
	f.IntVar(&o.threads, "threads", 0, "training threads (0: all cores)")
	f.StringVar(&o.model, "model", "", "pretrained encoder checkpoint directory (model.safetensors, config.json, vocab.json)")
	f.BoolVar(&o.frozen, "frozen", false, "keep the encoder frozen and fit only a logistic head on its pooled features (much cheaper)")
	f.IntVar(&o.epochs, "epochs", 0, "fine-tuning epochs at most (0: the model package's default)")
	f.IntVar(&o.seq, "seq", 0, "tokens per history for the encoder, most recent kept (0: the model's max_len)")
	f.StringVar(&o.salt, "split-salt", tasks.DefaultSalt, "salt of the train/validation/test split by subject id; the one the encoder was pretrained under (fedclaims pretrain --split-salt, a site's split_salt)")
	f.BoolVar(&o.skipDegenerate, "skip-degenerate", false, "leave out, with a warning, tasks with a split lacking positives or negatives, instead of failing")
	return cmd
}

// runEval does the work of fedclaims eval and returns the report it wrote.
func runEval(ctx context.Context, o evalOptions, a *app) (*eval.Report, error) {
	ts := tasks.Default()
	if o.tasksFile != "" {
		var err error
		if ts, err = tasks.ReadFile(o.tasksFile); err != nil {
			return nil, err
		}
	}
	var ck *encoderCheckpoint
	if o.model != "" {
		var err error
		if ck, err = loadEncoder(o.model); err != nil {
			return nil, err
		}
	}
	patients, end, err := loadPatients(ctx, o.data)
	if err != nil {
		return nil, err
	}
	// The work itself is package pipeline's, which fedclaims sweep shares.
	po := o.pipeline(a)
	c, err := pipeline.Label(patients, end, ts, po)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.data, err)
	}
	if err := c.TrainBaseline(ctx, po); err != nil {
		return nil, fmt.Errorf("%s: %w", o.data, err)
	}
	runs := c.Runs
	if ck != nil {
		if err := addEncoder(ctx, ck, o, a, patients, c.Cohort, c.Labeler, runs); err != nil {
			return nil, fmt.Errorf("%s: %w", o.data, err)
		}
	}
	report, err := pipeline.Report(runs, po)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.data, err)
	}
	// Everything is computed; only now touch the output directory.
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	for _, run := range runs {
		name := run.Predictions.Name
		if err := eval.PlotPR(filepath.Join(o.out, "pr_"+name+".png"), run.Predictions); err != nil {
			return nil, err
		}
		if err := run.Model.Save(filepath.Join(o.out, "baseline_"+name+".txt")); err != nil {
			return nil, err
		}
	}
	if err := report.Save(o.out); err != nil {
		return nil, err
	}
	return report, nil
}

// loadPatients reads a whole dataset and returns its patients and the end of the
// data (pipeline.LoadPatients), naming the site datasets inside dir when dir is
// not one but a synth output root.
func loadPatients(ctx context.Context, dir string) ([]*claims.Patient, int64, error) {
	src, err := claims.Open(dir)
	if err != nil {
		// A synth output root holds one dataset per hospital: each site evaluates
		// its own, so name them rather than pool them silently.
		var sites []string
		if ents, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range ents {
				if e.IsDir() {
					if s, oerr := claims.Open(filepath.Join(dir, e.Name())); oerr == nil {
						s.Close()
						sites = append(sites, filepath.Join(dir, e.Name()))
					}
				}
			}
		}
		if len(sites) > 0 {
			return nil, 0, fmt.Errorf("flag --data %s holds %d site datasets, not one: evaluate each site on its own, e.g. --data %s", dir, len(sites), sites[0])
		}
		return nil, 0, err
	}
	src.Close()
	return pipeline.LoadPatients(ctx, dir)
}
