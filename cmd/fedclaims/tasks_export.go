package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
)

// newTasksExportCmd writes fedclaims' task labels as MEDS label files, so that
// another tool can be scored on exactly the examples fedclaims evaluates on; and
// fedclaims eval --labels reads them back.
func newTasksExportCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export --data DIR --out LABELS [--tasks FILE]",
		Short: "Label a dataset's patients for each task and write MEDS label files LABELS/<task>/0.parquet",
		Long: `Labels every patient of --data for the tasks of --tasks (the default tasks when
omitted), with the index dates fedclaims eval draws under the same --seed, --end and
--max-index-per-patient, and writes one MEDS label file per task,
LABELS/<task>/0.parquet (subject_id int64, prediction_time timestamp[us],
boolean_value bool): one row per labelled example; examples excluded for a prior
target have no row. MEDS lets a model use data up to and including the prediction
time, fedclaims the events strictly before the index date, so the prediction time is
the index date less one microsecond (23:59:59.999999 of the last day of history).
Prints one JSON line per task. fedclaims eval --labels LABELS evaluates on them;
the split is not in the labels but the dataset's (data convert writes fedclaims'
as metadata/subject_splits.parquet).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, out := a.v.GetString("data"), a.v.GetString("out")
			switch {
			case data == "":
				return errors.New("flag --data: a dataset directory is required")
			case out == "":
				return errors.New("flag --out: a directory for the label files is required")
			}
			ts, end, err := a.tasksAndEnd()
			if err != nil {
				return err
			}
			l, splits, err := a.datasetLabeler(data, ts, end)
			if err != nil {
				return err
			}
			src, err := claims.Open(data, claims.SkipBadRows(a.v.GetBool("skip-bad-rows")), codesOption(a))
			if err != nil {
				return err
			}
			defer src.Close()
			var exs []tasks.Example
			patients := 0
			for {
				p, err := src.Next(cmd.Context())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				patients++
				exs = append(exs, l.Examples(p)...)
			}
			a.warnBadRows(data, src)
			if len(exs) == 0 {
				return fmt.Errorf("%s: none of %d patients has an index date (a visit day with the tasks' look-back before it and their longest horizon of follow-up after it, in a split): no labels to export", data, patients)
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("flag --out: %w", err)
			}
			for ti, t := range l.Tasks() {
				rows := tasks.ExportLabels(exs, ti)
				dir := filepath.Join(out, t.Name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("flag --out: %w", err)
				}
				path := filepath.Join(dir, "0.parquet")
				if err := claims.WriteMEDSLabels(path, rows); err != nil {
					return err
				}
				pos := 0
				for _, r := range rows {
					if r.Value {
						pos++
					}
				}
				if err := a.printJSONLine(map[string]any{"task": t.Name, "file": path, "labels": len(rows),
					"positives": pos, "split": splits.String()}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("data", "", "dataset directory (MEDS or OMOP CDM)")
	f.String("out", "", "directory of the MEDS label files to write (LABELS/<task>/0.parquet, replaced)")
	f.String("tasks", "", "task file (YAML); the default tasks when empty")
	f.Uint64("seed", 1, "seed of the index dates (fedclaims eval --seed)")
	f.String("end", "", "extraction date, as 2022-12-31 or RFC 3339: a cap on every patient's follow-up; none when empty")
	f.Int("max-index-per-patient", 1, "most index dates drawn per patient")
	f.String("split-salt", tasks.DefaultSalt, "salt of the train/validation/test split; only patients in a split are labelled"+datasetSplitNote)
	f.Bool("skip-bad-rows", false, "count and skip malformed rows instead of failing on the first")
	addCodesFlag(cmd)
	return cmd
}
