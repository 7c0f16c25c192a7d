package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmSplit: the row-split product over several workers equals one BLAS call,
// for every transpose combination, with strided operands and accumulation.
func TestGemmSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const rows, cols, k, pad = 130, 70, 90, 3
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			lda, ldb := k+pad, cols+pad
			aRows, bRows := rows, k
			if tA {
				lda, aRows = rows+pad, k
			}
			if tB {
				ldb, bRows = k+pad, cols
			}
			a, b := randSlice(rng, aRows*lda, 1), randSlice(rng, bRows*ldb, 1)
			c0 := randSlice(rng, rows*(cols+pad), 1)
			want, got := append([]float32(nil), c0...), append([]float32(nil), c0...)
			one := &Model{blas: defaultBLAS(), pool: pool{workers: 1}}
			many := &Model{blas: defaultBLAS(), pool: pool{workers: 3}}
			one.gemm1(tA, tB, rows, cols, k, 0.5, a, lda, b, ldb, 1, want, cols+pad)
			many.gemm(tA, tB, rows, cols, k, 0.5, a, lda, b, ldb, 1, got, cols+pad)
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-4*max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("tA=%v tB=%v: element %d: split %g, single %g", tA, tB, i, got[i], want[i])
				}
			}
		}
	}
}
