//go:build !cuda

package model

import "gonum.org/v1/gonum/blas"

// BLASName names the BLAS this build multiplies matrices with.
const BLASName = hostBLASName

// defaultBLAS is the CPU BLAS: without the cuda build tag every product runs on
// the host.
func defaultBLAS() blas.Float32 { return hostBLAS() }
