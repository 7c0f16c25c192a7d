package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/model/safetensors"
)

// A checkpoint is a directory:
//
//	model.safetensors      the parameters, one F32 tensor per name in Config.layout's
//	                       order; metadata "format": "fedclaims", "weight_layout":
//	                       "in_out" (linear weights [in, out], the transpose of
//	                       PyTorch's nn.Linear) and "config" (the JSON below)
//	config.json            the Config and its Architecture (python/fedclaims_torch.py
//	                       rebuilds the encoder in PyTorch from it)
//	vocab.json             the tokenizer vocabulary the model was trained with, verbatim
//	optimizer.safetensors  "adam.m" and "adam.v", each [Params()] (training only)
//	trainer.json           step, train config, RNG and loader state (training only)
//
// Every file is written to a temporary file in the directory and renamed into
// place, so a reader never sees a partial file.
const (
	ModelFile     = "model.safetensors"
	ConfigFile    = "config.json"
	VocabFile     = "vocab.json"
	OptimizerFile = "optimizer.safetensors"
	TrainerFile   = "trainer.json"
)

// Flatten returns a copy of the parameters as one vector in the documented
// order of Config.layout.
func (m *Model) Flatten() []float32 { return append([]float32(nil), m.params...) }

// Unflatten sets the parameters from a vector in Flatten's order.
func (m *Model) Unflatten(v []float32) error {
	if len(v) != len(m.params) {
		return fmt.Errorf("unflatten: vector has %d values, model has %d parameters", len(v), len(m.params))
	}
	copy(m.params, v)
	return nil
}

// TensorNames lists the safetensors names of cfg's parameters in flat order.
func (c Config) TensorNames() []string {
	var names []string
	for _, t := range c.layout() {
		names = append(names, t.name)
	}
	return names
}

func (m *Model) tensors() []safetensors.Tensor {
	var ts []safetensors.Tensor
	for _, t := range m.cfg.layout() {
		ts = append(ts, safetensors.Tensor{Name: t.name, Shape: t.shape, Data: m.params[t.off : t.off+t.size()]})
	}
	return ts
}

// Save writes the model, its config and the vocabulary bytes (may be nil) to dir.
func (m *Model) Save(dir string, vocab []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	cj, err := m.cfg.marshal()
	if err != nil {
		return err
	}
	// Streamed into the temporary file: a buffer would hold a second copy of the
	// parameters (400 MB at the 101m preset).
	if err := atomicfile.Write(filepath.Join(dir, ModelFile), 0o644, func(w io.Writer) error {
		// Not "format": "pt": PyTorch's nn.Linear stores [out, in], these are [in, out].
		return safetensors.Write(w, m.tensors(), map[string]string{"format": "fedclaims", "weight_layout": "in_out", "config": string(cj)})
	}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), append(cj, '\n'), 0o644); err != nil {
		return err
	}
	if vocab != nil {
		return atomicfile.WriteFile(filepath.Join(dir, VocabFile), vocab, 0o644)
	}
	return nil
}

// ReadConfig reads dir's config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates a config.json document. Unknown fields are
// an error: they mean a config written for another model; so is an Architecture
// field (see Architecture) whose value this build does not compute. Architecture
// fields may be absent, as in configs written before them.
func ParseConfig(data []byte) (Config, error) {
	var doc configDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("config: more than one JSON value")
	}
	c := doc.Config
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	if err := checkArchitecture(data, c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads a model saved by Save. Every tensor of the config must be present
// with its shape; extra tensors are an error too, since they mean another model.
func Load(dir string) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	m, err := New(cfg, 0)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ModelFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	f, err := safetensors.Read(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	layout := cfg.layout()
	if len(f.Tensors) != len(layout) {
		return nil, fmt.Errorf("%s: %d tensors, config %s describes %d", path, len(f.Tensors), filepath.Join(dir, ConfigFile), len(layout))
	}
	for _, t := range layout {
		got, ok := f.Get(t.name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q missing", path, t.name)
		}
		if fmt.Sprint(got.Shape) != fmt.Sprint(t.shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, config wants %v", path, t.name, got.Shape, t.shape)
		}
		copy(m.params[t.off:t.off+t.size()], got.Data)
	}
	return m, nil
}

// trainerState is trainer.json.
type trainerState struct {
	Step        int         `json:"step"`
	TrainConfig TrainConfig `json:"train_config"`
	RNG         []byte      `json:"rng"` // the PCG's MarshalBinary
	Loader      *loaderJSON `json:"loader,omitempty"`
}

type loaderJSON struct {
	Seed      uint64 `json:"seed"`
	BatchSize int    `json:"batch_size"`
	Epoch     int    `json:"epoch"`
	Cursor    int    `json:"cursor"`
}

// SaveCheckpoint writes the model and everything a resume needs: the optimiser
// moments, the step, the RNG state and, when ld is not nil, the loader's place.
func (t *Trainer) SaveCheckpoint(dir string, vocab []byte, ld *Loader) error {
	if err := t.Model.Save(dir, vocab); err != nil {
		return err
	}
	n := len(t.Opt.M)
	if err := atomicfile.Write(filepath.Join(dir, OptimizerFile), 0o644, func(w io.Writer) error {
		return safetensors.Write(w, []safetensors.Tensor{
			{Name: "adam.m", Shape: []int{n}, Data: t.Opt.M},
			{Name: "adam.v", Shape: []int{n}, Data: t.Opt.V},
		}, map[string]string{"step": fmt.Sprint(t.Opt.Step)})
	}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	rng, err := t.pcg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("checkpoint %s: rng: %w", dir, err)
	}
	st := trainerState{Step: t.Opt.Step, TrainConfig: t.TC, RNG: rng}
	if ld != nil {
		st.Loader = &loaderJSON{Seed: ld.seed, BatchSize: ld.batchSize, Epoch: ld.Epoch, Cursor: ld.Cursor}
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, TrainerFile), append(js, '\n'), 0o644)
}

// Resume loads a checkpoint written by SaveCheckpoint into a trainer that
// continues exactly where it stopped. With seqs not nil it also returns a loader
// over seqs at the saved place (seqs must be the same sequences, in the same
// order, as before).
func Resume(dir string, seqs []Sequence) (*Trainer, *Loader, error) {
	m, err := Load(dir)
	if err != nil {
		return nil, nil, err
	}
	tpath := filepath.Join(dir, TrainerFile)
	data, err := os.ReadFile(tpath)
	if err != nil {
		return nil, nil, fmt.Errorf("resume: %w", err)
	}
	var st trainerState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", tpath, err)
	}
	switch {
	case st.Step < 0:
		return nil, nil, fmt.Errorf("%s: field step: %d is negative", tpath, st.Step)
	case st.Loader != nil && (st.Loader.Epoch < 0 || st.Loader.Cursor < 0):
		return nil, nil, fmt.Errorf("%s: field loader: epoch %d and cursor %d must not be negative", tpath, st.Loader.Epoch, st.Loader.Cursor)
	}
	tr, err := NewTrainer(m, st.TrainConfig, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: field train_config: %w", tpath, err)
	}
	if err := tr.pcg.UnmarshalBinary(st.RNG); err != nil {
		return nil, nil, fmt.Errorf("%s: field rng: %w", tpath, err)
	}
	tr.rng = rand.New(tr.pcg)
	opath := filepath.Join(dir, OptimizerFile)
	odata, err := os.ReadFile(opath)
	if err != nil {
		return nil, nil, fmt.Errorf("resume: %w", err)
	}
	of, err := safetensors.Read(odata)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", opath, err)
	}
	for name, dst := range map[string][]float32{"adam.m": tr.Opt.M, "adam.v": tr.Opt.V} {
		t, ok := of.Get(name)
		if !ok || len(t.Data) != len(dst) {
			return nil, nil, fmt.Errorf("%s: tensor %q missing or not of %d values", opath, name, len(dst))
		}
		copy(dst, t.Data)
	}
	tr.Opt.Step = st.Step
	var ld *Loader
	if seqs != nil && st.Loader != nil {
		ld, err = NewLoader(seqs, st.Loader.BatchSize, st.Loader.Seed)
		if err != nil {
			return nil, nil, fmt.Errorf("resume: %w", err)
		}
		ld.Epoch, ld.Cursor = st.Loader.Epoch, st.Loader.Cursor
	}
	return tr, ld, nil
}
