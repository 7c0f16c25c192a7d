package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/secureagg"
)

// newBenchFederationCmd runs, for each site count, one aggregator process and that
// many site agents (goroutines of this process) on loopback through a few rounds of
// a small model, and prints the aggregator's peak resident set and the round time
// (localfed.Bench).
func newBenchFederationCmd(a *app) *cobra.Command {
	var (
		sites   []int
		o       localfed.BenchOptions
		preset  string
		dir     string
		keep    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "federation --sites 3,10,30,64",
		Short: "Run N site agents against one aggregator process on loopback; print its peak RSS and round time per N",
		Long: `For each N of --sites, one after the other: issues N site certificates, synthesises N
small hospitals, starts the aggregator as a process of its own and N site agents as
goroutines of this process (each with its own certificate, state directory and data),
runs --rounds rounds of a small encoder under threshold t = max(2, N/2) and
min_sites = t + 1, and prints one JSON line: the aggregator's peak resident set
(VmHWM, Linux), the mean round time and the model's parameter count. N is at most
secureagg.MaxSites.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(sites) == 0 {
				return fmt.Errorf("flag --sites: give at least one site count")
			}
			for _, n := range sites {
				if n < 3 || n > secureagg.MaxSites {
					return fmt.Errorf("flag --sites: %d must be between 3 and %d (secureagg.MaxSites)", n, secureagg.MaxSites)
				}
			}
			if o.Rounds < 1 {
				return fmt.Errorf("flag --rounds: %d must be positive", o.Rounds)
			}
			o.Preset = secureagg.Preset(preset)
			if _, err := secureagg.NewParameters(o.Preset); err != nil {
				return fmt.Errorf("flag --preset: %w", err)
			}
			if dir == "" {
				d, err := os.MkdirTemp("", "fedclaims-bench-federation-")
				if err != nil {
					return err
				}
				dir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			ctx := cmd.Context()
			for _, n := range sites {
				run := o
				run.Sites, run.Dir, run.Log = n, filepath.Join(dir, fmt.Sprintf("sites-%d", n)), a.log
				rctx, cancel := context.WithTimeout(ctx, timeout)
				res, err := localfed.Bench(rctx, run)
				cancel()
				if err != nil {
					return fmt.Errorf("%d sites: %w (files under %s)", n, err, run.Dir)
				}
				if err := a.printJSONLine(res); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&sites, "sites", []int{3, 10, 30, secureagg.MaxSites}, "site counts, run one after the other")
	f.IntVar(&o.Rounds, "rounds", 2, "rounds of federated pretraining per site count")
	f.IntVar(&o.Patients, "patients", 40, "mean synthetic patients per site")
	f.IntVar(&o.LocalSteps, "local-steps", 1, "optimizer steps per site per round")
	f.IntVar(&o.Hidden, "hidden", 16, "encoder width")
	f.IntVar(&o.Layers, "layers", 1, "encoder layers")
	f.StringVar(&preset, "preset", string(secureagg.PresetN12Q60), "secure-aggregation parameter preset: N12Q60 or N13Q60")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic data and the model")
	f.StringVar(&dir, "dir", "", "directory for the federations (default: a temporary one, removed afterwards)")
	f.BoolVar(&keep, "keep", false, "keep the temporary directory (logs, state, certificates)")
	f.StringSliceVar(&o.AggregatorEnv, "aggregator-env", nil, "KEY=VALUE added to the aggregator's environment (GODEBUG=gctrace=1, GOMEMLIMIT=64MiB)")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "limit on each site count's run")
	return cmd
}
