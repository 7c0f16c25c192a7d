package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Architecture is what config.json says, beyond Config's sizes, about how the
// encoder computes: every fact a reimplementation (python/fedclaims_torch.py, for
// one) needs. This package implements exactly one architecture, so the values are
// derived from the Config, never chosen; config.json carries them so that nobody
// has to read encoder.go, and ParseConfig refuses a config.json that states a
// different value for any of them. A config.json written before they existed lacks
// them and loads as it always did: its model computes what these values say.
type Architecture struct {
	// ModelType names the architecture: "fedclaims-encoder".
	ModelType string `json:"model_type"`
	// Dtype of every tensor in model.safetensors and of the arithmetic: "float32".
	Dtype string `json:"dtype"`
	// WeightLayout "in_out": every 2-D linear weight is stored [in, out] and
	// applied as y = x·W + b, so torch.nn.Linear.weight is its transpose.
	// Embedding tables are [rows, hidden] as torch.nn.Embedding's.
	WeightLayout string `json:"weight_layout"`
	// Norm "pre_ln": each block is x += Attn(LN1(x)); x += MLP(LN2(x)), and
	// final_ln normalises the last block's output. LayerNorm over the hidden
	// width with the biased variance and ln_eps inside the square root, as
	// torch.nn.LayerNorm.
	Norm string `json:"norm"`
	// HiddenAct "gelu_tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), torch's
	// GELU(approximate="tanh").
	HiddenAct string `json:"hidden_act"`
	// MLPRatio and IntermediateSize: the MLP is fc1 [hidden, mlp_ratio·hidden],
	// GELU, fc2 [intermediate_size, hidden].
	MLPRatio         int `json:"mlp_ratio"`
	IntermediateSize int `json:"intermediate_size"`
	// HeadDim is hidden / heads.
	HeadDim int `json:"head_dim"`
	// QKVPacking "q|k|v": attn.qkv.weight's 3·hidden output columns are the
	// queries, then the keys, then the values; within each, head h owns columns
	// [h·head_dim, (h+1)·head_dim).
	QKVPacking string `json:"qkv_packing"`
	// AttentionScale "1/sqrt(head_dim)" multiplies q·kᵀ before the softmax.
	AttentionScale string `json:"attention_scale"`
	// AttentionMask "pad_keys": keys whose token is [PAD] (id 0) get probability
	// 0; every query, padding included, is computed. No causal mask.
	AttentionMask string `json:"attention_mask"`
	// AgeScale: the age input is age_years / age_scale, projected as
	// (age/100)·embeddings.age.weight + embeddings.age.bias (a Linear(1, hidden)).
	AgeScale float64 `json:"age_scale"`
	// EmbeddingSum is the encoder's input, summed in float32 in this order
	// (dropout after it, in training only).
	EmbeddingSum string `json:"embedding_sum"`
	// TimeEmbedding describes the time and gap inputs; absent when time_buckets
	// is 0 (no such tables).
	TimeEmbedding *TimeEmbedding `json:"time_embedding,omitempty"`
	// MLMHead "tied": logits = final hidden · embeddings.token.weightᵀ + mlm.bias,
	// with no transform in between.
	MLMHead string `json:"mlm_head"`
	// Pooling says how the heads pool the final hidden states.
	Pooling map[string]string `json:"pooling"`
	// SpecialTokens are the tokenizer's ids that the encoder treats specially.
	SpecialTokens map[string]int `json:"special_tokens"`
}

// TimeEmbedding documents the inputs embeddings.time and embeddings.gap look up.
type TimeEmbedding struct {
	// Buckets is time_buckets, the rows of each table.
	Buckets int `json:"buckets"`
	// DaysPerYear turns a difference of two ages (years) into days.
	DaysPerYear float64 `json:"days_per_year"`
	// Bucket is TimeBucket's formula.
	Bucket string `json:"bucket"`
	// BucketLowerDays[k-1] is the fewest rounded days in bucket k, for k =
	// 1..buckets-1 (the last bucket also holds every longer span).
	BucketLowerDays []int64 `json:"bucket_lower_days"`
	// Time and Gap say which span each token's bucket measures.
	Time string `json:"time"`
	Gap  string `json:"gap"`
}

// Architecture returns the facts config.json states about c's computation.
func (c Config) Architecture() Architecture {
	a := Architecture{
		ModelType:        "fedclaims-encoder",
		Dtype:            "float32",
		WeightLayout:     "in_out",
		Norm:             "pre_ln",
		HiddenAct:        "gelu_tanh",
		MLPRatio:         MLPRatio,
		IntermediateSize: MLPRatio * c.Hidden,
		QKVPacking:       "q|k|v",
		AttentionScale:   "1/sqrt(head_dim)",
		AttentionMask:    "pad_keys",
		AgeScale:         100,
		EmbeddingSum:     "token + position + segment + (age/100)*age.weight + age.bias",
		MLMHead:          "tied",
		Pooling: map[string]string{
			"cls":  "final hidden state at column 0 ([CLS])",
			"mean": "mean of the final hidden states over tokens != [PAD], [CLS] and [SEP] included",
			"both": "cls then mean, 2*hidden wide",
		},
		SpecialTokens: map[string]int{"pad": PAD, "cls": CLS, "sep": SEP, "mask": MASK, "unk": UNK, "first_code": FirstCode},
	}
	if c.Heads > 0 {
		a.HeadDim = c.Hidden / c.Heads
	}
	if c.TimeBuckets > 0 {
		a.EmbeddingSum = "(token + position + segment + (age/100)*age.weight + age.bias) + (time + gap)"
		lower := make([]int64, 0, c.TimeBuckets-1)
		for k := 1; k < c.TimeBuckets; k++ {
			lower = append(lower, int64(1)<<(k-1)-1)
		}
		a.TimeEmbedding = &TimeEmbedding{
			Buckets:         c.TimeBuckets,
			DaysPerYear:     daysPerYear,
			Bucket:          "0 when either age is negative (unknown); else n = floor(days + 0.5) for days >= 0.5, else 0; bucket = min(bit_length(n + 1), buckets - 1), i.e. 1 + floor(log2(1 + n)); days = (float64(later) - float64(earlier)) * days_per_year",
			BucketLowerDays: lower,
			Time:            "from the token's age to column 0's age (the cutoff); 0 for [CLS] (column 0) and [PAD]",
			Gap:             "a visit opens at the first non-[PAD] token after column 0 or after a [SEP]; every token of the visit, its closing [SEP] included, gets the span from the previous visit's opening age to this visit's opening age; 0 for the first visit, [CLS] and [PAD]",
		}
	}
	return a
}

// configDoc is config.json: the Config's fields, then the Architecture's.
type configDoc struct {
	Config
	Architecture
}

// archKeys lists config.json's Architecture keys.
func archKeys() []string {
	var keys []string
	t := reflect.TypeOf(Architecture{})
	for i := range t.NumField() {
		keys = append(keys, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
	}
	return keys
}

// checkArchitecture reports the first Architecture key of doc (config.json) whose
// value differs from what c's model computes. Absent keys are fine: configs
// written before they existed lack them.
func checkArchitecture(doc []byte, c Config) error {
	var got map[string]json.RawMessage
	if err := json.Unmarshal(doc, &got); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	wantDoc, err := json.Marshal(c.Architecture())
	if err != nil {
		return err
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(wantDoc, &want); err != nil {
		return err
	}
	for _, k := range archKeys() {
		g, present := got[k]
		if !present {
			continue
		}
		w, ok := want[k]
		if !ok {
			return fmt.Errorf("config: field %s is given, but time_buckets is 0 (no time embeddings)", k)
		}
		if canonicalJSON(g) != canonicalJSON(w) {
			return fmt.Errorf("config: field %s is %s; this build implements only %s", k, bytes.TrimSpace(g), w)
		}
	}
	return nil
}

// canonicalJSON re-encodes a JSON value with sorted keys and float64 numbers, so
// that equal values compare equal however they were spelled.
func canonicalJSON(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
