package sweep

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/internal/config"
)

func TestParseDefaults(t *testing.T) {
	c, err := parse("s.yaml", []byte("presets: [{name: 2m}, {name: 11m, budget: {tokens: 5000}}]\nbudget: {steps: 10}\ndata: {synthetic: {hospitals: 2, patients: 50}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeCentral || *c.Margin != DefaultMargin || c.Alpha != 0.05 || c.Seed != 1 || !*c.Eval.Grid || *c.Eval.RecentDays != 365 || c.Eval.Features != "time" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.budget(0) != (Budget{Steps: 10}) || c.budget(1) != (Budget{Tokens: 5000}) {
		t.Errorf("budgets %+v %+v", c.budget(0), c.budget(1))
	}
	// An explicit zero margin is kept, not replaced by the default.
	c, err = parse("s.yaml", []byte("presets: [{name: 2m}]\nbudget: {steps: 10}\ndata: {dirs: [a]}\nmargin: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if *c.Margin != 0 {
		t.Errorf("margin %g, want 0", *c.Margin)
	}
}

func TestParseErrors(t *testing.T) {
	const ok = "presets: [{name: 2m}]\nbudget: {steps: 10}\ndata: {synthetic: {hospitals: 2, patients: 50}}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty"},
		{"unknown field", ok + "tolerence: 0.01\n", "unknown key tolerence"},
		{"old tolerance", ok + "tolerance: 0.005\n", "field tolerance: no longer read"},
		{"bad margin", ok + "margin: -0.1\n", "field margin"},
		{"bad features", ok + "eval: {features: dense}\n", "field eval.features"},
		{"bad pooling", ok + "finetune: {pooling: max}\n", "field finetune.pooling"},
		{"bad mode", ok + "mode: solo\n", "field mode"},
		{"bad server optimizer", ok + "federated: {server_optimizer: sgd}\n", "field federated.server_optimizer"},
		{"fedadam without rate", ok + "federated: {server_optimizer: fedadam}\n", "field federated.server_learning_rate: fedadam needs one"},
		{"negative server rate", ok + "federated: {server_learning_rate: -1}\n", "field federated.server_learning_rate"},
		{"no presets", "budget: {steps: 10}\ndata: {dirs: [a]}\n", "field presets"},
		{"unknown preset", "presets: [{name: 7m}]\nbudget: {steps: 1}\ndata: {dirs: [a]}\n", "field presets[0].name"},
		{"duplicate preset", "presets: [{name: 2m}, {name: 2m}]\nbudget: {steps: 1}\ndata: {dirs: [a]}\n", "is already presets[0]"},
		{"bad custom", "presets: [{name: x, hidden: 30, layers: 1, heads: 4}]\nbudget: {steps: 1}\ndata: {dirs: [a]}\n", "field presets[0]: config: heads 4 must divide hidden 30"},
		{"custom without layers", "presets: [{name: x, hidden: 32, heads: 4}]\nbudget: {steps: 1}\ndata: {dirs: [a]}\n", "field presets[0].layers"},
		{"no budget", "presets: [{name: 2m}]\ndata: {dirs: [a]}\n", "field budget: give steps, tokens or tokens_per_param"},
		{"both budgets", "presets: [{name: 2m, budget: {steps: 1, tokens: 2}}]\ndata: {dirs: [a]}\n", "field presets[0].budget: give one of steps, tokens and tokens_per_param"},
		{"per-param and tokens", "presets: [{name: 2m}]\nbudget: {tokens: 5, tokens_per_param: 2}\ndata: {dirs: [a]}\n", "give one of steps"},
		{"negative per-param", "presets: [{name: 2m}]\nbudget: {tokens_per_param: -2}\ndata: {dirs: [a]}\n", "field budget.tokens_per_param"},
		{"pretrain-only with synthetic", "presets: [{name: 2m}]\nbudget: {steps: 1}\ndata: {pretrain_only_dirs: [b], synthetic: {hospitals: 1, patients: 1}}\n", "field data.pretrain_only_dirs"},
		{"temporal strength", "presets: [{name: 2m}]\nbudget: {steps: 1}\ndata: {synthetic: {hospitals: 1, patients: 1, temporal_strength: 2}}\n", "field data.synthetic.temporal_strength"},
		{"no data", "presets: [{name: 2m}]\nbudget: {steps: 1}\n", "field data: give dirs or synthetic"},
		{"both data", "presets: [{name: 2m}]\nbudget: {steps: 1}\ndata: {dirs: [a], synthetic: {hospitals: 1, patients: 1}}\n", "not both"},
		{"alpha", ok + "alpha: 1.5\n", "field alpha"},
		{"seq", ok + "pretrain: {seq: 1000}\n", "field pretrain.seq"},
		{"dropout", ok + "pretrain: {dropout: 1}\n", "field pretrain.dropout"},
		{"finetune seq", ok + "finetune: {seq: 1}\n", "field finetune.seq"},
		{"bootstrap", ok + "eval: {bootstrap: -1}\n", "field eval.bootstrap"},
		{"recent days", ok + "eval: {recent_days: -1}\n", "field eval.recent_days"},
		{"hospitals", "presets: [{name: 2m}]\nbudget: {steps: 1}\ndata: {synthetic: {hospitals: 0, patients: 5}}\n", "field data.synthetic.hospitals"},
		{"local steps", ok + "federated: {local_steps: -2}\n", "field federated.local_steps"},
		{"wrong type", "presets: 3\n", "s.yaml: key presets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("s.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "s.yaml") {
				t.Errorf("got %v, want an error starting with the file and containing %q", err, tt.want)
			}
		})
	}
}

func TestReadFileResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(path, []byte("presets: [{name: 2m}]\nbudget: {steps: 1}\ndata: {dirs: [site1, /abs/site2]}\ntasks: t.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Data.Dirs[0] != filepath.Join(dir, "site1") || c.Data.Dirs[1] != "/abs/site2" || c.Tasks != filepath.Join(dir, "t.yaml") {
		t.Errorf("paths not resolved against the file's directory: %v %s", c.Data.Dirs, c.Tasks)
	}
	if _, err := readFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestDefaultSweepFile(t *testing.T) {
	c, err := readFile(filepath.Join("..", "configs", "sweep.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Presets) != 2 || c.Presets[0].Name != "2m" || c.Presets[1].Name != "11m" || c.Data.Synthetic == nil {
		t.Errorf("configs/sweep.yaml should sweep 2m and 11m on synthetic hospitals: %+v", c.Presets)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(miniature))
	f.Add([]byte("presets: [{name: 2m}]\nbudget: {steps: 10}\ndata: {dirs: [a]}\n"))
	f.Add([]byte("presets: [{name: x, hidden: 0, layers: -1, heads: 0}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		// Whatever parses is usable: every preset has a shape and a budget.
		for i, p := range c.Presets {
			if _, err := (PresetRun{Spec: p}).modelConfig(100, c.Pretrain); err != nil {
				t.Errorf("presets[%d] parsed but has no model: %v", i, err)
			}
			if b := c.budget(i); b.Steps <= 0 && b.Tokens <= 0 && b.TokensPerParam <= 0 {
				t.Errorf("presets[%d] parsed without a budget", i)
			}
		}
	})
}

// TestRunNameKeepsShape: an arm named apart from its preset (as the study's
// "2m-central") still takes the preset's shape, and is saved under its own name.
func TestRunNameKeepsShape(t *testing.T) {
	c, err := parse("arms.yaml", []byte("presets: [{name: 2m}]\nbudget: {steps: 10}\ndata: {dirs: [a]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := (PresetRun{Spec: c.Presets[0]}).modelConfig(100, c.Pretrain)
	if err != nil {
		t.Fatal(err)
	}
	arm := PresetRun{Spec: c.Presets[0], Name: "2m-central"}
	got, err := arm.modelConfig(100, c.Pretrain)
	if err != nil {
		t.Fatalf("arm %s of preset 2m: %v", arm.name(), err)
	}
	if got != want {
		t.Errorf("arm shape %+v, want the preset's %+v", got, want)
	}
	if arm.name() != "2m-central" || (PresetRun{Spec: c.Presets[0]}).name() != "2m" {
		t.Errorf("names %q and %q, want 2m-central and 2m", arm.name(), PresetRun{Spec: c.Presets[0]}.name())
	}
}

// parse decodes a sweep file's bytes as `fedclaims sweep` does (internal/config)
// and fills in and checks it, without resolving its paths.
func parse(name string, data []byte) (*Config, error) {
	c := DefaultConfig()
	if err := config.Decode(name, data, &c); err != nil {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

// readFile reads a sweep file as `fedclaims sweep --config path` does.
func readFile(path string) (*Config, error) {
	c := DefaultConfig()
	if err := config.Load(path, &c, config.Options{LookupEnv: func(string) (string, bool) { return "", false }}); err != nil {
		return nil, err
	}
	if err := c.Prepare(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}
