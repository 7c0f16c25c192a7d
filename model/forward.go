package model

import "fmt"

// ForwardInputs is a padded batch as JSON, one row per sequence, every row of
// the same length: what `fedclaims model forward --inputs` reads and what
// python/fedclaims_torch.py feeds its module. Token ids are the vocabulary's
// ([PAD] = 0 marks padding), segments 0..segments-1, positions 0..max_len-1, ages
// in years at each token ([CLS], column 0, at the cutoff; negative: unknown).
type ForwardInputs struct {
	Tokens    [][]int32   `json:"tokens"`
	Segments  [][]int32   `json:"segments"`
	Positions [][]int32   `json:"positions"`
	Ages      [][]float32 `json:"ages"`
}

// InputsOf returns b as ForwardInputs.
func InputsOf(b *Batch) ForwardInputs {
	var in ForwardInputs
	for s := range b.B {
		lo, hi := s*b.T, (s+1)*b.T
		in.Tokens = append(in.Tokens, append([]int32(nil), b.Tokens[lo:hi]...))
		in.Segments = append(in.Segments, append([]int32(nil), b.Segments[lo:hi]...))
		in.Positions = append(in.Positions, append([]int32(nil), b.Positions[lo:hi]...))
		in.Ages = append(in.Ages, append([]float32(nil), b.Ages[lo:hi]...))
	}
	return in
}

// Batch checks that the four tables are rectangular and of one shape, and
// returns them as a Batch validated against cfg.
func (in ForwardInputs) Batch(cfg Config) (*Batch, error) {
	bn := len(in.Tokens)
	if bn == 0 || len(in.Tokens[0]) == 0 {
		return nil, fmt.Errorf("forward inputs: no sequences, or an empty first row of tokens")
	}
	t := len(in.Tokens[0])
	b := &Batch{B: bn, T: t}
	for s := range bn {
		rows := []struct {
			name string
			n    int
		}{{"tokens", len(in.Tokens[s])}, {"segments", rowLen(in.Segments, s)}, {"positions", rowLen(in.Positions, s)}, {"ages", rowLen(in.Ages, s)}}
		for _, r := range rows {
			if r.n != t {
				return nil, fmt.Errorf("forward inputs: %s row %d has %d values, want %d (the length of tokens row 0; pad every row to it)", r.name, s, r.n, t)
			}
		}
		b.Tokens = append(b.Tokens, in.Tokens[s]...)
		b.Segments = append(b.Segments, in.Segments[s]...)
		b.Positions = append(b.Positions, in.Positions[s]...)
		b.Ages = append(b.Ages, in.Ages[s]...)
	}
	if err := b.Validate(cfg); err != nil {
		return nil, fmt.Errorf("forward inputs: %w", err)
	}
	return b, nil
}

func rowLen[T any](rows [][]T, i int) int {
	if i >= len(rows) {
		return -1
	}
	return len(rows[i])
}

// ForwardOutputs is one inference forward pass (no dropout) as JSON, for
// checking a reimplementation against this one.
type ForwardOutputs struct {
	B      int `json:"b"`
	T      int `json:"t"`
	Hidden int `json:"hidden"`
	// HiddenStates are the final hidden states (after final_ln), [B][T][Hidden],
	// padding rows included.
	HiddenStates [][][]float32 `json:"hidden_states"`
	// PooledCLS and PooledMean are the heads' cls and mean poolings, [B][Hidden].
	PooledCLS  [][]float32 `json:"pooled_cls"`
	PooledMean [][]float32 `json:"pooled_mean"`
	// TimeBucket and GapBucket are the rows each token looked up in
	// embeddings.time and embeddings.gap, [B][T]; absent without time embeddings.
	TimeBucket [][]int32 `json:"time_bucket,omitempty"`
	GapBucket  [][]int32 `json:"gap_bucket,omitempty"`
	// MLMLogits are the tied MLM head's logits at every token, [B][T][Vocab];
	// only when asked for.
	MLMLogits [][][]float32 `json:"mlm_logits,omitempty"`
}

// ForwardDump runs m over b without dropout and returns what a reimplementation
// must reproduce; withLogits adds the MLM head's logits at every token.
func ForwardDump(m *Model, b *Batch, withLogits bool) ForwardOutputs {
	c := m.cfg
	h := c.Hidden
	hidden := m.Forward(b, false, nil)
	out := ForwardOutputs{B: b.B, T: b.T, Hidden: h}
	cls, mean := make([]float32, b.B*h), make([]float32, b.B*h)
	pooled(cls, hidden, b, h, PoolCLS)
	pooled(mean, hidden, b, h, PoolMean)
	var tb, gb []int32
	if c.TimeBuckets > 0 {
		tb, gb = make([]int32, b.B*b.T), make([]int32, b.B*b.T)
		timeBuckets(b, c.TimeBuckets, tb, gb)
	}
	for s := range b.B {
		rows := make([][]float32, b.T)
		for t := range b.T {
			r := s*b.T + t
			rows[t] = append([]float32(nil), hidden[r*h:(r+1)*h]...)
		}
		out.HiddenStates = append(out.HiddenStates, rows)
		out.PooledCLS = append(out.PooledCLS, cls[s*h:(s+1)*h])
		out.PooledMean = append(out.PooledMean, mean[s*h:(s+1)*h])
		if tb != nil {
			out.TimeBucket = append(out.TimeBucket, tb[s*b.T:(s+1)*b.T])
			out.GapBucket = append(out.GapBucket, gb[s*b.T:(s+1)*b.T])
		}
	}
	if withLogits {
		n, v := b.B*b.T, c.Vocab
		logits := make([]float32, n*v)
		m.gemm(false, true, n, v, h, 1, hidden, h, m.w.tok, h, 0, logits, v)
		addBias(logits, m.w.mlmB)
		for s := range b.B {
			rows := make([][]float32, b.T)
			for t := range b.T {
				r := s*b.T + t
				rows[t] = logits[r*v : (r+1)*v]
			}
			out.MLMLogits = append(out.MLMLogits, rows)
		}
	}
	return out
}
