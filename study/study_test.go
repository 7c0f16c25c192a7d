package study

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/internal/config"
)

// miniature is a central study of two tiny scales on two labelled synthetic
// hospitals and one pretraining-only hospital, small enough for make test.
const miniature = `
mode: central
presets:
  - {name: tiny, hidden: 16, layers: 1, heads: 2}
  - {name: small, hidden: 24, layers: 1, heads: 2}
budget: {tokens: 12000}
data:
  synthetic: {hospitals: 2, pretrain_only: 1, patients: 300, seed: 3}
  vocab_min_count: 3
seed: 2
pretrain: {batch: 8, seq: 48, eval_every: 10, valid_sequences: 32, random_cut: true}
finetune: {frozen: true, seq: 48}
eval: {bootstrap: 50, grid: false, iterations: 20, threads: 1}
label_efficiency: {sizes: [50, 200]}
primary: 2
`

func TestMiniatureStudyAndResume(t *testing.T) {
	c, err := parse("miniature.yaml", []byte(miniature))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := Run(context.Background(), c, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	// The interface outside checks rely on.
	var got struct {
		Tasks []struct {
			Name          string `json:"name"`
			Primary       bool   `json:"primary"`
			PositivesTest *int   `json:"positives_test"`
			Baseline      struct {
				AUPRC *float64 `json:"auprc"`
			} `json:"baseline"`
			Encoders []struct {
				Name, Mode     string
				Params         int
				Tokens         int64
				AUPRC          *float64 `json:"auprc"`
				DiffVsBaseline *float64 `json:"diff_vs_baseline"`
			} `json:"encoders"`
			Recommended string `json:"recommended"`
		} `json:"tasks"`
		Controls struct {
			Shuffled  json.RawMessage `json:"shuffled_visits"`
			Temporal0 json.RawMessage `json:"temporal_strength_0"`
		} `json:"controls"`
		WallSeconds *float64 `json:"wall_seconds"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Tasks) == 0 || got.WallSeconds == nil {
		t.Fatalf("study.json: %d tasks, wall_seconds %v", len(got.Tasks), got.WallSeconds)
	}
	primaries := 0
	modes := map[string]bool{}
	for _, tk := range got.Tasks {
		if tk.Primary {
			primaries++
		}
		if tk.PositivesTest == nil || tk.Baseline.AUPRC == nil || tk.Recommended == "" {
			t.Errorf("task %s lacks positives_test, baseline.auprc or recommended", tk.Name)
		}
		for _, e := range tk.Encoders {
			modes[e.Mode] = true
			if e.AUPRC == nil || e.DiffVsBaseline == nil || e.Params == 0 || e.Tokens == 0 {
				t.Errorf("task %s encoder %s lacks auprc, diff_vs_baseline, params or tokens", tk.Name, e.Name)
			}
		}
	}
	if primaries != 2 {
		t.Errorf("%d primary tasks, want 2", primaries)
	}
	if !modes["central"] || !modes["site-alone"] {
		t.Errorf("encoder modes %v, want central and site-alone", modes)
	}
	if string(got.Controls.Shuffled) == "null" || string(got.Controls.Temporal0) == "null" {
		t.Errorf("controls not reported: %s", data)
	}
	if len(res.Recipe) < 5 {
		t.Errorf("%d recipe rows, want the full recipe, two pretraining changes and three poolings", len(res.Recipe))
	}
	if len(res.LabelEfficiency) == 0 {
		t.Error("no label-efficiency curve")
	}
	for _, f := range []string{ReportFile, "scales/sweep.json", "study_" + got.Tasks[0].Name + ".png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// The resolution line: 2 one-sided tests per tested (task, encoder) pair.
	tested := 0
	for _, tk := range res.Tasks {
		for _, e := range tk.Encoders {
			if e.PHolm != nil {
				tested++
			}
		}
	}
	if want := float64(2*tested) / float64(res.Resamples+1); res.Resamples != c.Eval.Bootstrap || res.PHolmFloor != want {
		t.Errorf("resamples %d, p_holm_floor %v; want %d and %v", res.Resamples, res.PHolmFloor, c.Eval.Bootstrap, want)
	}
	md, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	if res.PHolmFloor >= res.Alpha && !strings.Contains(string(md), "no comparison of the table can be significant") {
		t.Errorf("p_holm_floor %v >= alpha, and study.md does not say so", res.PHolmFloor)
	}
	for _, want := range []string{"## Floors", "## Controls", "## The recipe", "## Label efficiency"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("study.md lacks %q", want)
		}
	}

	// A second run resumes every arm: the same table, byte for byte apart from
	// the wall time.
	res2, err := Run(context.Background(), c, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res.WallSeconds, res2.WallSeconds = 0, 0
	a, _ := json.Marshal(res)
	b, _ := json.Marshal(res2)
	if string(a) != string(b) {
		t.Error("a resumed study differs from the first run")
	}

	// Another configuration in the same directory is refused.
	c2, _ := parse("other.yaml", []byte(strings.Replace(miniature, "seed: 2", "seed: 5", 1)))
	if _, err := Run(context.Background(), c2, dir, Options{}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("resume with another configuration: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown field", "primary: 2\n", "primary: 2\ncolour: red\n"},
		{"step budget", "budget: {tokens: 12000}", "budget: {steps: 10}"},
		{"unknown central", "primary: 2\n", "primary: 2\ncentral: huge\n"},
		{"sizes", "sizes: [50, 200]", "sizes: [200, 50]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("s.yaml", []byte(strings.Replace(miniature, tc.edit, tc.want, 1)))
			if err == nil || !strings.HasPrefix(err.Error(), "s.yaml") {
				t.Errorf("got %v, want an error naming s.yaml", err)
			}
		})
	}
}

// parse decodes a study file's bytes as `fedclaims study` does (internal/config)
// and fills in and checks it, without resolving its paths.
func parse(name string, data []byte) (*Config, error) {
	c := DefaultConfig()
	if err := config.Decode(name, data, &c); err != nil {
		return nil, err
	}
	c.Defaults()
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}
