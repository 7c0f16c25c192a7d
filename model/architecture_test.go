package model

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/model/safetensors"
)

// TestConfigJSONArchitecture: Save writes every architecture fact into config.json
// (and the safetensors metadata), with the values the encoder computes, and both
// read back to the same Config.
func TestConfigJSONArchitecture(t *testing.T) {
	cfg := tinyConfig()
	cfg.TimeBuckets = 6
	m, err := New(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range append(archKeys(), "vocab_size", "hidden", "layers", "heads", "max_len", "segments", "time_buckets", "ln_eps") {
		if _, ok := doc[k]; !ok {
			t.Errorf("config.json lacks %q: %s", k, raw)
		}
	}
	want := map[string]any{
		"model_type": "fedclaims-encoder", "dtype": "float32", "weight_layout": "in_out", "norm": "pre_ln",
		"hidden_act": "gelu_tanh", "mlp_ratio": float64(MLPRatio), "intermediate_size": float64(MLPRatio * cfg.Hidden),
		"head_dim": float64(cfg.Hidden / cfg.Heads), "qkv_packing": "q|k|v", "attention_mask": "pad_keys",
		"age_scale": 100.0, "mlm_head": "tied",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("config.json %s = %v, want %v", k, doc[k], v)
		}
	}
	if !strings.Contains(string(raw), `days >= 0.5`) {
		t.Errorf("config.json escapes its formulas: %s", raw)
	}
	// The bucket edges it states are TimeBucket's.
	te := cfg.Architecture().TimeEmbedding
	if te == nil || te.Buckets != cfg.TimeBuckets || len(te.BucketLowerDays) != cfg.TimeBuckets-1 {
		t.Fatalf("time_embedding %+v for %d buckets", te, cfg.TimeBuckets)
	}
	for i, lo := range te.BucketLowerDays {
		k := i + 1
		if got := TimeBucket(float64(lo), cfg.TimeBuckets); got != k {
			t.Errorf("TimeBucket(%d days) = %d, config.json says bucket %d starts there", lo, got, k)
		}
		if lo > 0 {
			if got := TimeBucket(float64(lo-1), cfg.TimeBuckets); got != k-1 {
				t.Errorf("TimeBucket(%d days) = %d, want %d (below bucket %d's edge)", lo-1, got, k-1, k)
			}
		}
	}
	if c, err := ParseConfig(raw); err != nil || c != cfg {
		t.Fatalf("config.json parses to %+v, %v; want %+v", c, err, cfg)
	}
	// The safetensors metadata no longer claims PyTorch's layout, says the one it
	// has, and carries the same config.
	st, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Read(st)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] == "pt" || f.Metadata["weight_layout"] != "in_out" {
		t.Errorf("safetensors metadata format %q, weight_layout %q; want not pt, in_out", f.Metadata["format"], f.Metadata["weight_layout"])
	}
	if c, err := ParseConfig([]byte(f.Metadata["config"])); err != nil || c != cfg {
		t.Errorf("metadata config parses to %+v, %v", c, err)
	}
	qkv, _ := f.Get("layers.0.attn.qkv.weight")
	if !slices.Equal(qkv.Shape, []int{cfg.Hidden, 3 * cfg.Hidden}) {
		t.Errorf("qkv weight stored %v, config.json says in_out [%d, %d]", qkv.Shape, cfg.Hidden, 3*cfg.Hidden)
	}
}

// TestConfigJSONWithoutArchitecture: a config.json from before the architecture
// fields still loads, and a checkpoint with one loads as before.
func TestConfigJSONWithoutArchitecture(t *testing.T) {
	cfg := tinyConfig()
	cfg.TimeBuckets = 4
	old := `{"vocab_size": 23, "hidden": 8, "layers": 2, "heads": 2, "max_len": 16, "segments": 3, "time_buckets": 4, "dropout": 0, "ln_eps": 0.00001}`
	if c, err := ParseConfig([]byte(old)); err != nil || c != cfg {
		t.Fatalf("old config.json parses to %+v, %v; want %+v", c, err, cfg)
	}
	m, err := New(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil || !slices.Equal(got.params, m.params) {
		t.Fatalf("checkpoint with an old config.json: %v", err)
	}
}

// TestConfigJSONArchitectureRefused: a config.json stating an architecture this
// build does not compute is refused, naming the field.
func TestConfigJSONArchitectureRefused(t *testing.T) {
	base := `"vocab_size": 23, "hidden": 8, "layers": 2, "heads": 2, "max_len": 16, "segments": 3, "ln_eps": 1e-5`
	for _, tt := range []struct{ extra, want string }{
		{`"norm": "post_ln"`, "norm"},
		{`"hidden_act": "gelu"`, "hidden_act"},
		{`"weight_layout": "out_in"`, "weight_layout"},
		{`"intermediate_size": 64`, "intermediate_size"},
		{`"head_dim": 8`, "head_dim"},
		{`"qkv_packing": "k|q|v"`, "qkv_packing"},
		{`"mlm_head": "untied"`, "mlm_head"},
		{`"time_embedding": {"buckets": 4}`, "time_embedding"},
		{`"norm": 3`, "norm"},
	} {
		doc := "{" + base + ", " + tt.extra + "}"
		if _, err := ParseConfig([]byte(doc)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%s): %v, want an error naming %s", doc, err, tt.want)
		}
	}
	// Spelled differently but equal is fine.
	if _, err := ParseConfig([]byte("{" + base + `, "age_scale": 1e2, "dropout": 0}`)); err != nil {
		t.Errorf("equal values spelled differently: %v", err)
	}
}

// TestForwardDump: the inputs round-trip through JSON, ragged rows are refused,
// and the dump is Forward's hidden states with their poolings and buckets.
func TestForwardDump(t *testing.T) {
	cfg := tinyConfig()
	cfg.TimeBuckets = 8
	m, err := New(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	b := tinyBatch(rand.New(rand.NewPCG(1, 2)), cfg, 3, 6)
	js, err := json.Marshal(InputsOf(b))
	if err != nil {
		t.Fatal(err)
	}
	var in ForwardInputs
	if err := json.Unmarshal(js, &in); err != nil {
		t.Fatal(err)
	}
	b2, err := in.Batch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b2.B != b.B || b2.T != b.T || !slices.Equal(b2.Tokens, b.Tokens) || !slices.Equal(b2.Ages, b.Ages) ||
		!slices.Equal(b2.Segments, b.Segments) || !slices.Equal(b2.Positions, b.Positions) {
		t.Fatalf("inputs round trip: %+v, want %+v", b2, b)
	}
	bad := InputsOf(b)
	bad.Ages[1] = bad.Ages[1][:2]
	if _, err := bad.Batch(cfg); err == nil || !strings.Contains(err.Error(), "ages row 1") {
		t.Errorf("ragged ages: %v, want an error naming ages row 1", err)
	}
	out := ForwardDump(m, b2, true)
	hidden := append([]float32(nil), m.Forward(b, false, nil)...)
	h := cfg.Hidden
	if out.B != b.B || out.T != b.T || out.Hidden != h || len(out.MLMLogits) != b.B || len(out.MLMLogits[0][0]) != cfg.Vocab {
		t.Fatalf("dump shape b=%d t=%d hidden=%d", out.B, out.T, out.Hidden)
	}
	for s := range b.B {
		n := 0
		mean := make([]float32, h)
		for tk := range b.T {
			r := s*b.T + tk
			if !slices.Equal(out.HiddenStates[s][tk], hidden[r*h:(r+1)*h]) {
				t.Fatalf("hidden state %d,%d differs from Forward's", s, tk)
			}
			if b.Tokens[r] != PAD {
				n++
				for i := range mean {
					mean[i] += hidden[r*h+i]
				}
			}
		}
		if !slices.Equal(out.PooledCLS[s], hidden[s*b.T*h:(s*b.T+1)*h]) {
			t.Errorf("pooled_cls %d is not column 0's state", s)
		}
		for i := range mean {
			if d := mean[i]/float32(n) - out.PooledMean[s][i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("pooled_mean %d[%d] off by %g", s, i, d)
			}
		}
		if len(out.TimeBucket[s]) != b.T || out.TimeBucket[s][0] != 0 || out.GapBucket[s][0] != 0 {
			t.Errorf("buckets of sequence %d: %v %v", s, out.TimeBucket[s], out.GapBucket[s])
		}
	}
}
