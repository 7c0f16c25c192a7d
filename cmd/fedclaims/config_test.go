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

// runnable lists every command that runs (has RunE), by its path after fedclaims.
func runnable(c *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.RunE != nil && len(path) > 0 {
			out = append(out, path)
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub, append(append([]string{}, path...), sub.Name()))
			}
		}
	}
	walk(c, nil)
	return out
}

// runWithArgs runs path with args and enough placeholder positional arguments for
// cobra's argument check, so that the command reaches its configuration.
func runWithArgs(t *testing.T, path, args []string, env map[string]string) error {
	t.Helper()
	var err error
	for n := range 4 {
		a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{},
			lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			environ:   func() []string { return nil }}
		root := newRootCmd(a)
		argv := append(append([]string{}, path...), args...)
		for range n {
			argv = append(argv, filepath.Join(t.TempDir(), "placeholder"))
		}
		root.SetArgs(argv)
		root.SetOut(a.stdout)
		root.SetErr(a.stderr)
		err = root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "arg(s)") {
			return err
		}
	}
	return err
}

// TestConfigErrorsEveryCommand: a misspelt key in --config and an unparsable
// FEDCLAIMS_* value stop every command, in one sentence naming the key and where
// it came from, before the command does any work.
func TestConfigErrorsEveryCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(file, []byte("no_such_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmds := runnable(newRootCmd(&app{}))
	if len(cmds) < 25 {
		t.Fatalf("only %d commands found", len(cmds))
	}
	for _, path := range cmds {
		t.Run(strings.Join(path, "_"), func(t *testing.T) {
			err := runWithArgs(t, path, []string{"--config", file}, nil)
			if err == nil || !strings.Contains(err.Error(), file+":1: unknown key no_such_key") || strings.Contains(err.Error(), "\n") {
				t.Errorf("fedclaims %s --config with a misspelt key: err = %v", strings.Join(path, " "), err)
			}
			err = runWithArgs(t, path, nil, map[string]string{"FEDCLAIMS_LOG_LEVEL": "loud"})
			if err == nil || !strings.Contains(err.Error(), "log-level") {
				t.Errorf("fedclaims %s with FEDCLAIMS_LOG_LEVEL=loud: err = %v", strings.Join(path, " "), err)
			}
		})
	}
}

func TestConfigFileSetsFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "synth.yaml")
	out := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("hospitals: 1\npatients: 30\nout: "+out+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"synth", "--config", file, "--seed", "3"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) != 1 {
		t.Fatalf("synth from a config file wrote %v (%v), want one hospital", ents, err)
	}
}

func TestFlagValueFromEnvironmentNamesTheVariable(t *testing.T) {
	err := runWithArgs(t, []string{"synth"}, []string{"--out", t.TempDir()}, map[string]string{"FEDCLAIMS_PATIENTS": "many"})
	if err == nil || !strings.Contains(err.Error(), "environment variable FEDCLAIMS_PATIENTS (flag --patients)") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownEnvironmentVariableWarns(t *testing.T) {
	var stderr bytes.Buffer
	a := &app{stdout: &bytes.Buffer{}, stderr: &stderr, lookupEnv: func(string) (string, bool) { return "", false },
		environ: func() []string {
			return []string{"FEDCLAIMS_LOCAL_STEP=3", "FEDCLAIMS_AGGREGATOR_ADDRESS=x:1", "FEDCLAIMS_PATIENTS=3", "HOME=/root"}
		}}
	root := newRootCmd(a)
	root.SetArgs([]string{"version"})
	root.SetOut(a.stdout)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := stderr.String()
	if !strings.Contains(got, "no command reads FEDCLAIMS_LOCAL_STEP; did you mean FEDCLAIMS_LOCAL_STEPS?") {
		t.Errorf("no warning naming FEDCLAIMS_LOCAL_STEP: %q", got)
	}
	// A site's key and another command's flag are known, wherever they are read.
	if strings.Contains(got, "FEDCLAIMS_AGGREGATOR_ADDRESS") || strings.Contains(got, "FEDCLAIMS_PATIENTS") || strings.Count(got, "level=WARN") != 1 {
		t.Errorf("warned about known variables: %q", got)
	}
}

// TestShippedConfigsLoad: every configuration file the repository ships loads
// through the one mechanism.
func TestShippedConfigsLoad(t *testing.T) {
	for _, tc := range []struct{ cmd, file string }{
		{"aggregator", "../../configs/aggregator.yaml"},
		{"site", "../../configs/site.yaml"},
		{"sweep", "../../configs/sweep.yaml"},
		{"study", "../../configs/study.yaml"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, lookupEnv: func(string) (string, bool) { return "", false }}
			cmd, _, err := newRootCmd(a).Find([]string{tc.cmd})
			if err != nil {
				t.Fatal(err)
			}
			cmd.InheritedFlags()
			if err := cmd.ParseFlags([]string{"--config", tc.file}); err != nil {
				t.Fatal(err)
			}
			switch tc.cmd {
			case "aggregator":
				_, err = a.loadAggregatorConfig(cmd)
			case "site":
				_, err = a.loadSiteConfig(cmd)
			case "sweep":
				_, err = a.readSweepFile(cmd)
			case "study":
				_, err = a.readStudyFile(cmd)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
