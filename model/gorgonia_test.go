// With the cuda tag gorgonia builds its own CUDA engine, which needs cuDNN; these
// CPU-only references do not, so they stay out of the cuda build.

//go:build !cuda

package model

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The hand-written LayerNorm and GELU kernels are checked here against gorgonia's
// own symbolic differentiation of the same functions built from its generic ops,
// in float64: an independent reference besides the finite differences.

func to64(s []float32) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}

func compareGrad(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	var worst float64
	for i := range got {
		worst = max(worst, math.Abs(float64(got[i])-want[i])/max(1, math.Abs(want[i])))
	}
	if worst > tol {
		t.Errorf("%s: max relative difference from gorgonia %.2e, want <= %.0e", name, worst, tol)
	}
	t.Logf("%s: max relative difference from gorgonia %.2e", name, worst)
}

func TestLayerNormAgainstGorgonia(t *testing.T) {
	const rows, h, eps = 4, 6, 1e-5
	rng := rand.New(rand.NewPCG(21, 22))
	x, gain, bias, r := randSlice(rng, rows*h, 1), randSlice(rng, h, 1), randSlice(rng, h, 1), randSlice(rng, rows*h, 1)

	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, h), G.WithName("x"), G.WithValue(tensor.New(tensor.WithShape(rows, h), tensor.WithBacking(to64(x)))))
	gn := G.NewVector(g, tensor.Float64, G.WithShape(h), G.WithName("gain"), G.WithValue(tensor.New(tensor.WithShape(h), tensor.WithBacking(to64(gain)))))
	bn := G.NewVector(g, tensor.Float64, G.WithShape(h), G.WithName("bias"), G.WithValue(tensor.New(tensor.WithShape(h), tensor.WithBacking(to64(bias)))))
	rn := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, h), G.WithName("r"), G.WithValue(tensor.New(tensor.WithShape(rows, h), tensor.WithBacking(to64(r)))))
	mean := G.Must(G.Mean(xn, 1))
	xc := G.Must(G.BroadcastSub(xn, mean, nil, []byte{1}))
	variance := G.Must(G.Mean(G.Must(G.Square(xc)), 1))
	rstd := G.Must(G.Inverse(G.Must(G.Sqrt(G.Must(G.Add(variance, G.NewConstant(float64(eps))))))))
	xhat := G.Must(G.BroadcastHadamardProd(xc, rstd, nil, []byte{1}))
	y := G.Must(G.BroadcastAdd(G.Must(G.BroadcastHadamardProd(xhat, gn, nil, []byte{0})), bn, nil, []byte{0}))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, rn))))
	grads, err := G.Grad(cost, xn, gn, bn)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}

	p := pool{workers: 1}
	out, mu, rs := make([]float32, rows*h), make([]float32, rows), make([]float32, rows)
	layerNorm(p, out, x, gain, bias, mu, rs, h, eps)
	dx, dg, db := make([]float32, rows*h), make([]float32, h), make([]float32, h)
	layerNormBack(p, dx, r, x, gain, mu, rs, dg, db, make([]float32, 2*h), h)

	compareGrad(t, "layernorm output", out, y.Value().Data().([]float64), 1e-5)
	compareGrad(t, "layernorm dx", dx, grads[0].Value().Data().([]float64), 1e-5)
	compareGrad(t, "layernorm dgain", dg, grads[1].Value().Data().([]float64), 1e-5)
	compareGrad(t, "layernorm dbias", db, grads[2].Value().Data().([]float64), 1e-5)
}

func TestGELUAgainstGorgonia(t *testing.T) {
	const n = 40
	rng := rand.New(rand.NewPCG(23, 24))
	u0, r := randSlice(rng, n, 2), randSlice(rng, n, 1)

	g := G.NewGraph()
	xn := G.NewVector(g, tensor.Float64, G.WithShape(n), G.WithName("x"), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(to64(u0)))))
	rn := G.NewVector(g, tensor.Float64, G.WithShape(n), G.WithName("r"), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(to64(r)))))
	inner := G.Must(G.Mul(G.NewConstant(geluC), G.Must(G.Add(xn, G.Must(G.Mul(G.NewConstant(geluA), G.Must(G.Cube(xn))))))))
	y := G.Must(G.Mul(G.NewConstant(0.5), G.Must(G.HadamardProd(xn, G.Must(G.Add(G.NewConstant(1.0), G.Must(G.Tanh(inner))))))))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, rn))))
	grads, err := G.Grad(cost, xn)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}

	u, out, th := append([]float32(nil), u0...), make([]float32, n), make([]float32, n)
	biasGELU(pool{workers: 1}, out, u, th, make([]float32, n), n)
	du := append([]float32(nil), r...)
	geluBack(pool{workers: 1}, du, u, th)
	compareGrad(t, "gelu output", out, y.Value().Data().([]float64), 1e-5)
	compareGrad(t, "gelu du", du, grads[0].Value().Data().([]float64), 1e-5)
}
