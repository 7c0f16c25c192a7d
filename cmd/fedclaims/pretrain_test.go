package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/model"
)

func TestPretrainCommand(t *testing.T) {
	paths := synthHospitals(t)[:2]
	dir := t.TempDir()
	vocab, ckpt := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "ckpt")
	if _, err := runCmd(t, "vocab", "build", "--data", strings.Join(paths, ","), "--out", vocab); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "pretrain", "--data", paths[0], "--data", paths[1], "--vocab", vocab, "--preset", "2m",
		"--steps", "25", "--seq", "64", "--batch", "8", "--lr", "3e-3", "--dropout", "0", "--out", ckpt)
	if err != nil {
		t.Fatal(err)
	}
	res := jsonLines(t, out)
	if len(res) != 1 {
		t.Fatalf("pretrain printed %d JSON lines, want 1: %q", len(res), out)
	}
	start, end := res[0]["valid_loss_start"].(float64), res[0]["valid_loss_end"].(float64)
	t.Logf("validation MLM loss %.3f -> %.3f, unigram entropy %.3f", start, end, res[0]["unigram_entropy"])
	if !(end < start-0.5) {
		t.Errorf("validation MLM loss %.3f -> %.3f: want a drop of at least 0.5", start, end)
	}
	out, err = runCmd(t, "model", "info", "--checkpoint", ckpt)
	if err != nil {
		t.Fatal(err)
	}
	info := jsonLines(t, out)
	if len(info) != 1 || info[0]["params"] != res[0]["params"] || info[0]["layers"] != 4.0 || info[0]["hidden"] != 128.0 {
		t.Errorf("model info --checkpoint = %v, pretrain reported params %v", info, res[0]["params"])
	}
}

func TestPretrainBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"pretrain", "--vocab", "v.json", "--out", dir}, "--data"},
		{[]string{"pretrain", "--data", dir, "--vocab", filepath.Join(dir, "missing.json"), "--out", dir}, "--vocab"},
		{[]string{"pretrain", "--data", dir, "--vocab", "v", "--out", dir, "--steps", "0"}, "--steps"},
	}
	for _, c := range cases {
		_, err := runCmd(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.args, err, c.want)
		}
	}
}

func TestModelInfoCommand(t *testing.T) {
	want := map[string]float64{"2m": 2282616, "11m": 10865656, "32m": 31144184, "57m": 56638840, "101m": 101024504}
	for preset, params := range want {
		out, err := runCmd(t, "model", "info", "--preset", preset)
		if err != nil {
			t.Fatal(err)
		}
		r := jsonLines(t, out)
		if len(r) != 1 || r[0]["params"] != params {
			t.Errorf("model info --preset %s = %v, want params %.0f", preset, r, params)
		}
		for _, k := range []string{"layers", "hidden", "heads", "flops_per_token"} {
			if _, ok := r[0][k]; !ok {
				t.Errorf("model info --preset %s lacks %q", preset, k)
			}
		}
	}
	if _, err := runCmd(t, "model", "info", "--preset", "3m"); err == nil || !strings.Contains(err.Error(), "--preset") {
		t.Errorf("unknown preset: %v", err)
	}
	if _, err := runCmd(t, "model", "info", "--checkpoint", t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty checkpoint dir: %v", err)
	}
}

// TestPretrainResume stops a run after 5 of its 12 steps, resumes it with
// --resume, and requires the same model and optimiser, byte for byte, as an
// uninterrupted run.
func TestPretrainResume(t *testing.T) {
	paths := synthHospitals(t)[:1]
	dir := t.TempDir()
	vocab := filepath.Join(dir, "vocab.json")
	if _, err := runCmd(t, "vocab", "build", "--data", paths[0], "--out", vocab); err != nil {
		t.Fatal(err)
	}
	args := func(out string) []string {
		return []string{"pretrain", "--data", paths[0], "--vocab", vocab, "--preset", "2m",
			"--steps", "12", "--seq", "48", "--batch", "8", "--accum", "2", "--out", out}
	}
	whole, parts := filepath.Join(dir, "whole"), filepath.Join(dir, "parts")
	if _, err := runCmd(t, args(whole)...); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, append(args(parts), "--stop-after", "5")...); err != nil {
		t.Fatal(err)
	}
	state, err := os.ReadFile(filepath.Join(parts, model.TrainerFile))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Step int }
	if err := json.Unmarshal(state, &st); err != nil || st.Step != 5 {
		t.Fatalf("stopped at step %d (%v), want 5", st.Step, err)
	}
	if _, err := runCmd(t, append(args(parts), "--resume")...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{model.ModelFile, model.OptimizerFile} {
		a, err := os.ReadFile(filepath.Join(whole, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(parts, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s of the interrupted and resumed run differs from the uninterrupted run's", f)
		}
	}
}

// --random-cut pretrains on histories cut at a random visit day: the training
// sequences' code distribution is not the whole histories', and the run says so.
func TestPretrainRandomCut(t *testing.T) {
	paths := synthHospitals(t)[:1]
	dir := t.TempDir()
	vocab := filepath.Join(dir, "vocab.json")
	if _, err := runCmd(t, "vocab", "build", "--data", paths[0], "--out", vocab); err != nil {
		t.Fatal(err)
	}
	results := map[bool]map[string]any{}
	for _, cut := range []bool{false, true} {
		out, err := runCmd(t, "pretrain", "--data", paths[0], "--vocab", vocab, "--preset", "2m", "--steps", "1", "--seq", "48",
			"--batch", "8", "--random-cut="+strconv.FormatBool(cut), "--out", filepath.Join(dir, "ckpt-"+strconv.FormatBool(cut)))
		if err != nil {
			t.Fatal(err)
		}
		res := jsonLines(t, out)
		if len(res) != 1 || res[0]["random_cut"] != cut {
			t.Fatalf("--random-cut=%v printed %v", cut, res)
		}
		results[cut] = res[0]
	}
	if whole, cut := results[false]["unigram_entropy"], results[true]["unigram_entropy"]; whole == cut {
		t.Errorf("unigram entropy %v of the training sequences with and without --random-cut: want the cut windows to differ", whole)
	}
}
