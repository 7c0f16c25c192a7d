package sweep

import (
	"math"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/eval"
)

// labelsOf makes n test rows, one per patient, every third positive.
func labelsOf(n int) ([]bool, []int64) {
	labels := make([]bool, n)
	groups := make([]int64, n)
	for i := range labels {
		labels[i] = i%3 == 0
		groups[i] = int64(1000 + i)
	}
	return labels, groups
}

// perfect ranks every positive above every negative.
func perfect(labels []bool) []float64 {
	s := make([]float64, len(labels))
	for i, l := range labels {
		if l {
			s[i] = 0.9
		} else {
			s[i] = 0.1
		}
	}
	return s
}

// demote gives k positives a score below every negative: a worse model.
func demote(labels []bool, k int) []float64 {
	s := perfect(labels)
	for i, l := range labels {
		if k == 0 {
			break
		}
		if l {
			s[i] = 0.05
			k--
		}
	}
	return s
}

func ap(t *testing.T, s []float64, labels []bool) float64 {
	t.Helper()
	v, err := eval.AveragePrecision(s, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRecommend(t *testing.T) {
	bigLabels, bigGroups := labelsOf(600)
	smallLabels, smallGroups := labelsOf(30)
	rule := Rule{Tolerance: 0.005, Alpha: 0.05, Resamples: 300, Seed: 1}
	type cand struct {
		name    string
		params  int
		compute float64
		scores  []float64
	}
	tests := []struct {
		name         string
		labels       []bool
		groups       []int64
		tol          float64
		cands        []cand
		want, reason string
		summary      string
	}{
		{
			// Identical predictions: the smallest is as good as any.
			name: "ties go to the smallest", labels: bigLabels, groups: bigGroups, tol: 0.005,
			cands: []cand{
				{"101m", 101e6, 9200, perfect(bigLabels)},
				{"11m", 11e6, 1000, perfect(bigLabels)},
				{"2m", 2e6, 200, perfect(bigLabels)},
			},
			want: "2m", reason: "best", summary: "2m is enough; 101m costs 46.0x more compute for +0.000 AUPRC",
		},
		{
			// One positive of 200 demoted costs 0.003 of AUPRC: within the default
			// tolerance, which is checked first.
			name: "within tolerance", labels: bigLabels, groups: bigGroups, tol: 0.005,
			cands: []cand{
				{"2m", 2e6, 100, demote(bigLabels, 1)},
				{"11m", 11e6, 920, perfect(bigLabels)},
			},
			want: "2m", reason: "within tolerance", summary: "2m is enough; 11m costs 9.2x more compute for +0.003 AUPRC",
		},
		{
			// Forty of 200 positives demoted on 600 patients: far beyond tolerance and
			// worse in every resample.
			name: "significantly worse", labels: bigLabels, groups: bigGroups, tol: 0.005,
			cands: []cand{
				{"2m", 2e6, 100, demote(bigLabels, 40)},
				{"11m", 11e6, 920, perfect(bigLabels)},
			},
			want: "11m", reason: "best", summary: "11m, the largest swept, is needed",
		},
		{
			// The middle preset is within tolerance of the largest; the smallest is not.
			name: "middle preset", labels: bigLabels, groups: bigGroups, tol: 0.005,
			cands: []cand{
				{"2m", 2e6, 100, demote(bigLabels, 40)},
				{"11m", 11e6, 1000, perfect(bigLabels)},
				{"32m", 32e6, 3000, perfect(bigLabels)},
			},
			want: "11m", reason: "best", summary: "11m is enough; 32m costs 3.0x more compute for +0.000 AUPRC",
		},
		{
			// Ten patients' test split: one demoted positive of ten is a large gap
			// but not a significant one.
			name: "not significantly worse", labels: smallLabels, groups: smallGroups, tol: 0.005,
			cands: []cand{
				{"2m", 2e6, 100, demote(smallLabels, 1)},
				{"11m", 11e6, 920, perfect(smallLabels)},
			},
			want: "2m", reason: "not significantly worse",
		},
		{
			name: "single preset", labels: bigLabels, groups: bigGroups, tol: 0.005,
			cands: []cand{{"11m", 11e6, 920, demote(bigLabels, 3)}},
			want:  "11m", reason: "best", summary: "only 11m was swept",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cs []Candidate
			for _, c := range tt.cands {
				cs = append(cs, Candidate{Preset: c.name, Params: c.params, Compute: c.compute,
					AUPRC: ap(t, c.scores, tt.labels), Scores: c.scores})
			}
			r := rule
			r.Tolerance = tt.tol
			rec, err := Recommend("task", tt.labels, tt.groups, cs, r)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Preset != tt.want || rec.Reason != tt.reason {
				t.Fatalf("recommended %s (%s), want %s (%s); verdicts %+v", rec.Preset, rec.Reason, tt.want, tt.reason, rec.Verdicts)
			}
			if !strings.Contains(rec.Summary, tt.summary) || !strings.HasPrefix(rec.Summary, "task: ") {
				t.Errorf("summary %q, want it to contain %q", rec.Summary, tt.summary)
			}
			// The savings are against the largest preset, by CPU-seconds.
			var largest, chosen Candidate
			for _, c := range cs {
				if c.Params >= largest.Params {
					largest = c
				}
				if c.Preset == rec.Preset {
					chosen = c
				}
			}
			if want := (largest.Compute - chosen.Compute) / 3600; math.Abs(rec.SavedHours-want) > 1e-12 {
				t.Errorf("saved %g hours, want %g", rec.SavedHours, want)
			}
			if want := 100 * (largest.Compute - chosen.Compute) / largest.Compute; math.Abs(rec.SavedPercent-want) > 1e-9 {
				t.Errorf("saved %g%%, want %g%%", rec.SavedPercent, want)
			}
		})
	}
}

func TestRecommendSignificance(t *testing.T) {
	labels, groups := labelsOf(600)
	best, worse := perfect(labels), demote(labels, 40)
	p, err := pairedPValue(best, worse, labels, groups, Rule{Resamples: 200, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := 1.0 / 201; p != want {
		t.Errorf("p = %g for a model worse in every resample, want the floor %g", p, want)
	}
	p, err = pairedPValue(best, best, labels, groups, Rule{Resamples: 200, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p != 1 {
		t.Errorf("p = %g against itself, want 1", p)
	}
}

func TestRecommendErrors(t *testing.T) {
	labels, groups := labelsOf(30)
	ok := Candidate{Preset: "2m", Params: 2, Scores: perfect(labels)}
	rule := Rule{Tolerance: 0.005, Alpha: 0.05, Resamples: 10, Seed: 1}
	tests := []struct {
		name   string
		groups []int64
		cands  []Candidate
		rule   Rule
		want   string
	}{
		{"no presets", groups, nil, rule, "no presets"},
		{"short scores", groups, []Candidate{ok, {Preset: "11m", Params: 11, Scores: []float64{1}}}, rule, "preset 11m has 1 scores for 30 labels"},
		{"short groups", groups[:3], []Candidate{ok}, rule, "3 patient ids for 30 labels"},
		{"no resamples", groups, []Candidate{ok}, Rule{}, "bootstrap resamples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Recommend("task", labels, tt.groups, tt.cands, tt.rule)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
