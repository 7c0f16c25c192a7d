//go:build cuda

package model

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/cu"
	cublas "gorgonia.org/cu/blas"
)

// The cuda build multiplies matrices on the GPU through cuBLAS (gorgonia.org/cu
// and gorgonia.org/cu/blas). What runs where:
//
//   - on the GPU: every product whose operands are whole, contiguous matrices —
//     the four dense layers of each block forward and backward (inputs, weight
//     gradients, input gradients) and the tied MLM decoder — with the
//     parameters kept resident in device memory and activations copied in and
//     results copied out around each product;
//   - on the CPU, through the host BLAS (OpenBLAS with the openblas tag, gonum
//     otherwise): the per-head attention products, whose operands are strided
//     views into the packed Q/K/V buffer, products under minGPU multiply-adds,
//     and every elementwise kernel (LayerNorm, GELU, masked softmax,
//     cross-entropy, embedding lookup), which have no GPU version.

// BLASName names the BLAS this build multiplies matrices with.
const BLASName = "cublas+" + hostBLASName

// defaultMinGPU is the size, in multiply-adds, below which a product stays on
// the host: a device round trip costs tens of microseconds, more than a small
// product takes on the CPU.
const defaultMinGPU = 1 << 18

// gpu is a CUDA context on device 0 and a cuBLAS handle made in it. CUDA binds a
// context to an OS thread, so every call runs through the cu.Ctx's Do on the
// thread cu locked for it; mu keeps the calls one at a time, because Do does not
// pair concurrent callers with their own results.
type gpu struct {
	mu     sync.Mutex
	ctx    *cu.Ctx
	cublas *cublas.Standard
	name   string
}

// openGPU opens device 0 once per process. A context costs hundreds of
// megabytes of device memory and a fraction of a second, so models share one
// rather than each making their own; this is the package's only shared value,
// set once and never changed.
var openGPU = sync.OnceValues(func() (g *gpu, err error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if n == 0 {
		return nil, errors.New("cuda: no CUDA device")
	}
	dev, err := cu.GetDevice(0)
	if err != nil {
		return nil, fmt.Errorf("cuda: device 0: %w", err)
	}
	name, err := dev.Name()
	if err != nil {
		return nil, fmt.Errorf("cuda: device 0 name: %w", err)
	}
	defer func() {
		// cu.NewContext and cublas.New report failure by panicking.
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("cuda: opening %s: %v", name, r)
		}
	}()
	g = &gpu{ctx: cu.NewContext(dev, cu.SchedAuto), name: name}
	if err := g.do(func() (err error) {
		// This runs on the context's goroutine, so its panic is caught here.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		g.cublas = cublas.New(cublas.WithContext(g.ctx))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("cuda: cuBLAS on %s: %w", name, err)
	}
	return g, nil
})

// do runs fn on the context's thread and returns its error.
func (g *gpu) do(fn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ctx.Do(fn)
}

// DeviceName names the GPU the cuda build multiplies on, or returns why there
// is none.
func DeviceName() (string, error) {
	g, err := openGPU()
	if err != nil {
		return "", err
	}
	return g.name, nil
}

// defaultBLAS is cuBLAS on device 0, with the host BLAS for what stays on the
// CPU. Without a usable device the cuda build cannot do what it was built for,
// so it stops with the reason rather than quietly running on the CPU.
func defaultBLAS() blas.Float32 {
	g, err := openGPU()
	if err != nil {
		panic(fmt.Sprintf("model: cuda build: %v", err))
	}
	return newCUDABLAS(g)
}

// cudaBLAS is a blas.Float32 whose Sgemm runs on the GPU where that pays and
// falls back to the embedded host BLAS otherwise; every other BLAS routine is
// the host's.
type cudaBLAS struct {
	blas.Float32
	gpu    *gpu
	mem    *deviceMem
	minGPU int // products of fewer multiply-adds stay on the host
	calls  int // products run on the GPU, guarded by gpu.mu

	// A product's arguments travel in job to run, a method value bound once,
	// so that sending a product to the context's thread allocates nothing.
	jobMu sync.Mutex
	job   gemmJob
	run   func() error
}

type gemmJob struct {
	tA, tB      blas.Transpose
	m, n, k     int
	alpha, beta float32
	a, b, c     []float32
}

// deviceMem is a cudaBLAS's device memory: the resident copy of the model's
// parameters and three scratch buffers for the A, B and C operands of a product.
// It is freed when its cudaBLAS is collected.
type deviceMem struct {
	params    cu.DevicePtr
	paramsLen int     // floats in params
	host      uintptr // address of the host parameters params mirrors
	slots     [3]deviceBuf
}

type deviceBuf struct {
	ptr cu.DevicePtr
	n   int // floats
}

func newCUDABLAS(g *gpu) *cudaBLAS {
	c := &cudaBLAS{Float32: hostBLAS(), gpu: g, mem: &deviceMem{}, minGPU: defaultMinGPU}
	c.run = c.runJob
	runtime.AddCleanup(c, func(m *deviceMem) { _ = g.do(m.free) }, c.mem)
	return c
}

func (m *deviceMem) free() error {
	var errs []error
	if m.params != 0 {
		errs = append(errs, cu.MemFree(m.params))
		m.params, m.paramsLen = 0, 0
	}
	for i := range m.slots {
		if m.slots[i].ptr != 0 {
			errs = append(errs, cu.MemFree(m.slots[i].ptr))
			m.slots[i] = deviceBuf{}
		}
	}
	return errors.Join(errs...)
}

// slot returns scratch buffer i with room for n floats, growing it by at least
// doubling so that length-bucketed batches settle on one allocation.
func (m *deviceMem) slot(i, n int) (cu.DevicePtr, error) {
	s := &m.slots[i]
	if s.n >= n {
		return s.ptr, nil
	}
	if s.ptr != 0 {
		if err := cu.MemFree(s.ptr); err != nil {
			return 0, err
		}
		*s = deviceBuf{}
	}
	n = max(n, 2*s.n)
	p, err := cu.MemAlloc(int64(n) * 4)
	if err != nil {
		return 0, fmt.Errorf("allocating %d MiB: %w", n*4>>20, err)
	}
	*s = deviceBuf{ptr: p, n: n}
	return p, nil
}

// operand returns x's device address: inside the resident parameters when x
// lies within them, otherwise a copy in scratch slot i.
func (m *deviceMem) operand(i int, x []float32) (cu.DevicePtr, error) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(x)))
	if m.params != 0 && p >= m.host && p+uintptr(len(x))*4 <= m.host+uintptr(m.paramsLen)*4 {
		return m.params + cu.DevicePtr(p-m.host), nil
	}
	d, err := m.slot(i, len(x))
	if err != nil {
		return 0, err
	}
	return d, cu.MemcpyHtoD(d, unsafe.Pointer(unsafe.SliceData(x)), int64(len(x))*4)
}

// loadParams copies the host parameters to the device, where the products
// that read weights find them without a copy of their own.
func (c *cudaBLAS) loadParams(params []float32) {
	if len(params) == 0 {
		return
	}
	err := c.gpu.do(func() error {
		m := c.mem
		if m.paramsLen != len(params) {
			if m.params != 0 {
				if err := cu.MemFree(m.params); err != nil {
					return err
				}
				m.params, m.paramsLen = 0, 0
			}
			p, err := cu.MemAlloc(int64(len(params)) * 4)
			if err != nil {
				return fmt.Errorf("allocating %d MiB: %w", len(params)*4>>20, err)
			}
			m.params, m.paramsLen = p, len(params)
		}
		m.host = uintptr(unsafe.Pointer(unsafe.SliceData(params)))
		return cu.MemcpyHtoD(m.params, unsafe.Pointer(unsafe.SliceData(params)), int64(len(params))*4)
	})
	if err != nil {
		panic(fmt.Sprintf("model: cuda: loading %d parameters onto %s: %v", len(params), c.gpu.name, err))
	}
}

// Sgemm is C = alpha·op(A)·op(B) + beta·C on row-major matrices. Products of
// whole, contiguous matrices of at least minGPU multiply-adds run on the GPU;
// the rest, strided views among them, run on the host BLAS. A device failure
// panics: blas.Float32 has no error to return, and a half-computed product
// must not pass for a result.
func (c *cudaBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cm []float32, ldc int) {
	ra, wa := m, k
	if tA != blas.NoTrans {
		ra, wa = k, m
	}
	rb, wb := k, n
	if tB != blas.NoTrans {
		rb, wb = n, k
	}
	if m == 0 || n == 0 || k == 0 || m*n*k < c.minGPU || lda != wa || ldb != wb || ldc != n ||
		len(a) < ra*wa || len(b) < rb*wb || len(cm) < m*n {
		c.Float32.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
		return
	}
	c.jobMu.Lock()
	defer c.jobMu.Unlock()
	c.job = gemmJob{tA: tA, tB: tB, m: m, n: n, k: k, alpha: alpha, beta: beta, a: a[:ra*wa], b: b[:rb*wb], c: cm[:m*n]}
	err := c.gpu.do(c.run)
	c.job = gemmJob{} // hold no host memory between products
	if err != nil {
		panic(fmt.Sprintf("model: cuda sgemm %d×%d×%d on %s: %v", m, n, k, c.gpu.name, err))
	}
}

// runJob runs c.job on the context's thread: operands in, cublasSgemm, C out.
func (c *cudaBLAS) runJob() error {
	j := &c.job
	da, err := c.mem.operand(0, j.a)
	if err != nil {
		return fmt.Errorf("operand A: %w", err)
	}
	db, err := c.mem.operand(1, j.b)
	if err != nil {
		return fmt.Errorf("operand B: %w", err)
	}
	dc, err := c.mem.slot(2, len(j.c))
	if err != nil {
		return fmt.Errorf("operand C: %w", err)
	}
	host := unsafe.Pointer(unsafe.SliceData(j.c))
	if j.beta != 0 {
		if err := cu.MemcpyHtoD(dc, host, int64(len(j.c))*4); err != nil {
			return fmt.Errorf("operand C: %w", err)
		}
	}
	// cuBLAS is column-major, and a row-major matrix read column-major is its
	// transpose: row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ,
	// the same call with A and B swapped. Every operand is contiguous, so each
	// leading dimension is its row width.
	lda, ldb := j.k, j.n
	if j.tA != blas.NoTrans {
		lda = j.m
	}
	if j.tB != blas.NoTrans {
		ldb = j.k
	}
	c.gpu.cublas.Sgemm(j.tB, j.tA, j.n, j.m, j.k, j.alpha, devSlice(db, len(j.b)), ldb,
		devSlice(da, len(j.a)), lda, j.beta, devSlice(dc, len(j.c)), j.n)
	if err := c.gpu.cublas.Err(); err != nil {
		return fmt.Errorf("cublasSgemm: %w", err)
	}
	c.calls++
	return cu.MemcpyDtoH(host, dc, int64(len(j.c))*4)
}

// devSlice views n floats of device memory as a Go slice, the form cu/blas takes
// its operands in: it hands the first element's address to cuBLAS and never
// reads or writes the slice from Go, and neither does this package.
func devSlice(p cu.DevicePtr, n int) []float32 {
	up := *(*unsafe.Pointer)(unsafe.Pointer(&p))
	return unsafe.Slice((*float32)(up), n)
}
