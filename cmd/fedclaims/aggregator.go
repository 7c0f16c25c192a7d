package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fedclaims/fedclaims/aggregator"
)

// newAggregatorCmd runs the consortium's aggregator.
func newAggregatorCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aggregator --config aggregator.yaml",
		Short: "Run the aggregator: enrol sites, key setup, vocabulary, secure rounds, admin API",
		Long: `Run the consortium's aggregator. Sites dial it over mutual TLS; it never dials a
site. Settings come from the YAML file (see configs/aggregator.yaml), then FEDCLAIMS_*
environment variables (FEDCLAIMS_LOCAL_STEPS for local.steps), then the flags below;
an unknown key or an invalid value is an error naming the key. Logs are JSON on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadAggregatorConfig(cmd.Flags())
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
	}
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

// loadAggregatorConfig layers defaults, the --config file, FEDCLAIMS_* variables and
// the flags that were set, and decodes them strictly.
func loadAggregatorConfig(flags *pflag.FlagSet) (aggregator.Config, error) {
	v := viper.New()
	if err := aggregator.SetDefaults(v); err != nil {
		return aggregator.Config{}, err
	}
	v.SetEnvPrefix("FEDCLAIMS")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	file, _ := flags.GetString("config")
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return aggregator.Config{}, fmt.Errorf("config %s: %w", file, err)
		}
	}
	var ferr error
	flags.Visit(func(fl *pflag.Flag) {
		key := strings.ReplaceAll(fl.Name, "-", "_")
		switch fl.Name {
		case "config", "log-level":
			return
		case "rounds":
			n, err := flags.GetInt(fl.Name)
			ferr = errors.Join(ferr, err)
			v.Set(key, n)
		case "auto-start":
			b, err := flags.GetBool(fl.Name)
			ferr = errors.Join(ferr, err)
			v.Set(key, b)
		default:
			v.Set(key, fl.Value.String())
		}
	})
	if ferr != nil {
		return aggregator.Config{}, ferr
	}
	cfg, err := aggregator.LoadConfig(v)
	if err != nil && file != "" {
		return cfg, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, err
}
