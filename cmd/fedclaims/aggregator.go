package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/aggregator"
)

// newAggregatorCmd runs the consortium's aggregator.
func newAggregatorCmd(a *app) *cobra.Command {
	cmd := withConfig(&cobra.Command{
		Use:   "aggregator --config aggregator.yaml",
		Short: "Run the aggregator: enrol sites, key setup, vocabulary, secure rounds, admin API",
		Long: `Run the consortium's aggregator. Sites dial it over mutual TLS; it never dials a
site. Settings come from the YAML file (see configs/aggregator.yaml), then FEDCLAIMS_*
environment variables (FEDCLAIMS_LOCAL_STEPS for local.steps), then the flags below;
an unknown key or an invalid value is an error naming the key. Logs are JSON on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadAggregatorConfig(cmd)
			if err != nil {
				return err
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(a.v.GetString("log-level"))); err != nil {
				lvl = slog.LevelInfo
			}
			log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			srv, err := aggregator.NewServer(cfg, aggregator.Options{Log: log})
			if err != nil {
				return err
			}
			lis, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("aggregator: key listen: %w", err)
			}
			return srv.Run(cmd.Context(), lis)
		},
	}, "aggregator")
	f := cmd.Flags()
	f.String("federation", "", "federation id (key federation)")
	f.String("listen", "", "gRPC listen address (key listen)")
	f.String("metrics", "", "plain-HTTP /metrics address, empty for none (key metrics)")
	f.String("certs", "", "consortium directory with ca.crt and aggregator.crt/.key (key certs)")
	f.String("state-dir", "", "state directory: checkpoints, setup blobs (key state_dir)")
	f.String("audit-log", "", "audit log file (key audit_log)")
	f.Int("rounds", 0, "rounds to run (key rounds)")
	f.Bool("auto-start", false, "begin setup and rounds without admin start (key auto_start)")
	return cmd
}

// loadAggregatorConfig layers the defaults, the --config file, FEDCLAIMS_*
// variables and the flags that were given, decodes them exactly and validates.
func (a *app) loadAggregatorConfig(cmd *cobra.Command) (aggregator.Config, error) {
	cfg := aggregator.DefaultConfig()
	err := a.loadConfig(cmd, &cfg, map[string]string{
		"federation": "federation", "listen": "listen", "metrics": "metrics", "certs": "certs",
		"state_dir": "state-dir", "audit_log": "audit-log", "rounds": "rounds", "auto_start": "auto-start",
	})
	if err != nil {
		return aggregator.Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		if file := a.configFile(cmd); file != "" {
			return aggregator.Config{}, fmt.Errorf("%s: %w", file, err)
		}
		return aggregator.Config{}, err
	}
	return cfg, nil
}
