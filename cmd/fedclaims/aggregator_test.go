package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// aggregatorCommand parses args as `fedclaims aggregator` would, without running it.
func aggregatorCommand(t *testing.T, args ...string) (*app, *cobra.Command) {
	t.Helper()
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, lookupEnv: os.LookupEnv, environ: os.Environ}
	root := newRootCmd(a)
	cmd, rest, err := root.Find(append([]string{"aggregator"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	cmd.InheritedFlags() // merges the root's persistent flags into cmd.Flags()
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	return a, cmd
}

// TestAggregatorConfigExample loads the committed example with an environment
// variable and a flag layered over it.
func TestAggregatorConfigExample(t *testing.T) {
	t.Setenv("FEDCLAIMS_LOCAL_STEPS", "33")
	a, cmd := aggregatorCommand(t, "--config", "../../configs/aggregator.yaml", "--rounds", "7", "--listen", "127.0.0.1:9999")
	cfg, err := a.loadAggregatorConfig(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Federation != "demo" || cfg.Threshold != 2 || cfg.Local.Steps != 33 || cfg.Rounds != 7 || cfg.Listen != "127.0.0.1:9999" || cfg.Model.Preset != "2m" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestAggregatorConfigErrors(t *testing.T) {
	example, err := os.ReadFile("../../configs/aggregator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown key", "auto_start: false", "auto_start: false\nauto_stop: true", "auto_stop"},
		{"invalid value", "min_sites: 3", "min_sites: 9", "min_sites"},
		{"bad type", "rounds: 3", "rounds: many", "rounds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "aggregator.yaml")
			if err := os.WriteFile(file, []byte(strings.Replace(string(example), tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"aggregator", "--config", file}, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
				t.Fatalf("err = %v, want one naming %s and the file", err, tc.want)
			}
		})
	}
}
