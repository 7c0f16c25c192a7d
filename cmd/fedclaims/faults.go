package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/localfed/faults"
)

// newFaultsCmd is the opt-in fault harness (make faults); the logic is package
// localfed/faults.
func newFaultsCmd(a *app) *cobra.Command {
	var o faults.Options
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "faults [--out DIR] [--seed N] [--scenario NAME]...",
		Short: "Run the federation through injected network faults and kills, and print what it kept",
		Long: `Runs the aggregator and three site agents as processes on loopback, each site's
connection through its own toxiproxy proxy in this process: first without faults (the
baseline), then once per scenario: latency 125±75 ms, a bandwidth limit, dropped and
reset connections, a 30-second blackhole of one site, kill -9 of a site and of the
aggregator at seeded points of a round. Every fault is bounded in count and time;
--seed fixes where they land. Prints a table: per scenario the rounds applied, the
final model's largest difference from the baseline's next to the decryption-noise
bound, the audit logs verified (chain and signatures) and whether anything was lost;
writes DIR/faults.json, DIR/faults.md and every run's logs under DIR/<scenario>/.
A DIR that an earlier run wrote is replaced. Exits non-zero when a scenario fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			o.Log, o.Progress = a.log, a.stderr
			rep, err := faults.Run(ctx, o)
			if rep != nil {
				if terr := faults.Table(a.stdout, rep); terr != nil && err == nil {
					err = terr
				}
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("faults: some scenarios failed (%s/faults.md)", o.Out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "out/faults", "directory for the runs, faults.json and faults.md")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of where the faults land (round, point of the round, site)")
	f.Uint64Var(&o.DataSeed, "data-seed", 1, "seed of the synthetic hospitals and the model, the same in every run")
	f.IntVar(&o.Rounds, "rounds", 4, "federated rounds per run")
	f.IntVar(&o.Patients, "patients", 120, "patients per synthetic hospital on average")
	f.StringSliceVar(&o.Scenarios, "scenario", nil, fmt.Sprintf("scenarios to run after the baseline (default all: %v)", faults.Scenarios[1:]))
	f.DurationVar(&o.RunTimeout, "run-timeout", 4*time.Minute, "give up on one run of the federation after this long")
	f.DurationVar(&timeout, "timeout", 20*time.Minute, "give up, and stop every process, after this long")
	return cmd
}
