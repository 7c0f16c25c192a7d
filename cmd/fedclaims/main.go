// Command fedclaims is the single binary of fedclaims: the site agent, the aggregator,
// the data tools, the evaluation and the benchmarks, as cobra subcommands. Settings
// come from flags, FEDCLAIMS_* environment variables and an optional YAML file
// (--config), in that order of precedence.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// app is what every subcommand shares: configuration, logging and the output streams.
// It is built once in main and passed down; there is no package-level state.
type app struct {
	v      *viper.Viper
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fedclaims: %v\n", err)
		os.Exit(1)
	}
}

// run executes one command line; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := &app{v: viper.New(), stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCmd(a *app) *cobra.Command {
	var configFile, logLevel string
	root := &cobra.Command{
		Use:           "fedclaims",
		Short:         "Federated pretraining of a medical-claims foundation model with threshold-encrypted secure aggregation",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("flag --log-level: %w", err)
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			a.v.SetEnvPrefix("FEDCLAIMS")
			a.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
			a.v.AutomaticEnv()
			if configFile != "" {
				a.v.SetConfigFile(configFile)
				if err := a.v.ReadInConfig(); err != nil {
					return fmt.Errorf("config %s: %w", configFile, err)
				}
			}
			return a.v.BindPFlags(cmd.Flags())
		},
	}
	// --version prints what `fedclaims version` prints (version.go).
	root.Version = versionText()
	root.SetVersionTemplate("{{.Version}}")
	root.PersistentFlags().StringVar(&configFile, "config", "", "YAML configuration file")
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newVersionCmd(a),
		newHealthCmd(a),
		newBenchCmd(a),
		newCertsCmd(a),
		newAuditCmd(a),
		newDataCmd(a),
		newBaselineCmd(a),
		newEvalCmd(a),
		newPredictCmd(a),
		newEmbedCmd(a),
		newModelCmd(a),
		newPretrainCmd(a),
		newSweepCmd(a),
		newStudyCmd(a),
		newSynthCmd(a),
		newDemoCmd(a),
		newFaultsCmd(a),
		newSiteCmd(a),
		newAggregatorCmd(a),
		newAdminCmd(a),
		newVocabCmd(a),
		newTasksCmd(a),
	)
	return root
}
