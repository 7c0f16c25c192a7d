package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/sweep"
)

// newSweepCmd pretrains the encoder at several sizes, scores each on every task and
// recommends the smallest size that is enough per task.
func newSweepCmd(a *app) *cobra.Command {
	var out string
	var central bool
	cmd := withConfig(&cobra.Command{
		Use:   "sweep --config SWEEP.yaml --out DIR [--central]",
		Short: "Pretrain the encoder at each preset of a sweep file, score every task, and recommend the smallest preset that is enough",
		Long: `sweep pretrains the encoder at each preset of the sweep file (named presets or
custom shapes, each with a budget in steps or tokens) on the sites' training splits,
recording parameters, the validation loss curve, wall, CPU and GPU seconds. For every
task it fine-tunes and scores each preset's head as fedclaims eval does (same labels,
splits and seeds; the baseline trained once), with patient-level bootstrap intervals.
It recommends per task the smallest preset whose AUPRC is within the tolerance of the
best preset's or not significantly worse by a one-sided paired bootstrap test, with
the compute it saves against the largest preset. Writes DIR/sweep.json, DIR/sweep.md
and PNG plots, and prints the sweep table. Run again with the same DIR to resume: the
finished presets are kept. See configs/sweep.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.configFile(cmd) == "" {
				return errors.New("flag --config: a sweep file is required")
			}
			// The file first: a key it gets wrong is the first thing to fix.
			c, err := a.readSweepFile(cmd)
			if err != nil {
				return err
			}
			if out == "" {
				return errors.New("flag --out: an output directory is required")
			}
			if central {
				c.Mode = sweep.ModeCentral
			}
			res, err := sweep.Run(cmd.Context(), c, out, sweep.Options{Log: a.log})
			if err != nil {
				return err
			}
			return res.WriteTable(a.stdout)
		},
	}, "sweep")
	cmd.Flags().StringVar(&out, "out", "", "output directory (resumed when it holds a sweep of the same file)")
	cmd.Flags().BoolVar(&central, "central", false, "pretrain centrally on the pooled training splits, whatever the file's mode")
	return cmd
}
