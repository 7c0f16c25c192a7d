package sweep

import (
	"context"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
)

// miniature is a sweep of two tiny custom presets on two small synthetic hospitals.
const miniature = `
mode: central
presets:
  - name: tiny
    hidden: 16
    layers: 1
    heads: 2
  - name: small
    hidden: 32
    layers: 2
    heads: 2
    budget: {tokens: 20000}
budget: {steps: 6}
data:
  synthetic: {hospitals: 2, patients: 400, seed: 3}
  vocab_min_count: 3
seed: 2
pretrain: {batch: 8, seq: 48, eval_every: 3, valid_sequences: 32}
finetune: {frozen: true, epochs: 2, seq: 48}
eval: {bootstrap: 60, grid: false, iterations: 20, threads: 1}
`

func miniConfig(t *testing.T) *Config {
	t.Helper()
	c, err := parse("miniature.yaml", []byte(miniature))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMiniatureSweepAndResume(t *testing.T) {
	dir := t.TempDir()
	c := miniConfig(t)

	// Interrupt the first run as soon as the first preset is written.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := filepath.Join(dir, PresetsDir, "tiny.json")
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		for ctx.Err() == nil {
			if _, err := os.Stat(first); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, c, dir, Options{})
	cancel()
	<-stop
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: got %v, want context.Canceled", err)
	}
	before, err := os.ReadFile(first)
	if err != nil {
		t.Fatalf("the finished preset's result is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, PresetsDir, "small.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the interrupted preset left a result: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ResultFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an interrupted sweep wrote %s: %v", ResultFile, err)
	}

	res, err := Run(context.Background(), c, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("resuming redid the finished preset")
	}

	if len(res.Presets) != 2 || res.Presets[0].Name != "tiny" || res.Presets[1].Name != "small" {
		t.Fatalf("presets %+v, want tiny then small", res.Presets)
	}
	for _, p := range res.Presets {
		if p.Params <= 0 || p.Steps <= 0 || p.Tokens <= 0 || p.FLOPs <= 0 || p.WallSeconds <= 0 {
			t.Errorf("preset %s: unmeasured: %+v", p.Name, p)
		}
		if len(p.Loss) < 2 || p.Loss[0].Step != 0 || p.Loss[len(p.Loss)-1].Step != p.Steps {
			t.Errorf("preset %s: loss curve %+v does not span steps 0..%d", p.Name, p.Loss, p.Steps)
		}
	}
	if got := res.Presets[0].Steps; got != 6 {
		t.Errorf("tiny took %d steps, its budget is 6", got)
	}
	if small := res.Presets[1]; small.Tokens < 15000 || small.Tokens > 30000 {
		t.Errorf("small saw %d tokens for a budget of 20000", small.Tokens)
	}
	if len(res.Baseline) == 0 || len(res.Recommendations) != len(res.Baseline) {
		t.Fatalf("%d baseline tasks, %d recommendations", len(res.Baseline), len(res.Recommendations))
	}

	parsed, err := ReadResult(filepath.Join(dir, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.Presets) != 2 || len(parsed.Recommendations) != len(res.Recommendations) {
		t.Errorf("sweep.json holds %d presets and %d recommendations", len(parsed.Presets), len(parsed.Recommendations))
	}
	md, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range res.Recommendations {
		if !strings.Contains(string(md), rec.Summary) {
			t.Errorf("sweep.md lacks the summary %q", rec.Summary)
		}
	}
	var names []string
	for _, bt := range res.Baseline {
		names = append(names, bt.Name)
	}
	for _, f := range PlotFiles(names) {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := png.Decode(fh); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		fh.Close()
	}

	// A different configuration in the same directory is refused.
	c2 := miniConfig(t)
	c2.Seed = 9
	if _, err := Run(context.Background(), c2, dir, Options{}); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("resume with another configuration: got %v, want an error naming %s", err, ConfigFile)
	}
}

// TestPretrainSequencesHonourDatasetSplit: a labelled site that declares its own
// split is pretrained on its training patients only, whatever the hash says, and
// its vocabulary counts them alone; a pretraining-only site on every patient.
func TestPretrainSequencesHonourDatasetSplit(t *testing.T) {
	var labelled, extra []*claims.Patient
	subjects := map[int64]string{}
	day := int64(1_600_000_000) * 1_000_000
	for i := range 40 {
		p := &claims.Patient{ID: int64(i + 1), Sex: claims.SexFemale}
		code := "ICD10//E11"
		if i < 10 {
			code = "ICD10//I50" // the held-out patients' code alone
		}
		p.Events = []claims.Event{{Time: day, Code: code, Value: float32(math.NaN())}}
		labelled = append(labelled, p)
		switch {
		case i < 10:
			subjects[p.ID] = claims.SplitHeldOut
		case i < 15:
			subjects[p.ID] = claims.SplitTuning
		default:
			subjects[p.ID] = claims.SplitTrain
		}
		extra = append(extra, &claims.Patient{ID: int64(100 + i), Events: []claims.Event{{Time: day, Code: "ICD10//E11", Value: float32(math.NaN())}}})
	}
	splits := []*tasks.Splits{tasks.DatasetSplits(&claims.DatasetSplits{Source: claims.SubjectSplitsFile, Subjects: subjects}), tasks.HashSplits("")}
	bySite := [][]*claims.Patient{labelled, extra}
	v, _, err := buildVocab(bySite, splits, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	for id := range int32(v.Len()) {
		if strings.Contains(v.Token(id), "I50") {
			t.Errorf("the vocabulary holds %s, a code only held-out patients have", v.Token(id))
		}
	}
	train, site, valid, err := pretrainSequences(bySite, splits, 1, v, Pretrain{Seq: 16, ValidSequences: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := [2]int{}
	for _, s := range site {
		n[s]++
	}
	if len(train) != 65 || n[0] != 25 || n[1] != 40 || len(valid) != 5 {
		t.Errorf("pretrained on %d sequences (%v by site), validated on %d: want the 25 training patients and the 40 of the pretraining-only site, and the 5 tuning patients", len(train), n, len(valid))
	}
}
