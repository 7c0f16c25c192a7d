package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Special token ids shared with package tokenizer. The MLM objective never masks
// special tokens and draws its random replacements from FirstCode upwards.
const (
	PAD       = 0
	CLS       = 1
	SEP       = 2
	MASK      = 3
	UNK       = 4
	FirstCode = 5
)

// Config fixes an encoder's shape. It is saved beside every checkpoint as
// config.json.
type Config struct {
	Vocab    int `json:"vocab_size"`
	Hidden   int `json:"hidden"`
	Layers   int `json:"layers"`
	Heads    int `json:"heads"`
	MaxLen   int `json:"max_len"`  // positions 0..MaxLen-1
	Segments int `json:"segments"` // segment (visit) ids 0..Segments-1
	// TimeBuckets is the number of rows of each of the two time embeddings (time
	// before the cutoff, gap since the previous visit), bucketed by TimeBucket;
	// 0 leaves them out, the layout and numerics of the encoders before them.
	TimeBuckets int `json:"time_buckets,omitempty"`
	// Dropout is applied to the embedding sum, to the attention output projection
	// and to the MLP output, during training only.
	Dropout float32 `json:"dropout"`
	// LNEps is LayerNorm's variance floor.
	LNEps float32 `json:"ln_eps"`
}

// MLPRatio is the width of the feed-forward block relative to Hidden.
const MLPRatio = 4

// preset is a named scale from the study, at its 11,000-code vocabulary.
type preset struct {
	hidden, layers, heads int
}

// presets are chosen so that Params() at a vocabulary of 11,000, 512 positions and
// three segments lands within 5% of the study's 2.2M, 11M, 32M, 57M and 101M.
var presets = map[string]preset{
	"2m":   {hidden: 128, layers: 4, heads: 4},
	"11m":  {hidden: 256, layers: 10, heads: 4},
	"32m":  {hidden: 512, layers: 8, heads: 8},
	"57m":  {hidden: 640, layers: 10, heads: 10},
	"101m": {hidden: 768, layers: 13, heads: 12},
}

// StudyVocab is the vocabulary size at which the presets are named.
const StudyVocab = 11000

// Presets lists the preset names from smallest to largest.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		return presets[names[i]].hidden*presets[names[i]].layers < presets[names[j]].hidden*presets[names[j]].layers
	})
	return names
}

// Preset returns the configuration of a named scale at the given vocabulary size,
// with 512 positions, three segments (the tokenizer's), DefaultTimeBuckets time
// buckets and dropout 0.1.
func Preset(name string, vocab int) (Config, error) {
	p, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q (want one of %v)", name, Presets())
	}
	c := Config{Vocab: vocab, Hidden: p.hidden, Layers: p.layers, Heads: p.heads,
		MaxLen: 512, Segments: 3, TimeBuckets: DefaultTimeBuckets, Dropout: 0.1, LNEps: 1e-5}
	return c, c.Validate()
}

// Validate reports the first field that makes c unusable.
func (c Config) Validate() error {
	switch {
	case c.Vocab <= FirstCode:
		return fmt.Errorf("config: vocab_size %d must exceed %d special tokens", c.Vocab, FirstCode)
	case c.Hidden <= 0:
		return fmt.Errorf("config: hidden %d must be positive", c.Hidden)
	case c.Layers < 0:
		return fmt.Errorf("config: layers %d must not be negative", c.Layers)
	case c.Heads <= 0 || c.Hidden%c.Heads != 0:
		return fmt.Errorf("config: heads %d must divide hidden %d", c.Heads, c.Hidden)
	case c.MaxLen <= 0:
		return fmt.Errorf("config: max_len %d must be positive", c.MaxLen)
	case c.Segments <= 0:
		return fmt.Errorf("config: segments %d must be positive", c.Segments)
	case c.TimeBuckets != 0 && (c.TimeBuckets < 2 || c.TimeBuckets > 64):
		// Bucket 0 is "unknown", so one bucket would say nothing; TimeBucket never
		// reaches past 64 (the bit length of a day count).
		return fmt.Errorf("config: time_buckets %d must be 0 (none) or in [2, 64]", c.TimeBuckets)
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("config: dropout %g must be in [0, 1)", c.Dropout)
	case c.LNEps <= 0:
		return fmt.Errorf("config: ln_eps %g must be positive", c.LNEps)
	}
	return nil
}

// marshal renders c as config.json: its fields, then its Architecture's.
func (c Config) marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the formulas' ">=" as written
	enc.SetIndent("", "  ")
	if err := enc.Encode(configDoc{c, c.Architecture()}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Params is the exact number of trainable parameters, the length of Flatten's vector.
func (c Config) Params() int {
	n := 0
	for _, t := range c.layout() {
		n += t.size()
	}
	return n
}

// MaskFraction is the share of real tokens that the MLM objective predicts.
const MaskFraction = 0.15

// FLOPsPerToken is the training cost (forward and backward) of one token at
// sequence length seq, counting a multiply-add as two FLOPs:
//
//	6 * (12*H^2*L)              dense matmuls of the blocks (QKV, output, MLP)
//	+ 12 * L * seq * H          attention scores and weighted values
//	+ 6 * 0.15 * H * V          tied MLM decoder, at masked positions only
//
// Backward costs twice the forward, hence the factor 3 over the forward's 2.
// Elementwise work (LayerNorm, GELU, softmax, embeddings) is left out, as is usual.
func (c Config) FLOPsPerToken(seq int) float64 {
	h, l, v := float64(c.Hidden), float64(c.Layers), float64(c.Vocab)
	return 6*12*h*h*l + 12*l*float64(seq)*h + 6*MaskFraction*h*v
}
