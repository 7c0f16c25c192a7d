package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/spf13/cobra"
)

// newDataCmd groups the commands that look at and convert claims datasets.
func newDataCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Inspect and convert claims datasets (MEDS parquet, OMOP CDM CSV)",
	}
	cmd.AddCommand(newDataInspectCmd(a), newDataConvertCmd(a), newDataDescribeCmd(a))
	return cmd
}

func newDataInspectCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Print one JSON object describing a MEDS dataset or an OMOP CDM export",
		Long: `Reads the whole dataset at PATH and prints one JSON object: subjects, events,
codes (distinct), first_time and last_time (RFC 3339, UTC), format ("meds" or "omop"),
events_by_kind, events_by_system (after --codes and the built-in conventions; events
in no known system as "unrecognised", their commonest prefixes in
top_unrecognised_prefixes, with a warning above 10%), and counts of rows read, rows
skipped as malformed and rows not turned into events.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := claims.Open(args[0], dataOptions(a)...)
			if err != nil {
				return err
			}
			defer src.Close()
			s, err := claims.Inspect(cmd.Context(), src)
			if err != nil {
				return err
			}
			if s.BadRows > 0 {
				a.log.Warn("skipped malformed rows", "count", s.BadRows, "first", s.FirstBadRow)
			}
			a.warnUnrecognised(args[0], s)
			return a.printJSONLine(s)
		},
	}
	dataFlags(cmd)
	return cmd
}

func newDataDescribeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe PATH [--json]",
		Short: "Print the shape of a MEDS dataset's or OMOP CDM export's histories: visits, codes per visit, gaps, Zipf slope",
		Long: `Reads the whole dataset at PATH and prints one row (a table, or with --json one
JSON object) of the figures "fedclaims synth --report" prints for generated
hospitals: visits per patient-year of observation (first to last event, patients
seen on two days or more), codes per visit (a visit is one patient's events on one
UTC day), the gaps in days between consecutive visits and the least-squares slope
of log code count against log rank over the codes seen at least 5 times.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := claims.Open(args[0], dataOptions(a)...)
			if err != nil {
				return err
			}
			defer src.Close()
			d, err := claims.Describe(cmd.Context(), src)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if st := src.Stats(); st.BadRows > 0 {
				a.log.Warn("skipped malformed rows", "count", st.BadRows, "first", st.FirstBad)
			}
			return printDescribed(a, []describedRow{{Dataset: filepath.Base(filepath.Clean(args[0])), Description: d}})
		},
	}
	dataFlags(cmd)
	cmd.Flags().Bool("json", false, "one JSON object instead of a table")
	return cmd
}

func newDataConvertCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert PATH --out DIR",
		Short: "Write a MEDS or OMOP CDM dataset out as a MEDS dataset",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := a.v.GetString("out")
			if out == "" {
				return errors.New("flag --out: a directory is required")
			}
			src, err := claims.Open(args[0], dataOptions(a)...)
			if err != nil {
				return err
			}
			defer src.Close()
			w, err := claims.NewMEDSWriter(out, claims.ShardRows(a.v.GetInt("shard-rows")))
			if err != nil {
				return err
			}
			var subjects, events int64
			for {
				p, err := src.Next(cmd.Context())
				if errors.Is(err, io.EOF) {
					break
				}
				if err == nil {
					err = w.Write(p)
				}
				if err != nil {
					w.Abort()
					return err
				}
				subjects++
				events += int64(len(p.Events))
			}
			if err := w.Close(); err != nil {
				return err
			}
			st := src.Stats()
			if st.BadRows > 0 {
				a.log.Warn("skipped malformed rows", "count", st.BadRows, "first", st.FirstBad)
			}
			return a.printJSONLine(map[string]any{
				"out": out, "format_in": src.Format(), "subjects": subjects, "events": events,
				"bad_rows_skipped": st.BadRows,
			})
		},
	}
	cmd.Flags().String("out", "", "directory of the MEDS dataset to write (replaced if it exists)")
	dataFlags(cmd)
	cmd.Flags().Int("shard-rows", 4<<20, "rows per data shard")
	return cmd
}

// dataFlags adds the reader flags that dataOptions reads.
func dataFlags(cmd *cobra.Command) {
	cmd.Flags().Bool("skip-bad-rows", false, "count and skip malformed rows instead of failing on the first")
	cmd.Flags().String("omop-icd10", claims.SystemICD10CM, "code system of ICD-10-shaped OMOP condition source values without a vocabulary: ICD10CM or ICD10 (WHO)")
	addCodesFlag(cmd)
}

func dataOptions(a *app) []claims.Option {
	return []claims.Option{
		claims.SkipBadRows(a.v.GetBool("skip-bad-rows")),
		claims.ICD10System(a.v.GetString("omop-icd10")),
		codesOption(a),
	}
}
