package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// FromEncoding copies a tokenizer encoding into a Sequence. Tokenizer segment
// ids (0, 1, 2) and positions (0..len-1) are the model's as they are.
func FromEncoding(e *tokenizer.Encoding) Sequence {
	return Sequence{
		Tokens:    append([]int32(nil), e.IDs...),
		Segments:  append([]int32(nil), e.Segments...),
		Positions: append([]int32(nil), e.Positions...),
		Ages:      append([]float32(nil), e.Ages...),
	}
}

// Windows chooses where each pretraining sequence ends.
type Windows struct {
	// RandomCut ends each patient's window at tokenizer.RandomCutoff(p, Seed)
	// instead of encoding the whole history, so that pretraining also sees the
	// truncated histories that fine-tuning windows (ending at an index date) give.
	RandomCut bool
	// Seed picks the cuts; with RandomCut unset it is ignored.
	Seed uint64
}

// ReadSequences is ReadSequencesWindows with the zero Windows: every patient's
// whole history.
func ReadSequences(ctx context.Context, r claims.Reader, enc *tokenizer.Encoder) ([]Sequence, int, error) {
	return ReadSequencesWindows(ctx, r, enc, Windows{})
}

// ReadSequencesWindows encodes every patient of r with enc, each window ending
// where w says, keeping those with at least one code token (the rest give MLM
// nothing to predict). It returns the sequences and the number of patients read.
func ReadSequencesWindows(ctx context.Context, r claims.Reader, enc *tokenizer.Encoder, w Windows) ([]Sequence, int, error) {
	var seqs []Sequence
	var e tokenizer.Encoding
	n := 0
	for {
		p, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return seqs, n, nil
		}
		if err != nil {
			return nil, n, fmt.Errorf("read sequences: patient %d: %w", n, err)
		}
		n++
		cutoff := tokenizer.NoCutoff
		if w.RandomCut {
			cutoff = tokenizer.RandomCutoff(p, w.Seed)
		}
		enc.EncodeTo(&e, p, cutoff)
		for _, id := range e.IDs {
			if id >= FirstCode {
				seqs = append(seqs, FromEncoding(&e))
				break
			}
		}
	}
}

// UnigramEntropy is the entropy, in nats, of the code tokens' frequencies in
// seqs: the MLM loss of a model that ignores context.
func UnigramEntropy(seqs []Sequence) float64 {
	counts := make(map[int32]int)
	total := 0
	for _, s := range seqs {
		for _, t := range s.Tokens {
			if t >= FirstCode {
				counts[t]++
				total++
			}
		}
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(total)
		h -= p * math.Log(p)
	}
	return h
}

// CheckSequences reports the first sequence that does not fit cfg.
func CheckSequences(seqs []Sequence, cfg Config) error {
	for i, s := range seqs {
		if err := s.validate(); err != nil {
			return fmt.Errorf("sequence %d: %w", i, err)
		}
		b := Pad(seqs, []int{i})
		if err := b.Validate(cfg); err != nil {
			return fmt.Errorf("sequence %d: %w", i, err)
		}
	}
	return nil
}
