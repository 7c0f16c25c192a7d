package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
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
		Long: `Reads PATH (MEDS or OMOP CDM, codes through --codes) and writes a MEDS dataset
at DIR: data/NNNN.parquet shards, metadata/dataset.json (the source's dataset name
and version when it states them, fedclaims of this build as the ETL),
metadata/subject_splits.parquet (the source's own split when it declares one, else
fedclaims' hash under --split-salt, so that every later command and every other tool
splits the patients alike) and metadata/codes.parquet: the source's descriptions of
the codes written, as the code map rewrote them (from a MEDS source's codes.parquet,
or from the concept_name of OMOP's concept.csv for each code's concept). The dataset
appears whole or not at all. Prints one JSON line.`,
		Args: cobra.ExactArgs(1),
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
			splits, err := tasks.LoadSplits(args[0], a.v.GetString("split-salt"))
			if err != nil {
				return err
			}
			meta, err := convertedMetadata(args[0], out)
			if err != nil {
				return err
			}
			w, err := claims.NewMEDSWriter(out, claims.ShardRows(a.v.GetInt("shard-rows")),
				claims.Metadata(meta), claims.SubjectSplits(splits.Name))
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
			if subjects == 0 {
				w.Abort()
				return fmt.Errorf("%s: refusing to write %s, a dataset without subjects: the source holds no person (is person.csv empty?)", args[0], out)
			}
			codes := 0
			if d, ok := src.(claims.CodeDescriber); ok {
				infos, err := d.CodeDescriptions(cmd.Context())
				if err != nil {
					w.Abort()
					return fmt.Errorf("%s: code descriptions: %w", args[0], err)
				}
				w.SetCodes(infos)
				codes = len(infos)
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
				"bad_rows_skipped": st.BadRows, "described_codes": codes, "split": splits.String(),
			})
		},
	}
	cmd.Flags().String("out", "", "directory of the MEDS dataset to write (replaced if it exists)")
	dataFlags(cmd)
	cmd.Flags().Int("shard-rows", 4<<20, "rows per data shard")
	cmd.Flags().String("split-salt", tasks.DefaultSalt, "salt of the train/validation/test split written to metadata/subject_splits.parquet (the split fedclaims would use under it)"+datasetSplitNote+", and that one is written")
	return cmd
}

// convertedMetadata is the dataset.json of a dataset converted from src into
// out: named and versioned as src's own dataset.json says when it has one (else
// after out), with fedclaims of this build as the ETL.
func convertedMetadata(src, out string) (claims.DatasetMetadata, error) {
	m := claims.DatasetMetadata{Name: filepath.Base(filepath.Clean(out)), ETLVersion: version}
	from, err := claims.ReadDatasetMetadata(src)
	if err != nil {
		return m, fmt.Errorf("%s: %w", src, err)
	}
	if from != nil && from.Name != "" {
		m.Name, m.Version = from.Name, from.Version
	}
	return m, nil
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
