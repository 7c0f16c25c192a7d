package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSeconds is the user and system CPU time the process has used: on a shared
// machine, rates per CPU-second compare kernels where wall-clock rates cannot.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// Rate is a measured throughput in GFLOP/s, per wall-clock second and per
// CPU-second used by the process.
type Rate struct {
	Wall, CPU float64
}

// SgemmGFLOPS measures an n×n×n single-precision matrix product through the
// model's BLAS, split across GOMAXPROCS workers as the model's products are,
// repeating it for at least minTime (2n³ FLOPs per product).
func SgemmGFLOPS(ctx context.Context, n int, minTime time.Duration) (Rate, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b, c := randSlice32(rng, n*n), randSlice32(rng, n*n), make([]float32, n*n)
	impl := defaultBLAS()
	m := &Model{blas: impl, pool: pool{workers: runtime.GOMAXPROCS(0)}}
	m.gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n) // warm-up: thread pool start
	reps := 0
	start, cpu0 := time.Now(), cpuSeconds()
	for reps == 0 || time.Since(start) < minTime {
		if err := ctx.Err(); err != nil {
			return Rate{}, err
		}
		m.gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		reps++
	}
	gf := 2 * float64(n) * float64(n) * float64(n) * float64(reps) / 1e9
	return Rate{Wall: gf / time.Since(start).Seconds(), CPU: gf / (cpuSeconds() - cpu0)}, nil
}

func randSlice32(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// SyntheticBatch is a batch of b full sequences of t random codes after [CLS],
// for benchmarks.
func SyntheticBatch(cfg Config, b, t int, seed uint64) *Batch {
	rng := rand.New(rand.NewPCG(seed, 3))
	n := b * t
	bt := &Batch{B: b, T: t, Tokens: make([]int32, n), Segments: make([]int32, n), Positions: make([]int32, n), Ages: make([]float32, n)}
	for i := range n {
		p := i % t
		bt.Positions[i] = int32(p)
		bt.Tokens[i] = int32(FirstCode + rng.IntN(cfg.Vocab-FirstCode))
		if p == 0 {
			bt.Tokens[i] = CLS
		}
		bt.Segments[i] = int32(p / 8 % cfg.Segments) // visits of eight codes
		bt.Ages[i] = 50
	}
	return bt
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM on
// Linux), or 0 where it cannot be read.
func PeakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}

// BenchResult is one training-throughput measurement.
type BenchResult struct {
	Steps        int
	Seconds      float64
	CPUSeconds   float64
	TokensPerSec float64
	GFLOPS       Rate // FLOPsPerToken(T) × tokens / seconds
}

// BenchTrain times steps optimiser steps of MLM training on synthetic batches of
// shape b×t after one untimed warm-up step.
func BenchTrain(ctx context.Context, cfg Config, b, t, steps int, seed uint64) (BenchResult, error) {
	if t > cfg.MaxLen {
		return BenchResult{}, fmt.Errorf("bench: sequence length %d exceeds max_len %d", t, cfg.MaxLen)
	}
	m, err := New(cfg, seed)
	if err != nil {
		return BenchResult{}, err
	}
	tr, err := NewTrainer(m, DefaultTrainConfig(steps+1), seed)
	if err != nil {
		return BenchResult{}, err
	}
	src := SyntheticBatch(cfg, b, t, seed)
	batch := &Batch{B: b, T: t, Tokens: make([]int32, b*t), Segments: src.Segments, Positions: src.Positions, Ages: src.Ages}
	step := func() error {
		copy(batch.Tokens, src.Tokens) // masking corrupts tokens in place
		_, err := tr.Step(ctx, []*Batch{batch})
		return err
	}
	if err := step(); err != nil {
		return BenchResult{}, err
	}
	start, cpu0 := time.Now(), cpuSeconds()
	for range steps {
		if err := step(); err != nil {
			return BenchResult{}, err
		}
	}
	sec, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu0
	tokens := float64(steps * b * t)
	gf := cfg.FLOPsPerToken(t) * tokens / 1e9
	return BenchResult{Steps: steps, Seconds: sec, CPUSeconds: cpu, TokensPerSec: tokens / sec,
		GFLOPS: Rate{Wall: gf / sec, CPU: gf / cpu}}, nil
}
