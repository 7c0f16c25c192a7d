package model

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// stepBytes returns what one training step on a B×64 batch allocates, on average,
// once the trainer's buffers exist.
func stepBytes(t *testing.T, cfg Config, batch int) int64 {
	t.Helper()
	m, _ := New(cfg, 1)
	tr, _ := NewTrainer(m, DefaultTrainConfig(100), 1)
	src := SyntheticBatch(cfg, batch, 64, 1)
	b := &Batch{B: batch, T: 64, Tokens: make([]int32, batch*64), Segments: src.Segments, Positions: src.Positions, Ages: src.Ages}
	step := func() {
		copy(b.Tokens, src.Tokens)
		if _, err := tr.Step(context.Background(), []*Batch{b}); err != nil {
			t.Fatal(err)
		}
	}
	step()
	step()
	const steps = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range steps {
		step()
	}
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc-before.TotalAlloc) / steps
}

// TestStepAllocations bounds what a training step allocates once its buffers
// exist: a small fraction of one activation buffer, and nothing that grows with
// the batch. What remains is the workers' goroutine closures, a fixed number per
// kernel call (a few kB a layer, varying by a few percent from run to run with the
// scheduler's goroutine reuse); gonum's pure-Go sgemm also allocates its own work
// queues on every call.
func TestStepAllocations(t *testing.T) {
	for _, buckets := range []int{0, DefaultTimeBuckets} {
		t.Run(fmt.Sprintf("time buckets %d", buckets), func(t *testing.T) {
			cfg := Config{Vocab: 500, Hidden: 64, Layers: 2, Heads: 2, MaxLen: 64, Segments: 3, TimeBuckets: buckets, Dropout: 0.1, LNEps: 1e-5}
			checkStepAllocations(t, cfg)
		})
	}
}

func checkStepAllocations(t *testing.T, cfg Config) {
	activations := int64(8 * 64 * cfg.Hidden * 4) // one N×H float32 buffer at B=8, in bytes
	small, large := stepBytes(t, cfg, 8), stepBytes(t, cfg, 32)
	t.Logf("bytes allocated per step: %d at batch 8, %d at batch 32 (one activation buffer at batch 8 is %d)", small, large, activations)
	limit := activations / 4
	if BLASName == "gonum" {
		limit = activations
	}
	if small > limit {
		t.Errorf("a step allocates %d bytes, want at most %d (%s BLAS)", small, limit, BLASName)
	}
	// Four times the activations must not mean more allocation: per-step churn
	// that scales with the batch would show here, whatever the fixed part is.
	// gonum's sgemm allocates per block of the product, so only our own code is
	// held to this, under OpenBLAS.
	if growth := large - small; BLASName == "openblas" && growth > activations/8 {
		t.Errorf("a step at batch 32 allocates %d bytes more than at batch 8 (limit %d): allocation grows with the activations", growth, activations/8)
	}
}
