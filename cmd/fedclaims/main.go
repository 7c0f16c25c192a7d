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
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/fedclaims/fedclaims/internal/config"
)

// app is what every subcommand shares: configuration, logging and the output streams.
// It is built once in main and passed down; there is no package-level state.
type app struct {
	// v reads the running command's flags, after configure gave them their
	// environment and file layers.
	v      *viper.Viper
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
	// lookupEnv and environ read the environment; tests inject theirs.
	lookupEnv func(string) (string, bool)
	environ   func() []string
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
	a := &app{v: viper.New(), stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv, environ: os.Environ}
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
			// The file can come from the environment; it cannot name itself.
			if f := cmd.Flag("config"); f != nil && !f.Changed {
				if val, ok := a.lookupEnv(config.EnvName("config")); ok {
					if err := cmd.Flags().Set("config", val); err != nil {
						return err
					}
				}
			}
			if err := a.configure(cmd, configFile); err != nil {
				return err
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("flag --log-level: %w", err)
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			a.warnUnknownEnv(cmd.Root())
			return nil
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
