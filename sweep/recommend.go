package sweep

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fedclaims/fedclaims/eval"
)

// Rule is how the sweep decides which preset is enough for a task.
//
//   - The best preset is the one whose head has the lowest validation-split
//     log-loss (the smallest of those tied): the test split never chooses, and a
//     proper scoring rule over every validation patient is steadier than an AUPRC
//     that a handful of positives decide.
//   - A preset smaller than the best is enough when it is shown non-inferior to the
//     best on the test split: d = AUPRC_smaller - AUPRC_best under the same
//     stratified patient resamples for both (eval.Compare), and the one-sided
//     p-value of H0: d <= -Margin, Holm-corrected across every comparison of the
//     sweep, is below Alpha. A test that cannot reject (too few patients, a real
//     loss) leaves the best preset as the recommendation: lack of evidence is never
//     read as "as good".
//   - A task whose test split has fewer than eval.MinPositives positives is not
//     decided: the best on validation is named, and the report says why.
type Rule struct {
	// Margin is the AUPRC loss against the best preset that still counts as enough.
	Margin    float64
	Alpha     float64
	Resamples int
	Seed      uint64
}

// Candidate is one preset's result on one task.
type Candidate struct {
	Preset string
	Params int
	// Compute is the preset's pretraining cost in CPU-seconds.
	Compute float64
	// AUPRC is the test split's; ValidLogLoss the head's validation log-loss, which
	// chooses the best preset.
	AUPRC        float64
	ValidLogLoss float64
	// Scores are the test rows' predictions, row for row with the task's labels.
	Scores []float64
}

// TaskCandidates are every preset's results on one task, with the test rows'
// labels and patient ids that all of them share.
type TaskCandidates struct {
	Task   string
	Labels []bool
	Groups []int64
	Cands  []Candidate
}

// Verdict is how a candidate compares with the best preset on one task.
type Verdict struct {
	Preset       string  `json:"preset"`
	AUPRC        float64 `json:"auprc"`
	ValidLogLoss float64 `json:"valid_logloss"`
	// Comparison is this preset minus the best on the test split, with the
	// non-inferiority test's p-values; absent for the best itself, for presets
	// larger than the best and when the test split is too small.
	Comparison *eval.Comparison `json:"comparison,omitempty"`
	// NonInferior is whether the Holm-corrected p-value is below alpha.
	NonInferior bool `json:"non_inferior"`
}

// Reasons a preset is recommended.
const (
	ReasonBest        = "best on validation"
	ReasonNonInferior = "non-inferior to the best"
	ReasonNeeded      = "no smaller preset shown non-inferior"
	ReasonUndecided   = "test split too small to decide"
)

// Recommendation is the smallest preset that is enough for one task.
type Recommendation struct {
	Task    string `json:"task"`
	Preset  string `json:"preset"`
	Best    string `json:"best"`
	Largest string `json:"largest"`
	Reason  string `json:"reason"`
	// Decided is false when the test split has too few positives to test anything.
	Decided       bool    `json:"decided"`
	PositivesTest int     `json:"positives_test"`
	AUPRC         float64 `json:"auprc"`
	// LargestGain is the largest preset's test AUPRC minus the recommended one's.
	LargestGain float64 `json:"largest_gain"`
	// SavedHours and SavedPercent are the pretraining CPU-hours the recommendation
	// saves against the largest preset; ComputeRatio is the largest's compute over
	// the recommended one's.
	SavedHours   float64   `json:"saved_cpu_hours"`
	SavedPercent float64   `json:"saved_percent"`
	ComputeRatio float64   `json:"compute_ratio"`
	Verdicts     []Verdict `json:"verdicts"`
	Summary      string    `json:"summary"`
}

// Recommend decides every task under r. It takes all tasks at once because the
// Holm correction runs across every comparison of the sweep.
func Recommend(ts []TaskCandidates, r Rule) ([]Recommendation, error) {
	if r.Resamples < 1 {
		return nil, fmt.Errorf("%d bootstrap resamples, want at least 1", r.Resamples)
	}
	if !(r.Margin >= 0) {
		return nil, fmt.Errorf("margin %g, want at least 0", r.Margin)
	}
	recs := make([]Recommendation, len(ts))
	sorted := make([][]Candidate, len(ts))
	bestOf := make([]int, len(ts))
	// The family of the Holm correction: every (task, smaller preset) comparison.
	type at struct{ task, verdict int }
	var family []at
	var ps []float64
	for k, t := range ts {
		if len(t.Cands) == 0 {
			return nil, fmt.Errorf("task %s: no presets to compare", t.Task)
		}
		if len(t.Groups) != len(t.Labels) {
			return nil, fmt.Errorf("task %s: %d patient ids for %d labels", t.Task, len(t.Groups), len(t.Labels))
		}
		for _, c := range t.Cands {
			if len(c.Scores) != len(t.Labels) {
				return nil, fmt.Errorf("task %s: preset %s has %d scores for %d labels", t.Task, c.Preset, len(c.Scores), len(t.Labels))
			}
		}
		cs := slices.Clone(t.Cands)
		slices.SortStableFunc(cs, func(a, b Candidate) int { return cmp.Compare(a.Params, b.Params) })
		best := 0
		for i, c := range cs {
			// Strictly lower: of presets tied at the top, the smallest is the best.
			if c.ValidLogLoss < cs[best].ValidLogLoss {
				best = i
			}
		}
		sorted[k], bestOf[k] = cs, best
		pos := 0
		for _, y := range t.Labels {
			if y {
				pos++
			}
		}
		rec := Recommendation{Task: t.Task, Best: cs[best].Preset, Largest: cs[len(cs)-1].Preset,
			PositivesTest: pos, Decided: pos >= eval.MinPositives}
		for i, c := range cs {
			v := Verdict{Preset: c.Preset, AUPRC: c.AUPRC, ValidLogLoss: c.ValidLogLoss}
			if i < best && rec.Decided {
				cmpr, err := eval.Compare(c.Scores, cs[best].Scores, t.Labels, t.Groups,
					eval.Bootstrap{Resamples: r.Resamples, Seed: r.Seed}, eval.MetricAUPRC, r.Margin)
				if err != nil && !errors.Is(err, eval.ErrTooFewPositives) {
					return nil, fmt.Errorf("task %s: %s against %s: %w", t.Task, c.Preset, cs[best].Preset, err)
				}
				if err == nil {
					v.Comparison = &cmpr
					family = append(family, at{k, i})
					ps = append(ps, cmpr.P)
				}
			}
			rec.Verdicts = append(rec.Verdicts, v)
		}
		recs[k] = rec
	}
	for j, adj := range eval.Holm(ps) {
		v := &recs[family[j].task].Verdicts[family[j].verdict]
		v.Comparison.PHolm = adj
		v.NonInferior = adj < r.Alpha
	}
	for k := range recs {
		recs[k].decide(sorted[k], bestOf[k], r)
	}
	return recs, nil
}

// decide picks the smallest non-inferior preset, else the best, and says why.
func (rec *Recommendation) decide(cs []Candidate, best int, r Rule) {
	pick := best
	for i := range best {
		if rec.Verdicts[i].NonInferior {
			pick = i
			break
		}
	}
	switch {
	case !rec.Decided:
		rec.Reason = ReasonUndecided
	case pick < best:
		rec.Reason = ReasonNonInferior
	case best > 0:
		rec.Reason = ReasonNeeded
	default:
		rec.Reason = ReasonBest
	}
	chosen, largest := cs[pick], cs[len(cs)-1]
	rec.Preset, rec.AUPRC = chosen.Preset, chosen.AUPRC
	rec.LargestGain = largest.AUPRC - chosen.AUPRC
	rec.SavedHours = (largest.Compute - chosen.Compute) / 3600
	if largest.Compute > 0 {
		rec.SavedPercent = 100 * (largest.Compute - chosen.Compute) / largest.Compute
	}
	if chosen.Compute > 0 {
		rec.ComputeRatio = largest.Compute / chosen.Compute
	}
	bestName := cs[best].Preset
	switch {
	case len(cs) == 1:
		rec.Summary = fmt.Sprintf("%s: only %s was swept (AUPRC %.3f); nothing to compare", rec.Task, chosen.Preset, chosen.AUPRC)
	case !rec.Decided:
		rec.Summary = fmt.Sprintf("%s: not decided: the test split has %d positives, fewer than %d; %s is best on validation",
			rec.Task, rec.PositivesTest, eval.MinPositives, bestName)
	case pick < best:
		c := rec.Verdicts[pick].Comparison
		rec.Summary = fmt.Sprintf("%s: %s is enough: non-inferior to %s (best on validation) within %.3f AUPRC, difference %+.3f [%.3f, %.3f], Holm p %s; %s costs %.1fx more compute",
			rec.Task, chosen.Preset, bestName, r.Margin, c.Diff, c.CI[0], c.CI[1], eval.FormatP(c.PHolm), largest.Preset, rec.ComputeRatio)
	case best > 0:
		var why []string
		for i := range best {
			if c := rec.Verdicts[i].Comparison; c != nil {
				why = append(why, fmt.Sprintf("%s %+.3f [%.3f, %.3f], Holm p %s", cs[i].Preset, c.Diff, c.CI[0], c.CI[1], eval.FormatP(c.PHolm)))
			}
		}
		rec.Summary = fmt.Sprintf("%s: %s (best on validation) is needed: no smaller preset is shown within %.3f AUPRC of it (%s)",
			rec.Task, bestName, r.Margin, strings.Join(why, "; "))
	default:
		rec.Summary = fmt.Sprintf("%s: %s, the smallest swept, is best on validation", rec.Task, chosen.Preset)
	}
}
