package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tinySweep = `
presets:
  - {name: tiny, hidden: 16, layers: 1, heads: 2}
budget: {steps: 4}
data:
  synthetic: {hospitals: 2, patients: 300, seed: 3}
  vocab_min_count: 3
pretrain: {batch: 8, seq: 32, eval_every: 2, valid_sequences: 16}
finetune: {frozen: true, epochs: 1, seq: 32}
eval: {bootstrap: 30, grid: false, iterations: 10, skip_degenerate: true, threads: 1}
`

func TestSweepCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(cfg, []byte(tinySweep), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	stdout, err := runCmd(t, "sweep", "--config", cfg, "--out", out, "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "tiny") || !strings.Contains(stdout, "only tiny was swept") {
		t.Errorf("sweep printed no table or recommendation:\n%s", stdout)
	}
	for _, f := range []string{"sweep.json", "sweep.md", "pretrain_loss.png", "presets/tiny.json", "baseline.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestSweepBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(tinySweep), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(tinySweep, "budget: {steps: 4}", "budget: {steps: 4, tokens: 9}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"sweep", "--out", dir}, "flag --config"},
		{"no out", []string{"sweep", "--config", good}, "flag --out"},
		{"bad field", []string{"sweep", "--config", bad, "--out", filepath.Join(dir, "o")}, bad + ": field budget: give one of steps, tokens and tokens_per_param"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCmd(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); err == nil {
		t.Error("a rejected sweep file created the output directory")
	}
}
