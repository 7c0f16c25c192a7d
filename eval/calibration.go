package eval

import (
	"errors"
	"fmt"
	"math"
)

// ErrNotProbability is returned where a calibration measure meets a score outside
// [0, 1]: Brier score and calibration are defined for predicted probabilities only.
var ErrNotProbability = errors.New("score is not a probability in [0, 1]")

// ErrNoConvergence is returned when the calibration fit does not converge. With the
// separation handled as MaxCalibrationSlope documents, the log-likelihood is strictly
// concave with a finite maximum, and damped Newton converges; the error guards the
// float64 arithmetic, it is not expected.
var ErrNoConvergence = errors.New("calibration fit did not converge")

// MaxCalibrationSlope caps the reported calibration slope. When the predicted
// probabilities separate the outcomes (every positive's prediction at or above every
// negative's, or at or below), the maximum-likelihood slope is infinite; Calibration
// then reports +MaxCalibrationSlope (higher predictions go with the positives) or
// -MaxCalibrationSlope (they go with the negatives), and any finite estimate beyond
// the cap is reported at the cap, so that report.json never holds an infinity or a
// NaN. A slope at the cap reads "at least this", not a measured value.
const MaxCalibrationSlope = 100

// probClamp keeps logit(p) finite: p is clamped to [probClamp, 1-probClamp].
const probClamp = 1e-12

func checkProbabilities(probs []float64, labels []bool) error {
	if len(probs) != len(labels) {
		return fmt.Errorf("%w: %d scores, %d labels", ErrLength, len(probs), len(labels))
	}
	if len(probs) == 0 {
		return ErrEmpty
	}
	for i, p := range probs {
		if math.IsNaN(p) {
			return fmt.Errorf("row %d: %w", i, ErrNaNScore)
		}
		if p < 0 || p > 1 {
			return fmt.Errorf("row %d: %v: %w", i, p, ErrNotProbability)
		}
	}
	return nil
}

// Brier returns the Brier score, the mean squared difference between the predicted
// probability and the outcome (1 positive, 0 negative); lower is better.
func Brier(probs []float64, labels []bool) (float64, error) {
	if err := checkProbabilities(probs, labels); err != nil {
		return 0, fmt.Errorf("Brier score: %w", err)
	}
	var s float64
	for i, p := range probs {
		y := 0.0
		if labels[i] {
			y = 1
		}
		s += (p - y) * (p - y)
	}
	return s / float64(len(probs)), nil
}

func logit(p float64) float64 {
	p = min(max(p, probClamp), 1-probClamp)
	return math.Log(p / (1 - p))
}

// softplus is log(1 + e^z), without overflow.
func softplus(z float64) float64 { return max(z, 0) + math.Log1p(math.Exp(-math.Abs(z))) }

func expit(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// logLik is the Bernoulli log-likelihood of linear predictor a + b*x + offset.
func logLik(x []float64, y []bool, a, b, offset float64, useOffset bool) float64 {
	var ll float64
	for i, xi := range x {
		eta := a + b*xi
		if useOffset {
			eta = a + xi
		}
		if y[i] {
			ll -= softplus(-eta)
		} else {
			ll -= softplus(eta)
		}
	}
	return ll
}

// Calibration returns the calibration slope and the calibration intercept of
// predicted probabilities against the outcomes, as Van Calster et al. define them
// ("Calibration: the Achilles heel of predictive analytics", BMC Medicine 2019):
//
//   - slope: b in logit P(y=1) = a + b*logit(p), a and b fitted together by maximum
//     likelihood (Newton's method with step halving, float64). 1 is ideal; below 1
//     the predictions are too extreme (overconfident), above 1 too moderate.
//   - intercept: a in logit P(y=1) = a + logit(p), the slope fixed at 1 (logit(p) an
//     offset), fitted by maximum likelihood: calibration-in-the-large. 0 is ideal;
//     above 0 the predictions are too low on average, below 0 too high.
//
// p is clamped to [1e-12, 1-1e-12] before the logit. The intercept's maximum
// likelihood estimate exists whenever both classes are present. The slope's does not
// when the predictions separate the outcomes; see MaxCalibrationSlope for what is
// reported then. Constant predictions carry no ranking and their slope is
// unidentified; it is reported as 0. Both classes must be present (ErrNoPositives,
// ErrNoNegatives) and every score must be a probability (ErrNotProbability).
func Calibration(probs []float64, labels []bool) (slope, intercept float64, err error) {
	if err := checkProbabilities(probs, labels); err != nil {
		return 0, 0, fmt.Errorf("calibration: %w", err)
	}
	x := make([]float64, len(probs))
	minPos, maxPos := math.Inf(1), math.Inf(-1)
	minNeg, maxNeg := math.Inf(1), math.Inf(-1)
	for i, p := range probs {
		// Scores that are equal but for the order of a float sum (a boosted model's
		// trees) must tie, or a quasi-separation goes unseen and the fit chases an
		// infinite slope; 1e-9 in logit units is far below any real difference.
		x[i] = math.Round(logit(p)*1e9) / 1e9
		if labels[i] {
			minPos, maxPos = min(minPos, x[i]), max(maxPos, x[i])
		} else {
			minNeg, maxNeg = min(minNeg, x[i]), max(maxNeg, x[i])
		}
	}
	if math.IsInf(minPos, 1) {
		return 0, 0, fmt.Errorf("calibration: %w", ErrNoPositives)
	}
	if math.IsInf(minNeg, 1) {
		return 0, 0, fmt.Errorf("calibration: %w", ErrNoNegatives)
	}
	if intercept, err = fitIntercept(x, labels); err != nil {
		return 0, 0, fmt.Errorf("calibration intercept: %w", err)
	}
	// In one dimension with an intercept the slope's MLE exists exactly when neither
	// class lies wholly on one side of the other (no complete or quasi-complete
	// separation); constant x satisfies both conditions below.
	sepUp, sepDown := maxNeg <= minPos, maxPos <= minNeg
	switch {
	case sepUp && sepDown:
		return 0, intercept, nil
	case sepUp:
		return MaxCalibrationSlope, intercept, nil
	case sepDown:
		return -MaxCalibrationSlope, intercept, nil
	}
	if slope, err = fitSlope(x, labels); err != nil {
		return 0, 0, fmt.Errorf("calibration slope: %w", err)
	}
	return min(max(slope, -MaxCalibrationSlope), MaxCalibrationSlope), intercept, nil
}

const (
	maxNewton  = 200
	maxHalving = 60
)

func converged(step, scale float64) bool { return math.Abs(step) <= 1e-10*(1+math.Abs(scale)) }

// fitIntercept maximizes the likelihood of a in logit P(y=1) = a + x by damped
// Newton; the log-likelihood is strictly concave in a when both classes are present.
func fitIntercept(x []float64, y []bool) (float64, error) {
	a := 0.0
	ll := logLik(x, y, a, 0, 0, true)
	for range maxNewton {
		var g, h float64
		for i, xi := range x {
			mu := expit(a + xi)
			if y[i] {
				g += 1 - mu
			} else {
				g -= mu
			}
			h += mu * (1 - mu)
		}
		if h <= 0 || math.IsNaN(g) {
			return 0, ErrNoConvergence
		}
		step := g / h
		t := 1.0
		next := logLik(x, y, a+step, 0, 0, true)
		for k := 0; next < ll && k < maxHalving; k++ {
			t /= 2
			next = logLik(x, y, a+t*step, 0, 0, true)
		}
		if next < ll {
			// No ascent along the Newton direction within float64: a maximum.
			return a, nil
		}
		a, ll = a+t*step, next
		if converged(t*step, a) {
			return a, nil
		}
	}
	return 0, ErrNoConvergence
}

// fitSlope maximizes the likelihood of (a, b) in logit P(y=1) = a + b*x by damped
// Newton from the ideal (0, 1) and returns b; the caller has excluded separation, so
// the maximum is finite and unique.
func fitSlope(x []float64, y []bool) (float64, error) {
	a, b := 0.0, 1.0
	ll := logLik(x, y, a, b, 0, false)
	for range maxNewton {
		var ga, gb, haa, hab, hbb float64
		for i, xi := range x {
			mu := expit(a + b*xi)
			r := -mu
			if y[i] {
				r = 1 - mu
			}
			w := mu * (1 - mu)
			ga += r
			gb += r * xi
			haa += w
			hab += w * xi
			hbb += w * xi * xi
		}
		det := haa*hbb - hab*hab
		if !(det > 0) || math.IsNaN(ga) || math.IsNaN(gb) {
			return 0, ErrNoConvergence
		}
		// Solve the information matrix against the gradient.
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		t := 1.0
		next := logLik(x, y, a+da, b+db, 0, false)
		for k := 0; next < ll && k < maxHalving; k++ {
			t /= 2
			next = logLik(x, y, a+t*da, b+t*db, 0, false)
		}
		if next < ll {
			return b, nil
		}
		a, b, ll = a+t*da, b+t*db, next
		if converged(t*da, a) && converged(t*db, b) {
			return b, nil
		}
		// The estimate is past the reported cap, which the caller clamps to anyway;
		// a near-separation can take many more steps to get there.
		if math.Abs(b) > MaxCalibrationSlope {
			return b, nil
		}
	}
	return 0, ErrNoConvergence
}
