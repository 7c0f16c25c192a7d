//go:build cuda

package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// These tests need a CUDA device; they build only with the cuda tag
// (scripts/gpu-check.sh runs them on a GPU machine).

// cudaOf returns m's cuBLAS, with every contiguous product sent to the GPU
// however small, so that a tiny model exercises the device path.
func cudaOf(t *testing.T, m *Model) *cudaBLAS {
	t.Helper()
	c, ok := m.blas.(*cudaBLAS)
	if !ok {
		t.Fatalf("cuda build: model BLAS is %T, want *cudaBLAS", m.blas)
	}
	c.minGPU = 0
	return c
}

// TestCUDASgemm compares cuBLAS with the host BLAS for every transpose
// combination, with and without accumulation into C, with operands copied in
// and with B read from the resident parameters.
func TestCUDASgemm(t *testing.T) {
	g, err := openGPU()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("device: %s", g.name)
	c := newCUDABLAS(g)
	c.minGPU = 0
	host := hostBLAS()
	rng := rand.New(rand.NewPCG(3, 4))
	const m, n, k = 67, 45, 130
	params := randSlice(rng, 3*k*n, 1) // B's operand sits at an offset inside
	c.loadParams(params)
	for _, resident := range []bool{false, true} {
		for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
				for _, beta := range []float32{0, 1} {
					lda, ldb := k, n
					if tA == blas.Trans {
						lda = m
					}
					if tB == blas.Trans {
						ldb = k
					}
					a := randSlice(rng, m*k, 1)
					b := randSlice(rng, k*n, 1)
					if resident {
						b = params[k*n+7 : 2*k*n+7]
					}
					c0 := randSlice(rng, m*n, 1)
					want, got := append([]float32(nil), c0...), append([]float32(nil), c0...)
					host.Sgemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, beta, want, n)
					before := c.calls
					c.Sgemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, beta, got, n)
					if c.calls != before+1 {
						t.Fatalf("resident=%v tA=%v tB=%v beta=%v: product did not run on the GPU", resident, tA, tB, beta)
					}
					var worst float64
					for i := range want {
						worst = max(worst, math.Abs(float64(got[i]-want[i]))/max(1, math.Abs(float64(want[i]))))
					}
					if worst > 1e-5 {
						t.Errorf("resident=%v tA=%v tB=%v beta=%v: max relative difference %.3g, want <= 1e-5", resident, tA, tB, beta, worst)
					}
				}
			}
		}
	}
	// A strided view is the host's.
	a, b, cm := randSlice(rng, m*(k+1), 1), randSlice(rng, k*n, 1), make([]float32, m*n)
	before := c.calls
	c.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k+1, b, n, 0, cm, n)
	if c.calls != before {
		t.Error("a strided operand went to the GPU")
	}
}

// TestCUDAMatchesCPU runs one MLM forward and backward pass of the same small
// model and batch through cuBLAS and through the host BLAS, dropout included,
// and compares the loss and every parameter's gradient.
func TestCUDAMatchesCPU(t *testing.T) {
	cfg := Config{Vocab: 300, Hidden: 64, Layers: 2, Heads: 4, MaxLen: 48, Segments: 3, Dropout: 0.1, LNEps: 1e-5}
	run := func(onGPU bool) (float64, []float32, int) {
		m, err := New(cfg, 7)
		if err != nil {
			t.Fatal(err)
		}
		var c *cudaBLAS
		if onGPU {
			c = cudaOf(t, m)
		} else {
			m.blas = hostBLAS()
		}
		rng := rand.New(rand.NewPCG(5, 6))
		b := tinyBatch(rng, cfg, 6, 40)
		mk := MaskTokens(b, cfg.Vocab, rng)
		m.ZeroGrad()
		loss := m.MLM(b, mk, 1, true, rand.New(rand.NewPCG(8, 9)))
		calls := 0
		if c != nil {
			calls = c.calls
		}
		return loss, append([]float32(nil), m.grads...), calls
	}
	lossCPU, gradCPU, _ := run(false)
	lossGPU, gradGPU, calls := run(true)
	// Per block: 4 products forward, 8 backward; the decoder: 1 forward, 2 backward.
	if want := cfg.Layers*12 + 3; calls != want {
		t.Errorf("%d products ran on the GPU, want %d", calls, want)
	}
	if d := math.Abs(lossGPU-lossCPU) / lossCPU; d > 1e-5 {
		t.Errorf("loss: GPU %.7g, CPU %.7g (relative difference %.2g, want <= 1e-5)", lossGPU, lossCPU, d)
	}
	t.Logf("loss: GPU %.7g, CPU %.7g", lossGPU, lossCPU)
	for _, ts := range cfg.layout() {
		g, w := gradGPU[ts.off:ts.off+ts.size()], gradCPU[ts.off:ts.off+ts.size()]
		var worst, scale float64
		for i := range w {
			worst = max(worst, math.Abs(float64(g[i]-w[i])))
			scale = max(scale, math.Abs(float64(w[i])))
		}
		// Summation order differs between cuBLAS and the host BLAS; float32
		// rounding bounds the difference relative to the tensor's largest
		// gradient.
		if worst > 1e-4*max(scale, 1e-3) {
			t.Errorf("%s: max |GPU-CPU| gradient %.3g, largest gradient %.3g", ts.name, worst, scale)
		}
	}
}

// TestCUDAModelGrad is the finite-difference check of TestModelGrad with every
// contiguous product on the GPU: the device path's gradients are the loss's.
func TestCUDAModelGrad(t *testing.T) {
	cfg := tinyConfig()
	m, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := cudaOf(t, m)
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range m.params {
		m.params[i] += float32(rng.NormFloat64() * 0.3)
	}
	b := tinyBatch(rng, cfg, 3, 7)
	mk := MaskTokens(b, cfg.Vocab, rng)
	loss := func() float64 { return m.MLM(b, mk, 1, false, nil) }
	m.ZeroGrad()
	m.MLM(b, mk, 1, true, nil)
	if c.calls == 0 {
		t.Fatal("no product ran on the GPU")
	}
	grads := append([]float32(nil), m.grads...)
	for _, ts := range cfg.layout() {
		x := m.params[ts.off : ts.off+ts.size()]
		checkGrad(t, ts.name, x, grads[ts.off:ts.off+ts.size()], loss)
	}
}
