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

// shuffleDemote gives k positives (from the end) a score below every negative.
func demoteLast(labels []bool, k int) []float64 {
	s := perfect(labels)
	for i := len(labels) - 1; i >= 0 && k > 0; i-- {
		if labels[i] {
			s[i] = 0.05
			k--
		}
	}
	return s
}

func TestRecommend(t *testing.T) {
	bigLabels, bigGroups := labelsOf(600)
	smallLabels, smallGroups := labelsOf(24) // 8 positives: too few to decide
	rule := Rule{Margin: 0.01, Alpha: 0.05, Resamples: 300, Seed: 1}
	type cand struct {
		name    string
		params  int
		compute float64
		valid   float64 // validation log-loss
		scores  []float64
	}
	tests := []struct {
		name    string
		labels  []bool
		groups  []int64
		cands   []cand
		want    string
		reason  string
		decided bool
		summary string
	}{
		{
			// Identical predictions and validation scores: the smallest is the best.
			name: "ties go to the smallest", labels: bigLabels, groups: bigGroups,
			cands: []cand{
				{"101m", 101e6, 9200, 0.9, perfect(bigLabels)},
				{"11m", 11e6, 1000, 0.9, perfect(bigLabels)},
				{"2m", 2e6, 200, 0.9, perfect(bigLabels)},
			},
			want: "2m", reason: ReasonBest, decided: true, summary: "2m, the smallest swept, is best on validation",
		},
		{
			// The same test predictions, 11m ahead on validation (lower log-loss): 2m is shown within
			// the margin of it (its difference is 0 in every resample).
			name: "non-inferior", labels: bigLabels, groups: bigGroups,
			cands: []cand{
				{"2m", 2e6, 100, 0.20, perfect(bigLabels)},
				{"11m", 11e6, 920, 0.15, perfect(bigLabels)},
			},
			want: "2m", reason: ReasonNonInferior, decided: true, summary: "2m is enough: non-inferior to 11m",
		},
		{
			// Forty of 200 positives demoted: far beyond the margin.
			name: "clearly worse", labels: bigLabels, groups: bigGroups,
			cands: []cand{
				{"2m", 2e6, 100, 0.5, demote(bigLabels, 40)},
				{"11m", 11e6, 920, 0.1, perfect(bigLabels)},
			},
			want: "11m", reason: ReasonNeeded, decided: true, summary: "11m (best on validation) is needed",
		},
		{
			// The best on validation is the middle preset; the smallest is not within
			// the margin of it, and the largest does not matter.
			name: "middle preset", labels: bigLabels, groups: bigGroups,
			cands: []cand{
				{"2m", 2e6, 100, 0.5, demote(bigLabels, 40)},
				{"11m", 11e6, 1000, 0.1, perfect(bigLabels)},
				{"32m", 32e6, 3000, 0.2, perfect(bigLabels)},
			},
			want: "11m", reason: ReasonNeeded, decided: true,
		},
		{
			// The test split is the one place the old rule failed open: a test too
			// small to reject passed the smallest preset. Now nothing is decided,
			// and the best on validation is named.
			name: "too few test positives", labels: smallLabels, groups: smallGroups,
			cands: []cand{
				{"2m", 2e6, 100, 0.5, demote(smallLabels, 1)},
				{"11m", 11e6, 920, 0.1, perfect(smallLabels)},
			},
			want: "11m", reason: ReasonUndecided, decided: false, summary: "not decided: the test split has 8 positives",
		},
		{
			name: "single preset", labels: bigLabels, groups: bigGroups,
			cands: []cand{{"11m", 11e6, 920, 0.9, demote(bigLabels, 3)}},
			want:  "11m", reason: ReasonBest, decided: true, summary: "only 11m was swept",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := TaskCandidates{Task: "task", Labels: tt.labels, Groups: tt.groups}
			for _, c := range tt.cands {
				tc.Cands = append(tc.Cands, Candidate{Preset: c.name, Params: c.params, Compute: c.compute,
					AUPRC: ap(t, c.scores, tt.labels), ValidLogLoss: c.valid, Scores: c.scores})
			}
			recs, err := Recommend([]TaskCandidates{tc}, rule)
			if err != nil {
				t.Fatal(err)
			}
			rec := recs[0]
			if rec.Preset != tt.want || rec.Reason != tt.reason || rec.Decided != tt.decided {
				t.Fatalf("recommended %s (%s, decided %v), want %s (%s, decided %v); verdicts %+v", rec.Preset, rec.Reason, rec.Decided, tt.want, tt.reason, tt.decided, rec.Verdicts)
			}
			if !strings.Contains(rec.Summary, tt.summary) || !strings.HasPrefix(rec.Summary, "task: ") {
				t.Errorf("summary %q, want it to contain %q", rec.Summary, tt.summary)
			}
			// The savings are against the largest preset, by CPU-seconds.
			var largest, chosen Candidate
			for _, c := range tc.Cands {
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

// TestRecommendMargin: a smaller preset slightly worse than the best is enough
// under a margin that covers its loss and not under one that does not, and the
// Holm correction across tasks can only make a pass harder.
func TestRecommendMargin(t *testing.T) {
	labels, groups := labelsOf(600)
	small := demoteLast(labels, 2) // about 0.006 of AUPRC lost, the same in most resamples
	best := perfect(labels)
	loss := ap(t, best, labels) - ap(t, small, labels)
	if !(loss > 0.002 && loss < 0.02) {
		t.Fatalf("test setup: loss %g, want a small positive one", loss)
	}
	task := func(name string) TaskCandidates {
		return TaskCandidates{Task: name, Labels: labels, Groups: groups, Cands: []Candidate{
			{Preset: "2m", Params: 2, AUPRC: ap(t, small, labels), ValidLogLoss: 0.5, Scores: small},
			{Preset: "11m", Params: 11, AUPRC: ap(t, best, labels), ValidLogLoss: 0.1, Scores: best},
		}}
	}
	for _, tt := range []struct {
		margin float64
		want   string
	}{{0.05, "2m"}, {loss / 4, "11m"}} {
		recs, err := Recommend([]TaskCandidates{task("a")}, Rule{Margin: tt.margin, Alpha: 0.05, Resamples: 400, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Preset != tt.want {
			t.Errorf("margin %g: recommended %s, want %s (%+v)", tt.margin, recs[0].Preset, tt.want, recs[0].Verdicts[0].Comparison)
		}
	}
	one, err := Recommend([]TaskCandidates{task("a")}, Rule{Margin: 0.05, Alpha: 0.05, Resamples: 400, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	many, err := Recommend([]TaskCandidates{task("a"), task("b"), task("c")}, Rule{Margin: 0.05, Alpha: 0.05, Resamples: 400, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	c1, c3 := one[0].Verdicts[0].Comparison, many[0].Verdicts[0].Comparison
	if c1.P != c3.P || c3.PHolm < c1.PHolm || c3.PHolm < c3.P {
		t.Errorf("Holm across 3 tasks: p %g -> %g, alone %g -> %g; want the same raw p and an adjusted one no smaller", c3.P, c3.PHolm, c1.P, c1.PHolm)
	}
}

func TestRecommendErrors(t *testing.T) {
	labels, groups := labelsOf(30)
	ok := Candidate{Preset: "2m", Params: 2, Scores: perfect(labels)}
	rule := Rule{Margin: 0.01, Alpha: 0.05, Resamples: 10, Seed: 1}
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
		{"negative margin", groups, []Candidate{ok}, Rule{Margin: -1, Resamples: 10}, "margin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Recommend([]TaskCandidates{{Task: "task", Labels: labels, Groups: tt.groups, Cands: tt.cands}}, tt.rule)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
