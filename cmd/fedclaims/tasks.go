package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/tasks"
)

// newTasksCmd groups the commands about prediction tasks and their labels.
func newTasksCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "Prediction tasks: the default task file and label prevalence",
	}
	cmd.AddCommand(newTasksDefaultCmd(a), newTasksPrevalenceCmd(a), newTasksExportCmd(a))
	return cmd
}

func newTasksDefaultCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "default",
		Short: "Print the default task file, to copy and edit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := a.stdout.Write(tasks.DefaultYAML())
			return err
		},
	}
}

func newTasksPrevalenceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prevalence --data DIR... [--tasks FILE]",
		Short: "Label every patient of each dataset and print each task's prevalence",
		Long: `Labels every patient of each --data dataset for the tasks of --tasks (the
default tasks when omitted) and prints one JSON line per dataset and task: dataset,
task, kind, n (labelled examples: positive or negative), positives, prevalence,
excluded_prior (examples with the target or an excluded code on or before the
index date), n_by_split, positives_by_split, patients, indexed (patients with an
index date), examples (index dates over all patients), test_positives (the test
split's positives, which decide what the evaluation can show), decidable (whether
test_positives reaches the 10 below which no interval or test is computed),
auprc_diff_halfwidth (the half-width of the 95% interval of an encoder-minus-baseline
AUPRC difference that so many test positives buy, about 0.43/sqrt(test_positives),
measured on synthetic hospitals; absent without positives) and, when --end is given,
end.

Each patient's follow-up ends at the later of its observation end and its last
event, capped at --end when given; index dates are drawn among the patient's visit
days with a whole horizon of follow-up after them, up to --max-index-per-patient
per patient. Nothing is censored, so there is no censored column (see the tasks
package's Labeler for the rules).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths := a.v.GetStringSlice("data")
			if len(paths) == 0 {
				return errors.New("flag --data: at least one dataset directory is required")
			}
			ts, end, err := a.tasksAndEnd()
			if err != nil {
				return err
			}
			for _, path := range paths {
				if err := a.prevalence(cmd.Context(), path, ts, end); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSlice("data", nil, "dataset directories (repeat or separate with commas)")
	cmd.Flags().String("tasks", "", "task file (YAML); the default tasks when empty")
	cmd.Flags().Uint64("seed", 1, "seed of the index dates")
	cmd.Flags().String("end", "", "extraction date, as 2022-12-31 or RFC 3339: a cap on every patient's follow-up; none when empty")
	cmd.Flags().Int("max-index-per-patient", 1, "most index dates drawn per patient")
	cmd.Flags().String("split-salt", tasks.DefaultSalt, "salt of the train/validation/test split (a site's split_salt), which decides the test positives"+datasetSplitNote)
	cmd.Flags().Bool("skip-bad-rows", false, "count and skip malformed rows instead of failing on the first")
	addCodesFlag(cmd)
	return cmd
}

// prevalence labels the dataset at path and prints one line per task. end, when not
// 0, caps follow-up.
func (a *app) prevalence(ctx context.Context, path string, ts []tasks.Task, end int64) error {
	l, splits, err := a.datasetLabeler(path, ts, end)
	if err != nil {
		return err
	}
	src, err := claims.Open(path, claims.SkipBadRows(a.v.GetBool("skip-bad-rows")), codesOption(a))
	if err != nil {
		return err
	}
	defer src.Close()
	tally := tasks.NewTally(l)
	for {
		p, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		tally.Add(l.Examples(p))
	}
	a.warnBadRows(path, src)
	all, indexed := tally.Patients()
	endText := ""
	if end != 0 {
		endText = time.UnixMicro(end).UTC().Format(time.RFC3339)
	}
	for _, row := range tally.Prevalence() {
		testPos := row.PositivesBySplit[tasks.Test.String()]
		var halfWidth *float64
		if testPos > 0 {
			hw := eval.HalfWidth(int(testPos))
			halfWidth = &hw
		}
		line := struct {
			Dataset string `json:"dataset"`
			tasks.Prevalence
			Patients      int64    `json:"patients"`
			Indexed       int64    `json:"indexed"`
			Examples      int64    `json:"examples"`
			TestPositives int64    `json:"test_positives"`
			Decidable     bool     `json:"decidable"`
			HalfWidth     *float64 `json:"auprc_diff_halfwidth,omitempty"`
			End           string   `json:"end,omitempty"`
			Split         string   `json:"split"`
		}{path, row, all, indexed, tally.Examples(), testPos, testPos >= eval.MinPositives, halfWidth, endText, splits.String()}
		if err := a.printJSONLine(line); err != nil {
			return err
		}
	}
	return nil
}

// parseDate reads a date (2022-12-31, midnight UTC) or an RFC 3339 time.
func parseDate(s string) (int64, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UnixMicro(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a date such as 2022-12-31 or an RFC 3339 time", s)
	}
	return t.UnixMicro(), nil
}

// tasksAndEnd reads the --tasks file (the default tasks when none is given) and
// the --end extraction date (0: none), for the commands that label a dataset.
func (a *app) tasksAndEnd() ([]tasks.Task, int64, error) {
	ts := tasks.Default()
	if f := a.v.GetString("tasks"); f != "" {
		var err error
		if ts, err = tasks.ReadFile(f); err != nil {
			return nil, 0, err
		}
	}
	var end int64
	if s := a.v.GetString("end"); s != "" {
		t, err := parseDate(s)
		if err != nil {
			return nil, 0, fmt.Errorf("flag --end: %w", err)
		}
		end = t
	}
	return ts, end, nil
}

// datasetLabeler is the Labeler of ts for the dataset at path under the labelling
// flags (--seed, --max-index-per-patient, --split-salt) and end, with the dataset's
// split (its own when it declares one), for the commands that label a dataset.
func (a *app) datasetLabeler(path string, ts []tasks.Task, end int64) (*tasks.Labeler, *tasks.Splits, error) {
	maxIndex := a.v.GetInt("max-index-per-patient")
	if maxIndex < 1 {
		return nil, nil, fmt.Errorf("flag --max-index-per-patient: %d, want at least 1", maxIndex)
	}
	splits, err := tasks.LoadSplits(path, a.v.GetString("split-salt"))
	if err != nil {
		return nil, nil, err
	}
	l, err := tasks.NewLabeler(ts, tasks.Options{Seed: a.v.GetUint64("seed"), End: end, MaxIndexPerPatient: maxIndex,
		Salt: a.v.GetString("split-salt"), Splits: splits})
	if err != nil {
		return nil, nil, err
	}
	return l, splits, nil
}
