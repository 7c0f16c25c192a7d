package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// tinyCheckpoint writes a small randomly initialised encoder with a vocabulary
// counted from the site's data; extra pads the vocabulary to break the match.
func tinyCheckpoint(t *testing.T, data string, extra int) string {
	t.Helper()
	src, err := claims.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c := tokenizer.NewCounter()
	for {
		p, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Add(p)
	}
	table, err := c.Table(5)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.New(table, 5)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := v.Save(&buf); err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Vocab: v.Len() + extra, Hidden: 16, Layers: 1, Heads: 2, MaxLen: 32, Segments: 3, LNEps: 1e-5}
	m, err := model.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := m.Save(dir, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEvalWithEncoder(t *testing.T) {
	data := synthSite(t, 3000)
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "tasks.yaml")
	os.WriteFile(taskFile, []byte(evalTasksYAML), 0o644)
	ckpt := tinyCheckpoint(t, data, 0)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	// Several index dates per patient give the test split enough positives for
	// the comparison (the bootstrap resamples patients, not rows).
	err := run(context.Background(), []string{"eval", "--data", data, "--tasks", taskFile, "--model", ckpt,
		"--seq", "16", "--out", out, "--grid=false", "--bootstrap", "50", "--iterations", "30",
		"--max-index-per-patient", "4", "--log-level", "warn"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		Tasks []struct {
			Name          string                     `json:"name"`
			PositivesTest int                        `json:"positives_test"`
			Models        map[string]json.RawMessage `json:"models"`
			Comparison    *struct {
				Metric string     `json:"metric"`
				Diff   *float64   `json:"diff"`
				CI     [2]float64 `json:"ci"`
				P      *float64   `json:"p"`
				PHolm  *float64   `json:"p_holm"`
			} `json:"comparison"`
			Verdict   string `json:"verdict"`
			Undecided string `json:"undecided"`
		} `json:"tasks"`
	}
	raw := readReport(t, out, &rep)
	compared := 0
	for _, task := range rep.Tasks {
		if _, ok := task.Models["encoder"]; !ok {
			t.Errorf("task %s: no encoder metrics with --model", task.Name)
		}
		// Ten positive rows can be fewer positive patients, which the bootstrap
		// resamples; the report then says so.
		c := task.Comparison
		fewPatients := strings.Contains(task.Undecided, "too few positive patients")
		if (c != nil) != (task.PositivesTest >= 10 && !fewPatients) {
			t.Errorf("task %s: %d test positives (%q), comparison %+v", task.Name, task.PositivesTest, task.Undecided, c)
		}
		if c == nil {
			continue
		}
		compared++
		if c.Metric != "auprc" || c.Diff == nil || c.P == nil || c.PHolm == nil || !(c.CI[0] <= *c.Diff && *c.Diff <= c.CI[1]) || *c.PHolm < *c.P {
			t.Errorf("task %s: comparison %+v", task.Name, c)
		}
	}
	if compared == 0 {
		t.Fatalf("no task had 10 test positives; the test checks nothing: %s", raw)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "Holm") {
		t.Errorf("report.md does not say how p-values are corrected:\n%s", md)
	}
}

func TestEvalVocabularyMismatch(t *testing.T) {
	data := synthSite(t, 400)
	ckpt := tinyCheckpoint(t, data, 3)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"eval", "--data", data, "--model", ckpt, "--out", out, "--log-level", "error"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "the vocabulary does not match the model") {
		t.Fatalf("error %v, want a vocabulary mismatch", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output directory created despite the error")
	}
}
