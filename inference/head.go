// Package inference keeps what an evaluation learns and applies it to a site's
// current patients: saved heads (a binary head per task, safetensors and JSON,
// bound to its encoder by the encoder's weights hash), per-patient predictions and
// pooled embeddings, each written as parquet.
//
// A head is two files, written by SaveHead into a heads directory:
//
//	<task>.safetensors  "weight" [width] and "bias" [1], F32: p = σ(weight·pool(h) + bias)
//	                    on the raw pooled features (a probe's standardisation folded in);
//	                    metadata "format": "fedclaims-head", "task" and "encoder_sha256"
//	<task>.json         HeadInfo: the task and its windows, pooling, tokens per history,
//	                    the probe's standardisation or the fine-tuned encoder's place,
//	                    the test split's calibration, and encoder_sha256
//	<task>.encoder/     a fine-tuned head's own encoder checkpoint (fine-tuning changes
//	                    the encoder; the base encoder's hash then differs and is refused)
//
// encoder_sha256 is model.(*Model).WeightsHash: SHA-256 of the parameters as
// model.safetensors stores them, so of that file's data section.
package inference

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/model/safetensors"
	"github.com/fedclaims/fedclaims/tasks"
)

// HeadFormat and HeadVersion identify a head file.
const (
	HeadFormat  = "fedclaims-head"
	HeadVersion = 1
)

// ErrEncoderMismatch is the error, wrapped, of binding a head to an encoder whose
// weights hash is not the one the head was trained on.
var ErrEncoderMismatch = errors.New("head was trained on another encoder")

// HeadInfo is a head's JSON file.
type HeadInfo struct {
	Format  string   `json:"format"`  // HeadFormat
	Version int      `json:"version"` // HeadVersion
	Task    TaskInfo `json:"task"`
	// Pooling is the head's input (model.Pooling); Width the pooled features'
	// width, Pooling.Width(Hidden), the length of the weight tensor.
	Pooling string `json:"pooling"`
	Hidden  int    `json:"hidden"`
	Width   int    `json:"width"`
	// Seq is the tokens per history the head was trained on (the most recent
	// kept), which predict encodes with too.
	Seq int `json:"seq"`
	// Frozen is true for the linear probe on the frozen encoder, false for a head
	// fine-tuned with its encoder.
	Frozen bool `json:"frozen"`
	// Lambda is the probe's L2 strength, BestEpoch the fine-tuned epoch kept.
	Lambda       float64 `json:"lambda,omitempty"`
	BestEpoch    int     `json:"best_epoch,omitempty"`
	ValidLogLoss float64 `json:"valid_log_loss"`
	// Standardization is the probe's (x_d - mean_d)·scale_d on the raw pooled
	// features, measured on the training split. The weight tensor already has it
	// folded in (weight_d = β_d·scale_d, bias = β_0 - Σ weight_d·mean_d), so it is
	// not applied again; it is kept to recover the standardised coefficients β.
	// Absent for a fine-tuned head.
	Standardization *Standardization `json:"standardization,omitempty"`
	// Calibration is measured on the evaluation's test split; predict does not
	// apply it. Absent when the test split lacks a class.
	Calibration *Calibration `json:"test_calibration,omitempty"`
	// EncoderSHA256 is the weights hash of the encoder the head applies to: the
	// checkpoint it was trained on for a probe, its own fine-tuned encoder
	// otherwise.
	EncoderSHA256 string `json:"encoder_sha256"`
	// Encoder is where that encoder is: the checkpoint as eval was given it for a
	// probe (for the reader), "<task>.encoder", relative to this file's directory,
	// for a fine-tuned head.
	Encoder string `json:"encoder"`
	// BaseEncoderSHA256 is, for a fine-tuned head, the hash of the encoder that
	// fine-tuning started from.
	BaseEncoderSHA256 string `json:"base_encoder_sha256,omitempty"`
	// SplitSalt is the salt of the train/validation/test split the head was
	// trained under.
	SplitSalt string `json:"split_salt,omitempty"`
}

// TaskInfo is the task a head predicts, as its task file defined it: predict
// applies its look-back and prior-history exclusions. A task from MEDS labels
// has no codes and no windows.
type TaskInfo struct {
	Name            string   `json:"name"`
	Kind            string   `json:"kind,omitempty"`
	Prefixes        []string `json:"prefixes,omitempty"`
	ExcludePrefixes []string `json:"exclude_prefixes,omitempty"`
	ExactSystem     bool     `json:"exact_system,omitempty"`
	HorizonDays     int      `json:"horizon_days"`
	LookbackDays    int      `json:"lookback_days"`
}

// TaskInfoOf is t's TaskInfo.
func TaskInfoOf(t tasks.Task) TaskInfo {
	return TaskInfo{Name: t.Name, Kind: string(t.Kind), Prefixes: t.Prefixes, ExcludePrefixes: t.ExcludePrefixes,
		ExactSystem: t.ExactSystem, HorizonDays: t.HorizonDays, LookbackDays: t.LookbackDays}
}

// Task is ti as a tasks.Task, for its Matches and Excludes.
func (ti TaskInfo) Task() tasks.Task {
	return tasks.Task{Name: ti.Name, Kind: tasks.Kind(ti.Kind), Prefixes: ti.Prefixes, ExcludePrefixes: ti.ExcludePrefixes,
		ExactSystem: ti.ExactSystem, HorizonDays: ti.HorizonDays, LookbackDays: ti.LookbackDays}
}

// Standardization is a probe's per-feature standardisation.
type Standardization struct {
	Mean  []float64 `json:"mean"`
	Scale []float64 `json:"scale"`
}

// Calibration is eval.Calibration's slope and intercept of a head's test-split
// probabilities, with the rows they were measured on.
type Calibration struct {
	Slope     float64 `json:"slope"`
	Intercept float64 `json:"intercept"`
	N         int     `json:"n"`
	Positives int     `json:"positives"`
}

// Head is a saved head: its JSON, its weights and, for a fine-tuned head being
// saved, its encoder.
type Head struct {
	Info HeadInfo
	W    []float32
	B    float32
	// Path is the JSON file a loaded head was read from.
	Path string
	// FineTuned is the fine-tuned encoder SaveHead writes beside the head; nil
	// for a probe and for a loaded head.
	FineTuned *model.Model
}

// NewHead is c as a head for task, trained on the encoder whose weights hash is
// baseHash (found at baseDir) under salt, encoding seq tokens per history.
func NewHead(c *model.Classifier, task tasks.Task, seq int, baseHash, baseDir, salt string) (*Head, error) {
	cfg := c.Encoder.Config()
	h := &Head{W: append([]float32(nil), c.W...), B: c.B, Info: HeadInfo{
		Format: HeadFormat, Version: HeadVersion, Task: TaskInfoOf(task),
		Pooling: string(c.Pooling), Hidden: cfg.Hidden, Width: c.Pooling.Width(cfg.Hidden), Seq: seq,
		Frozen: c.Mean != nil, Lambda: c.Lambda, BestEpoch: c.BestEpoch, ValidLogLoss: c.ValidLogLoss,
		EncoderSHA256: baseHash, Encoder: baseDir, SplitSalt: salt,
	}}
	if c.Mean != nil {
		h.Info.Standardization = &Standardization{Mean: append([]float64(nil), c.Mean...), Scale: append([]float64(nil), c.Scale...)}
	} else {
		h.FineTuned = c.Encoder
		h.Info.BaseEncoderSHA256 = baseHash
		h.Info.EncoderSHA256 = c.Encoder.WeightsHash()
		h.Info.Encoder = task.Name + ".encoder"
	}
	if err := h.Info.Validate(); err != nil {
		return nil, fmt.Errorf("head %s: %w", task.Name, err)
	}
	if len(h.W) != h.Info.Width {
		return nil, fmt.Errorf("head %s: %d weights for %d pooled features", task.Name, len(h.W), h.Info.Width)
	}
	return h, nil
}

var (
	taskName = regexp.MustCompile(`^[a-z0-9_]+$`)
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks what a head needs to be applied.
func (hi HeadInfo) Validate() error {
	switch {
	case hi.Format != HeadFormat:
		return fmt.Errorf("field format: %q, want %q", hi.Format, HeadFormat)
	case hi.Version != HeadVersion:
		return fmt.Errorf("field version: %d, this fedclaims reads version %d", hi.Version, HeadVersion)
	case !taskName.MatchString(hi.Task.Name):
		return fmt.Errorf("field task.name: %q must be lower case letters, digits and underscores", hi.Task.Name)
	case hi.Task.HorizonDays < 0 || hi.Task.LookbackDays < 0:
		return fmt.Errorf("field task: horizon_days %d and lookback_days %d must not be negative", hi.Task.HorizonDays, hi.Task.LookbackDays)
	}
	p := model.Pooling(hi.Pooling)
	if err := p.Validate(); err != nil {
		return fmt.Errorf("field pooling: %w", err)
	}
	switch {
	case hi.Hidden <= 0:
		return fmt.Errorf("field hidden: %d must be positive", hi.Hidden)
	case hi.Width != p.Width(hi.Hidden):
		return fmt.Errorf("field width: %d, pooling %s of hidden %d gives %d", hi.Width, p, hi.Hidden, p.Width(hi.Hidden))
	case hi.Seq < 2:
		return fmt.Errorf("field seq: %d must be at least 2 ([CLS] and one token)", hi.Seq)
	case !sha256Re.MatchString(hi.EncoderSHA256):
		return fmt.Errorf("field encoder_sha256: %q is not 64 lower-case hex digits", hi.EncoderSHA256)
	case !finite(hi.Lambda) || !finite(hi.ValidLogLoss) || hi.Lambda < 0:
		return fmt.Errorf("fields lambda %v and valid_log_loss %v must be finite, lambda not negative", hi.Lambda, hi.ValidLogLoss)
	case hi.BestEpoch < 0:
		return fmt.Errorf("field best_epoch: %d is negative", hi.BestEpoch)
	}
	if c := hi.Calibration; c != nil && (!finite(c.Slope) || !finite(c.Intercept) || c.N < 0 || c.Positives < 0 || c.Positives > c.N) {
		return fmt.Errorf("field test_calibration: %+v", *c)
	}
	if hi.Frozen {
		s := hi.Standardization
		if s == nil {
			return errors.New("field standardization: a frozen probe needs its standardisation")
		}
		if len(s.Mean) != hi.Width || len(s.Scale) != hi.Width {
			return fmt.Errorf("field standardization: %d means and %d scales for width %d", len(s.Mean), len(s.Scale), hi.Width)
		}
		for d := range s.Mean {
			if !finite(s.Mean[d]) || !finite(s.Scale[d]) || s.Scale[d] <= 0 {
				return fmt.Errorf("field standardization: feature %d: mean %v, scale %v (want finite, scale positive)", d, s.Mean[d], s.Scale[d])
			}
		}
		if hi.BaseEncoderSHA256 != "" {
			return errors.New("field base_encoder_sha256: only a fine-tuned head has a base encoder")
		}
		return nil
	}
	if hi.Standardization != nil {
		return errors.New("field standardization: a fine-tuned head has none")
	}
	if !sha256Re.MatchString(hi.BaseEncoderSHA256) {
		return fmt.Errorf("field base_encoder_sha256: %q is not 64 lower-case hex digits", hi.BaseEncoderSHA256)
	}
	if hi.Encoder == "" || !filepath.IsLocal(hi.Encoder) || strings.ContainsAny(hi.Encoder, `/\`) {
		return fmt.Errorf("field encoder: %q must name the fine-tuned encoder's directory beside the head", hi.Encoder)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ParseHeadInfo decodes and validates a head's JSON. Unknown fields are an
// error: they mean a head written for another format.
func ParseHeadInfo(data []byte) (HeadInfo, error) {
	var hi HeadInfo
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hi); err != nil {
		return HeadInfo{}, fmt.Errorf("head: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return HeadInfo{}, errors.New("head: more than one JSON value")
	}
	if err := hi.Validate(); err != nil {
		return HeadInfo{}, fmt.Errorf("head: %w", err)
	}
	// No prefixes and an empty list are one task (and marshal alike).
	if len(hi.Task.Prefixes) == 0 {
		hi.Task.Prefixes = nil
	}
	if len(hi.Task.ExcludePrefixes) == 0 {
		hi.Task.ExcludePrefixes = nil
	}
	return hi, nil
}

// Files returns the paths of the head of task in dir: its JSON and weights.
func Files(dir, task string) (jsonPath, weights string) {
	return filepath.Join(dir, task+".json"), filepath.Join(dir, task+".safetensors")
}

// SaveHead writes h into dir (created when missing): a fine-tuned head's encoder
// first, with vocab (vocab.json's bytes) beside it, then the weights, then the
// JSON, so that a JSON file on disk always has what it names.
func SaveHead(dir string, h *Head, vocab []byte) error {
	if err := h.Info.Validate(); err != nil {
		return fmt.Errorf("head %s: %w", h.Info.Task.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("heads directory: %w", err)
	}
	jp, wp := Files(dir, h.Info.Task.Name)
	if !h.Info.Frozen {
		if h.FineTuned == nil {
			return fmt.Errorf("head %s: fine-tuned, but its encoder is not at hand to save", h.Info.Task.Name)
		}
		if err := h.FineTuned.Save(filepath.Join(dir, h.Info.Encoder), vocab); err != nil {
			return fmt.Errorf("head %s: fine-tuned encoder: %w", h.Info.Task.Name, err)
		}
	}
	meta := map[string]string{"format": HeadFormat, "task": h.Info.Task.Name, "encoder_sha256": h.Info.EncoderSHA256}
	if err := atomicfile.Write(wp, 0o644, func(w io.Writer) error {
		return safetensors.Write(w, []safetensors.Tensor{
			{Name: "weight", Shape: []int{len(h.W)}, Data: h.W},
			{Name: "bias", Shape: []int{1}, Data: []float32{h.B}},
		}, meta)
	}); err != nil {
		return err
	}
	js, err := json.MarshalIndent(h.Info, "", "  ")
	if err != nil {
		return fmt.Errorf("head %s: %w", h.Info.Task.Name, err)
	}
	return atomicfile.WriteFile(jp, append(js, '\n'), 0o644)
}

// HeadPath turns what a user names a head by, its JSON, its safetensors file or
// the path without either extension, into the JSON's path.
func HeadPath(p string) string {
	switch {
	case strings.HasSuffix(p, ".json"):
		return p
	case strings.HasSuffix(p, ".safetensors"):
		return strings.TrimSuffix(p, ".safetensors") + ".json"
	}
	return p + ".json"
}

// LoadHead reads the head that path names (see HeadPath): its JSON and the
// weights beside it, which must agree with it.
func LoadHead(path string) (*Head, error) {
	jp := HeadPath(path)
	data, err := os.ReadFile(jp)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	hi, err := ParseHeadInfo(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", jp, err)
	}
	wp := strings.TrimSuffix(jp, ".json") + ".safetensors"
	raw, err := os.ReadFile(wp)
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", jp, err)
	}
	f, err := safetensors.Read(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wp, err)
	}
	if f.Metadata["format"] != HeadFormat {
		return nil, fmt.Errorf("%s: metadata format %q, want %q", wp, f.Metadata["format"], HeadFormat)
	}
	if got := f.Metadata["encoder_sha256"]; got != hi.EncoderSHA256 {
		return nil, fmt.Errorf("%s: metadata encoder_sha256 %s, but %s says %s: the two files are not one head", wp, got, jp, hi.EncoderSHA256)
	}
	if len(f.Tensors) != 2 {
		return nil, fmt.Errorf("%s: %d tensors, a head has weight and bias", wp, len(f.Tensors))
	}
	w, okW := f.Get("weight")
	b, okB := f.Get("bias")
	if !okW || !okB || fmt.Sprint(w.Shape) != fmt.Sprint([]int{hi.Width}) || fmt.Sprint(b.Shape) != "[1]" {
		return nil, fmt.Errorf("%s: want tensors weight [%d] and bias [1] (width from %s)", wp, hi.Width, jp)
	}
	for _, v := range append(append([]float32(nil), w.Data...), b.Data...) {
		if !finite(float64(v)) {
			return nil, fmt.Errorf("%s: a weight is %v", wp, v)
		}
	}
	return &Head{Info: hi, W: w.Data, B: b.Data[0], Path: jp}, nil
}

// EncoderDir is where the encoder h applies to is: a fine-tuned head's own
// encoder beside its JSON, or the checkpoint a probe was trained on as recorded.
func (h *Head) EncoderDir() string {
	if h.Info.Frozen {
		return h.Info.Encoder
	}
	return filepath.Join(filepath.Dir(h.Path), h.Info.Encoder)
}

// Bind returns h as a classifier on enc, loaded from encDir, whose weights hash
// is encHash (enc.WeightsHash(), computed once by the caller). An encoder other
// than the one h was trained on is refused with ErrEncoderMismatch, naming both
// hashes and both files.
func (h *Head) Bind(enc *model.Model, encHash, encDir string) (*model.Classifier, error) {
	if _, err := hex.DecodeString(encHash); err != nil || len(encHash) != 64 {
		return nil, fmt.Errorf("encoder %s: weights hash %q is not a SHA-256", encDir, encHash)
	}
	if encHash != h.Info.EncoderSHA256 {
		hint := fmt.Sprintf("score with the encoder it was trained on (%s)", h.EncoderDir())
		if !h.Info.Frozen && encHash == h.Info.BaseEncoderSHA256 {
			hint = fmt.Sprintf("this is the base encoder the head was fine-tuned from; fine-tuning changed the encoder, which is saved as %s", h.EncoderDir())
		}
		return nil, fmt.Errorf("%w: head %s (task %s) needs encoder sha256 %s, but %s has sha256 %s: %s",
			ErrEncoderMismatch, h.Path, h.Info.Task.Name, h.Info.EncoderSHA256, filepath.Join(encDir, model.ModelFile), encHash, hint)
	}
	cfg := enc.Config()
	if cfg.Hidden != h.Info.Hidden {
		return nil, fmt.Errorf("head %s: field hidden %d, encoder %s has %d", h.Path, h.Info.Hidden, encDir, cfg.Hidden)
	}
	if h.Info.Seq > cfg.MaxLen {
		return nil, fmt.Errorf("head %s: field seq %d exceeds encoder %s's max_len %d", h.Path, h.Info.Seq, encDir, cfg.MaxLen)
	}
	c := &model.Classifier{Encoder: enc, Pooling: model.Pooling(h.Info.Pooling), W: h.W, B: h.B,
		Lambda: h.Info.Lambda, BestEpoch: h.Info.BestEpoch, ValidLogLoss: h.Info.ValidLogLoss}
	if s := h.Info.Standardization; s != nil {
		c.Mean, c.Scale = s.Mean, s.Scale
	}
	return c, nil
}
