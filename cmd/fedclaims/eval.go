package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
)

// evalOptions are fedclaims eval's settings.
type evalOptions struct {
	data, tasksFile, out string
	labels               string // a MEDS task root (--labels), instead of the task file
	seed                 uint64
	resamples            int
	grid                 bool
	iterations           int
	minCount, recentDays int
	features             string
	threads              int
	skipDegenerate       bool // deprecated, ignored: undecidable tasks are always listed
	model                string
	frozen               bool
	pooling              string
	epochs, seq          int
	salt                 string
	end                  string
	maxIndex             int
	leakageCheck         bool
	// readers are the options the dataset is opened with (--codes).
	readers []claims.Option
}

// evalDefaults are fedclaims eval's flag defaults: package pipeline's, which the
// site's local evaluation starts from too.
func evalDefaults() evalOptions {
	d := pipeline.DefaultOptions()
	return evalOptions{seed: d.Seed, resamples: d.Resamples, grid: d.Grid, iterations: d.Iterations,
		minCount: d.MinCount, features: string(d.Features), recentDays: d.RecentDays, frozen: d.Frozen,
		pooling: string(model.DefaultHeadConfig().Pooling), salt: tasks.DefaultSalt, maxIndex: 1}
}

// tasks are the tasks of --tasks, the default tasks without it.
func (o evalOptions) tasks() ([]tasks.Task, error) {
	if o.tasksFile == "" {
		return tasks.Default(), nil
	}
	return tasks.ReadFile(o.tasksFile)
}

// pipeline is o as package pipeline's options.
func (o evalOptions) pipeline(a *app) (pipeline.Options, error) {
	po := pipeline.Options{
		Seed: o.seed, Resamples: o.resamples, Grid: o.grid, Iterations: o.iterations,
		MinCount: o.minCount, RecentDays: o.recentDays, Threads: o.threads,
		Frozen: o.frozen, Pooling: model.Pooling(o.pooling), Epochs: o.epochs, Seq: o.seq, Salt: o.salt,
		MaxIndexPerPatient: o.maxIndex, Log: a.log,
	}
	if err := po.Pooling.Validate(); err != nil {
		return po, fmt.Errorf("flag --pooling: %w", err)
	}
	var err error
	if po.Features, err = baseline.ParseFeatureSet(o.features); err != nil {
		return po, fmt.Errorf("flag --features: %w", err)
	}
	if o.maxIndex < 0 {
		return po, fmt.Errorf("flag --max-index-per-patient: %d must be at least 1 (0 means 1)", o.maxIndex)
	}
	if o.end != "" {
		t, err := parseDate(o.end)
		if err != nil {
			return po, fmt.Errorf("flag --end: %w", err)
		}
		po.End = t
	}
	return po, nil
}

func newEvalCmd(a *app) *cobra.Command {
	o, d := evalDefaults(), evalDefaults()
	cmd := &cobra.Command{
		Use:   "eval --data DIR [--model CKPT] [--tasks TASKS.yaml] --out OUT",
		Short: "Label a site's data per task, fine-tune the encoder's heads and train the baseline, score both; write OUT/report.{json,md} and precision-recall plots",
		Long: "eval labels the patients of one dataset (MEDS or OMOP CDM) for every task of the task file " +
			"(the shipped default without --tasks), builds time-aware count features from their histories, trains the " +
			"gradient-boosting baseline on the training split, chooses it on the validation split's log-loss and scores it on " +
			"the test split with patient-level bootstrap intervals. With --model it fits one binary head per task " +
			"on the pretrained encoder on exactly the same rows and tests encoder minus baseline per task (paired " +
			"bootstrap, Holm-corrected across the tasks); without, the baseline runs alone. A task that cannot be " +
			"decided is listed with its reason. The dataset's own split (metadata/subject_splits.parquet or " +
			"data/train|tuning|held_out/) is used when it declares one, fedclaims' hash otherwise; the report says which. " +
			"--labels takes the tasks as MEDS labels instead of a task file. With --leakage-check it runs the follow-up leakage check instead " +
			"(OUT/leakage.json, OUT/leakage.md) and exits 1 when a task's labels leak follow-up.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.data == "" || o.out == "" {
				return fmt.Errorf("flags --data and --out are required")
			}
			o.readers = []claims.Option{codesOption(a)}
			if o.leakageCheck {
				return runLeakageCheck(cmd.Context(), o, a)
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
	f.StringVar(&o.labels, "labels", "", "MEDS task labels instead of a task file: a directory of <task>.parquet or <task>/*.parquet (subject_id, prediction_time, boolean_value); the index date is the prediction time (fedclaims tasks export writes them)")
	addCodesFlag(cmd)
	f.StringVar(&o.out, "out", "", "output directory for report.json, report.md and the plots")
	f.Uint64Var(&o.seed, "seed", d.seed, "seed for index dates, training and bootstrap resamples")
	f.IntVar(&o.resamples, "bootstrap", d.resamples, "patient-level bootstrap resamples for the 95% intervals")
	f.BoolVar(&o.grid, "grid", d.grid, "search the baseline's grid (tree size, min_data_in_leaf, lambda_l2, feature_fraction) on validation log-loss")
	f.IntVar(&o.iterations, "iterations", d.iterations, "boosting iterations at most (early stopping on validation log-loss)")
	f.IntVar(&o.minCount, "min-count", d.minCount, "drop codes seen fewer times in training histories")
	f.StringVar(&o.features, "features", d.features, "baseline features: time (per code: counts all-time, in 90 and 365 days, days since first and last) or counts (all-time and --recent-days counts)")
	f.IntVar(&o.recentDays, "recent-days", d.recentDays, "with --features counts: add counts over the last N days before the index date (0: none)")
	f.IntVar(&o.threads, "threads", 0, "training threads (0: all cores)")
	f.StringVar(&o.model, "model", "", "pretrained encoder checkpoint directory (model.safetensors, config.json, vocab.json)")
	f.BoolVar(&o.frozen, "frozen", d.frozen, "keep the encoder frozen under an L2 logistic probe on its standardised pooled features; --frozen=false fine-tunes it (costly)")
	f.StringVar(&o.pooling, "pooling", d.pooling, "the head's input: cls (the [CLS] state), mean (the mean of the history's token states) or both (the two concatenated)")
	f.IntVar(&o.epochs, "epochs", 0, "fine-tuning epochs at most (0: the model package's default)")
	f.IntVar(&o.seq, "seq", 0, "tokens per history for the encoder, most recent kept (0: the model's max_len)")
	f.StringVar(&o.salt, "split-salt", d.salt, "salt of the train/validation/test split by subject id; the one the encoder was pretrained under (fedclaims pretrain --split-salt, a site's split_salt). A dataset that declares its own split (metadata/subject_splits.parquet or data/train|tuning|held_out/) is split its way instead: tuning is validation, held_out the test split")
	f.StringVar(&o.end, "end", "", "extraction date, as 2022-12-31 or RFC 3339: caps every patient's follow-up (default: follow-up ends per patient)")
	f.IntVar(&o.maxIndex, "max-index-per-patient", d.maxIndex, "index dates drawn per patient (the bootstrap resamples patients, not rows)")
	f.BoolVar(&o.leakageCheck, "leakage-check", false, "run the follow-up leakage check instead of the evaluation; exit 1 when a task leaks")
	f.BoolVar(&o.skipDegenerate, "skip-degenerate", false, "ignored: a task that cannot be decided is always listed with its reason")
	_ = f.MarkDeprecated("skip-degenerate", "a task that cannot be decided is now always listed in the report with its reason")
	return cmd
}

// runEval does the work of fedclaims eval and returns the report it wrote.
func runEval(ctx context.Context, o evalOptions, a *app) (*eval.Report, error) {
	ts, err := o.tasks()
	if err != nil {
		return nil, err
	}
	var ck *pipeline.Checkpoint
	if o.model != "" {
		if ck, err = loadEncoder(o.model); err != nil {
			return nil, err
		}
	}
	po, err := o.pipeline(a)
	if err != nil {
		return nil, err
	}
	if err := o.medsSource(&po); err != nil {
		return nil, err
	}
	a.log.Info("split", "data", o.data, "split", po.Splits.String())
	patients, err := loadPatients(ctx, o.data, o.readers...)
	if err != nil {
		return nil, err
	}
	ev := pipeline.Evaluation{Data: o.data, Patients: patients, Tasks: ts, Out: o.out}
	if ck != nil {
		ev.Encoders = []pipeline.Scored{{Name: eval.ModelEncoder, Checkpoint: ck}}
	}
	report, err := pipeline.Evaluate(ctx, ev, po)
	if errors.Is(err, baseline.ErrNoIndexDates) {
		return nil, noLabelled(o.data, patients, err)
	}
	return report, err
}

// runLeakageCheck runs the follow-up leakage check on --data and writes
// OUT/leakage.json and OUT/leakage.md; a leak is an error, so the exit status says it.
func runLeakageCheck(ctx context.Context, o evalOptions, a *app) error {
	ts, err := o.tasks()
	if err != nil {
		return err
	}
	po, err := o.pipeline(a)
	if err != nil {
		return err
	}
	if err := o.medsSource(&po); err != nil {
		return err
	}
	patients, err := loadPatients(ctx, o.data, o.readers...)
	if err != nil {
		return err
	}
	rep, err := pipeline.LeakageCheck(ctx, patients, ts, po)
	if err != nil {
		return fmt.Errorf("%s: %w", o.data, err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(o.out, "leakage.json"), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(o.out, "leakage.md"), 0o644, func(w io.Writer) error { return rep.WriteTable(w, true) }); err != nil {
		return err
	}
	if err := rep.WriteTable(a.stdout, false); err != nil {
		return err
	}
	if rep.Leaks() {
		var names []string
		for _, t := range rep.Tasks {
			if t.Leaks {
				names = append(names, t.Name)
			}
		}
		return fmt.Errorf("%s: the labels of %s leak follow-up: follow-up features predict them better than age and sex (see %s)",
			o.data, strings.Join(names, ", "), filepath.Join(o.out, "leakage.md"))
	}
	return nil
}

// loadPatients reads a whole dataset and returns its patients
// (pipeline.LoadPatients), naming the site datasets inside dir when dir is not one
// but a synth output root.
func loadPatients(ctx context.Context, dir string, opts ...claims.Option) ([]*claims.Patient, error) {
	src, err := claims.Open(dir, opts...)
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
			return nil, fmt.Errorf("flag --data %s holds %d site datasets, not one: evaluate each site on its own, e.g. --data %s", dir, len(sites), sites[0])
		}
		return nil, err
	}
	src.Close()
	return pipeline.LoadPatientsWith(ctx, opts, dir)
}
