package model

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFlattenRoundTrip(t *testing.T) {
	cfg := tinyConfig()
	a, _ := New(cfg, 1)
	b, _ := New(cfg, 2)
	v := a.Flatten()
	if len(v) != cfg.Params() {
		t.Fatalf("flat vector has %d values, want %d", len(v), cfg.Params())
	}
	if reflect.DeepEqual(a.params, b.params) {
		t.Fatal("different seeds gave the same parameters")
	}
	if err := b.Unflatten(v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.params, b.params) {
		t.Fatal("Unflatten(Flatten()) changed the parameters")
	}
	v[0]++
	if a.params[0] == v[0] {
		t.Fatal("Flatten returned the model's own memory")
	}
	if err := b.Unflatten(v[1:]); err == nil {
		t.Fatal("Unflatten accepted a short vector")
	}
	// The documented order: the token embedding first, mlm.bias last.
	tok, _ := a.Tensor("embeddings.token.weight")
	if got := tok.Data().([]float32)[0]; got != a.Flatten()[0] {
		t.Errorf("flat[0] = %g, token embedding [0,0] = %g", a.Flatten()[0], got)
	}
	names := cfg.TensorNames()
	if names[0] != "embeddings.token.weight" || names[len(names)-1] != "mlm.bias" {
		t.Errorf("tensor order %v", names)
	}
}

func TestSaveLoad(t *testing.T) {
	cfg := tinyConfig()
	m, _ := New(cfg, 5)
	dir := t.TempDir()
	vocab := []byte(`{"tokens":["[PAD]"]}`)
	if err := m.Save(dir, vocab); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config() != cfg || !reflect.DeepEqual(got.params, m.params) {
		t.Fatal("loaded model differs from the saved one")
	}
	if v, _ := os.ReadFile(filepath.Join(dir, VocabFile)); string(v) != string(vocab) {
		t.Errorf("vocab.json = %q", v)
	}
	// A checkpoint of another shape is refused with the tensor named.
	other := cfg
	other.Hidden = 4
	other.Heads = 1
	om, _ := New(other, 1)
	if err := om.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ConfigFile), mustMarshal(t, cfg), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "embeddings.token.weight") {
		t.Errorf("loading mismatched shapes: %v", err)
	}
}

func mustMarshal(t *testing.T, c Config) []byte {
	b, err := c.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResumeExact trains 6 steps straight, and 3 steps, a checkpoint, a resume
// and 3 more, with dropout on: the parameters must be bit-identical.
func TestResumeExact(t *testing.T) {
	cfg := tinyConfig()
	cfg.Dropout = 0.1
	seqs := tinySequences(rand.New(rand.NewPCG(1, 2)), cfg, 7, 10)
	tc := DefaultTrainConfig(6)
	tc.Accum = 2
	run := func(steps int, tr *Trainer, ld *Loader) {
		for range steps {
			if _, err := tr.Step(context.Background(), []*Batch{ld.Next(), ld.Next()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	newRun := func() (*Trainer, *Loader) {
		m, _ := New(cfg, 9)
		tr, err := NewTrainer(m, tc, 10)
		if err != nil {
			t.Fatal(err)
		}
		ld, _ := NewLoader(seqs, 2, 11)
		return tr, ld
	}
	tr, ld := newRun()
	run(6, tr, ld)
	want := tr.Model.Flatten()

	tr2, ld2 := newRun()
	run(3, tr2, ld2)
	dir := t.TempDir()
	if err := tr2.SaveCheckpoint(dir, nil, ld2); err != nil {
		t.Fatal(err)
	}
	tr3, ld3, err := Resume(dir, seqs)
	if err != nil {
		t.Fatal(err)
	}
	run(3, tr3, ld3)
	if got := tr3.Model.Flatten(); !reflect.DeepEqual(got, want) {
		t.Fatal("resumed training diverged from uninterrupted training")
	}

	// A damaged trainer.json is refused with the file and field named.
	for _, c := range []struct{ doc, want string }{
		{`{"step": -1}`, "field step"},
		{`{"step": 3, "loader": {"seed": 1, "batch_size": 2, "epoch": 0, "cursor": -4}}`, "field loader"},
		{`{"step": 3, "rng": "AAAA"}`, "field train_config"},
		{`{"step": 3, "train_config": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "steps": 6, "schedule": "cosine", "accum": 1}, "rng": "AAAA"}`, "field rng"},
		{`{"step":`, TrainerFile},
	} {
		if err := os.WriteFile(filepath.Join(dir, TrainerFile), []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Resume(dir, seqs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("trainer.json %s: error %v, want one naming %q", c.doc, err, c.want)
		}
	}
}

// TestCancelledStep: a step cancelled through its context leaves the trainer as
// it was, so the next step is the one an uninterrupted trainer would take.
func TestCancelledStep(t *testing.T) {
	cfg := tinyConfig()
	cfg.Dropout = 0.1
	seqs := tinySequences(rand.New(rand.NewPCG(1, 2)), cfg, 4, 10)
	newTrainer := func() *Trainer {
		m, _ := New(cfg, 9)
		tr, err := NewTrainer(m, DefaultTrainConfig(4), 10)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b := newTrainer(), newTrainer()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Step(cancelled, []*Batch{Pad(seqs, []int{0, 1})}); err == nil {
		t.Fatal("a cancelled step succeeded")
	}
	for _, tr := range []*Trainer{a, b} {
		if _, err := tr.Step(context.Background(), []*Batch{Pad(seqs, []int{0, 1})}); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(a.Model.Flatten(), b.Model.Flatten()) || a.Opt.Step != b.Opt.Step {
		t.Fatal("the step after a cancelled one differs from an uninterrupted trainer's")
	}
}
