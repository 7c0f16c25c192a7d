package model

import (
	"fmt"
	"math"
)

// TrainConfig sets the optimiser and schedule of pretraining and fine-tuning.
type TrainConfig struct {
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"` // decoupled (AdamW), on matrices only
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	Warmup      int     `json:"warmup_steps"` // linear warm-up from 0
	Steps       int     `json:"steps"`        // total optimiser steps, for the decay
	Schedule    string  `json:"schedule"`     // "cosine" or "linear" decay to 0 after warm-up
	ClipNorm    float64 `json:"clip_norm"`    // global gradient norm bound; 0 turns clipping off
	Accum       int     `json:"accum"`        // micro-batches per optimiser step
}

// DefaultTrainConfig is BERT's recipe scaled for short runs.
func DefaultTrainConfig(steps int) TrainConfig {
	return TrainConfig{LR: 5e-4, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		Warmup: max(1, steps/10), Steps: steps, Schedule: "cosine", ClipNorm: 1, Accum: 1}
}

// Validate reports the first unusable field.
func (c TrainConfig) Validate() error {
	switch {
	case c.LR <= 0:
		return fmt.Errorf("train config: lr %g must be positive", c.LR)
	case c.WeightDecay < 0:
		return fmt.Errorf("train config: weight_decay %g must not be negative", c.WeightDecay)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("train config: betas (%g, %g) must be in [0, 1)", c.Beta1, c.Beta2)
	case c.Eps <= 0:
		return fmt.Errorf("train config: eps %g must be positive", c.Eps)
	case c.Steps <= 0:
		return fmt.Errorf("train config: steps %d must be positive", c.Steps)
	case c.Warmup < 0:
		return fmt.Errorf("train config: warmup_steps %d must not be negative", c.Warmup)
	case c.Schedule != "cosine" && c.Schedule != "linear":
		return fmt.Errorf("train config: schedule %q must be cosine or linear", c.Schedule)
	case c.ClipNorm < 0:
		return fmt.Errorf("train config: clip_norm %g must not be negative", c.ClipNorm)
	case c.Accum <= 0:
		return fmt.Errorf("train config: accum %d must be positive", c.Accum)
	}
	return nil
}

// LRAt is the learning rate of optimiser step s (0-based): linear warm-up to LR
// over Warmup steps, then cosine or linear decay to 0 at Steps.
func (c TrainConfig) LRAt(s int) float64 {
	if s < c.Warmup {
		return c.LR * float64(s+1) / float64(c.Warmup)
	}
	span := max(1, c.Steps-c.Warmup)
	frac := min(1, float64(s-c.Warmup)/float64(span))
	if c.Schedule == "linear" {
		return c.LR * (1 - frac)
	}
	return c.LR * 0.5 * (1 + math.Cos(math.Pi*frac))
}

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter) over a flat
// parameter vector. Its moments are part of a checkpoint, so that resuming
// continues exactly.
type AdamW struct {
	Step    int       // optimiser steps taken
	M, V    []float32 // first and second moments, in parameter order
	Workers int       // goroutines for the update (1 when 0)
	decay   []bool    // per parameter: weight decay applies
}

// NewAdamW returns an optimiser for the parameters of cfg.
func NewAdamW(cfg Config) *AdamW {
	decay := make([]bool, cfg.Params())
	for _, t := range cfg.layout() {
		if t.decay {
			for i := t.off; i < t.off+t.size(); i++ {
				decay[i] = true
			}
		}
	}
	return newAdamW(decay)
}

// newAdamW returns an optimiser over len(decay) parameters, decaying those
// marked.
func newAdamW(decay []bool) *AdamW {
	n := len(decay)
	return &AdamW{M: make([]float32, n), V: make([]float32, n), decay: decay}
}

// GradNorm is the Euclidean norm of g.
func GradNorm(g []float32) float64 {
	var s float64
	for _, v := range g {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// Update clips grads to tc.ClipNorm by global norm, applies one AdamW step at the
// scheduled learning rate and returns the gradient norm before clipping.
func (o *AdamW) Update(params, grads []float32, tc TrainConfig) float64 {
	norm := GradNorm(grads)
	scale := float32(1)
	if tc.ClipNorm > 0 && norm > tc.ClipNorm {
		scale = float32(tc.ClipNorm / norm)
	}
	lr := tc.LRAt(o.Step)
	o.Step++
	b1, b2 := float32(tc.Beta1), float32(tc.Beta2)
	c1 := float32(1 - math.Pow(tc.Beta1, float64(o.Step)))
	c2 := float32(1 - math.Pow(tc.Beta2, float64(o.Step)))
	eps, lr32, wd := float32(tc.Eps), float32(lr), float32(lr*tc.WeightDecay)
	// Chunks of a million parameters update in parallel; the result does not
	// depend on the number of workers.
	const chunk = 1 << 20
	pool{workers: max(1, o.Workers)}.run((len(grads)+chunk-1)/chunk, func(_, lo, hi int) {
		for i := lo * chunk; i < min(hi*chunk, len(grads)); i++ {
			g := grads[i] * scale
			m := b1*o.M[i] + (1-b1)*g
			v := b2*o.V[i] + (1-b2)*g*g
			o.M[i], o.V[i] = m, v
			p := params[i]
			if o.decay[i] {
				p -= wd * p
			}
			params[i] = p - lr32*(m/c1)/(float32(math.Sqrt(float64(v/c2)))+eps)
		}
	})
	return norm
}
