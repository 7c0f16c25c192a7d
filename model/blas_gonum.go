//go:build !openblas

package model

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// hostBLASName names the BLAS this build multiplies matrices with on the CPU.
const hostBLASName = "gonum"

// hostBLAS is gonum's pure-Go BLAS, the fallback where OpenBLAS is not linked.
func hostBLAS() blas.Float32 { return gonum.Implementation{} }
