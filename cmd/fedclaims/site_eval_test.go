package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fedclaims/fedclaims/site"
)

// TestSiteEvalIsFedclaimsEval: the site's local evaluation of its final model
// (through eval/pipeline, not its own CLI) writes the report `fedclaims eval` writes
// for the same data, model and settings.
func TestSiteEvalIsFedclaimsEval(t *testing.T) {
	data := synthSite(t, 800)
	ckpt := tinyCheckpoint(t, data, 0)
	cfg := site.DefaultConfig()
	cfg.Data = []string{data}
	cfg.Threads = 1
	cfg.Eval = site.EvalConfig{Out: filepath.Join(t.TempDir(), "site"), Bootstrap: 20, Frozen: true, Seq: 16}
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, log: slog.New(slog.DiscardHandler)}
	if err := a.siteEval(context.Background(), cfg, ckpt, a.log); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "eval")
	if _, err := runCmd(t, "eval", "--data", data, "--model", ckpt, "--out", out, "--seq", "16", "--bootstrap", "20",
		"--threads", "1", "--split-salt", cfg.EvalSplitSalt(), "--log-level", "warn"); err != nil {
		t.Fatal(err)
	}
	read := func(dir string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	got, want := read(cfg.Eval.Out), read(out)
	if tasks, _ := got["tasks"].([]any); len(tasks) == 0 {
		t.Fatalf("the site's report has no tasks: %v", got)
	}
	if !reflect.DeepEqual(got["tasks"], want["tasks"]) {
		t.Errorf("the site's report differs from fedclaims eval's:\nsite %v\neval %v", got["tasks"], want["tasks"])
	}
	if _, err := os.Stat(filepath.Join(cfg.Eval.Out, "heads")); err != nil {
		t.Errorf("the site saved no heads: %v", err)
	}
}
