//go:build cuda && openblas

package model

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k,
	float alpha, const float *a, int lda, const float *b, int ldb,
	float beta, float *c, int ldc);
*/
import "C"

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// hostBLASName names the BLAS this build multiplies matrices with on the CPU.
const hostBLASName = "openblas"

// hostBLAS is OpenBLAS's sgemm called directly, with gonum for the routines the
// model never calls. The cuda build cannot link gorgonia's blase: its C work
// queue and gorgonia.org/cu's define the same global symbols (process,
// processFn). OpenBLAS is kept to one thread per call, as in the openblas build.
func hostBLAS() blas.Float32 {
	C.openblas_set_num_threads(1)
	return cblas{}
}

type cblas struct{ gonum.Implementation }

// CBLAS's enumerations.
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

// Sgemm is C = alpha·op(A)·op(B) + beta·C on row-major matrices, checked as
// gonum checks its arguments, since the C call cannot.
func (c cblas) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cm []float32, ldc int) {
	if m == 0 || n == 0 || k == 0 {
		c.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
		return
	}
	ta, ra, wa := cblasNoTrans, m, k
	if tA != blas.NoTrans {
		ta, ra, wa = cblasTrans, k, m
	}
	tb, rb, wb := cblasNoTrans, k, n
	if tB != blas.NoTrans {
		tb, rb, wb = cblasTrans, n, k
	}
	if m < 0 || n < 0 || k < 0 || lda < max(1, wa) || ldb < max(1, wb) || ldc < max(1, n) ||
		len(a) < (ra-1)*lda+wa || len(b) < (rb-1)*ldb+wb || len(cm) < (m-1)*ldc+n {
		panic(fmt.Sprintf("blas: sgemm %d×%d×%d: bad shape or short slice (lda %d, ldb %d, ldc %d; len %d, %d, %d)",
			m, n, k, lda, ldb, ldc, len(a), len(b), len(cm)))
	}
	C.cblas_sgemm(cblasRowMajor, C.int(ta), C.int(tb), C.int(m), C.int(n), C.int(k),
		C.float(alpha), (*C.float)(&a[0]), C.int(lda), (*C.float)(&b[0]), C.int(ldb),
		C.float(beta), (*C.float)(&cm[0]), C.int(ldc))
}
