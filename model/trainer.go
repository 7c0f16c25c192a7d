package model

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// Trainer pretrains a model with MLM: AdamW, warm-up and decay, clipping by
// global norm and gradient accumulation over micro-batches. Its random source
// (masking and dropout) is a PCG whose state a checkpoint saves.
type Trainer struct {
	Model *Model
	Opt   *AdamW
	TC    TrainConfig
	pcg   *rand.PCG
	rng   *rand.Rand
	masks []Masked // reused from step to step
	// masked holds the corrupted copies of the step's micro-batches, their
	// token buffers reused from step to step.
	masked []Batch
}

// maskedCopy returns b with its tokens copied into dst's buffer, for masking to
// corrupt without touching b: a caller's batches (the sweep's validation batches,
// a benchmark's one batch) are often reused, and masking them in place would
// destroy their codes a little more at every use.
func maskedCopy(dst *Batch, b *Batch) *Batch {
	tokens := append(dst.Tokens[:0], b.Tokens...)
	*dst = *b
	dst.Tokens = tokens
	return dst
}

// NewTrainer returns a trainer for m, drawing masks and dropout from seed.
func NewTrainer(m *Model, tc TrainConfig, seed uint64) (*Trainer, error) {
	if err := tc.Validate(); err != nil {
		return nil, err
	}
	pcg := rand.NewPCG(seed, 0x747261696e)
	opt := NewAdamW(m.cfg)
	opt.Workers = m.pool.workers
	return &Trainer{Model: m, Opt: opt, TC: tc, pcg: pcg, rng: rand.New(pcg)}, nil
}

// StepStats reports one optimiser step.
type StepStats struct {
	Step     int     // optimiser steps taken, this one included
	Loss     float64 // mean MLM cross-entropy over the step's masked tokens
	Masked   int     // masked tokens predicted
	Tokens   int     // real (non-padding) tokens seen
	GradNorm float64 // before clipping
	LR       float64 // learning rate applied
}

// Step takes one optimiser step over len(micro) micro-batches (normally TC.Accum
// of them). It masks copies of the batches and leaves them unchanged. A step
// cancelled through ctx changes neither the parameters, the optimiser nor the
// random stream.
func (t *Trainer) Step(ctx context.Context, micro []*Batch) (StepStats, error) {
	if len(micro) == 0 {
		return StepStats{}, fmt.Errorf("train step: no batches")
	}
	cfg := t.Model.cfg
	before, err := t.pcg.MarshalBinary()
	if err != nil {
		return StepStats{}, err
	}
	for len(t.masks) < len(micro) {
		t.masks = append(t.masks, Masked{})
		t.masked = append(t.masked, Batch{})
	}
	masks := t.masks
	var st StepStats
	for i, b := range micro {
		if err := b.Validate(cfg); err != nil {
			return st, fmt.Errorf("train step %d, micro-batch %d: %w", t.Opt.Step+1, i, err)
		}
		for _, tok := range b.Tokens {
			if tok != PAD {
				st.Tokens++
			}
		}
		masks[i].mask(maskedCopy(&t.masked[i], b), cfg.Vocab, t.rng)
		st.Masked += len(masks[i].Index)
	}
	if st.Masked == 0 {
		return st, fmt.Errorf("train step %d: no maskable tokens in %d micro-batches", t.Opt.Step+1, len(micro))
	}
	t.Model.ZeroGrad()
	w := float32(1 / float64(st.Masked))
	for i := range micro {
		if err := ctx.Err(); err != nil {
			// Leave the random stream where the step found it, so that a
			// checkpoint taken now resumes exactly.
			if rerr := t.pcg.UnmarshalBinary(before); rerr != nil {
				return st, rerr
			}
			return st, err
		}
		st.Loss += t.Model.MLM(&t.masked[i], masks[i], w, true, t.rng)
	}
	st.LR = t.TC.LRAt(t.Opt.Step)
	st.GradNorm = t.Opt.Update(t.Model.params, t.Model.grads, t.TC)
	st.Step = t.Opt.Step
	return st, nil
}

// Eval returns the mean MLM cross-entropy of the batches without dropout or
// updates, masking copies of them with its own seed: it is a pure function of the
// model, the batches and the seed, so that evaluations compare, and it leaves the
// batches unchanged.
func (t *Trainer) Eval(batches []*Batch, seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	var loss float64
	var n int
	var scratch Batch
	for _, b := range batches {
		cb := maskedCopy(&scratch, b)
		mk := MaskTokens(cb, t.Model.cfg.Vocab, rng)
		loss += t.Model.MLM(cb, mk, 1, false, rng)
		n += len(mk.Index)
	}
	if n == 0 {
		return 0
	}
	return loss / float64(n)
}
