package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// newVocabCmd groups the commands that build the federated vocabulary: each site
// counts (vocab count), the coordinator merges (vocab merge), or both at once on one
// machine (vocab build).
func newVocabCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vocab",
		Short: "Build the token vocabulary from code counts under a k-anonymity floor",
	}
	cmd.AddCommand(newVocabBuildCmd(a), newVocabCountCmd(a), newVocabMergeCmd(a))
	return cmd
}

func newVocabBuildCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build --data DIR... --out vocab.json",
		Short: "Count each dataset as one site, merge the floored tables and write the vocabulary",
		Long: `Each --data dataset (MEDS or OMOP CDM) is counted as a site would count it: the
number of its training-split patients (see --split-salt) with each code or a code under it, with every code below
--min-count patients removed before the tables are merged. The vocabulary keeps the
merged codes with at least --min-count patients and is written as JSON. Prints one
JSON line: out, tokens, min_count, patients, sites.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, out, k, err := vocabFlags(a)
			if err != nil {
				return err
			}
			var tables []*tokenizer.CountTable
			tally := newCodeTally()
			for _, path := range paths {
				t, err := countDataset(cmd.Context(), a, path, k, tally)
				if err != nil {
					return err
				}
				tables = append(tables, t)
			}
			return a.writeVocab(tables, k, out, tally)
		},
	}
	addVocabFlags(cmd, "dataset directories, one per site (repeat or separate with commas)",
		"vocabulary JSON file to write", "k: the fewest patients a code needs at a site, and in the merged counts")
	return cmd
}

func newVocabCountCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "count --data DIR --out counts.json",
		Short: "Write one site's code count table, with codes below the floor removed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, out, k, err := vocabFlags(a)
			if err != nil {
				return err
			}
			if len(paths) != 1 {
				return fmt.Errorf("flag --data: a site counts one dataset, got %d", len(paths))
			}
			tally := newCodeTally()
			t, err := countDataset(cmd.Context(), a, paths[0], k, tally)
			if err != nil {
				return err
			}
			if len(t.Counts) == 0 {
				return fmt.Errorf("%s: refusing to write an empty count table: %s", paths[0], tally.emptyCause(k))
			}
			if err := t.WriteFile(out); err != nil {
				return err
			}
			return a.printJSONLine(map[string]any{"out": out, "codes": len(t.Counts), "min_count": t.MinCount, "patients": t.Patients})
		},
	}
	addVocabFlags(cmd, "the site's dataset directory", "count table JSON file to write", "k: codes seen in fewer patients are left out")
	return cmd
}

func newVocabMergeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "merge COUNTS.json... --out vocab.json",
		Short: "Merge sites' count tables into the vocabulary",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := a.v.GetString("out")
			if out == "" {
				return errors.New("flag --out: a file is required")
			}
			var tables []*tokenizer.CountTable
			for _, path := range args {
				t, err := tokenizer.ReadCounts(path)
				if err != nil {
					return err
				}
				tables = append(tables, t)
			}
			return a.writeVocab(tables, a.v.GetInt("min-count"), out, nil)
		},
	}
	cmd.Flags().String("out", "", "vocabulary JSON file to write")
	cmd.Flags().Int("min-count", tokenizer.DefaultMinCount, "k: the fewest patients a merged code needs")
	return cmd
}

// addVocabFlags adds the flags of the commands that count datasets, read by
// vocabFlags.
func addVocabFlags(cmd *cobra.Command, dataUsage, outUsage, minCountUsage string) {
	cmd.Flags().StringSlice("data", nil, dataUsage)
	cmd.Flags().String("out", "", outUsage)
	cmd.Flags().Int("min-count", tokenizer.DefaultMinCount, minCountUsage)
	cmd.Flags().Bool("skip-bad-rows", false, "count and skip malformed rows instead of failing on the first")
	cmd.Flags().String("split-salt", tasks.DefaultSalt, "salt of the train/validation/test split by subject id; count the training split under it, as a site agent does"+datasetSplitNote)
	cmd.Flags().Bool("include-test-split", false, "count every patient, validation and test splits included: only for an encoder no evaluation on these datasets will score")
	addCodesFlag(cmd)
}

func vocabFlags(a *app) (paths []string, out string, k int, err error) {
	paths, out, k = a.v.GetStringSlice("data"), a.v.GetString("out"), a.v.GetInt("min-count")
	switch {
	case len(paths) == 0:
		err = errors.New("flag --data: at least one dataset directory is required")
	case out == "":
		err = errors.New("flag --out: a file is required")
	case k < 1:
		err = fmt.Errorf("flag --min-count: %d: want at least 1", k)
	}
	return paths, out, k, err
}

// countDataset reads the dataset at path and returns its count table floored at k.
// The vocabulary shapes the encoder, so it counts the patients pretraining reads:
// the training split (tasks.InPretraining), unless --include-test-split. tally
// counts what an empty result's message needs.
func countDataset(ctx context.Context, a *app, path string, k int, tally *codeTally) (*tokenizer.CountTable, error) {
	src, err := claims.Open(path, claims.SkipBadRows(a.v.GetBool("skip-bad-rows")), codesOption(a))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var r claims.Reader = src
	if !a.v.GetBool("include-test-split") {
		splits, err := tasks.LoadSplits(path, a.v.GetString("split-salt"))
		if err != nil {
			return nil, err
		}
		a.log.Info("split", "data", path, "split", splits.String())
		r = tasks.NewSplitsPretrainingReader(src, splits)
	}
	c := tokenizer.NewCounter()
	for {
		p, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		c.Add(p)
		tally.add(p)
	}
	a.warnBadRows(path, src)
	t, err := c.Table(k)
	if err != nil {
		return nil, err
	}
	a.log.Info("counted codes", "data", path, "patients", t.Patients, "codes_kept", len(t.Counts))
	return t, nil
}

// writeVocab merges tables into the vocabulary and writes it to out, refusing a
// vocabulary of special tokens alone; tally, when the datasets were read here,
// names the likely cause.
func (a *app) writeVocab(tables []*tokenizer.CountTable, k int, out string, tally *codeTally) error {
	m, err := tokenizer.Merge(tables...)
	if err != nil {
		return err
	}
	v, err := tokenizer.New(m, k)
	if err != nil {
		return err
	}
	if v.Len() <= tokenizer.NumSpecial {
		cause := fmt.Sprintf("no code is seen in at least --min-count %d of the %d patients counted (every site's table below the floor, or the merged counts)", max(k, m.MinCount), m.Patients)
		if tally != nil {
			cause = tally.emptyCause(max(k, m.MinCount))
		}
		return fmt.Errorf("refusing to write %s, a vocabulary of the %d special tokens alone: %s", out, tokenizer.NumSpecial, cause)
	}
	if err := v.WriteFile(out); err != nil {
		return err
	}
	return a.printJSONLine(map[string]any{"out": out, "tokens": v.Len(), "min_count": v.MinCount(), "patients": m.Patients, "sites": len(tables)})
}

// warnBadRows logs the rows a reader skipped under --skip-bad-rows.
func (a *app) warnBadRows(path string, src claims.Source) {
	if st := src.Stats(); st.BadRows > 0 {
		a.log.Warn("skipped malformed rows", "data", path, "count", st.BadRows, "first", st.FirstBad)
	}
}
