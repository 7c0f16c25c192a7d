package model

import (
	"math/rand/v2"
	"testing"
)

// Kernel benchmarks over one 11m-preset layer's worth of activations (16×256
// tokens), single worker.

func BenchmarkBiasGELU(b *testing.B) {
	const rows, h = 4096, 1024
	rng := rand.New(rand.NewPCG(1, 1))
	u0 := randSlice(rng, rows*h, 1)
	u, g, th, bias := make([]float32, rows*h), make([]float32, rows*h), make([]float32, rows*h), make([]float32, h)
	b.SetBytes(rows * h * 4)
	for range b.N {
		copy(u, u0)
		biasGELU(pool{workers: 1}, g, u, th, bias, h)
	}
}

func BenchmarkMaskedSoftmax(b *testing.B) {
	const t = 256
	rng := rand.New(rand.NewPCG(1, 1))
	s0 := randSlice(rng, t*t, 1)
	s := make([]float32, t*t)
	keep := make([]bool, t)
	for i := range keep {
		keep[i] = i < 200
	}
	b.SetBytes(t * t * 4)
	for range b.N {
		copy(s, s0)
		maskedSoftmax(s, keep, t)
	}
}

func BenchmarkLayerNorm(b *testing.B) {
	const rows, h = 4096, 256
	rng := rand.New(rand.NewPCG(1, 1))
	x := randSlice(rng, rows*h, 1)
	y, g, bb, mean, rstd := make([]float32, rows*h), make([]float32, h), make([]float32, h), make([]float32, rows), make([]float32, rows)
	b.SetBytes(rows * h * 4)
	for range b.N {
		layerNorm(pool{workers: 1}, y, x, g, bb, mean, rstd, h, 1e-5)
	}
}
