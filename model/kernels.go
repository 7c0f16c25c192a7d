package model

import (
	"math"
	"sync"
)

// The kernels below are the hand-written, fused forward and backward passes of the
// encoder's non-matmul ops. Each works on row-major float32 buffers owned by the
// caller, so that a training step allocates nothing.

// pool runs fn over [0, n) split into at most workers contiguous chunks.
type pool struct{ workers int }

func (p pool) run(n int, fn func(w, lo, hi int)) {
	w := p.workers
	if w > n {
		w = n
	}
	if w <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for i := 0; i < w; i++ {
		lo, hi := i*chunk, min((i+1)*chunk, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	wg.Wait()
}

// layerNorm normalises each of the rows of x (width h) into y and records each
// row's mean and reciprocal standard deviation for the backward pass.
func layerNorm(p pool, y, x, g, b, mean, rstd []float32, h int, eps float32) {
	rows := len(x) / h
	p.run(rows, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*h:(r+1)*h], y[r*h:(r+1)*h]
			var s float32
			for _, v := range xr {
				s += v
			}
			mu := s / float32(h)
			var ss float32
			for _, v := range xr {
				d := v - mu
				ss += d * d
			}
			rs := float32(1 / math.Sqrt(float64(ss/float32(h)+eps)))
			mean[r], rstd[r] = mu, rs
			for i, v := range xr {
				yr[i] = (v-mu)*rs*g[i] + b[i]
			}
		}
	})
}

// layerNormBack writes dx (overwriting) and adds into dg and db. part holds
// p.workers*2*h scratch floats for per-worker partial sums of dg and db.
func layerNormBack(p pool, dx, dy, x, g, mean, rstd, dg, db, part []float32, h int) {
	rows := len(x) / h
	clear(part)
	p.run(rows, func(w, lo, hi int) {
		pg, pb := part[2*w*h:(2*w+1)*h], part[(2*w+1)*h:(2*w+2)*h]
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*h:(r+1)*h], dy[r*h:(r+1)*h], dx[r*h:(r+1)*h]
			mu, rs := mean[r], rstd[r]
			var sdx, sdxx float32
			for i, v := range xr {
				xh := (v - mu) * rs
				d := dyr[i] * g[i]
				sdx += d
				sdxx += d * xh
				pg[i] += dyr[i] * xh
				pb[i] += dyr[i]
			}
			sdx /= float32(h)
			sdxx /= float32(h)
			for i, v := range xr {
				xh := (v - mu) * rs
				dxr[i] = rs * (dyr[i]*g[i] - sdx - xh*sdxx)
			}
		}
	})
	for w := 0; w < p.workers; w++ {
		pg, pb := part[2*w*h:(2*w+1)*h], part[(2*w+1)*h:(2*w+2)*h]
		for i := range h {
			dg[i] += pg[i]
			db[i] += pb[i]
		}
	}
}

// GELU in its tanh form (as in BERT's and GPT-2's code):
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// biasGELU computes u = u + b (row-broadcast), g = GELU(u) and keeps tanh of
// GELU's inner term in th, so that the backward pass needs no second tanh.
func biasGELU(p pool, g, u, th, b []float32, h int) {
	rows := len(u) / h
	p.run(rows, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			ur, gr, tr := u[r*h:(r+1)*h], g[r*h:(r+1)*h], th[r*h:(r+1)*h]
			for i := range ur {
				x := ur[i] + b[i]
				ur[i] = x
				t := tanh32(geluC * (x + geluA*x*x*x))
				tr[i] = t
				gr[i] = 0.5 * x * (1 + t)
			}
		}
	})
}

// geluBack turns dg (the gradient at GELU's output) into the gradient at its
// input u, in place, from u and the th that biasGELU kept.
func geluBack(p pool, dg, u, th []float32) {
	p.run(len(u), func(_, lo, hi int) {
		dg, u, th := dg[lo:hi], u[lo:hi], th[lo:hi]
		for i, x := range u {
			t := th[i]
			dg[i] *= 0.5*(1+t) + 0.5*x*(1-t*t)*geluC*(1+3*geluA*x*x)
		}
	})
}

// tanh32 is tanh through exp32, accurate to a few float32 ulps.
func tanh32(x float32) float32 {
	if x > 9 {
		return 1
	}
	if x < -9 {
		return -1
	}
	e := exp32(2 * x)
	return (e - 1) / (e + 1)
}

// exp32 is e^x in float32 by range reduction to 2^k·e^r, |r| ≤ ln2/2, and a
// degree-6 polynomial: relative error under 4e-7, several times faster than
// math.Exp. k is rounded with the 1.5·2²³ trick rather than math.Floor.
func exp32(x float32) float32 {
	if x < -87 {
		return 0
	}
	if x > 88 {
		return float32(math.Inf(1))
	}
	const ln2hi, ln2lo, log2e, magic = 0.693359375, -2.12194440e-4, 1.44269504088896341, 12582912
	k := float32(float32(x*log2e)+magic) - magic
	r := float32(x-k*ln2hi) - k*ln2lo
	pr := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return math.Float32frombits(math.Float32bits(pr) + uint32(int32(k))<<23)
}

// addBias adds b to every row of y (width len(b)).
func addBias(y, b []float32) {
	h := len(b)
	for r := 0; r+h <= len(y); r += h {
		yr := y[r : r+h]
		for i := range yr {
			yr[i] += b[i]
		}
	}
}

// addColSums adds the column sums of dy (width len(db)) into db.
func addColSums(db, dy []float32) {
	h := len(db)
	for r := 0; r+h <= len(dy); r += h {
		dr := dy[r : r+h]
		for i := range dr {
			db[i] += dr[i]
		}
	}
}

// maskedSoftmax turns each row of s (width t) into softmax probabilities over the
// columns where keep[col] is true; masked columns get probability 0. A row with no
// kept column becomes all zeros.
func maskedSoftmax(s []float32, keep []bool, t int) {
	for r := 0; r+t <= len(s); r += t {
		row := s[r : r+t]
		mx := float32(math.Inf(-1))
		for j, v := range row {
			if keep[j] && v > mx {
				mx = v
			}
		}
		if math.IsInf(float64(mx), -1) {
			clear(row)
			continue
		}
		var sum float32
		for j, v := range row {
			if keep[j] {
				e := exp32(v - mx)
				row[j] = e
				sum += e
			} else {
				row[j] = 0
			}
		}
		inv := 1 / sum
		for j := range row {
			row[j] *= inv
		}
	}
}

// softmaxBack turns dp (gradient at the probabilities p) into the gradient at the
// scores, scaled by scale, in place: ds = scale · p ⊙ (dp − Σ dp⊙p).
func softmaxBack(dp, pr []float32, t int, scale float32) {
	for r := 0; r+t <= len(pr); r += t {
		prow, drow := pr[r:r+t], dp[r:r+t]
		var dot float32
		for j := range prow {
			dot += prow[j] * drow[j]
		}
		for j := range prow {
			drow[j] = scale * prow[j] * (drow[j] - dot)
		}
	}
}

// softmaxXent turns each row of logits (width v) into its gradient, softmax −
// one-hot(target), times weight[r], and returns Σ weight[r]·(−log p[target]).
// Rows are independent, so the work is split across the pool; part holds
// p.workers float64 partial losses.
func softmaxXent(p pool, logits []float32, target []int32, weight []float32, v int, part []float64) float64 {
	rows := len(target)
	clear(part)
	p.run(rows, func(w, lo, hi int) {
		var loss float64
		for r := lo; r < hi; r++ {
			row := logits[r*v : (r+1)*v]
			mx := row[0]
			for _, x := range row {
				mx = max(mx, x)
			}
			tg := target[r]
			zt := row[tg] - mx
			var sum float32
			for j, x := range row {
				e := exp32(x - mx)
				row[j] = e
				sum += e
			}
			loss += float64(weight[r]) * (math.Log(float64(sum)) - float64(zt))
			inv := weight[r] / sum
			for j := range row {
				row[j] *= inv
			}
			row[tg] -= weight[r]
		}
		part[w] = loss
	})
	var loss float64
	for _, l := range part {
		loss += l
	}
	return loss
}
