package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Gradient checks compare each hand-written backward pass against central finite
// differences of a scalar loss L = Σ r ⊙ out with fixed random r, evaluated in
// float32 with the loss summed in float64. Step eps = 3e-3 (float32 rounding makes
// smaller steps noisier than the O(eps²) truncation error they save). The check
// passes when max|analytic − numeric| ≤ gradTol · max(1, max|numeric|).
const (
	gradEps = 3e-3
	gradTol = 1e-3
)

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkGrad perturbs each element of x in turn and compares loss's central
// difference with analytic[i].
func checkGrad(t *testing.T, name string, x, analytic []float32, loss func() float64) {
	t.Helper()
	var maxErr, maxNum float64
	for i := range x {
		orig := x[i]
		x[i] = orig + gradEps
		lp := loss()
		x[i] = orig - gradEps
		lm := loss()
		x[i] = orig
		num := (lp - lm) / (2 * gradEps)
		maxErr = max(maxErr, math.Abs(num-float64(analytic[i])))
		maxNum = max(maxNum, math.Abs(num))
	}
	if maxErr > gradTol*max(1, maxNum) {
		t.Errorf("%s: max |analytic-numeric| = %.3g (max |numeric| %.3g), want <= %.3g", name, maxErr, maxNum, gradTol*max(1, maxNum))
	}
	t.Logf("%s: max abs error %.2e over %d elements (max |grad| %.2e)", name, maxErr, len(x), maxNum)
}

func TestLayerNormGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, h = 3, 8
	for _, workers := range []int{1, 2} {
		p := pool{workers: workers}
		x, g, b := randSlice(rng, rows*h, 1), randSlice(rng, h, 1), randSlice(rng, h, 1)
		r := randSlice(rng, rows*h, 1)
		y, mean, rstd := make([]float32, rows*h), make([]float32, rows), make([]float32, rows)
		loss := func() float64 {
			layerNorm(p, y, x, g, b, mean, rstd, h, 1e-5)
			return dot64(y, r)
		}
		loss()
		dx, dg, db := make([]float32, rows*h), make([]float32, h), make([]float32, h)
		layerNormBack(p, dx, r, x, g, mean, rstd, dg, db, make([]float32, 2*workers*h), h)
		checkGrad(t, "layernorm dx", x, dx, loss)
		checkGrad(t, "layernorm dgain", g, dg, loss)
		checkGrad(t, "layernorm dbias", b, db, loss)
	}
}

func TestGELUGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, h = 4, 6
	u0 := randSlice(rng, rows*h, 2)
	bias := randSlice(rng, h, 0.5)
	r := randSlice(rng, rows*h, 1)
	u, g, th := make([]float32, rows*h), make([]float32, rows*h), make([]float32, rows*h)
	p := pool{workers: 2}
	loss := func() float64 {
		copy(u, u0)
		biasGELU(p, g, u, th, bias, h)
		return dot64(g, r)
	}
	loss()
	du := append([]float32(nil), r...)
	geluBack(p, du, u, th)
	checkGrad(t, "gelu", u0, du, loss)
	// Known values of the tanh form.
	for _, c := range []struct{ x, want float64 }{{0, 0}, {1, 0.8411920}, {-1, -0.1588080}, {3, 2.9963627}} {
		uu, gg := []float32{float32(c.x)}, []float32{0}
		biasGELU(pool{workers: 1}, gg, uu, []float32{0}, []float32{0}, 1)
		if math.Abs(float64(gg[0])-c.want) > 1e-5 {
			t.Errorf("gelu(%g) = %g, want %g", c.x, gg[0], c.want)
		}
	}
}

func TestMaskedSoftmaxGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 5
	keep := []bool{true, true, false, true, false}
	s0 := randSlice(rng, n*n, 1)
	r := randSlice(rng, n*n, 1)
	s := make([]float32, n*n)
	loss := func() float64 {
		copy(s, s0)
		maskedSoftmax(s, keep, n)
		return dot64(s, r)
	}
	loss()
	for i := range n {
		var sum float32
		for j := range n {
			if !keep[j] && s[i*n+j] != 0 {
				t.Fatalf("masked column %d has probability %g", j, s[i*n+j])
			}
			sum += s[i*n+j]
		}
		if math.Abs(float64(sum)-1) > 1e-6 {
			t.Fatalf("row %d sums to %g", i, sum)
		}
	}
	ds := append([]float32(nil), r...)
	softmaxBack(ds, s, n, 1)
	checkGrad(t, "masked softmax", s0, ds, loss)
}

func TestSoftmaxXentGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const rows, v = 3, 7
	z0 := randSlice(rng, rows*v, 2)
	target := []int32{2, 0, 6}
	weight := []float32{0.5, 1, 2}
	z := make([]float32, rows*v)
	p := pool{workers: 2}
	part := make([]float64, 2)
	loss := func() float64 {
		copy(z, z0)
		return softmaxXent(p, z, target, weight, v, part)
	}
	// Reference loss computed directly in float64.
	var want float64
	for r := range rows {
		var s float64
		for j := range v {
			s += math.Exp(float64(z0[r*v+j]))
		}
		want += float64(weight[r]) * (math.Log(s) - float64(z0[r*v+int(target[r])]))
	}
	if got := loss(); math.Abs(got-want) > 1e-5*math.Abs(want) {
		t.Fatalf("loss = %g, want %g", got, want)
	}
	dz := append([]float32(nil), z...)
	checkGrad(t, "softmax cross-entropy", z0, dz, loss)
}

func TestExp32(t *testing.T) {
	for x := -80.0; x < 80; x += 0.37 {
		got, want := float64(exp32(float32(x))), math.Exp(float64(float32(x)))
		if math.Abs(got-want) > 4e-7*want {
			t.Fatalf("exp32(%g) = %g, want %g", x, got, want)
		}
	}
}

func tinyConfig() Config {
	return Config{Vocab: 23, Hidden: 8, Layers: 2, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}
}

func tinyBatch(rng *rand.Rand, cfg Config, b, t int) *Batch {
	bt := &Batch{B: b, T: t, Tokens: make([]int32, b*t), Segments: make([]int32, b*t),
		Positions: make([]int32, b*t), Ages: make([]float32, b*t)}
	for s := range b {
		n := t - s // later sequences carry padding
		for i := range t {
			k := s*t + i
			bt.Positions[k] = int32(i)
			if i >= n {
				continue
			}
			bt.Tokens[k] = int32(FirstCode + rng.IntN(cfg.Vocab-FirstCode))
			if i == 0 {
				bt.Tokens[k] = CLS
			}
			bt.Segments[k] = int32(i * cfg.Segments / t)
			bt.Ages[k] = float32(40 + i)
		}
	}
	return bt
}

// TestModelGrad checks the whole encoder and MLM head (embedding lookup, attention
// with the padding mask, both LayerNorms, GELU MLP, tied decoder) against finite
// differences on every parameter of a tiny model.
func TestModelGrad(t *testing.T) {
	cases := []struct {
		name        string
		dropout     float32
		timeBuckets int
	}{
		{"no dropout", 0, 0},
		{"dropout", 0.2, 0},
		{"time embeddings", 0, 6},
		{"time embeddings, dropout", 0.2, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dropout := c.dropout
			cfg := tinyConfig()
			cfg.Dropout = dropout
			cfg.TimeBuckets = c.timeBuckets
			m, err := New(cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			m.SetThreads(2)
			rng := rand.New(rand.NewPCG(9, 10))
			// Larger weights than the default init make every path matter.
			for i := range m.params {
				m.params[i] += float32(rng.NormFloat64() * 0.3)
			}
			b := tinyBatch(rng, cfg, 3, 7)
			if c.timeBuckets > 0 {
				b = timeBatch(rng, cfg, 3, 7)
				// Every table row a token uses must be checked, not only row 0.
				tb, gb := make([]int32, len(b.Tokens)), make([]int32, len(b.Tokens))
				timeBuckets(b, cfg.TimeBuckets, tb, gb)
				if slices.Max(tb) < 3 || slices.Max(gb) < 3 {
					t.Fatalf("time buckets %v, gap buckets %v: too few rows in use", tb, gb)
				}
			}
			mk := MaskTokens(b, cfg.Vocab, rng)
			if len(mk.Index) == 0 {
				t.Fatal("nothing masked")
			}
			// The same seed each call gives the same dropout masks.
			loss := func() float64 { return m.MLM(b, mk, 1, dropout > 0, rand.New(rand.NewPCG(11, 12))) }
			m.ZeroGrad()
			m.MLM(b, mk, 1, true, rand.New(rand.NewPCG(11, 12)))
			grads := append([]float32(nil), m.grads...)
			for _, ts := range cfg.layout() {
				x := m.params[ts.off : ts.off+ts.size()]
				checkGrad(t, ts.name, x, grads[ts.off:ts.off+ts.size()], loss)
			}
		})
	}
}

// TestAttentionGrad checks masked multi-head attention alone: the gradient at
// the packed queries, keys and values given a gradient at the context, with
// padding in the second sequence.
func TestAttentionGrad(t *testing.T) {
	cfg := tinyConfig()
	m, _ := New(cfg, 1)
	m.SetThreads(2)
	rng := rand.New(rand.NewPCG(13, 14))
	b := tinyBatch(rng, cfg, 2, 5)
	ws := m.workspace(b.B, b.T, false)
	for i, tok := range b.Tokens {
		ws.keep[i] = tok != PAD
	}
	la := &ws.layers[0]
	copy(la.qkv, randSlice(rng, len(la.qkv), 1))
	r := randSlice(rng, len(la.ctx), 1)
	loss := func() float64 {
		m.attention(b, la)
		return dot64(la.ctx, r)
	}
	loss()
	dqkv := make([]float32, len(la.qkv))
	m.attentionBack(b, la, r, dqkv)
	checkGrad(t, "attention dqkv", la.qkv, dqkv, loss)
	// A padded key gets no attention, so its key and value get no gradient.
	h := cfg.Hidden
	for tk := range b.T {
		if b.Tokens[b.T+tk] != PAD {
			continue
		}
		row := dqkv[(b.T+tk)*3*h : (b.T+tk+1)*3*h]
		for i := h; i < 3*h; i++ {
			if row[i] != 0 {
				t.Fatalf("padded position %d has key/value gradient %g", tk, row[i])
			}
		}
	}
}
