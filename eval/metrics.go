// Package eval scores binary predictions the way the study reports them: average
// precision (AUPRC) exactly as scikit-learn's average_precision_score computes it,
// AUROC as the Mann-Whitney statistic, prevalence, calibration (Brier score,
// calibration slope and intercept), 95% confidence intervals from seeded
// patient-level bootstrap resamples stratified by outcome, and the paired bootstrap
// test that tells whether the encoder's difference from the baseline is more than
// noise, Holm-corrected across a report's tasks. It also writes the evaluation report
// (JSON, Markdown) and the precision-recall and reliability plots.
//
// The rules: no interval and no test from fewer than MinPositives positives; a
// difference is a claim only when its Holm-adjusted one-sided p-value is below 0.05.
//
// Degenerate inputs (no rows, no positives, no negatives, NaN scores) return an
// error that errors.Is matches against ErrEmpty, ErrNoPositives, ErrNoNegatives or
// ErrNaNScore, never a NaN metric; Evaluate turns a degenerate test split into an
// undecided task instead.
package eval

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Errors for inputs on which a metric is undefined.
var (
	ErrEmpty       = errors.New("no rows to score")
	ErrNoPositives = errors.New("no positive labels")
	ErrNoNegatives = errors.New("no negative labels")
	ErrNaNScore    = errors.New("score is NaN")
	ErrLength      = errors.New("scores and labels differ in length")
)

// ranking is a set of scored rows sorted by score, highest first, with ties kept
// together, so that every metric and every bootstrap resample walks it once.
type ranking struct {
	score []float64
	label []bool
	row   []int // original row index, to map bootstrap multiplicities
}

func rank(scores []float64, labels []bool) (*ranking, error) {
	if len(scores) != len(labels) {
		return nil, fmt.Errorf("%w: %d scores, %d labels", ErrLength, len(scores), len(labels))
	}
	if len(scores) == 0 {
		return nil, ErrEmpty
	}
	idx := make([]int, len(scores))
	for i, s := range scores {
		if math.IsNaN(s) {
			return nil, fmt.Errorf("row %d: %w", i, ErrNaNScore)
		}
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	r := &ranking{score: make([]float64, len(idx)), label: make([]bool, len(idx)), row: idx}
	for k, i := range idx {
		r.score[k], r.label[k] = scores[i], labels[i]
	}
	return r, nil
}

// counts returns the weighted positives and negatives; weight nil means 1 per row.
func (r *ranking) counts(weight []int32) (pos, neg float64) {
	for k, y := range r.label {
		w := 1.0
		if weight != nil {
			w = float64(weight[r.row[k]])
		}
		if y {
			pos += w
		} else {
			neg += w
		}
	}
	return pos, neg
}

// walk calls visit once per distinct score, after adding that score's rows, with the
// cumulative true and false positives and the group's own counts.
func (r *ranking) walk(weight []int32, visit func(tp, fp, gtp, gfp float64)) {
	var tp, fp float64
	for k := 0; k < len(r.score); {
		var gtp, gfp float64
		j := k
		for ; j < len(r.score) && r.score[j] == r.score[k]; j++ {
			w := 1.0
			if weight != nil {
				w = float64(weight[r.row[j]])
			}
			if r.label[j] {
				gtp += w
			} else {
				gfp += w
			}
		}
		tp += gtp
		fp += gfp
		if gtp+gfp > 0 {
			visit(tp, fp, gtp, gfp)
		}
		k = j
	}
}

// ap is scikit-learn's average precision: sum over thresholds of
// (R_n - R_{n-1}) * P_n, a step function, not the trapezoid.
func (r *ranking) ap(weight []int32) (float64, error) {
	pos, _ := r.counts(weight)
	if pos == 0 {
		return 0, ErrNoPositives
	}
	var sum, prevRecall float64
	r.walk(weight, func(tp, fp, _, _ float64) {
		recall := tp / pos
		sum += (recall - prevRecall) * (tp / (tp + fp))
		prevRecall = recall
	})
	return sum, nil
}

// auroc is the Mann-Whitney U statistic over P*N pairs, a tie counting one half.
func (r *ranking) auroc(weight []int32) (float64, error) {
	pos, neg := r.counts(weight)
	if pos == 0 {
		return 0, ErrNoPositives
	}
	if neg == 0 {
		return 0, ErrNoNegatives
	}
	var u float64
	r.walk(weight, func(_, fp, gtp, gfp float64) {
		below := neg - fp // negatives scored strictly lower than this group
		u += gtp*below + 0.5*gtp*gfp
	})
	return u / (pos * neg), nil
}

// AveragePrecision returns the area under the precision-recall curve as
// scikit-learn's average_precision_score defines it.
func AveragePrecision(scores []float64, labels []bool) (float64, error) {
	r, err := rank(scores, labels)
	if err != nil {
		return 0, fmt.Errorf("average precision: %w", err)
	}
	v, err := r.ap(nil)
	if err != nil {
		return 0, fmt.Errorf("average precision: %w", err)
	}
	return v, nil
}

// AUROC returns the area under the ROC curve, ties counting one half.
func AUROC(scores []float64, labels []bool) (float64, error) {
	r, err := rank(scores, labels)
	if err != nil {
		return 0, fmt.Errorf("AUROC: %w", err)
	}
	v, err := r.auroc(nil)
	if err != nil {
		return 0, fmt.Errorf("AUROC: %w", err)
	}
	return v, nil
}

// Prevalence returns the fraction of positive labels.
func Prevalence(labels []bool) (float64, error) {
	if len(labels) == 0 {
		return 0, fmt.Errorf("prevalence: %w", ErrEmpty)
	}
	n := 0
	for _, y := range labels {
		if y {
			n++
		}
	}
	return float64(n) / float64(len(labels)), nil
}

// PRCurve returns the precision-recall curve, one point per distinct score from the
// highest down, starting at recall 0 and precision 1 as scikit-learn plots it.
func PRCurve(scores []float64, labels []bool) (recall, precision []float64, err error) {
	r, err := rank(scores, labels)
	if err != nil {
		return nil, nil, fmt.Errorf("precision-recall curve: %w", err)
	}
	pos, _ := r.counts(nil)
	if pos == 0 {
		return nil, nil, fmt.Errorf("precision-recall curve: %w", ErrNoPositives)
	}
	recall, precision = []float64{0}, []float64{1}
	r.walk(nil, func(tp, fp, _, _ float64) {
		recall = append(recall, tp/pos)
		precision = append(precision, tp/(tp+fp))
	})
	return recall, precision, nil
}

// MinPositives is the fewest positives from which an interval or a comparison is
// computed, counted as positive rows and as patients with a positive row (they
// differ only with several index dates per patient, and the bootstrap resamples
// patients): with fewer, a bootstrap interval of AUPRC mostly measures which
// handful of positives a resample drew.
const MinPositives = 10

// ErrTooFewPositives is returned by Compare when the split has fewer than
// MinPositives positives.
var ErrTooFewPositives = fmt.Errorf("fewer than %d positives", MinPositives)

// Metrics are one model's scores on one task, as report.json carries them. The
// intervals are nil when the split has fewer than MinPositives positives.
type Metrics struct {
	AUPRC   float64     `json:"auprc"`
	AUPRCCI *[2]float64 `json:"auprc_ci,omitempty"`
	AUROC   float64     `json:"auroc"`
	AUROCCI *[2]float64 `json:"auroc_ci,omitempty"`
	// Brier is the mean squared error of the predicted probabilities.
	Brier float64 `json:"brier"`
	// CalibrationSlope and CalibrationIntercept are as Calibration defines them.
	CalibrationSlope     float64 `json:"calibration_slope"`
	CalibrationIntercept float64 `json:"calibration_intercept"`
}

// Bootstrap configures the confidence intervals and the paired tests.
type Bootstrap struct {
	// Resamples is the number of patient-level resamples; 1,000 in the study.
	Resamples int
	// Seed makes the resamples reproducible.
	Seed uint64
}

// DefaultBootstrap is the study's setting: 1,000 resamples.
func DefaultBootstrap(seed uint64) Bootstrap { return Bootstrap{Resamples: 1000, Seed: seed} }

// bootstrapStream is the PCG stream of every resample Score and Compare draw: the
// same seed gives the same resamples to every model of a task, so that the
// per-model intervals and the paired differences come from one set of resamples.
const bootstrapStream = 0x6576616c

// Metric names, as Comparison.Metric holds them.
const (
	MetricAUPRC = "auprc"
	MetricAUROC = "auroc"
)

func metricFunc(name string) (func(*ranking, []int32) (float64, error), error) {
	switch name {
	case MetricAUPRC:
		return (*ranking).ap, nil
	case MetricAUROC:
		return (*ranking).auroc, nil
	}
	return nil, fmt.Errorf("metric %q, want %q or %q", name, MetricAUPRC, MetricAUROC)
}

// Positives counts the positive rows.
func Positives(labels []bool) int {
	n := 0
	for _, y := range labels {
		if y {
			n++
		}
	}
	return n
}

// positivePatients counts the patients with a positive row and those without.
func positivePatients(labels []bool, groups []int64) (pos, neg int) {
	seen := map[int64]bool{} // patient -> has a positive row
	for i, g := range groups {
		seen[g] = seen[g] || labels[i]
	}
	for _, p := range seen {
		if p {
			pos++
		} else {
			neg++
		}
	}
	return pos, neg
}

// resampleReady reports why no resample is drawn for these labels and patients, or
// nil when they are: at least MinPositives positive rows and as many patients with
// a positive row (ErrTooFewPositives), and a patient without positives
// (ErrNoNegatives), without whom a stratified resample of patients who each have a
// positive row could lack negatives.
func resampleReady(labels []bool, groups []int64) error {
	n := Positives(labels)
	if n < MinPositives {
		return fmt.Errorf("%d positives: %w", n, ErrTooFewPositives)
	}
	if n == len(labels) {
		return ErrNoNegatives
	}
	pos, neg := positivePatients(labels, groups)
	if pos < MinPositives {
		return fmt.Errorf("%d patients with a positive row: %w", pos, ErrTooFewPositives)
	}
	if neg == 0 {
		return fmt.Errorf("every patient has a positive row, so a resample could lack negatives: %w", ErrNoNegatives)
	}
	return nil
}

// bootstrap draws b.Resamples stratified patient resamples and returns, for each
// ranking and each metric, the metric on every resample: out[k][m][s]. Every
// ranking gets the same resamples. The caller has checked resampleReady, so that
// every resample holds both classes; a metric error is returned, never skipped.
func bootstrap(rks []*ranking, labels []bool, groups []int64, b Bootstrap, metrics []string) ([][][]float64, error) {
	if b.Resamples <= 0 {
		return nil, fmt.Errorf("%d bootstrap resamples, want at least 1", b.Resamples)
	}
	fns := make([]func(*ranking, []int32) (float64, error), len(metrics))
	for m, name := range metrics {
		f, err := metricFunc(name)
		if err != nil {
			return nil, err
		}
		fns[m] = f
	}
	out := make([][][]float64, len(rks))
	for k := range out {
		out[k] = make([][]float64, len(metrics))
		for m := range metrics {
			out[k][m] = make([]float64, b.Resamples)
		}
	}
	rs := NewStratifiedResampler(groups, labels, rand.New(rand.NewPCG(b.Seed, bootstrapStream)))
	weight := make([]int32, len(labels))
	for s := range b.Resamples {
		clear(weight)
		rs.Draw(func(i int) { weight[i]++ })
		for k, r := range rks {
			for m, f := range fns {
				v, err := f(r, weight)
				if err != nil {
					return nil, fmt.Errorf("bootstrap resample %d: %w", s, err)
				}
				out[k][m][s] = v
			}
		}
	}
	return out, nil
}

// pointMetrics fills the point estimates of Metrics: both classes must be present.
func pointMetrics(r *ranking, scores []float64, labels []bool) (Metrics, error) {
	var m Metrics
	var err error
	if m.AUPRC, err = r.ap(nil); err != nil {
		return m, err
	}
	if m.AUROC, err = r.auroc(nil); err != nil {
		return m, err
	}
	if m.Brier, err = Brier(scores, labels); err != nil {
		return m, err
	}
	if m.CalibrationSlope, m.CalibrationIntercept, err = Calibration(scores, labels); err != nil {
		return m, err
	}
	return m, nil
}

// Score computes AUPRC, AUROC, the Brier score and the calibration slope and
// intercept of predicted probabilities, and, when the split holds at least
// MinPositives positive rows and positive patients, 95% percentile intervals of
// AUPRC and AUROC from b.Resamples bootstrap resamples (nil intervals otherwise).
// groups holds each row's patient id: a resample is stratified by outcome
// (NewStratifiedResampler), drawing patients with replacement and keeping all of a
// drawn patient's rows, so that patients with several index dates are not counted
// as independent; no resample is ever redrawn. A split without positives or negatives is an error (ErrNoPositives,
// ErrNoNegatives), as is a score outside [0, 1] (ErrNotProbability).
//
// When every patient has a positive row, a stratified resample could lack negatives;
// the intervals are then nil too.
func Score(scores []float64, labels []bool, groups []int64, b Bootstrap) (Metrics, error) {
	if len(groups) != len(scores) {
		return Metrics{}, fmt.Errorf("score: %d patient ids for %d rows: %w", len(groups), len(scores), ErrLength)
	}
	if b.Resamples <= 0 {
		return Metrics{}, fmt.Errorf("score: %d bootstrap resamples, want at least 1", b.Resamples)
	}
	r, err := rank(scores, labels)
	if err != nil {
		return Metrics{}, fmt.Errorf("score: %w", err)
	}
	m, err := pointMetrics(r, scores, labels)
	if err != nil {
		return Metrics{}, fmt.Errorf("score: %w", err)
	}
	if resampleReady(labels, groups) != nil {
		return m, nil
	}
	boot, err := bootstrap([]*ranking{r}, labels, groups, b, []string{MetricAUPRC, MetricAUROC})
	if err != nil {
		return Metrics{}, fmt.Errorf("score: %w", err)
	}
	setIntervals(&m, boot[0])
	return m, nil
}

// setIntervals fills m's intervals from its resampled AUPRC and AUROC. It sorts
// copies: the resamples' order pairs them with the other models' for Compare.
func setIntervals(m *Metrics, boot [][]float64) {
	ap, auc := percentileInterval(slices.Clone(boot[0])), percentileInterval(slices.Clone(boot[1]))
	m.AUPRCCI, m.AUROCCI = &ap, &auc
}

// percentileInterval returns the 2.5th and 97.5th percentiles, linearly interpolated
// between order statistics as numpy.percentile does by default. It sorts v.
func percentileInterval(v []float64) [2]float64 {
	slices.Sort(v)
	return [2]float64{quantile(v, 0.025), quantile(v, 0.975)}
}

func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[hi]-sorted[lo])
}
