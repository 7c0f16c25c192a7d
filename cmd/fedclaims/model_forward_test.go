package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/model"
)

// TestModelForward: `model forward --data` writes the batch it ran and the pass,
// and `--inputs` of that batch writes the same pass again.
func TestModelForward(t *testing.T) {
	data := synthSite(t, 30)
	ckpt := tinyCheckpoint(t, data, 0)
	dir := t.TempDir()
	in, out1, out2 := filepath.Join(dir, "in.json"), filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"model", "forward", "--model", ckpt, "--data", data, "--limit", "3", "--seq", "32",
		"--save-inputs", in, "--out", out1, "--mlm-logits"}, &stdout, &stderr); err != nil {
		t.Fatalf("model forward --data: %v\n%s", err, stderr.String())
	}
	if err := run(context.Background(), []string{"model", "forward", "--model", ckpt, "--inputs", in, "--out", out2, "--mlm-logits"}, &stdout, &stderr); err != nil {
		t.Fatalf("model forward --inputs: %v\n%s", err, stderr.String())
	}
	a, err := os.ReadFile(out1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the pass over --inputs differs from the pass over --data that wrote them")
	}
	var got model.ForwardOutputs
	if err := json.Unmarshal(a, &got); err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ReadConfig(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if got.B != 3 || got.T < 2 || got.T > 32 || got.Hidden != cfg.Hidden || len(got.HiddenStates) != 3 ||
		len(got.HiddenStates[0]) != got.T || len(got.PooledMean[2]) != cfg.Hidden || len(got.MLMLogits[0][0]) != cfg.Vocab {
		t.Errorf("forward JSON of b=%d t=%d hidden=%d", got.B, got.T, got.Hidden)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte(`{"tokens": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"model", "forward", "--model", ckpt, "--out", out1}, "exactly one of --inputs and --data"},
		{[]string{"model", "forward", "--model", ckpt, "--inputs", in, "--data", data, "--out", out1}, "exactly one"},
		{[]string{"model", "forward", "--inputs", in, "--out", out1}, "--model"},
		{[]string{"model", "forward", "--model", ckpt, "--inputs", in}, "--out"},
		{[]string{"model", "forward", "--model", ckpt, "--data", data, "--seq", "1", "--out", out1}, "--seq"},
		{[]string{"model", "forward", "--model", ckpt, "--inputs", empty, "--out", out1}, "no sequences"},
	} {
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fedclaims %s: %v, want an error naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
