package model

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// rawFeature gives each synthetic feature dimension its own location and
// spread, as pooled encoder features have, so that standardisation matters.
func rawFeature(d int, v float64) float32 {
	return float32(3*float64(d) - 5 + (0.2+0.3*float64(d%5))*v)
}

// clusterFeatures draws n pooled-feature rows of h dimensions: a label positive
// with probability 0.3, the first dimension N(±sep/2, 1) by label and the rest
// N(0, 1) noise, then each label flipped with probability flip.
func clusterFeatures(rng *rand.Rand, n, h int, sep, flip float64) ([]float32, []bool) {
	x, y := make([]float32, n*h), make([]bool, n)
	for i := range n {
		y[i] = rng.Float64() < 0.3
		for d := range h {
			v := rng.NormFloat64()
			if d == 0 {
				if y[i] {
					v += sep / 2
				} else {
					v -= sep / 2
				}
			}
			x[i*h+d] = rawFeature(d, v)
		}
		if rng.Float64() < flip {
			y[i] = !y[i]
		}
	}
	return x, y
}

// logisticFeatures draws n rows of len(beta) N(0, 1) dimensions (stored through
// rawFeature) with labels from the logistic truth P(y) = σ(b + beta·v).
func logisticFeatures(rng *rand.Rand, n int, beta []float64, b float64) ([]float32, []bool) {
	h := len(beta)
	x, y := make([]float32, n*h), make([]bool, n)
	for i := range n {
		z := b
		for d := range h {
			v := rng.NormFloat64()
			z += beta[d] * v
			x[i*h+d] = rawFeature(d, v)
		}
		y[i] = rng.Float64() < sigmoid(z)
	}
	return x, y
}

func probePredict(fit *probeFit, x []float32, h int) []float64 {
	p := make([]float64, len(x)/h)
	for i := range p {
		p[i] = sigmoid(linearLogit(fit.w, fit.b, x[i*h:(i+1)*h]))
	}
	return p
}

func TestProbeLambdaChoice(t *testing.T) {
	const h = 20
	chosen := map[string]float64{}
	for _, c := range []struct {
		name   string
		nTrain int
		flip   float64
	}{
		// 24 noisy examples for 20 dimensions: the penalty must do the work.
		{"tiny, noisy", 24, 0.15},
		{"large", 5000, 0.15},
	} {
		rng := rand.New(rand.NewPCG(7, uint64(c.nTrain)))
		xt, yt := clusterFeatures(rng, c.nTrain, h, 1.5, c.flip)
		xv, yv := clusterFeatures(rng, 3000, h, 1.5, c.flip)
		fit, err := fitProbe(context.Background(), xt, yt, xv, yv, h, ProbeLambdas(), false, NegLogLoss)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		grid := ProbeLambdas()
		if len(fit.path) != len(grid) {
			t.Fatalf("%s: %d fits for a grid of %d", c.name, len(fit.path), len(grid))
		}
		for i, pt := range fit.path {
			// Tried from the largest down.
			if want := grid[len(grid)-1-i]; pt.lambda != want {
				t.Errorf("%s: fit %d at lambda %g, want %g", c.name, i, pt.lambda, want)
			}
			if pt.logLoss < fit.logLoss {
				t.Errorf("%s: lambda %g has validation log-loss %.6f below the chosen lambda %g's %.6f",
					c.name, pt.lambda, pt.logLoss, fit.lambda, fit.logLoss)
			}
			t.Logf("%s: lambda %-9.3g validation log-loss %.5f (%d Newton steps)", c.name, pt.lambda, pt.logLoss, pt.iters)
		}
		if got := LogLoss(yv, probePredict(fit, xv, h)); got != fit.logLoss || -got != fit.score {
			t.Errorf("%s: the returned head's validation log-loss %g, recorded %g (score %g)", c.name, got, fit.logLoss, fit.score)
		}
		chosen[c.name] = fit.lambda
	}
	if !(chosen["tiny, noisy"] > chosen["large"]) {
		t.Errorf("lambda chosen on tiny noisy training %g, on large training %g: want the tiny one larger",
			chosen["tiny, noisy"], chosen["large"])
	}
}

// logisticGrad is the gradient of logisticObjective at beta (unit weights).
func logisticGrad(z []float64, y []bool, h int, lambda float64, beta []float64) []float64 {
	g := make([]float64, h+1)
	for i, yi := range y {
		zi := z[i*(h+1) : (i+1)*(h+1)]
		r := sigmoid(dot(zi, beta))
		if yi {
			r--
		}
		for d, v := range zi {
			g[d] += r * v / float64(len(y))
		}
	}
	for d := range h {
		g[d] += lambda * beta[d]
	}
	return g
}

// TestProbeSeparable fits the probe on linearly separable features, where an
// unpenalised logistic regression has no optimum (its weights grow without end):
// the penalty must give a finite one, which Newton's method must reach.
func TestProbeSeparable(t *testing.T) {
	const h, n = 4, 400
	rng := rand.New(rand.NewPCG(3, 4))
	x, y := make([]float32, n*h), make([]bool, n)
	for i := range n {
		y[i] = i%3 == 0
		for d := range h {
			v := rng.NormFloat64()
			if d == 0 {
				v = 1 + rng.Float64() // a margin of 2 between the classes
				if !y[i] {
					v = -v
				}
			}
			x[i*h+d] = rawFeature(d, v)
		}
	}
	std := newStandardizer(x, n, h)
	z := std.design(x, n, h)
	wt := make([]float64, n)
	for i := range wt {
		wt[i] = 1
	}
	for _, lambda := range []float64{1e-4, 1e-2, 1} {
		beta := make([]float64, h+1)
		iters, err := fitLogistic(context.Background(), z, y, wt, h, lambda, beta)
		if err != nil {
			t.Fatalf("lambda %g: %v after %d steps", lambda, err, iters)
		}
		var norm2, gmax float64
		for _, v := range beta[:h] {
			norm2 += v * v
		}
		for _, v := range logisticGrad(z, y, h, lambda, beta) {
			gmax = max(gmax, math.Abs(v))
		}
		t.Logf("lambda %g: %d Newton steps, |w| %.3f, max |gradient| %.2g", lambda, iters, math.Sqrt(norm2), gmax)
		for _, v := range beta {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("lambda %g: coefficients %v", lambda, beta)
			}
		}
		// The objective at the optimum is at most its value at w = 0 with the
		// intercept at the prevalence's log-odds, the labels' entropy (< ln 2),
		// so λ/2·|w|² < ln 2.
		if bound := 2 * math.Ln2 / lambda; norm2 >= bound {
			t.Errorf("lambda %g: |w|² = %g, beyond the penalty's bound %g", lambda, norm2, bound)
		}
		if gmax > 1e-6 {
			t.Errorf("lambda %g: max |gradient| %g at the returned coefficients: not converged", lambda, gmax)
		}
	}
	fit, err := fitProbe(context.Background(), x, y, x, y, h, ProbeLambdas(), false, NegLogLoss)
	if err != nil {
		t.Fatal(err)
	}
	if fit.lambda != 1e-4 {
		// On its own training data a separable fit is best with the least penalty.
		t.Errorf("lambda %g chosen on separable data scored on itself, want the smallest, 1e-4", fit.lambda)
	}
	for _, p := range probePredict(fit, x, h) {
		if math.IsNaN(p) {
			t.Fatal("NaN probability")
		}
	}
}

// TestProbeFolded checks that the head on raw features, with the standardisation
// folded into W and B, predicts what the standardised logistic regression does.
func TestProbeFolded(t *testing.T) {
	const h = 6
	rng := rand.New(rand.NewPCG(5, 6))
	beta := []float64{1.2, -0.7, 0, 0.4, 0, 0} // dimension 5 is made constant below
	xt, yt := logisticFeatures(rng, 800, beta, -1)
	xv, yv := logisticFeatures(rng, 500, beta, -1)
	for i := range len(yt) {
		xt[i*h+5] = 7.5 // no spread in training: only centred
	}
	for i := range len(yv) {
		xv[i*h+5] = float32(i % 4) // and whatever it is later, it must not count
	}
	fit, err := fitProbe(context.Background(), xt, yt, xv, yv, h, ProbeLambdas(), false, NegLogLoss)
	if err != nil {
		t.Fatal(err)
	}
	// The training split's mean and population standard deviation, recomputed.
	mean, sd := make([]float64, h), make([]float64, h)
	n := float64(len(yt))
	for d := range h {
		for i := range len(yt) {
			mean[d] += float64(xt[i*h+d])
		}
		mean[d] /= n
		for i := range len(yt) {
			v := float64(xt[i*h+d]) - mean[d]
			sd[d] += v * v
		}
		sd[d] = math.Sqrt(sd[d] / n)
	}
	if sd[5] != 0 {
		t.Fatalf("constant dimension has spread %g", sd[5])
	}
	if fit.w[5] != 0 {
		t.Errorf("constant dimension's folded weight %g, want 0", fit.w[5])
	}
	for _, c := range []struct {
		name string
		x    []float32
	}{{"training", xt}, {"validation", xv}} {
		got := probePredict(fit, c.x, h)
		var worst float64
		for i, p := range got {
			z := fit.beta[h]
			for d := range h {
				v := float64(c.x[i*h+d]) - mean[d]
				if sd[d] > 0 {
					v /= sd[d]
				}
				z += fit.beta[d] * v
			}
			worst = max(worst, math.Abs(p-sigmoid(z)))
		}
		t.Logf("%s: largest difference from the explicitly standardised logistic %.2g", c.name, worst)
		// Only the float32 rounding of W and B separates the two.
		if worst > 1e-6 {
			t.Errorf("%s: folded head differs from the standardised logistic by %g in probability", c.name, worst)
		}
	}
}

// TestProbeCalibration fits the probe to a logistic truth and checks its
// predicted risk against the observed rate on a large test split, overall and
// by fifth of predicted risk; class weighting must visibly overstate it.
func TestProbeCalibration(t *testing.T) {
	beta := []float64{1, -0.8, 0.5, 0, 0.3}
	const b = -1.5
	for _, c := range []struct {
		name        string
		classWeight bool
		calibrated  bool
	}{
		{"unweighted", false, true},
		{"class-weighted", true, false},
	} {
		rng := rand.New(rand.NewPCG(9, 10))
		xt, yt := logisticFeatures(rng, 5000, beta, b)
		xv, yv := logisticFeatures(rng, 2000, beta, b)
		xs, ys := logisticFeatures(rng, 20000, beta, b)
		fit, err := fitProbe(context.Background(), xt, yt, xv, yv, len(beta), ProbeLambdas(), c.classWeight, NegLogLoss)
		if err != nil {
			t.Fatal(err)
		}
		p := probePredict(fit, xs, len(beta))
		idx := make([]int, len(p))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
		gap := func(rows []int) (pred, obs float64) {
			for _, i := range rows {
				pred += p[i]
				if ys[i] {
					obs++
				}
			}
			return pred / float64(len(rows)), obs / float64(len(rows))
		}
		pred, obs := gap(idx)
		t.Logf("%s: lambda %g, mean predicted %.4f, observed %.4f", c.name, fit.lambda, pred, obs)
		if !c.calibrated {
			if pred-obs < 0.1 {
				t.Errorf("%s: mean predicted %.4f within 0.1 of observed %.4f: class weighting should overstate the risk", c.name, pred, obs)
			}
			continue
		}
		// The observed rate's standard error is about 0.003 overall and 0.007 a fifth.
		if math.Abs(pred-obs) > 0.01 {
			t.Errorf("%s: mean predicted %.4f, observed %.4f", c.name, pred, obs)
		}
		for q := range 5 {
			rows := idx[q*len(idx)/5 : (q+1)*len(idx)/5]
			pq, oq := gap(rows)
			t.Logf("%s: fifth %d: predicted %.4f, observed %.4f", c.name, q+1, pq, oq)
			if math.Abs(pq-oq) > 0.03 {
				t.Errorf("%s: fifth %d of predicted risk: predicted %.4f, observed %.4f", c.name, q+1, pq, oq)
			}
		}
	}
}

func TestProbeErrors(t *testing.T) {
	x := []float32{1, 2, 3}
	for _, c := range []struct {
		name    string
		y       []bool
		lambdas []float64
	}{
		{"one class", []bool{false, false, false}, ProbeLambdas()},
		{"no lambdas", []bool{false, true, false}, nil},
		{"zero lambda", []bool{false, true, false}, []float64{0}},
	} {
		if _, err := fitProbe(context.Background(), x, c.y, x, c.y, 1, c.lambdas, false, NegLogLoss); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
