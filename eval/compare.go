package eval

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
)

// Comparison is the paired bootstrap comparison of two models, a and b (in a report
// the encoder and the baseline), on one metric of one task.
type Comparison struct {
	// Metric is "auprc" or "auroc".
	Metric string `json:"metric"`
	// Diff is metric(a) - metric(b) on the full split.
	Diff float64 `json:"diff"`
	// CI is the 95% percentile interval of the paired bootstrap difference.
	CI [2]float64 `json:"ci"`
	// Margin is the non-inferiority margin; 0 tests superiority.
	Margin float64 `json:"margin,omitempty"`
	// P is the one-sided p-value of H0: diff <= -Margin, against "a is better than
	// b" (Margin 0) or "a is not worse than b by Margin or more" (Margin > 0).
	P float64 `json:"p"`
	// PHolm is P adjusted by Holm across a report's comparisons of this metric, both
	// directions in one family (see NewReport); P itself until NewReport adjusts it.
	PHolm float64 `json:"p_holm"`
	// PReverse is the one-sided p-value of the reverse test, a and b swapped:
	// H0: diff >= Margin, against "b is better than a" (Margin 0).
	PReverse float64 `json:"p_reverse"`
	// PReverseHolm is PReverse adjusted in the same family as PHolm.
	PReverseHolm float64 `json:"p_reverse_holm"`
	// Resamples is the number of paired bootstrap resamples.
	Resamples int `json:"resamples"`
}

// Compare is the paired bootstrap comparison of score vectors a and b on the same
// rows (labels, patient ids groups) for metric "auprc" or "auroc". The same
// stratified patient resamples (NewStratifiedResampler, seeded by bs.Seed as Score
// draws them) are applied to both; on resample s, d*_s = metric(a*_s) - metric(b*_s).
// With B = bs.Resamples:
//
//	P        = (1 + #{d* <= -margin}) / (1 + B)   H0: diff <= -margin
//	PReverse = (1 + #{d* >= +margin}) / (1 + B)   H0: diff >= +margin
//
// so that P < alpha exactly when the lower one-sided (1-alpha) percentile bound of
// the difference lies above -margin. Identical scores give d* = 0 throughout and
// P = PReverse = 1. margin must be >= 0.
//
// The split must hold at least MinPositives positive rows and as many patients
// with a positive row (else an error errors.Is matches against ErrTooFewPositives)
// and a patient without positives (ErrNoNegatives). Scores may be any real numbers
// (NaN is an error).
func Compare(a, b []float64, labels []bool, groups []int64, bs Bootstrap, metric string, margin float64) (Comparison, error) {
	if len(a) != len(b) || len(groups) != len(labels) {
		return Comparison{}, fmt.Errorf("compare: %d and %d scores, %d patient ids for %d labels: %w", len(a), len(b), len(groups), len(labels), ErrLength)
	}
	if !(margin >= 0) {
		return Comparison{}, fmt.Errorf("compare: margin %v, want >= 0", margin)
	}
	ra, err := rank(a, labels)
	if err != nil {
		return Comparison{}, fmt.Errorf("compare: %w", err)
	}
	rb, err := rank(b, labels)
	if err != nil {
		return Comparison{}, fmt.Errorf("compare: %w", err)
	}
	if err := resampleReady(labels, groups); err != nil {
		return Comparison{}, fmt.Errorf("compare: %w", err)
	}
	boot, err := bootstrap([]*ranking{ra, rb}, labels, groups, bs, []string{metric})
	if err != nil {
		return Comparison{}, fmt.Errorf("compare: %w", err)
	}
	return comparison(ra, rb, boot[0][0], boot[1][0], metric, margin)
}

// comparison assembles a Comparison from the full-split rankings and the two models'
// metric on the same resamples.
func comparison(ra, rb *ranking, ba, bb []float64, metric string, margin float64) (Comparison, error) {
	f, err := metricFunc(metric)
	if err != nil {
		return Comparison{}, err
	}
	va, err := f(ra, nil)
	if err != nil {
		return Comparison{}, err
	}
	vb, err := f(rb, nil)
	if err != nil {
		return Comparison{}, err
	}
	d := make([]float64, len(ba))
	below, above := 0, 0
	for s := range ba {
		d[s] = ba[s] - bb[s]
		if d[s] <= -margin {
			below++
		}
		if d[s] >= margin {
			above++
		}
	}
	n := float64(1 + len(d))
	c := Comparison{
		Metric: metric, Diff: va - vb, CI: percentileInterval(d), Margin: margin,
		P: float64(1+below) / n, PReverse: float64(1+above) / n, Resamples: len(d),
	}
	c.PHolm, c.PReverseHolm = c.P, c.PReverse
	return c, nil
}

// HolmBoth Holm-adjusts cs's p-values and their reverse tests' as one family,
// setting each comparison's PHolm and PReverseHolm: both directions are in the
// family, so that neither "better" nor "worse" is claimed more often than the level
// allows.
func HolmBoth(cs []*Comparison) {
	family := make([]float64, 0, 2*len(cs))
	for _, c := range cs {
		family = append(family, c.P, c.PReverse)
	}
	family = Holm(family)
	for k, c := range cs {
		c.PHolm, c.PReverseHolm = family[2*k], family[2*k+1]
	}
}

// Holm returns the Holm-Bonferroni step-down adjusted p-values of p, in p's order:
// with p sorted ascending as p_(1) <= ... <= p_(m), the adjusted p_(i) is
// max over j <= i of min(1, (m - j + 1) * p_(j)). Rejecting the hypotheses whose
// adjusted p-value is below alpha controls the familywise error rate at alpha.
func Holm(p []float64) []float64 {
	m := len(p)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(p[i], p[j]) })
	out := make([]float64, m)
	running := 0.0
	for k, i := range order {
		running = max(running, min(1, float64(m-k)*p[i]))
		out[i] = running
	}
	return out
}

// FormatP prints a p-value for a report: three significant digits, four below
// 0.1, so that a p just under a threshold (Holm's m/(B+1) = 0.04995, say) is
// never printed as the threshold itself.
func FormatP(p float64) string {
	if p < 0.1 {
		return strconv.FormatFloat(p, 'g', 4, 64)
	}
	return strconv.FormatFloat(p, 'g', 3, 64)
}
