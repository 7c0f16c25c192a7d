package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

// newBenchCmd groups the benchmarks. Each prints one JSON object per line with a
// "name" and its figures, so that runs can be collected and compared.
func newBenchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput; prints one JSON object per line",
	}
	cmd.AddCommand(
		// one line per benchmark subcommand
		newBenchGBDTCmd(a),
		newBenchTrainCmd(a),
		newBenchSecureAggCmd(a),
		newBenchSynthCmd(a),
		newBenchIngestCmd(a),
		newBenchFederationCmd(a),
	)
	return cmd
}

// printJSONLine writes v as one line of JSON to the command's stdout.
func (a *app) printJSONLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}
