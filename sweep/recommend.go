package sweep

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/fedclaims/fedclaims/eval"
)

// Rule is how a preset is judged as good as the best: its AUPRC is within
// Tolerance of the best preset's, or a paired bootstrap test does not find it worse.
//
// The test: the same Resamples resamples of test patients (drawn with replacement,
// all of a drawn patient's rows kept, resamples without both classes redrawn) are
// applied to both presets' predictions; d_b = AUPRC_best,b - AUPRC_candidate,b. The
// one-sided p-value of "the candidate is worse" is (1 + #{d_b <= 0}) / (1 + B), and
// the candidate is significantly worse when p < Alpha.
type Rule struct {
	Tolerance float64
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
	AUPRC   float64
	// Scores are the test rows' predictions, row for row with the task's labels.
	Scores []float64
}

// Verdict is how a candidate compares with the best preset on one task.
type Verdict struct {
	Preset string  `json:"preset"`
	AUPRC  float64 `json:"auprc"`
	// Gap is the best preset's AUPRC minus this one's.
	Gap float64 `json:"gap"`
	// PValue is the paired bootstrap test's one-sided p-value (1 for the best itself).
	PValue float64 `json:"p_value"`
	// Enough is whether the preset is within tolerance or not significantly worse.
	Enough bool `json:"enough"`
}

// Recommendation is the smallest preset that is enough for one task.
type Recommendation struct {
	Task    string `json:"task"`
	Preset  string `json:"preset"`
	Best    string `json:"best"`
	Largest string `json:"largest"`
	// Reason is "best", "within tolerance" or "not significantly worse".
	Reason string  `json:"reason"`
	AUPRC  float64 `json:"auprc"`
	// LargestGain is the largest preset's AUPRC minus the recommended one's.
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

// Recommend picks, for one task, the smallest preset (by parameters) that is enough
// under r. labels and groups (patient ids) are the test rows shared by every
// candidate.
func Recommend(task string, labels []bool, groups []int64, cands []Candidate, r Rule) (Recommendation, error) {
	if len(cands) == 0 {
		return Recommendation{}, fmt.Errorf("task %s: no presets to compare", task)
	}
	if len(groups) != len(labels) {
		return Recommendation{}, fmt.Errorf("task %s: %d patient ids for %d labels", task, len(groups), len(labels))
	}
	for _, c := range cands {
		if len(c.Scores) != len(labels) {
			return Recommendation{}, fmt.Errorf("task %s: preset %s has %d scores for %d labels", task, c.Preset, len(c.Scores), len(labels))
		}
	}
	if r.Resamples < 1 {
		return Recommendation{}, fmt.Errorf("task %s: %d bootstrap resamples, want at least 1", task, r.Resamples)
	}
	cs := slices.Clone(cands)
	slices.SortStableFunc(cs, func(a, b Candidate) int { return cmp.Compare(a.Params, b.Params) })
	best := 0
	for i, c := range cs {
		// Strictly greater: of presets tied at the top, the smallest is the best.
		if c.AUPRC > cs[best].AUPRC {
			best = i
		}
	}
	largest := cs[len(cs)-1]
	rec := Recommendation{Task: task, Best: cs[best].Preset, Largest: largest.Preset}
	pick := -1
	for i, c := range cs {
		v := Verdict{Preset: c.Preset, AUPRC: c.AUPRC, Gap: cs[best].AUPRC - c.AUPRC, PValue: 1}
		if i != best {
			p, err := pairedPValue(cs[best].Scores, c.Scores, labels, groups, r)
			if err != nil {
				return Recommendation{}, fmt.Errorf("task %s: %s against %s: %w", task, c.Preset, cs[best].Preset, err)
			}
			v.PValue = p
		}
		v.Enough = v.Gap <= r.Tolerance || v.PValue >= r.Alpha
		if v.Enough && pick < 0 {
			pick = i
			switch {
			case i == best:
				rec.Reason = "best"
			case v.Gap <= r.Tolerance:
				rec.Reason = "within tolerance"
			default:
				rec.Reason = "not significantly worse"
			}
		}
		rec.Verdicts = append(rec.Verdicts, v)
	}
	chosen := cs[pick]
	rec.Preset, rec.AUPRC = chosen.Preset, chosen.AUPRC
	rec.LargestGain = largest.AUPRC - chosen.AUPRC
	rec.SavedHours = (largest.Compute - chosen.Compute) / 3600
	if largest.Compute > 0 {
		rec.SavedPercent = 100 * (largest.Compute - chosen.Compute) / largest.Compute
	}
	if chosen.Compute > 0 {
		rec.ComputeRatio = largest.Compute / chosen.Compute
	}
	switch {
	case len(cs) == 1:
		rec.Summary = fmt.Sprintf("%s: only %s was swept (AUPRC %.3f); nothing to compare", task, chosen.Preset, chosen.AUPRC)
	case pick == len(cs)-1:
		rec.Summary = fmt.Sprintf("%s: %s, the largest swept, is needed; every smaller preset is significantly worse by more than the tolerance", task, chosen.Preset)
	default:
		rec.Summary = fmt.Sprintf("%s: %s is enough; %s costs %.1fx more compute for %+.3f AUPRC", task, chosen.Preset, largest.Preset, rec.ComputeRatio, rec.LargestGain)
	}
	return rec, nil
}

// pairedPValue is the one-sided p-value of "b scores worse than a" under the same
// patient resamples for both; see Rule.
func pairedPValue(a, b []float64, labels []bool, groups []int64, r Rule) (float64, error) {
	rs := eval.NewPatientResampler(groups, rand.New(rand.NewPCG(r.Seed, 0x706169726564)))
	var ra, rb []float64
	var rl []bool
	notWorse, done := 0, 0
	for tries := 0; done < r.Resamples; tries++ {
		if tries >= 10*r.Resamples {
			return 0, fmt.Errorf("only %d of %d bootstrap resamples held both classes: %w", done, r.Resamples, eval.ErrNoPositives)
		}
		ra, rb, rl = ra[:0], rb[:0], rl[:0]
		rs.Draw(func(i int) {
			ra, rb, rl = append(ra, a[i]), append(rb, b[i]), append(rl, labels[i])
		})
		apA, errA := eval.AveragePrecision(ra, rl)
		apB, errB := eval.AveragePrecision(rb, rl)
		if errA != nil || errB != nil {
			if err := cmp.Or(errA, errB); !errors.Is(err, eval.ErrNoPositives) && !errors.Is(err, eval.ErrNoNegatives) {
				return 0, err
			}
			continue
		}
		done++
		if apA-apB <= 0 {
			notWorse++
		}
	}
	return float64(1+notWorse) / float64(1+r.Resamples), nil
}
