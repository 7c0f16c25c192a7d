package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHolm(t *testing.T) {
	tests := []struct {
		name string
		p    []float64
		want []float64
	}{
		{"empty", nil, []float64{}},
		{"one", []float64{0.03}, []float64{0.03}},
		// Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04;
		// the running maximum lifts the last to 0.06. Back in input order:
		{"four", []float64{0.01, 0.04, 0.03, 0.005}, []float64{0.03, 0.06, 0.06, 0.02}},
		// 3 * 0.5 caps at 1, and the maximum carries the cap on.
		{"capped", []float64{0.5, 0.6, 0.01}, []float64{1, 1, 0.03}},
		// Tied p-values get the same adjusted value: 2 * 0.02 and max(0.04, 0.02).
		{"ties", []float64{0.02, 0.02}, []float64{0.04, 0.04}},
		{"all significant", []float64{0.001, 0.002, 0.003}, []float64{0.003, 0.004, 0.004}},
	}
	for _, tc := range tests {
		got := Holm(tc.p)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: Holm(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
		for i := range got {
			if math.Abs(got[i]-tc.want[i]) > 1e-15 {
				t.Errorf("%s: Holm(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
				break
			}
		}
	}
	in := []float64{0.04, 0.01}
	Holm(in)
	if !slices.Equal(in, []float64{0.04, 0.01}) {
		t.Errorf("Holm changed its input to %v", in)
	}
}

// correlated returns n one-row patients, about 15% positive, and two models that share
// a latent signal; better adds to a's signal, so that a is better than b by better.
func correlated(n int, seed uint64, better float64) (a, b []float64, labels []bool, groups []int64) {
	rng := rand.New(rand.NewPCG(seed, 4))
	a, b = make([]float64, n), make([]float64, n)
	labels, groups = make([]bool, n), make([]int64, n)
	for i := range n {
		labels[i] = rng.Float64() < 0.15
		shared := rng.NormFloat64()
		if labels[i] {
			shared += 1.2
		}
		sa := shared + 0.3*rng.NormFloat64()
		if labels[i] {
			sa += better
		}
		a[i] = expit(sa - 2)
		b[i] = expit(shared + 0.3*rng.NormFloat64() - 2)
		groups[i] = int64(i)
	}
	return a, b, labels, groups
}

func TestCompare(t *testing.T) {
	bs := Bootstrap{Resamples: 500, Seed: 3}
	for _, metric := range []string{MetricAUPRC, MetricAUROC} {
		a, b, labels, groups := correlated(600, 1, 0)
		// Identical scores: every paired difference is 0, so no evidence either way.
		c, err := Compare(a, a, labels, groups, bs, metric, 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.Diff != 0 || c.CI != [2]float64{0, 0} || c.P != 1 || c.PReverse != 1 || c.PHolm != c.P || c.Resamples != 500 || c.Metric != metric {
			t.Errorf("%s identical: %+v, want diff 0, CI [0 0], p 1 both ways", metric, c)
		}
		// A clearly better model: the bootstrap never sees b ahead, p is its floor.
		good, _, _, _ := correlated(600, 1, 1.5)
		c, err = Compare(good, b, labels, groups, bs, metric, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !(c.Diff > 0 && c.CI[0] > 0 && c.P < 0.01 && c.PReverse > 0.99) {
			t.Errorf("%s better: %+v, want a positive difference with small p", metric, c)
		}
		// The same comparison the other way round: the reverse test carries it.
		r, err := Compare(b, good, labels, groups, bs, metric, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Diff != -c.Diff || r.P != c.PReverse || r.PReverse != c.P {
			t.Errorf("%s swapped: %+v, want the mirror of %+v", metric, r, c)
		}
		// Non-inferiority: b against the clearly better model is not shown
		// non-inferior within a small margin, and is within a margin beyond the gap.
		for _, tc := range []struct {
			margin float64
			shown  bool
		}{{0.01, false}, {c.CI[1] + 0.05, true}} {
			ni, err := Compare(b, good, labels, groups, bs, metric, tc.margin)
			if err != nil {
				t.Fatal(err)
			}
			if ni.Margin != tc.margin || (ni.P < 0.05) != tc.shown {
				t.Errorf("%s non-inferior within %.3f: %+v, want shown %v", metric, tc.margin, ni, tc.shown)
			}
		}
	}
}

// Paired resamples cancel the shared signal: the interval of the paired difference is
// much narrower than that of the difference of independently resampled metrics.
func TestComparePairedNarrower(t *testing.T) {
	a, b, labels, groups := correlated(600, 2, 0.2)
	bs := Bootstrap{Resamples: 400, Seed: 5}
	c, err := Compare(a, b, labels, groups, bs, MetricAUPRC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := rank(a, labels)
	rb, _ := rank(b, labels)
	ba, err := bootstrap([]*ranking{ra}, labels, groups, bs, []string{MetricAUPRC})
	if err != nil {
		t.Fatal(err)
	}
	bb, err := bootstrap([]*ranking{rb}, labels, groups, Bootstrap{Resamples: 400, Seed: 6}, []string{MetricAUPRC})
	if err != nil {
		t.Fatal(err)
	}
	d := make([]float64, 400)
	for s := range d {
		d[s] = ba[0][0][s] - bb[0][0][s]
	}
	un := percentileInterval(d)
	paired, unpaired := c.CI[1]-c.CI[0], un[1]-un[0]
	if !(paired < unpaired/2) {
		t.Errorf("paired interval %v (width %.4f) not much narrower than unpaired %v (width %.4f)", c.CI, paired, un, unpaired)
	}
	if !(c.CI[0] <= c.Diff && c.Diff <= c.CI[1]) {
		t.Errorf("difference %v outside its interval %v", c.Diff, c.CI)
	}
}

// Under the null, two exchangeable models, the one-sided test rejects at 5% about 5%
// of the time, not far more.
func TestCompareNullRejectionRate(t *testing.T) {
	rejected := 0
	const sims = 120
	for s := range sims {
		a, b, labels, groups := correlated(300, uint64(100+s), 0)
		c, err := Compare(a, b, labels, groups, Bootstrap{Resamples: 200, Seed: uint64(s)}, MetricAUPRC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.P < 0.05 {
			rejected++
		}
	}
	if rejected > sims/8 {
		t.Errorf("null rejected %d of %d times at 5%%", rejected, sims)
	}
	t.Logf("null rejected %d of %d", rejected, sims)
}

func TestCompareErrors(t *testing.T) {
	a, b, labels, groups := correlated(200, 1, 0)
	bs := Bootstrap{Resamples: 50, Seed: 1}
	few, fewLabels := a[:100], slices.Clone(labels[:100])
	n := 0
	for i := range fewLabels {
		if fewLabels[i] {
			n++
			fewLabels[i] = n <= MinPositives-1
		}
	}
	if n < MinPositives {
		t.Fatalf("fixture: only %d positives", n)
	}
	if _, err := Compare(few, b[:100], fewLabels, groups[:100], bs, MetricAUPRC, 0); !errors.Is(err, ErrTooFewPositives) {
		t.Errorf("%d positives: %v, want ErrTooFewPositives", MinPositives-1, err)
	}
	// At exactly MinPositives, a comparison.
	ten := slices.Clone(labels[:100])
	m := 0
	for i := range ten {
		if ten[i] {
			m++
			ten[i] = m <= MinPositives
		}
	}
	if _, err := Compare(few, b[:100], ten, groups[:100], bs, MetricAUPRC, 0); err != nil {
		t.Errorf("%d positives: %v", MinPositives, err)
	}
	for _, tc := range []struct {
		name   string
		a      []float64
		metric string
		margin float64
	}{
		{"short", a[:10], MetricAUPRC, 0},
		{"metric", a, "brier", 0},
		{"nan", append(slices.Clone(a[:199]), math.NaN()), MetricAUPRC, 0},
		{"negative margin", a, MetricAUPRC, -0.1},
	} {
		if _, err := Compare(tc.a, b, labels, groups, bs, tc.metric, tc.margin); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestFormatP(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want string
	}{
		{50.0 / 1001, "0.04995"}, // Holm's floor at B = 1000 and 50 tests: not "0.05"
		{0.05, "0.05"},
		{0.0939, "0.0939"},
		{0.123456, "0.123"},
		{1, "1"},
		{1.0 / 5001, "0.0002"},
	} {
		if got := FormatP(tc.p); got != tc.want {
			t.Errorf("FormatP(%v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
