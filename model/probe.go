package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// ProbeLambdas is the linear probe's default grid of L2 strengths: 13 values half
// a decade apart, 10^(k/2-4) for k = 0..12, from 1e-4 (almost unpenalised on
// standardised features) to 1e2 (the weights all but zero, the intercept alone
// left to fit the prevalence). The penalty is on the mean training log-loss (see
// HeadConfig.Lambdas), so a strength means the same at any training size.
func ProbeLambdas() []float64 {
	l := make([]float64, 13)
	for k := range l {
		l[k] = math.Pow(10, float64(k)/2-4)
	}
	return l
}

// probeFit is a fitted linear probe: the standardisation folded into w and b.
type probeFit struct {
	w []float32
	b float32
	// lambda is the chosen strength; score and logLoss rate the folded head's
	// validation predictions.
	lambda, score, logLoss float64
	path                   []probePoint // one per grid value, in the order tried
	// beta and std are the chosen fit before folding: weights on standardised
	// features, then the intercept.
	beta []float64
	std  standardizer
}

// probePoint is one grid value's fit.
type probePoint struct {
	lambda, score, logLoss float64
	iters                  int // Newton steps
}

// standardizer maps a raw feature x_d to (x_d - mean_d) * scale_d, scale_d being
// 1/sd_d over the training split, or 1 where the training split has no spread
// (the dimension is then only centred, and being constant in training, gets a
// zero weight from the penalty).
type standardizer struct{ mean, scale []float64 }

// newStandardizer measures the n×h row-major features x.
func newStandardizer(x []float32, n, h int) standardizer {
	s := standardizer{mean: make([]float64, h), scale: make([]float64, h)}
	for i := range n {
		for d, v := range x[i*h : (i+1)*h] {
			s.mean[d] += float64(v)
		}
	}
	for d := range s.mean {
		s.mean[d] /= float64(n)
	}
	for i := range n {
		for d, v := range x[i*h : (i+1)*h] {
			dv := float64(v) - s.mean[d]
			s.scale[d] += dv * dv
		}
	}
	for d, ss := range s.scale {
		if sd := math.Sqrt(ss / float64(n)); sd > 0 {
			s.scale[d] = 1 / sd
		} else {
			s.scale[d] = 1
		}
	}
	return s
}

// design returns the n×(h+1) row-major standardised design of x, the last
// column all ones (the intercept).
func (s standardizer) design(x []float32, n, h int) []float64 {
	z := make([]float64, n*(h+1))
	for i := range n {
		row := z[i*(h+1) : (i+1)*(h+1)]
		for d, v := range x[i*h : (i+1)*h] {
			row[d] = (float64(v) - s.mean[d]) * s.scale[d]
		}
		row[h] = 1
	}
	return z
}

// fold turns coefficients beta (h weights on standardised features, then the
// intercept) into a head on raw features: w_d = beta_d*scale_d and
// b = beta_h - Σ w_d mean_d, the sum over the float32-rounded w_d, so that the
// rounding of the weights does not move the logit at the training mean.
func (s standardizer) fold(beta []float64) ([]float32, float32) {
	h := len(s.mean)
	w := make([]float32, h)
	b := beta[h]
	for d := range w {
		w[d] = float32(beta[d] * s.scale[d])
		b -= float64(w[d]) * s.mean[d]
	}
	return w, float32(b)
}

// softplus is log(1 + e^z), without overflow.
func softplus(z float64) float64 { return max(z, 0) + math.Log1p(math.Exp(-math.Abs(z))) }

// logisticObjective is the weighted mean log-loss of the n×(h+1) design z under
// beta plus lambda/2 times the squared weights (not the intercept, beta[h]).
func logisticObjective(z []float64, y []bool, wt []float64, wsum float64, h int, lambda float64, beta []float64) float64 {
	var f float64
	for i, yi := range y {
		zi := dot(z[i*(h+1):(i+1)*(h+1)], beta)
		l := softplus(zi)
		if yi {
			l -= zi
		}
		f += wt[i] * l
	}
	f /= wsum
	var pen float64
	for _, v := range beta[:h] {
		pen += v * v
	}
	return f + lambda/2*pen
}

func dot(a, b []float64) float64 {
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// errNoConvergence is fitLogistic's error when its iteration cap is reached.
var errNoConvergence = errors.New("logistic regression did not converge")

// fitLogistic minimises logisticObjective over beta by Newton's method from the
// beta it is given, which it updates in place, and returns the Newton steps
// taken. Each step solves with the (h+1)×(h+1) Hessian
// Σ (wt_i/wsum) p_i(1-p_i) z_i z_iᵀ + lambda·I (I without the intercept) by
// Cholesky, and backtracks (Armijo) until the objective falls. For lambda > 0
// and labels of both classes the objective is strictly convex with a finite
// minimum, even on separable data; it stops when half the Newton decrement
// gᵀH⁻¹g, the predicted decrease still to come, is below 1e-13, or when no step
// can lower the objective in float64. It is deterministic.
func fitLogistic(ctx context.Context, z []float64, y []bool, wt []float64, h int, lambda float64, beta []float64) (int, error) {
	const (
		maxIter = 100
		tol     = 1e-13
		chunk   = 256 // rows per rank-k update of the Hessian
	)
	n, k := len(y), h+1
	var wsum float64
	for _, w := range wt {
		wsum += w
	}
	grad := make([]float64, k)
	curv := make([]float64, n)
	rows := make([]float64, min(chunk, n)*k)
	hess := mat.NewSymDense(k, nil)
	var chol mat.Cholesky
	step := mat.NewVecDense(k, nil)
	trial := make([]float64, k)
	f := logisticObjective(z, y, wt, wsum, h, lambda, beta)
	for iter := 0; iter < maxIter; iter++ {
		if err := ctx.Err(); err != nil {
			return iter, err
		}
		clear(grad)
		for i, yi := range y {
			zi := z[i*k : (i+1)*k]
			p := sigmoid(dot(zi, beta))
			r := p
			if yi {
				r = p - 1
			}
			r *= wt[i] / wsum
			for d, v := range zi {
				grad[d] += r * v
			}
			curv[i] = wt[i] / wsum * p * (1 - p)
		}
		for d := range h {
			grad[d] += lambda * beta[d]
		}
		hess.Zero()
		for i0 := 0; i0 < n; i0 += chunk {
			m := min(chunk, n-i0)
			for i := range m {
				s := math.Sqrt(curv[i0+i])
				src, dst := z[(i0+i)*k:(i0+i+1)*k], rows[i*k:(i+1)*k]
				for d, v := range src {
					dst[d] = s * v
				}
			}
			// hess += rowsᵀ rows, through a transposed view of the m×k rows.
			hess.SymRankK(hess, 1, mat.NewDense(m, k, rows[:m*k]).T())
		}
		for d := range h {
			hess.SetSym(d, d, hess.At(d, d)+lambda)
		}
		if !chol.Factorize(hess) {
			return iter, fmt.Errorf("logistic regression: Hessian not positive definite at lambda %g", lambda)
		}
		if err := chol.SolveVecTo(step, mat.NewVecDense(k, grad)); err != nil {
			// An ill-conditioned solve is still a descent direction; the line search
			// and the decrement below judge it.
			var cond mat.Condition
			if !errors.As(err, &cond) {
				return iter, err
			}
		}
		dec := dot(grad, step.RawVector().Data)
		if !(dec >= 0) {
			return iter, fmt.Errorf("logistic regression: Newton decrement %g at lambda %g", dec, lambda)
		}
		if dec/2 < tol {
			return iter, nil
		}
		t := 1.0
		for {
			for d := range trial {
				trial[d] = beta[d] - t*step.AtVec(d)
			}
			ft := logisticObjective(z, y, wt, wsum, h, lambda, trial)
			if ft <= f-1e-4*t*dec {
				copy(beta, trial)
				f = ft
				break
			}
			if t /= 2; t < 1e-12 {
				// No step lowers the objective in float64: beta is a minimum to
				// the precision the objective can be told apart.
				return iter + 1, nil
			}
		}
	}
	return maxIter, errNoConvergence
}

// fitProbe fits the linear probe on pooled features: xTrain (len(yTrain)×h) and
// xValid (len(yValid)×h), row-major. It standardises with the training split's
// mean and spread, fits the L2-regularised logistic regression to convergence
// for each lambda, from the largest down (each fit starting from the previous
// one's solution), and keeps the lambda whose folded head scores best on the
// validation split (the first of equals, so the stronger penalty). classWeight
// weights training positives by negatives/positives.
func fitProbe(ctx context.Context, xTrain []float32, yTrain []bool, xValid []float32, yValid []bool, h int, lambdas []float64, classWeight bool, score func([]bool, []float64) float64) (*probeFit, error) {
	n := len(yTrain)
	npos := 0
	for _, l := range yTrain {
		if l {
			npos++
		}
	}
	if npos == 0 || npos == n {
		return nil, fmt.Errorf("probe: %d of %d training examples positive, need both classes", npos, n)
	}
	if len(lambdas) == 0 {
		return nil, errors.New("probe: no lambdas to choose from")
	}
	order := append([]float64(nil), lambdas...)
	for _, l := range order {
		if !(l > 0) || math.IsInf(l, 0) {
			return nil, fmt.Errorf("probe: lambda %g must be positive and finite", l)
		}
	}
	// Largest first, so that each warm start comes from a smoother solution.
	sort.Sort(sort.Reverse(sort.Float64Slice(order)))
	std := newStandardizer(xTrain, n, h)
	z := std.design(xTrain, n, h)
	posWeight := 1.0
	if classWeight {
		posWeight = float64(n-npos) / float64(npos)
	}
	wt := make([]float64, n)
	var wpos float64
	for i, l := range yTrain {
		wt[i] = 1
		if l {
			wt[i] = posWeight
			wpos += posWeight
		}
	}
	beta := make([]float64, h+1)
	beta[h] = math.Log(wpos / float64(n-npos))
	fit := &probeFit{score: math.Inf(-1), std: std}
	probs := make([]float64, len(yValid))
	for _, lambda := range order {
		iters, err := fitLogistic(ctx, z, yTrain, wt, h, lambda, beta)
		if err != nil {
			return nil, fmt.Errorf("probe: lambda %g: %w", lambda, err)
		}
		w, b := std.fold(beta)
		for i := range probs {
			probs[i] = sigmoid(linearLogit(w, b, xValid[i*h:(i+1)*h]))
		}
		pt := probePoint{lambda: lambda, score: score(yValid, probs), logLoss: LogLoss(yValid, probs), iters: iters}
		fit.path = append(fit.path, pt)
		if pt.score > fit.score {
			fit.w, fit.b, fit.lambda, fit.score, fit.logLoss = w, b, lambda, pt.score, pt.logLoss
			fit.beta = append(fit.beta[:0], beta...)
		}
	}
	if fit.w == nil {
		return nil, fmt.Errorf("probe: no lambda gave a validation score (all %v)", fit.path[0].score)
	}
	return fit, nil
}
