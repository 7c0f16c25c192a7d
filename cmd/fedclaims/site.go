package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/site"
)

// newSiteCmd runs a hospital's site agent.
func newSiteCmd(a *app) *cobra.Command {
	cmd := withConfig(&cobra.Command{
		Use:   "site --config site.yaml",
		Short: "Run a site agent: enrol, key setup, local training rounds, decryption shares",
		Long: `Runs this hospital's agent of a federation. It dials out to the aggregator over mutual
TLS with the site's certificate (no inbound port), enrols, takes part in the secure-
aggregation key setup, publishes its k-floored code counts, trains locally each round and
uploads its update encrypted, gives at most one decryption share per round, and installs
the published models under state_dir (state_dir/final is a checkpoint that
` + "`fedclaims eval --model`" + ` loads). It reconnects with backoff and resumes after a restart.

Settings come from --config (see configs/site.yaml; an unknown key is an error),
FEDCLAIMS_* environment variables (FEDCLAIMS_AGGREGATOR_ADDRESS for aggregator.address)
and the flags below. Logs are JSON on stderr; every action is in the site's audit log.
On exit it prints one JSON line with the final model's directory; with eval.out set it
first evaluates the final model on the site's data (fedclaims eval) into that directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadSiteConfig(cmd)
			if err != nil {
				return err
			}
			var lvl slog.Level
			if f := cmd.Flag("log-level"); f != nil {
				if err := lvl.UnmarshalText([]byte(f.Value.String())); err != nil {
					return fmt.Errorf("flag --log-level: %w", err)
				}
			}
			log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			agent, err := site.New(cfg, log)
			if err != nil {
				return err
			}
			start := time.Now()
			err = agent.Run(cmd.Context())
			if cerr := agent.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if errors.Is(err, cmd.Context().Err()) {
					return fmt.Errorf("site %s: interrupted; restart it to resume: %w", cfg.SiteID, err)
				}
				return fmt.Errorf("site %s: %w", cfg.SiteID, err)
			}
			result := map[string]any{
				"site":        cfg.SiteID,
				"federation":  cfg.Federation,
				"final_model": agent.FinalDir(),
				"audit_log":   cfg.AuditLogPath(),
				"seconds":     time.Since(start).Seconds(),
			}
			if e := cfg.Eval; e.Out != "" {
				if len(cfg.Data) > 1 {
					log.Warn("local evaluation reads the first dataset only", "data", cfg.Data[0])
				}
				log.Info("evaluating the final model locally", "out", e.Out)
				if err := a.siteEval(cmd.Context(), cfg, agent.FinalDir(), log); err != nil {
					return fmt.Errorf("site %s: local evaluation: %w", cfg.SiteID, err)
				}
				result["eval_report"] = filepath.Join(e.Out, "report.json")
			}
			return a.printJSONLine(result)
		},
	}, "site")
	f := cmd.Flags()
	f.String("site-id", "", "this site's id, as in its certificate (key site_id)")
	f.String("federation", "", "federation id (key federation_id)")
	f.String("aggregator-address", "", "aggregator host:port (key aggregator.address)")
	f.String("server-name", "", "name in the aggregator's certificate (key aggregator.server_name)")
	f.String("certs", "", "consortium certificates directory (key certs_dir)")
	f.StringSlice("data", nil, "dataset directories, MEDS or OMOP CDM (key data)")
	f.String("codes", "", "codes file: rules mapping the datasets' codes, before the built-in conventions (key codes)")
	f.String("state-dir", "", "state directory (key state_dir)")
	f.String("audit-log", "", "audit log (key audit_log; default state_dir/audit.jsonl)")
	f.Int("threads", 0, "model worker goroutines, 0 for every core (key threads)")
	return cmd
}

// loadSiteConfig layers the defaults, the --config file, FEDCLAIMS_* variables and
// the flags that were given, decodes them exactly and validates.
func (a *app) loadSiteConfig(cmd *cobra.Command) (site.Config, error) {
	cfg := site.DefaultConfig()
	err := a.loadConfig(cmd, &cfg, map[string]string{
		"site_id": "site-id", "federation_id": "federation", "aggregator.address": "aggregator-address",
		"aggregator.server_name": "server-name", "certs_dir": "certs", "data": "data", "codes": "codes",
		"state_dir": "state-dir", "audit_log": "audit-log", "threads": "threads",
	})
	if err != nil {
		return site.Config{}, err
	}
	cfg.Software = softwareVersion()
	if err := cfg.Validate(); err != nil {
		if file := a.configFile(cmd); file != "" {
			return site.Config{}, fmt.Errorf("%s: %w", file, err)
		}
		return site.Config{}, err
	}
	return cfg, nil
}

// siteEval is the site's local evaluation of the final model: fedclaims eval's
// work (runEval, through package pipeline) on its first dataset, split as local
// training split it, into cfg.Eval.Out, logging to log.
func (a *app) siteEval(ctx context.Context, cfg site.Config, final string, log *slog.Logger) error {
	e := cfg.Eval
	o := evalDefaults()
	o.data, o.model, o.out = cfg.Data[0], final, e.Out
	o.seq, o.frozen, o.threads, o.salt = e.Seq, e.Frozen, cfg.Threads, cfg.EvalSplitSalt()
	o.readers = []claims.Option{claims.CodesFile(cfg.Codes)}
	if e.Bootstrap > 0 {
		o.resamples = e.Bootstrap
	}
	if e.MaxIndexPerPatient > 0 {
		o.maxIndex = e.MaxIndexPerPatient
	}
	if e.Features != "" {
		o.features = e.Features
	}
	withLog := *a
	withLog.log = log
	_, err := runEval(ctx, o, &withLog)
	return err
}
