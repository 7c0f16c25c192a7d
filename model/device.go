package model

import "gonum.org/v1/gonum/blas"

// deviceBLAS is a BLAS with memory of its own, such as the cuda build's cuBLAS.
// It takes each product whole rather than split by rows across the pool's
// workers, and it keeps a copy of the parameters on the device, which Forward
// refreshes from the host before every pass so that an optimiser step, a
// checkpoint load or an Unflatten on the host is always seen. Between a Forward
// and the MLM head and Backward that follow it the parameters must not change,
// as the CPU path already requires.
type deviceBLAS interface {
	blas.Float32
	loadParams(params []float32)
}
