package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/tasks"
)

// splitCounts counts the patients of a dataset by split under salt.
func splitCounts(t *testing.T, dir, salt string) map[tasks.Split]int {
	t.Helper()
	src, err := claims.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	n := map[tasks.Split]int{}
	for {
		p, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n[tasks.SplitOf(p.ID, salt)]++
	}
}

// TestPretrainLeavesOutHeldOutSplits: fedclaims pretrain reads the training split
// only unless told otherwise, under the salt it is given, and the demo's site-alone
// pretraining (the same command with the demo's arguments) inherits that.
func TestPretrainLeavesOutHeldOutSplits(t *testing.T) {
	data := synthSite(t, 400)
	vocab := filepath.Join(t.TempDir(), "vocab.json")
	if _, err := runCmd(t, "vocab", "build", "--data", data, "--out", vocab); err != nil {
		t.Fatal(err)
	}
	demoSite := &localfed.Site{ID: "h01", Data: data, StateDir: filepath.Dir(vocab)}
	demoArgs := pretrainAloneArgs(demoSite, filepath.Join(t.TempDir(), "alone"), demoOptions{preset: "2m", rounds: 1, localSteps: 1, batch: 4, seq: 32, seed: 1})
	common := []string{"pretrain", "--data", data, "--vocab", vocab, "--preset", "2m", "--steps", "1", "--batch", "4", "--seq", "32"}
	tests := []struct {
		name  string
		args  []string
		salt  string
		every bool
	}{
		{"default", common, tasks.DefaultSalt, false},
		{"another salt", append(common, "--split-salt", "other"), "other", false},
		{"include test split", append(common, "--include-test-split"), "", true},
		{"demo site alone", demoArgs, tasks.DefaultSalt, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string(nil), tc.args...), "--out", filepath.Join(t.TempDir(), "ckpt"))
			if tc.name == "demo site alone" {
				args = tc.args
			}
			out, err := runCmd(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			res := jsonLines(t, out)
			if len(res) != 1 {
				t.Fatalf("%d JSON lines: %q", len(res), out)
			}
			seqs := int(res[0]["train_sequences"].(float64) + res[0]["valid_sequences"].(float64))
			left := int(res[0]["left_out_patients"].(float64))
			if tc.every {
				if left != 0 || seqs < 380 {
					t.Errorf("left out %d patients and pretrained on %d of 400; want none left out", left, seqs)
				}
				return
			}
			n := splitCounts(t, data, tc.salt)
			if left != n[tasks.Validation]+n[tasks.Test] || seqs > n[tasks.Train] || seqs == 0 {
				t.Errorf("left out %d patients and pretrained on %d; splits %v: want the validation and test splits left out", left, seqs, n)
			}
		})
	}
}

// TestVocabCountsTrainingSplit: fedclaims vocab counts the patients a site agent
// counts, the training split, unless told otherwise.
func TestVocabCountsTrainingSplit(t *testing.T) {
	data := synthSite(t, 300)
	dir := t.TempDir()
	n := splitCounts(t, data, tasks.DefaultSalt)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, n[tasks.Train]},
		{[]string{"--include-test-split"}, n[tasks.Train] + n[tasks.Validation] + n[tasks.Test]},
	} {
		args := append([]string{"vocab", "build", "--data", data, "--min-count", "2", "--out", filepath.Join(dir, "v.json")}, tc.args...)
		out, err := runCmd(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		res := jsonLines(t, out)
		if len(res) != 1 || int(res[0]["patients"].(float64)) != tc.want {
			t.Errorf("%v: printed %v, want %d patients counted", tc.args, res, tc.want)
		}
	}
}
