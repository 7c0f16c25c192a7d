//go:build openblas

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

// BLASName names the BLAS this build multiplies matrices with.
const BLASName = "openblas"

// defaultBLAS is gorgonia's cgo BLAS over OpenBLAS. OpenBLAS is kept to one
// thread per call: the model splits its products across its own workers, and
// OpenBLAS threads started from several goroutines at once would contend.
func defaultBLAS() blas.Float32 {
	C.openblas_set_num_threads(1)
	return blase.Implementation()
}
