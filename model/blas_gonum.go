//go:build !openblas

package model

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLASName names the BLAS this build multiplies matrices with.
const BLASName = "gonum"

// defaultBLAS is gonum's pure-Go BLAS, the fallback where OpenBLAS is not linked.
func defaultBLAS() blas.Float32 { return gonum.Implementation{} }
