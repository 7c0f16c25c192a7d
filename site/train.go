package site

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fedclaims/fedclaims/model"
)

// LocalTraining sets one round of a site's local training.
type LocalTraining struct {
	// Steps is the number of optimiser steps; when 0, Epochs passes over the data.
	Steps, Epochs int
	// Batch is the number of sequences per step.
	Batch int
	// LR is the local AdamW learning rate, constant through the round: each round
	// starts a fresh local optimiser from the global model, as FedAvg does.
	LR float64
	// Mu weighs FedProx's proximal term mu/2·||w - w_global||², which keeps the
	// local model near the global one on heterogeneous sites; 0 is plain FedAvg.
	Mu float64
	// Seed fixes the batch order, masking and dropout: the same global model,
	// data, seed and Threads give the same delta, bit for bit.
	Seed uint64
	// Threads bounds the model's worker goroutines; 0 uses every core.
	Threads int
}

// TrainResult is a round's local outcome.
type TrainResult struct {
	// Delta is the local model minus the global model, in Params order.
	Delta []float32
	// Loss is the mean masked-LM loss over the local steps (of the MLM term only).
	Loss  float64
	Steps int
	// Samples is the number of sequences trained on, the site's weight.
	Samples int
}

// localGradClip bounds each local step's gradient norm, as pretraining does.
const localGradClip = 1.0

// Train trains a copy of global on seqs and returns the delta. global is left
// unchanged.
func Train(ctx context.Context, global *model.Model, seqs []model.Sequence, lt LocalTraining) (*TrainResult, error) {
	switch {
	case len(seqs) == 0:
		return nil, errors.New("local training: no sequences")
	case lt.Batch <= 0:
		return nil, fmt.Errorf("local training: batch size %d must be positive", lt.Batch)
	case lt.LR <= 0 || math.IsNaN(lt.LR):
		return nil, fmt.Errorf("local training: learning rate %g must be positive", lt.LR)
	case lt.Mu < 0 || math.IsNaN(lt.Mu):
		return nil, fmt.Errorf("local training: fedprox mu %g must not be negative", lt.Mu)
	case lt.Steps < 0 || lt.Epochs < 0 || (lt.Steps == 0 && lt.Epochs == 0):
		return nil, fmt.Errorf("local training: need local steps or epochs (got %d, %d)", lt.Steps, lt.Epochs)
	}
	cfg := global.Config()
	if err := model.CheckSequences(seqs, cfg); err != nil {
		return nil, fmt.Errorf("local training: %w", err)
	}
	w0 := global.Flatten()
	m, err := model.New(cfg, 0)
	if err != nil {
		return nil, err
	}
	if err := m.Unflatten(w0); err != nil {
		return nil, err
	}
	if lt.Threads > 0 {
		m.SetThreads(lt.Threads)
	}
	ld, err := model.NewLoader(seqs, lt.Batch, lt.Seed)
	if err != nil {
		return nil, fmt.Errorf("local training: %w", err)
	}
	steps := lt.Steps
	if steps == 0 {
		steps = lt.Epochs * ld.BatchesPerEpoch()
	}
	// A constant rate: no warm-up, and a decay horizon no round reaches.
	tc := model.TrainConfig{LR: lt.LR, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		Steps: math.MaxInt32, Schedule: "linear", ClipNorm: localGradClip, Accum: 1}
	opt := model.NewAdamW(cfg)
	rng := rand.New(rand.NewPCG(lt.Seed, 0x6c6f63616c))
	var loss float64
	for s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := ld.Next()
		mk := model.MaskTokens(b, cfg.Vocab, rng)
		if len(mk.Index) == 0 {
			return nil, fmt.Errorf("local training step %d: no maskable tokens", s)
		}
		m.ZeroGrad()
		loss += m.MLM(b, mk, float32(1/float64(len(mk.Index))), true, rng)
		if lt.Mu > 0 {
			proximal(m.Grads(), m.Params(), w0, lt.Mu)
		}
		opt.Update(m.Params(), m.Grads(), tc)
	}
	delta := m.Flatten()
	for i := range delta {
		delta[i] -= w0[i]
	}
	return &TrainResult{Delta: delta, Loss: loss / float64(steps), Steps: steps, Samples: len(seqs)}, nil
}

// proximal adds the gradient of FedProx's term mu/2·||w - w0||², mu·(w - w0), to g.
func proximal(g, w, w0 []float32, mu float64) {
	m := float32(mu)
	for i := range g {
		g[i] += m * (w[i] - w0[i])
	}
}

// l2 is the Euclidean norm of v.
func l2(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}
