package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/secureagg"
)

// newBenchSecureAggCmd simulates one secure-aggregation round in this process
// and prints its sizes, per-core rates and CPU seconds per party.
func newBenchSecureAggCmd(a *app) *cobra.Command {
	var bc secureagg.BenchConfig
	cmd := &cobra.Command{
		Use:   "secureagg",
		Short: "Simulate one threshold-CKKS aggregation round; print sizes, rates and CPU seconds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case bc.Params <= 0:
				return fmt.Errorf("flag --params: %d must be positive", bc.Params)
			case bc.Sites < 1 || bc.Sites > secureagg.MaxSites:
				return fmt.Errorf("flag --sites: %d must be between 1 and %d", bc.Sites, secureagg.MaxSites)
			case bc.Threshold < 1 || bc.Threshold > bc.Sites:
				return fmt.Errorf("flag --threshold: %d must be between 1 and --sites (%d)", bc.Threshold, bc.Sites)
			}
			if _, err := secureagg.NewParameters(bc.Preset); err != nil {
				return fmt.Errorf("flag --preset: %w", err)
			}
			res, err := secureagg.Bench(cmd.Context(), bc)
			if err != nil {
				return err
			}
			return a.printJSONLine(res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&bc.Params, "params", 11_000_000, "model parameters per update")
	f.IntVar(&bc.Sites, "sites", 8, "contributing sites")
	f.IntVar(&bc.Threshold, "threshold", 5, "sites that take part in decryption")
	f.Uint64Var(&bc.Seed, "seed", 1, "seed of the synthetic updates")
	f.StringVar((*string)(&bc.Preset), "preset", string(secureagg.PresetN12Q60), "parameter preset: N12Q60 or N13Q60")
	return cmd
}
