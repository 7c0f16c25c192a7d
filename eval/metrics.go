// Package eval scores binary predictions the way the study reports them: average
// precision (AUPRC) exactly as scikit-learn's average_precision_score computes it,
// AUROC as the Mann-Whitney statistic, prevalence, and 95% confidence intervals from
// seeded patient-level bootstrap resamples. It also writes the evaluation report
// (JSON, Markdown) and one precision-recall plot per task.
//
// Degenerate inputs (no rows, no positives, no negatives, NaN scores) return an
// error that errors.Is matches against ErrEmpty, ErrNoPositives, ErrNoNegatives or
// ErrNaNScore, never a NaN metric.
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

// Metrics are one model's scores on one task, as report.json carries them.
type Metrics struct {
	AUPRC   float64    `json:"auprc"`
	AUPRCCI [2]float64 `json:"auprc_ci"`
	AUROC   float64    `json:"auroc"`
	AUROCCI [2]float64 `json:"auroc_ci"`
}

// Bootstrap configures the confidence intervals.
type Bootstrap struct {
	// Resamples is the number of patient-level resamples; 1,000 in the study.
	Resamples int
	// Seed makes the resamples reproducible.
	Seed uint64
}

// DefaultBootstrap is the study's setting: 1,000 resamples.
func DefaultBootstrap(seed uint64) Bootstrap { return Bootstrap{Resamples: 1000, Seed: seed} }

// Score computes AUPRC and AUROC with 95% percentile intervals. groups holds each
// row's patient id: a resample draws patients with replacement and keeps all of a
// drawn patient's rows, so that patients with several index dates are not counted as
// independent. Resamples that draw no positive or no negative are redrawn, up to
// ten times the requested count, after which Score gives up with an error.
func Score(scores []float64, labels []bool, groups []int64, b Bootstrap) (Metrics, error) {
	var m Metrics
	if len(groups) != len(scores) {
		return m, fmt.Errorf("score: %d patient ids for %d rows: %w", len(groups), len(scores), ErrLength)
	}
	r, err := rank(scores, labels)
	if err != nil {
		return m, fmt.Errorf("score: %w", err)
	}
	if m.AUPRC, err = r.ap(nil); err != nil {
		return m, fmt.Errorf("score: %w", err)
	}
	if m.AUROC, err = r.auroc(nil); err != nil {
		return m, fmt.Errorf("score: %w", err)
	}
	if b.Resamples <= 0 {
		return m, fmt.Errorf("score: %d bootstrap resamples, want at least 1", b.Resamples)
	}
	rs := NewPatientResampler(groups, rand.New(rand.NewPCG(b.Seed, 0x6576616c)))
	weight := make([]int32, len(scores))
	aps := make([]float64, 0, b.Resamples)
	aucs := make([]float64, 0, b.Resamples)
	for tries := 0; len(aps) < b.Resamples; tries++ {
		if tries >= 10*b.Resamples {
			return m, fmt.Errorf("score: only %d of %d bootstrap resamples held both classes: %w", len(aps), b.Resamples, ErrNoPositives)
		}
		clear(weight)
		rs.Draw(func(i int) { weight[i]++ })
		ap, err1 := r.ap(weight)
		auc, err2 := r.auroc(weight)
		if err1 != nil || err2 != nil {
			continue
		}
		aps = append(aps, ap)
		aucs = append(aucs, auc)
	}
	m.AUPRCCI = percentileInterval(aps)
	m.AUROCCI = percentileInterval(aucs)
	return m, nil
}

// percentileInterval returns the 2.5th and 97.5th percentiles, linearly interpolated
// between order statistics as numpy.percentile does by default.
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
