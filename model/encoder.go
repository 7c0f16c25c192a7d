package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/tensor"
)

// Model is an encoder and its tied MLM head. Parameters and their gradients live
// in two flat vectors in the order that Config.layout documents; every named
// tensor is a view into them. A Model is not safe for concurrent use.
type Model struct {
	cfg    Config
	params []float32
	grads  []float32
	w, g   weights
	blas   blas.Float32
	pool   pool
	ws     *workspace
}

// New returns a model with BERT's initialisation: weights and embeddings drawn
// from N(0, 0.02²), LayerNorm gains 1, biases 0.
func New(cfg Config, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.Params()
	m := &Model{cfg: cfg, params: make([]float32, n), grads: make([]float32, n),
		blas: defaultBLAS(), pool: pool{workers: runtime.GOMAXPROCS(0)}}
	m.w, m.g = cfg.view(m.params), cfg.view(m.grads)
	rng := rand.New(rand.NewPCG(seed, 0x6d6f64656c))
	for _, t := range cfg.layout() {
		v := m.params[t.off : t.off+t.size()]
		switch {
		case len(t.shape) == 2 || t.name == "embeddings.age.weight":
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.02)
			}
		case strings.HasSuffix(t.name, "ln1.weight") || strings.HasSuffix(t.name, "ln2.weight") || t.name == "final_ln.weight":
			for i := range v {
				v[i] = 1
			}
		}
	}
	return m, nil
}

// Config returns the model's shape.
func (m *Model) Config() Config { return m.cfg }

// SetThreads sets how many goroutines the elementwise kernels and the attention
// heads use (default GOMAXPROCS).
func (m *Model) SetThreads(n int) { m.pool.workers = max(1, n) }

// Params returns the flat parameter vector itself (not a copy).
func (m *Model) Params() []float32 { return m.params }

// Grads returns the flat gradient vector itself (not a copy), in Params' order.
func (m *Model) Grads() []float32 { return m.grads }

// ZeroGrad clears the accumulated gradients.
func (m *Model) ZeroGrad() { clear(m.grads) }

// Tensor returns the named parameter as a gorgonia tensor sharing the model's
// memory, or an error naming the unknown tensor.
func (m *Model) Tensor(name string) (*tensor.Dense, error) {
	for _, t := range m.cfg.layout() {
		if t.name == name {
			return tensor.New(tensor.WithShape(t.shape...), tensor.WithBacking(m.params[t.off:t.off+t.size()])), nil
		}
	}
	return nil, fmt.Errorf("model: no tensor named %q", name)
}

// workspace holds every activation a training step keeps for its backward pass,
// sized for one batch shape and reused while the shape stays the same.
type workspace struct {
	b, t int // the current batch shape
	// capacities: tokens, B·T² attention cells per head, longest sequence
	capN, capBTT, capT int
	dropped            bool    // the last Forward drew dropout masks
	keep               []bool  // token is not padding
	timeB, gapB        []int32 // time embedding rows, nil without them
	embDrop            []float32
	layers             []layerActs
	xout               []float32 // residual stream after the last block
	meanF              []float32
	rstdF              []float32
	hidden             []float32 // after the final LayerNorm
	tmp                []float32
	// gradient scratch
	dx, dtmp, dh, dqkv, du []float32
	dp                     [][]float32 // per worker, t*t
	lnPart                 []float32
	headPart               []float64
	// MLM head scratch, grown as needed
	hm, logits, dhm, wts []float32
}

type layerActs struct {
	xin, mean1, rstd1, h1, qkv, att, ctx, drop1 []float32
	xmid, mean2, rstd2, h2, u, th, gact, drop2  []float32
}

func (m *Model) workspace(b, t int, train bool) *workspace {
	needDrop := train && m.cfg.Dropout > 0
	ws := m.ws
	if ws == nil || b*t > ws.capN || b*t*t > ws.capBTT || t > ws.capT || (needDrop && ws.embDrop == nil) {
		// Grow to cover this shape and every shape before it, so that
		// length-bucketed batches settle on one allocation.
		capN, capBTT, capT := b*t, b*t*t, t
		if ws != nil {
			capN, capBTT, capT = max(capN, ws.capN), max(capBTT, ws.capBTT), max(capT, ws.capT)
			needDrop = needDrop || ws.embDrop != nil
		}
		m.ws = nil // let the old buffers go before allocating the new ones
		ws = m.allocWorkspace(capN, capBTT, capT, needDrop)
		m.ws = ws
	}
	ws.resize(m.cfg, b, t)
	return ws
}

// allocWorkspace allocates buffers for up to n tokens, btt = B·T² attention
// cells per head and sequences of up to t tokens.
func (m *Model) allocWorkspace(n, btt, t int, dropout bool) *workspace {
	c := m.cfg
	h, nh := c.Hidden, c.Heads
	f := func(k int) []float32 { return make([]float32, k) }
	drop := func() []float32 {
		if dropout {
			return f(n * h)
		}
		return nil
	}
	ws := &workspace{capN: n, capBTT: btt, capT: t, keep: make([]bool, n), embDrop: drop(),
		xout: f(n * h), meanF: f(n), rstdF: f(n), hidden: f(n * h), tmp: f(n * h),
		dx: f(n * h), dtmp: f(n * h), dh: f(n * h), dqkv: f(n * 3 * h), du: f(n * MLPRatio * h),
		lnPart: f(2 * m.pool.workers * h), headPart: make([]float64, m.pool.workers)}
	if c.TimeBuckets > 0 {
		ws.timeB, ws.gapB = make([]int32, n), make([]int32, n)
	}
	ws.dp = make([][]float32, m.pool.workers)
	for i := range ws.dp {
		ws.dp[i] = f(t * t)
	}
	ws.layers = make([]layerActs, c.Layers)
	for l := range ws.layers {
		ws.layers[l] = layerActs{xin: f(n * h), mean1: f(n), rstd1: f(n), h1: f(n * h),
			qkv: f(n * 3 * h), att: f(nh * btt), ctx: f(n * h), drop1: drop(),
			xmid: f(n * h), mean2: f(n), rstd2: f(n), h2: f(n * h),
			u: f(n * MLPRatio * h), th: f(n * MLPRatio * h), gact: f(n * MLPRatio * h), drop2: drop()}
	}
	return ws
}

// resize sets every buffer's length for a b×t batch within the capacity.
func (ws *workspace) resize(c Config, b, t int) {
	n, h, f := b*t, c.Hidden, c.Hidden*MLPRatio
	rs := func(s []float32, k int) []float32 {
		if s == nil {
			return nil
		}
		return s[:k]
	}
	ws.b, ws.t = b, t
	ws.keep = ws.keep[:n]
	if ws.timeB != nil {
		ws.timeB, ws.gapB = ws.timeB[:n], ws.gapB[:n]
	}
	ws.embDrop = rs(ws.embDrop, n*h)
	ws.xout, ws.meanF, ws.rstdF, ws.hidden, ws.tmp = ws.xout[:n*h], ws.meanF[:n], ws.rstdF[:n], ws.hidden[:n*h], ws.tmp[:n*h]
	ws.dx, ws.dtmp, ws.dh, ws.dqkv, ws.du = ws.dx[:n*h], ws.dtmp[:n*h], ws.dh[:n*h], ws.dqkv[:n*3*h], ws.du[:n*f]
	for i := range ws.dp {
		ws.dp[i] = ws.dp[i][:t*t]
	}
	for l := range ws.layers {
		la := &ws.layers[l]
		la.xin, la.mean1, la.rstd1, la.h1 = la.xin[:n*h], la.mean1[:n], la.rstd1[:n], la.h1[:n*h]
		la.qkv, la.att, la.ctx, la.drop1 = la.qkv[:n*3*h], la.att[:b*c.Heads*t*t], la.ctx[:n*h], rs(la.drop1, n*h)
		la.xmid, la.mean2, la.rstd2, la.h2 = la.xmid[:n*h], la.mean2[:n], la.rstd2[:n], la.h2[:n*h]
		la.u, la.th, la.gact, la.drop2 = la.u[:n*f], la.th[:n*f], la.gact[:n*f], rs(la.drop2, n*h)
	}
}

// gemm is C = alpha·op(A)·op(B) + beta·C on row-major buffers, split by rows of
// C across the pool's workers, each calling a single-threaded BLAS: one level of
// parallelism that we control, rather than BLAS threads contending with ours.
func (m *Model) gemm(tA, tB bool, rows, cols, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w := m.pool.workers
	if _, dev := m.blas.(deviceBLAS); dev || w <= 1 || rows < 2*w || rows*cols*k < 1<<18 {
		m.gemm1(tA, tB, rows, cols, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	chunk := (rows + w - 1) / w
	m.pool.run(w, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			r0, r1 := i*chunk, min((i+1)*chunk, rows)
			if r0 >= r1 {
				continue
			}
			ao := r0 * lda
			if tA {
				ao = r0
			}
			m.gemm1(tA, tB, r1-r0, cols, k, alpha, a[ao:], lda, b, ldb, beta, c[r0*ldc:], ldc)
		}
	})
}

// gemm1 is one BLAS call.
func (m *Model) gemm1(tA, tB bool, rows, cols, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	m.blas.Sgemm(ta, tb, rows, cols, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// linear is y = x·w + b for n rows of width in, out.
func (m *Model) linear(n, in, out int, x, w, b, y []float32) {
	m.gemm(false, false, n, out, in, 1, x, in, w, out, 0, y, out)
	addBias(y, b)
}

// linearBack adds the gradients of y = x·w + b at w and b to dw and db, and
// writes the gradient at x to dx, given dy.
func (m *Model) linearBack(n, in, out int, x, dy, w, dw, db, dx []float32) {
	m.gemm(true, false, in, out, n, 1, x, in, dy, out, 1, dw, out)
	addColSums(db, dy)
	m.gemm(false, true, n, in, out, 1, dy, out, w, out, 0, dx, in)
}

func addInto(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}

// fillDropout draws a mask of 0 and 1/(1-p) values.
func fillDropout(mask []float32, p float32, rng *rand.Rand) {
	thresh := uint64(p * 65536)
	keep := 1 / (1 - p)
	for i := 0; i < len(mask); i += 4 {
		r := rng.Uint64()
		for j := i; j < min(i+4, len(mask)); j++ {
			if r&0xffff < thresh {
				mask[j] = 0
			} else {
				mask[j] = keep
			}
			r >>= 16
		}
	}
}

func mulInto(dst, a, mask []float32) {
	for i := range dst {
		dst[i] = a[i] * mask[i]
	}
}

// Forward runs the encoder over b and returns the final hidden states, B·T rows of
// Hidden floats, valid until the next call. With train set, dropout is drawn from
// rng and the activations are kept for Backward.
func (m *Model) Forward(b *Batch, train bool, rng *rand.Rand) []float32 {
	c := m.cfg
	h, n := c.Hidden, b.B*b.T
	ws := m.workspace(b.B, b.T, train)
	dropping := train && c.Dropout > 0
	ws.dropped = dropping
	if d, ok := m.blas.(deviceBLAS); ok {
		d.loadParams(m.params)
	}
	for i, tok := range b.Tokens {
		ws.keep[i] = tok != PAD
	}
	x := ws.xout
	if c.Layers > 0 {
		x = ws.layers[0].xin
	}
	w := &m.w
	for r := range n {
		xr := x[r*h : (r+1)*h]
		tk, ps, sg := int(b.Tokens[r]), int(b.Positions[r]), int(b.Segments[r])
		te, pe, se := w.tok[tk*h:(tk+1)*h], w.pos[ps*h:(ps+1)*h], w.seg[sg*h:(sg+1)*h]
		age := b.Ages[r] / 100
		for i := range xr {
			xr[i] = te[i] + pe[i] + se[i] + age*w.ageW[i] + w.ageB[i]
		}
	}
	if c.TimeBuckets > 0 {
		// Added after the sum above, not inside it, so that a model without time
		// embeddings computes exactly what it did before they existed.
		timeBuckets(b, c.TimeBuckets, ws.timeB, ws.gapB)
		for r := range n {
			xr := x[r*h : (r+1)*h]
			tb, gb := int(ws.timeB[r]), int(ws.gapB[r])
			tt, gg := w.time[tb*h:(tb+1)*h], w.gap[gb*h:(gb+1)*h]
			for i := range xr {
				xr[i] += tt[i] + gg[i]
			}
		}
	}
	if dropping {
		fillDropout(ws.embDrop, c.Dropout, rng)
		mulInto(x, x, ws.embDrop)
	}
	for l := range c.Layers {
		la, lw := &ws.layers[l], &w.layers[l]
		next := ws.xout
		if l+1 < c.Layers {
			next = ws.layers[l+1].xin
		}
		m.block(b, la, lw, next, dropping, rng)
	}
	layerNorm(m.pool, ws.hidden, ws.xout, w.lnfG, w.lnfB, ws.meanF, ws.rstdF, h, c.LNEps)
	return ws.hidden
}

func (m *Model) block(b *Batch, la *layerActs, lw *layerWeights, next []float32, dropping bool, rng *rand.Rand) {
	c, ws := m.cfg, m.ws
	h, n, f := c.Hidden, b.B*b.T, c.Hidden*MLPRatio
	layerNorm(m.pool, la.h1, la.xin, lw.ln1G, lw.ln1B, la.mean1, la.rstd1, h, c.LNEps)
	m.linear(n, h, 3*h, la.h1, lw.wqkv, lw.bqkv, la.qkv)
	m.attention(b, la)
	m.linear(n, h, h, la.ctx, lw.wo, lw.bo, ws.tmp)
	if dropping {
		fillDropout(la.drop1, c.Dropout, rng)
		mulInto(ws.tmp, ws.tmp, la.drop1)
	}
	for i := range la.xmid {
		la.xmid[i] = la.xin[i] + ws.tmp[i]
	}
	layerNorm(m.pool, la.h2, la.xmid, lw.ln2G, lw.ln2B, la.mean2, la.rstd2, h, c.LNEps)
	m.gemm(false, false, n, f, h, 1, la.h2, h, lw.w1, f, 0, la.u, f) // bias added with GELU
	biasGELU(m.pool, la.gact, la.u, la.th, lw.b1, f)
	m.linear(n, f, h, la.gact, lw.w2, lw.b2, ws.tmp)
	if dropping {
		fillDropout(la.drop2, c.Dropout, rng)
		mulInto(ws.tmp, ws.tmp, la.drop2)
	}
	for i := range next {
		next[i] = la.xmid[i] + ws.tmp[i]
	}
}

// attention computes softmax(QKᵀ/√d + padding mask)·V for every sequence and head,
// keeping the probabilities in la.att for the backward pass.
func (m *Model) attention(b *Batch, la *layerActs) {
	c := m.cfg
	h, nh, t := c.Hidden, c.Heads, b.T
	dh := h / nh
	scale := float32(1 / math.Sqrt(float64(dh)))
	m.pool.run(b.B*nh, func(_, lo, hi int) {
		for bh := lo; bh < hi; bh++ {
			s, hd := bh/nh, bh%nh
			base := s * t
			q := la.qkv[base*3*h+hd*dh:]
			k := la.qkv[base*3*h+h+hd*dh:]
			v := la.qkv[base*3*h+2*h+hd*dh:]
			p := la.att[bh*t*t : (bh+1)*t*t]
			m.gemm1(false, true, t, t, dh, scale, q, 3*h, k, 3*h, 0, p, t)
			maskedSoftmax(p, m.ws.keep[base:base+t], t)
			m.gemm1(false, false, t, dh, t, 1, p, t, v, 3*h, 0, la.ctx[base*h+hd*dh:], h)
		}
	})
}

// attentionBack turns dctx into dqkv (overwritten) for every sequence and head.
func (m *Model) attentionBack(b *Batch, la *layerActs, dctx, dqkv []float32) {
	c, ws := m.cfg, m.ws
	h, nh, t := c.Hidden, c.Heads, b.T
	dh := h / nh
	scale := float32(1 / math.Sqrt(float64(dh)))
	m.pool.run(b.B*nh, func(w, lo, hi int) {
		dp := ws.dp[w]
		for bh := lo; bh < hi; bh++ {
			s, hd := bh/nh, bh%nh
			base := s * t
			off := base*3*h + hd*dh
			q, k, v := la.qkv[off:], la.qkv[off+h:], la.qkv[off+2*h:]
			dq, dk, dv := dqkv[off:], dqkv[off+h:], dqkv[off+2*h:]
			do := dctx[base*h+hd*dh:]
			p := la.att[bh*t*t : (bh+1)*t*t]
			m.gemm1(false, true, t, t, dh, 1, do, h, v, 3*h, 0, dp, t)
			m.gemm1(true, false, t, dh, t, 1, p, t, do, h, 0, dv, 3*h)
			softmaxBack(dp, p, t, scale)
			m.gemm1(false, false, t, dh, t, 1, dp, t, k, 3*h, 0, dq, 3*h)
			m.gemm1(true, false, t, dh, t, 1, dp, t, q, 3*h, 0, dk, 3*h)
		}
	})
}

// Backward adds to the gradients the effect of dhidden, the gradient of the loss
// at Forward's output. It must follow a Forward with train set on the same batch.
func (m *Model) Backward(b *Batch, dhidden []float32) {
	c, ws, w, g := m.cfg, m.ws, &m.w, &m.g
	h, n, f := c.Hidden, b.B*b.T, c.Hidden*MLPRatio
	layerNormBack(m.pool, ws.dx, dhidden, ws.xout, w.lnfG, ws.meanF, ws.rstdF, g.lnfG, g.lnfB, ws.lnPart, h)
	for l := c.Layers - 1; l >= 0; l-- {
		la, lw, lg := &ws.layers[l], &w.layers[l], &g.layers[l]
		// next = xmid + drop2(fc2(gelu(fc1(ln2(xmid)))))
		dm := ws.dx
		if ws.dropped {
			mulInto(ws.tmp, ws.dx, la.drop2)
			dm = ws.tmp
		}
		m.linearBack(n, f, h, la.gact, dm, lw.w2, lg.w2, lg.b2, ws.du)
		geluBack(m.pool, ws.du, la.u, la.th)
		m.linearBack(n, h, f, la.h2, ws.du, lw.w1, lg.w1, lg.b1, ws.dh)
		layerNormBack(m.pool, ws.dtmp, ws.dh, la.xmid, lw.ln2G, la.mean2, la.rstd2, lg.ln2G, lg.ln2B, ws.lnPart, h)
		addInto(ws.dx, ws.dtmp)
		// xmid = xin + drop1(out(attention(ln1(xin))))
		da := ws.dx
		if ws.dropped {
			mulInto(ws.tmp, ws.dx, la.drop1)
			da = ws.tmp
		}
		m.linearBack(n, h, h, la.ctx, da, lw.wo, lg.wo, lg.bo, ws.dh)
		m.attentionBack(b, la, ws.dh, ws.dqkv)
		m.linearBack(n, h, 3*h, la.h1, ws.dqkv, lw.wqkv, lg.wqkv, lg.bqkv, ws.dh)
		layerNormBack(m.pool, ws.dtmp, ws.dh, la.xin, lw.ln1G, la.mean1, la.rstd1, lg.ln1G, lg.ln1B, ws.lnPart, h)
		addInto(ws.dx, ws.dtmp)
	}
	dx := ws.dx
	if ws.dropped {
		mulInto(dx, dx, ws.embDrop)
	}
	for r := range n {
		dr := dx[r*h : (r+1)*h]
		tk, ps, sg := int(b.Tokens[r]), int(b.Positions[r]), int(b.Segments[r])
		te, pe, se := g.tok[tk*h:(tk+1)*h], g.pos[ps*h:(ps+1)*h], g.seg[sg*h:(sg+1)*h]
		age := b.Ages[r] / 100
		for i, d := range dr {
			te[i] += d
			pe[i] += d
			se[i] += d
			g.ageW[i] += age * d
			g.ageB[i] += d
		}
		if c.TimeBuckets > 0 {
			tb, gb := int(ws.timeB[r]), int(ws.gapB[r])
			tt, gg := g.time[tb*h:(tb+1)*h], g.gap[gb*h:(gb+1)*h]
			for i, d := range dr {
				tt[i] += d
				gg[i] += d
			}
		}
	}
}
