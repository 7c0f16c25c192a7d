//go:build openblas && !cuda

package model

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gorgonia.org/gorgonia/blase"
)

// hostBLASName names the BLAS this build multiplies matrices with on the CPU.
const hostBLASName = "openblas"

// hostBLAS is gorgonia's cgo BLAS over OpenBLAS. OpenBLAS is kept to one
// thread per call: the model splits its products across its own workers, and
// OpenBLAS threads started from several goroutines at once would contend.
func hostBLAS() blas.Float32 {
	C.openblas_set_num_threads(1)
	return blase.Implementation()
}
