package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/study"
)

// newStudyCmd runs the study: the scales federated on one budget, the same tokens
// centralised and at one site alone, the controls, the recipe's changes and the
// label-efficiency curve, each encoder against the time-aware baseline.
func newStudyCmd(a *app) *cobra.Command {
	var out string
	cmd := withConfig(&cobra.Command{
		Use:   "study --config STUDY.yaml --out DIR",
		Short: "Run the study: encoders at several scales, federated, centralised and site-alone, against the baseline, with controls",
		Long: `study pretrains the encoder at every scale of the study file on one token budget in
the file's mode (federated: the aggregator and one site agent per site as processes,
mTLS on loopback, threshold-encrypted updates; pretraining-only sites pretrain on
every patient), the central scale again on the pooled training data and at one
labelled site alone, and scores each encoder's heads on every task against the
time-aware gradient-boosting baseline on the same test rows: paired, outcome-
stratified patient-bootstrap intervals and Holm-corrected p-values. It runs two
controls (visits shuffled within each history; data generated at temporal_strength 0),
measures each recipe change on the validation split, and fits the label-efficiency
curve. Writes DIR/study.json, DIR/study.md, DIR/study_<task>.png, the scales as a
sweep under DIR/scales/, and prints the floors. Run again with the same DIR to
resume: finished arms are kept. See configs/study.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.configFile(cmd) == "" {
				return errors.New("flag --config: a study file is required")
			}
			// The file first: a key it gets wrong is the first thing to fix.
			c, err := a.readStudyFile(cmd)
			if err != nil {
				return err
			}
			if out == "" {
				return errors.New("flag --out: an output directory is required")
			}
			res, err := study.Run(cmd.Context(), c, out, study.Options{Log: a.log})
			if err != nil {
				return err
			}
			return res.WriteSummary(a.stdout)
		},
	}, "study")
	cmd.Flags().StringVar(&out, "out", "", "output directory (resumed when it holds a study of the same file)")
	return cmd
}
