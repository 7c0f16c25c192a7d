package model

import (
	"context"
	"runtime"
	"testing"
)

// TestStepAllocations bounds what a training step allocates once its buffers
// exist: a small fraction of one activation buffer.
func TestStepAllocations(t *testing.T) {
	cfg := Config{Vocab: 500, Hidden: 32, Layers: 2, Heads: 2, MaxLen: 64, Segments: 3, Dropout: 0.1, LNEps: 1e-5}
	m, _ := New(cfg, 1)
	tr, _ := NewTrainer(m, DefaultTrainConfig(100), 1)
	src := SyntheticBatch(cfg, 8, 64, 1)
	b := &Batch{B: 8, T: 64, Tokens: make([]int32, 8*64), Segments: src.Segments, Positions: src.Positions, Ages: src.Ages}
	step := func() {
		copy(b.Tokens, src.Tokens)
		if _, err := tr.Step(context.Background(), []*Batch{b}); err != nil {
			t.Fatal(err)
		}
	}
	step()
	step()
	activations := 8 * 64 * cfg.Hidden * 4 // one N×H float32 buffer, in bytes
	const steps = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range steps {
		step()
	}
	runtime.ReadMemStats(&after)
	bytes := int64(after.TotalAlloc-before.TotalAlloc) / steps
	t.Logf("%d bytes allocated per step (one activation buffer is %d)", bytes, activations)
	// What remains is the workers' goroutine closures (a few kB); gonum's
	// pure-Go sgemm also allocates its own work queues on every call.
	limit := int64(activations) / 4
	if BLASName == "gonum" {
		limit = int64(activations)
	}
	if bytes > limit {
		t.Errorf("a step allocates %d bytes, want at most %d (%s BLAS)", bytes, limit, BLASName)
	}
}
