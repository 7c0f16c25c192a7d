//go:build openblas

package model

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gorgonia.org/gorgonia/blase"
)

// BLASName names the BLAS this build multiplies matrices with.
const BLASName = "openblas"

// defaultBLAS is gorgonia's cgo BLAS over OpenBLAS.
func defaultBLAS() blas.Float32 { return blase.Implementation() }
