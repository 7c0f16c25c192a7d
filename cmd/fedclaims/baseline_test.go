package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmitryikh/leaves"

	"github.com/fedclaims/fedclaims/baseline"
)

func TestBaselineTrainCommand(t *testing.T) {
	dir := t.TempDir()
	d := baseline.Synthetic(2000, 200, 0.05, 4)
	train, test := d.Split(0.7, 5)
	trainPath, testPath := filepath.Join(dir, "train.svm"), filepath.Join(dir, "test.svm")
	if err := baseline.SaveLibSVM(trainPath, train.X, train.Label); err != nil {
		t.Fatal(err)
	}
	if err := baseline.SaveLibSVM(testPath, test.X, test.Label); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"baseline", "train", "--train", trainPath, "--test", testPath,
		"--set", "num_iterations=20", "--set", "num_leaves=7", "--out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	for _, k := range []string{"train_seconds", "load_seconds", "auprc", "auroc"} {
		if _, ok := res[k]; !ok {
			t.Errorf("output lacks %q: %s", k, stdout.String())
		}
	}
	if res["auroc"].(float64) < 0.6 || res["trees"].(float64) != 20 {
		t.Errorf("auroc %v trees %v, want > 0.6 and 20", res["auroc"], res["trees"])
	}
	m, err := leaves.LGEnsembleFromFile(filepath.Join(out, "model.txt"), true)
	if err != nil {
		t.Fatalf("model.txt: %v", err)
	}
	if m.NEstimators() != 20 {
		t.Errorf("model.txt holds %d trees, want 20", m.NEstimators())
	}
	pred, err := os.ReadFile(filepath.Join(out, "predictions.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(string(pred))); n != test.X.Rows() {
		t.Errorf("%d predictions for %d test rows", n, test.X.Rows())
	}
}

func TestBaselineTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.svm")
	bad := filepath.Join(dir, "bad.svm")
	os.WriteFile(good, []byte("1 0:1\n0 1:1\n"), 0o644)
	os.WriteFile(bad, []byte("1 0:1\n2 1:1\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"label not binary", []string{"--train", bad, "--test", good}, "bad.svm: row 2: label 2"},
		{"unknown parameter", []string{"--train", good, "--test", good, "--set", "nope=1"}, `parameter "nope": unknown`},
		{"bad value", []string{"--train", good, "--test", good, "--set", "num_leaves=1"}, "num_leaves=1"},
		{"missing file", []string{"--train", filepath.Join(dir, "none.svm"), "--test", good}, "none.svm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "-"))
			args := append([]string{"baseline", "train", "--out", out}, tt.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to name %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(out, "model.txt")); err == nil {
				t.Error("a model was written despite the error")
			}
		})
	}
}
