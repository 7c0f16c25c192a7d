package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestBrier(t *testing.T) {
	tests := []struct {
		name   string
		probs  []float64
		labels []bool
		want   float64
	}{
		// (0.1^2 + 0.2^2 + 0.6^2) / 3 = 0.41 / 3.
		{"three rows", []float64{0.9, 0.2, 0.6}, []bool{true, false, false}, 0.41 / 3},
		{"perfect", []float64{1, 0}, []bool{true, false}, 0},
		{"worst", []float64{0, 1}, []bool{true, false}, 1},
		{"one class", []float64{0.5, 0.25}, []bool{false, false}, (0.25 + 0.0625) / 2},
	}
	for _, tc := range tests {
		got, err := Brier(tc.probs, tc.labels)
		if err != nil || math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s: Brier = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name  string
		probs []float64
		want  error
	}{{"nan", []float64{math.NaN(), 0.5}, ErrNaNScore}, {"above 1", []float64{1.5, 0.5}, ErrNotProbability},
		{"negative", []float64{-0.1, 0.5}, ErrNotProbability}, {"short", []float64{0.5}, ErrLength}} {
		if _, err := Brier(tc.probs, []bool{true, false}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// simulate draws n outcomes from P(y=1) = expit(z), z ~ N(mu, 1.5), and returns them
// with predictions expit(a + b*z): (0, 1) is perfectly calibrated, b > 1
// overconfident, b < 1 underconfident, a != 0 miscalibrated in the large.
func simulate(n int, seed uint64, mu, a, b float64) ([]float64, []bool) {
	rng := rand.New(rand.NewPCG(seed, 3))
	probs := make([]float64, n)
	labels := make([]bool, n)
	for i := range n {
		z := mu + 1.5*rng.NormFloat64()
		labels[i] = rng.Float64() < expit(z)
		probs[i] = expit(a + b*z)
	}
	return probs, labels
}

func TestCalibration(t *testing.T) {
	// True model: logit P = z. Predictions logit p = a + b z, so logit P = (logit p
	// - a) / b: slope 1/b. With b = 1, logit P = logit p - a: intercept -a.
	tests := []struct {
		name            string
		mu, a, b        float64
		slope, interc   float64
		tolS, tolI      float64
		slopeBelowOne   bool
		slopeAboveOne   bool
		interceptAbove0 bool
	}{
		{name: "well calibrated", mu: -1, a: 0, b: 1, slope: 1, interc: 0, tolS: 0.06, tolI: 0.06},
		{name: "well calibrated, rare", mu: -3, a: 0, b: 1, slope: 1, interc: 0, tolS: 0.1, tolI: 0.1},
		// Centred at 0, so that a wrong slope does not also move the mean prediction.
		{name: "overconfident", mu: 0, a: 0, b: 2, slope: 0.5, interc: 0, tolS: 0.04, tolI: 0.08, slopeBelowOne: true},
		{name: "underconfident", mu: 0, a: 0, b: 0.5, slope: 2, interc: 0, tolS: 0.15, tolI: 0.08, slopeAboveOne: true},
		{name: "too low", mu: -1, a: -1, b: 1, slope: 1, interc: 1, tolS: 0.06, tolI: 0.06, interceptAbove0: true},
	}
	for _, tc := range tests {
		probs, labels := simulate(20000, 5, tc.mu, tc.a, tc.b)
		slope, interc, err := Calibration(probs, labels)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if math.Abs(slope-tc.slope) > tc.tolS {
			t.Errorf("%s: slope %.4f, want %.2f within %.2f", tc.name, slope, tc.slope, tc.tolS)
		}
		if math.Abs(interc-tc.interc) > tc.tolI {
			t.Errorf("%s: intercept %.4f, want %.2f within %.2f", tc.name, interc, tc.interc, tc.tolI)
		}
		if tc.slopeBelowOne && !(slope < 1) || tc.slopeAboveOne && !(slope > 1) || tc.interceptAbove0 && !(interc > 0) {
			t.Errorf("%s: slope %.4f, intercept %.4f on the wrong side", tc.name, slope, interc)
		}
	}
}

// The fitted slope and intercept are maximum-likelihood estimates: the score
// equations vanish there.
func TestCalibrationScoreEquations(t *testing.T) {
	probs, labels := simulate(3000, 8, -1, 0.3, 1.4)
	slope, interc, err := Calibration(probs, labels)
	if err != nil {
		t.Fatal(err)
	}
	// Recover a for the slope fit by solving its intercept equation for fixed b.
	x := make([]float64, len(probs))
	for i, p := range probs {
		x[i] = logit(p)
	}
	var g0 float64 // offset model: sum (y - expit(a + x))
	for i := range x {
		y := 0.0
		if labels[i] {
			y = 1
		}
		g0 += y - expit(interc+x[i])
	}
	if math.Abs(g0) > 1e-8*3000 {
		t.Errorf("intercept %v: score equation %v, want 0", interc, g0)
	}
	// For the slope: maximize over a with b fixed, then the b-equation must vanish.
	a, _ := fitIntercept(scaled(x, slope), labels)
	var ga, gb float64
	for i := range x {
		y := 0.0
		if labels[i] {
			y = 1
		}
		r := y - expit(a+slope*x[i])
		ga += r
		gb += r * x[i]
	}
	// Relative to the 3,000 rows: the fit stops where float64 sees no more ascent.
	if math.Abs(ga) > 1e-8*3000 || math.Abs(gb) > 1e-8*3000 {
		t.Errorf("slope %v: score equations %v %v, want 0", slope, ga, gb)
	}
}

func scaled(x []float64, b float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = b * v
	}
	return out
}

func TestCalibrationSeparation(t *testing.T) {
	tests := []struct {
		name   string
		probs  []float64
		labels []bool
		slope  float64
	}{
		{"separated", []float64{0.1, 0.2, 0.7, 0.9}, []bool{false, false, true, true}, MaxCalibrationSlope},
		// Tied at the boundary: quasi-complete separation, still no finite MLE.
		{"quasi-separated", []float64{0.1, 0.5, 0.5, 0.9}, []bool{false, false, true, true}, MaxCalibrationSlope},
		{"reversed", []float64{0.9, 0.7, 0.2, 0.1}, []bool{false, false, true, true}, -MaxCalibrationSlope},
		{"constant", []float64{0.3, 0.3, 0.3, 0.3}, []bool{false, true, false, true}, 0},
		{"exact 0 and 1", []float64{0, 0, 1, 1}, []bool{false, false, true, true}, MaxCalibrationSlope},
	}
	for _, tc := range tests {
		slope, interc, err := Calibration(tc.probs, tc.labels)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if slope != tc.slope || math.IsNaN(interc) || math.IsInf(interc, 0) {
			t.Errorf("%s: slope %v, intercept %v; want slope %v and a finite intercept", tc.name, slope, interc, tc.slope)
		}
	}
	// Constant 0.3 with half positive: the intercept is logit(0.5) - logit(0.3).
	_, interc, _ := Calibration([]float64{0.3, 0.3, 0.3, 0.3}, []bool{false, true, false, true})
	if want := -logit(0.3); math.Abs(interc-want) > 1e-9 {
		t.Errorf("constant: intercept %v, want %v", interc, want)
	}
	// Overlapping but nearly separated: a finite, large slope, not the cap.
	slope, _, err := Calibration([]float64{0.1, 0.2, 0.6, 0.3, 0.7, 0.9}, []bool{false, false, false, true, true, true})
	if err != nil || !(slope > 1 && slope < MaxCalibrationSlope) {
		t.Errorf("overlapping: slope %v, %v; want finite above 1", slope, err)
	}
	for _, tc := range []struct {
		name   string
		labels []bool
		want   error
	}{{"no positives", []bool{false, false}, ErrNoPositives}, {"no negatives", []bool{true, true}, ErrNoNegatives}} {
		if _, _, err := Calibration([]float64{0.2, 0.4}, tc.labels); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestCalibrationFloatTies: a boosted model's equal scores can differ in the last
// bits (the order of a float sum). Positives all at the lowest score, tied with
// negatives there up to such noise, is a quasi-separation: the slope is reported
// at its cap, not a failed fit (a real case from fedclaims eval).
func TestCalibrationFloatTies(t *testing.T) {
	lo := expit(-3.9758683845294702)
	loNoise := expit(-3.9758683845294707)
	var probs []float64
	var labels []bool
	add := func(p float64, y bool, n int) {
		for range n {
			probs, labels = append(probs, p), append(labels, y)
		}
	}
	add(lo, true, 2)
	add(lo, false, 81)
	add(loNoise, false, 8)
	add(expit(-3.84), false, 4)
	add(expit(-3.71), false, 6)
	add(expit(-3.35), false, 4)
	slope, intercept, err := Calibration(probs, labels)
	if err != nil {
		t.Fatal(err)
	}
	if slope != -MaxCalibrationSlope || math.IsNaN(intercept) {
		t.Errorf("slope %v intercept %v, want the cap %v and a finite intercept", slope, intercept, -float64(MaxCalibrationSlope))
	}
}
