package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// twoModels is a task whose encoder is the synthetic model and whose baseline is a
// worse one.
func twoModels(name string, n int, seed uint64) Predictions {
	scores, labels, groups := synthetic(n, seed)
	worse := make([]float64, len(scores))
	for i, s := range scores {
		worse[i] = s / 2
		if i%4 == 0 {
			worse[i] = 1 - s
		}
	}
	return Predictions{Name: name, Kind: KindDisease, Labels: labels, Patient: groups,
		Scores: map[string][]float64{ModelEncoder: scores, ModelBaseline: worse}}
}

func mustEvaluate(t *testing.T, p Predictions, b Bootstrap) TaskResult {
	t.Helper()
	r, err := Evaluate(p, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReport(t *testing.T) {
	bs := Bootstrap{Resamples: 200, Seed: 1}
	p := twoModels("t2d", 300, 5)
	res := mustEvaluate(t, p, bs)
	base := Predictions{Name: "statins", Kind: KindMedication, Labels: p.Labels, Patient: p.Patient,
		Scores: map[string][]float64{ModelBaseline: p.Scores[ModelBaseline]}}
	res2 := mustEvaluate(t, base, bs)
	r := NewReport([]TaskResult{res, res2, Undecidable("ckd", KindDisease, "no event in the data has code system ICD10 or ICD10CM")})
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The shape outside checks rely on, as it was before the comparisons.
	var shape struct {
		Tasks []struct {
			Name       string  `json:"name"`
			Kind       string  `json:"kind"`
			Prevalence float64 `json:"prevalence"`
			NTest      int     `json:"n_test"`
			Models     map[string]struct {
				AUPRC   float64    `json:"auprc"`
				AUPRCCI [2]float64 `json:"auprc_ci"`
				AUROC   float64    `json:"auroc"`
				AUROCCI [2]float64 `json:"auroc_ci"`
			} `json:"models"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(shape.Tasks) != 3 || shape.Tasks[0].NTest != 300 || len(shape.Tasks[0].Models) != 2 || shape.Tasks[0].Models[ModelEncoder].AUPRCCI[1] == 0 {
		t.Fatalf("report.json tasks %+v", shape.Tasks)
	}
	if _, ok := shape.Tasks[1].Models[ModelEncoder]; ok {
		t.Error("baseline-only task carries an encoder entry")
	}

	// The interface fields, by key.
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	tasks := doc["tasks"].([]any)
	t0 := tasks[0].(map[string]any)
	for _, k := range []string{"name", "kind", "prevalence", "n_test", "positives_test", "models", "comparison", "comparison_auroc", "verdict"} {
		if _, ok := t0[k]; !ok {
			t.Errorf("task lacks %q: %v", k, t0)
		}
	}
	if _, ok := t0["undecided"]; ok {
		t.Errorf("decided task has undecided: %v", t0["undecided"])
	}
	for _, ck := range []string{"comparison", "comparison_auroc"} {
		c := t0[ck].(map[string]any)
		for _, k := range []string{"metric", "diff", "ci", "p", "p_holm", "p_reverse", "p_reverse_holm", "resamples"} {
			if _, ok := c[k]; !ok {
				t.Errorf("%s lacks %q: %v", ck, k, c)
			}
		}
		if ci := c["ci"].([]any); len(ci) != 2 {
			t.Errorf("%s ci %v", ck, ci)
		}
	}
	if m := t0["comparison"].(map[string]any)["metric"]; m != MetricAUPRC {
		t.Errorf("comparison metric %v", m)
	}
	for name, m := range t0["models"].(map[string]any) {
		for _, k := range []string{"auprc", "auprc_ci", "auroc", "auroc_ci", "brier", "calibration_slope", "calibration_intercept"} {
			if _, ok := m.(map[string]any)[k]; !ok {
				t.Errorf("model %s lacks %q", name, k)
			}
		}
	}
	if v := tasks[1].(map[string]any)["verdict"]; v != VerdictBaselineOnly {
		t.Errorf("baseline-only verdict %v", v)
	}
	t2 := tasks[2].(map[string]any)
	if t2["undecided"] != "no event in the data has code system ICD10 or ICD10CM" || t2["verdict"] != "undecided: no event in the data has code system ICD10 or ICD10CM" {
		t.Errorf("undecidable task %v", t2)
	}
	if m, ok := t2["models"].(map[string]any); !ok || len(m) != 0 {
		t.Errorf("undecidable task models %v, want {}", t2["models"])
	}

	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	c := r.Tasks[0].Comparison
	for _, want := range []string{
		"| t2d | disease | 300 |", "| statins | medication |", "| ckd | disease | 0 | 0 | - |",
		"encoder AUPRC", "difference [95% CI]", "p Holm", "## AUROC", "## Calibration",
		fmt.Sprintf("%+.3f [%+.3f, %+.3f]", c.Diff, c.CI[0], c.CI[1]),
		pCell(c.PHolm) + " / " + pCell(c.PReverseHolm),
		"| " + r.Tasks[0].Verdict + " |",
		"stratified by outcome", "Holm", "fewer than 10 positives",
		"undecided: no event in the data has code system ICD10 or ICD10CM",
		fmt.Sprintf("| t2d | encoder | %.4f |", r.Tasks[0].Models[ModelEncoder].Brier),
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	var tb bytes.Buffer
	if err := r.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "Calibration") || !strings.Contains(tb.String(), fmt.Sprintf("%+.3f [%+.3f, %+.3f]", c.Diff, c.CI[0], c.CI[1])) {
		t.Errorf("table:\n%s", tb.String())
	}

	for _, plot := range []func(string, Predictions) error{PlotPR, PlotCalibration} {
		path := filepath.Join(dir, "plot.png")
		if err := plot(path, p); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("plot is not a PNG: %v", err)
		}
		f.Close()
	}
}

func TestEvaluateDegenerate(t *testing.T) {
	tests := []struct {
		name      string
		labels    []bool
		undecided string
	}{
		{"no positives", []bool{false, false, false}, "the test split has no positives"},
		{"no negatives", []bool{true, true, true}, "the test split has no negatives"},
		{"empty", []bool{}, "the test split is empty"},
	}
	for _, tc := range tests {
		n := len(tc.labels)
		scores := []float64{0.1, 0.2, 0.3}[:n]
		p := Predictions{Name: "ckd", Kind: KindDisease, Labels: tc.labels, Patient: []int64{1, 2, 3}[:n],
			Scores: map[string][]float64{ModelBaseline: scores, ModelEncoder: scores}}
		r, err := Evaluate(p, DefaultBootstrap(1))
		if err != nil {
			t.Fatalf("%s: %v, want no error", tc.name, err)
		}
		if r.Undecided != tc.undecided || r.Verdict != "undecided: "+tc.undecided || len(r.Models) != 0 || r.Comparison != nil || r.NTest != n {
			t.Errorf("%s: %+v", tc.name, r)
		}
		raw, _ := json.Marshal(NewReport([]TaskResult{r}))
		if !strings.Contains(string(raw), `"models":{}`) {
			t.Errorf("%s: JSON %s, want models {}", tc.name, raw)
		}
	}
}

func TestEvaluateTooFewPositives(t *testing.T) {
	scores, labels, groups := tenPositives(200, 7, 4)
	p := Predictions{Name: "rare", Kind: KindDisease, Labels: labels, Patient: groups,
		Scores: map[string][]float64{ModelEncoder: scores, ModelBaseline: scores}}
	r := mustEvaluate(t, p, DefaultBootstrap(1))
	if r.PositivesTest != 7 || r.Undecided != "too few positives (7)" || r.Verdict != "too few positives (7)" || r.Comparison != nil || r.ComparisonAUROC != nil {
		t.Errorf("%+v", r)
	}
	for name, m := range r.Models {
		if m.AUPRCCI != nil || m.AUROCCI != nil || m.AUPRC == 0 {
			t.Errorf("model %s: %+v, want point metrics without intervals", name, m)
		}
	}
	var md bytes.Buffer
	if err := NewReport([]TaskResult{r}).WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| rare | disease | 200 | 7 | 0.035 | ") || !strings.Contains(md.String(), " [-] | too few positives (7) | - | too few positives (7) |") {
		t.Errorf("report.md:\n%s", md.String())
	}
}

// Evaluate's metrics and comparisons are Score's and Compare's, drawn once.
func TestEvaluateMatchesScoreAndCompare(t *testing.T) {
	bs := Bootstrap{Resamples: 300, Seed: 9}
	p := twoModels("t2d", 450, 6)
	r := mustEvaluate(t, p, bs)
	for _, model := range []string{ModelEncoder, ModelBaseline} {
		m, err := Score(p.Scores[model], p.Labels, p.Patient, bs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, r.Models[model]) {
			t.Errorf("%s: Evaluate %+v, Score %+v", model, r.Models[model], m)
		}
	}
	for _, tc := range []struct {
		metric string
		got    *Comparison
	}{{MetricAUPRC, r.Comparison}, {MetricAUROC, r.ComparisonAUROC}} {
		c, err := Compare(p.Scores[ModelEncoder], p.Scores[ModelBaseline], p.Labels, p.Patient, bs, tc.metric, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tc.got == nil || *tc.got != c {
			t.Errorf("%s: Evaluate %+v, Compare %+v", tc.metric, tc.got, c)
		}
	}
	if r.Comparison.Diff != r.Models[ModelEncoder].AUPRC-r.Models[ModelBaseline].AUPRC {
		t.Errorf("diff %v is not encoder - baseline", r.Comparison.Diff)
	}
	if r.Verdict != VerdictEncoderBetter {
		t.Errorf("verdict %q for a clearly better encoder: %+v", r.Verdict, r.Comparison)
	}
	again := mustEvaluate(t, p, bs)
	if !reflect.DeepEqual(again, r) {
		t.Error("the same seed gave another result")
	}
}

func TestEvaluateErrors(t *testing.T) {
	good := func() Predictions {
		return Predictions{Name: "t", Kind: KindDisease, Labels: []bool{true, false}, Patient: []int64{1, 2},
			Scores: map[string][]float64{ModelBaseline: {0.6, 0.4}}}
	}
	tests := []struct {
		name   string
		modify func(*Predictions)
		want   error
	}{
		{"kind", func(p *Predictions) { p.Kind = "lab" }, nil},
		{"patients", func(p *Predictions) { p.Patient = []int64{1} }, ErrLength},
		{"scores", func(p *Predictions) { p.Scores[ModelBaseline] = []float64{0.5} }, ErrLength},
		{"nan", func(p *Predictions) { p.Scores[ModelBaseline] = []float64{math.NaN(), 0.5} }, ErrNaNScore},
		{"not a probability", func(p *Predictions) { p.Scores[ModelBaseline] = []float64{3, 0.5} }, ErrNotProbability},
		{"nan, no positives", func(p *Predictions) {
			p.Labels = []bool{false, false}
			p.Scores[ModelBaseline] = []float64{math.NaN(), 0.5}
		}, ErrNaNScore},
		{"no models", func(p *Predictions) { p.Scores = nil }, nil},
	}
	for _, tc := range tests {
		p := good()
		tc.modify(&p)
		_, err := Evaluate(p, DefaultBootstrap(1))
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), "task t") {
			t.Errorf("%s: %v, want an error naming task t matching %v", tc.name, err, tc.want)
		}
	}
}

// NewReport Holm-adjusts across tasks, both directions in one family, and sets
// verdicts from the adjusted p-values.
func TestNewReportHolm(t *testing.T) {
	task := func(name string, p, rev float64) TaskResult {
		m := map[string]Metrics{ModelEncoder: {}, ModelBaseline: {}}
		return TaskResult{Name: name, Kind: KindDisease, PositivesTest: 50, Models: m,
			Comparison:      &Comparison{Metric: MetricAUPRC, P: p, PHolm: p, PReverse: rev, PReverseHolm: rev},
			ComparisonAUROC: &Comparison{Metric: MetricAUROC, P: rev, PHolm: rev, PReverse: p, PReverseHolm: p}}
	}
	in := []TaskResult{
		// Six hypotheses (three tasks, two directions), in order 0.004, 0.005, 0.03, ...
		task("a", 0.005, 0.99), // Holm max(6 * 0.004, 5 * 0.005) = 0.025: encoder better
		task("b", 0.03, 0.97),  // Holm 4 * 0.03 = 0.12: not a claim
		task("c", 0.90, 0.004), // reverse Holm 6 * 0.004 = 0.024: baseline better
		Undecidable("d", KindMedication, "the test split has no positives"),
	}
	r := NewReport(in)
	want := []struct {
		holm, revHolm float64
		verdict       string
	}{
		{0.025, 1, VerdictEncoderBetter},
		{0.12, 1, VerdictNoDifference},
		{1, 0.024, VerdictBaselineBetter},
	}
	for i, w := range want {
		c := r.Tasks[i].Comparison
		if math.Abs(c.PHolm-w.holm) > 1e-12 || math.Abs(c.PReverseHolm-w.revHolm) > 1e-12 || r.Tasks[i].Verdict != w.verdict {
			t.Errorf("task %s: p_holm %v, p_reverse_holm %v, verdict %q; want %v %v %q",
				r.Tasks[i].Name, c.PHolm, c.PReverseHolm, r.Tasks[i].Verdict, w.holm, w.revHolm, w.verdict)
		}
	}
	// AUROC is its own family: its P is the AUPRC's reverse here.
	if got := r.Tasks[2].ComparisonAUROC.PHolm; math.Abs(got-0.024) > 1e-12 {
		t.Errorf("AUROC p_holm %v, want 0.024", got)
	}
	if r.Tasks[3].Verdict != "undecided: the test split has no positives" {
		t.Errorf("undecided verdict %q", r.Tasks[3].Verdict)
	}
	// The input is untouched, and the writers print the adjusted values even from a
	// report built as a literal.
	if in[1].Comparison.PHolm != 0.03 || in[1].Verdict != "" {
		t.Errorf("NewReport changed its input: %+v", in[1].Comparison)
	}
	var lit, built bytes.Buffer
	if err := (&Report{Tasks: in}).WriteJSON(&lit); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&built); err != nil {
		t.Fatal(err)
	}
	if lit.String() != built.String() {
		t.Errorf("literal report writes\n%s\nwant\n%s", lit.String(), built.String())
	}
}

func TestReliabilityCurve(t *testing.T) {
	probs := []float64{0.9, 0.1, 0.2, 0.8, 0.3, 0.7}
	labels := []bool{true, false, true, true, false, false}
	pred, obs, err := ReliabilityCurve(probs, labels, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Sorted: 0.1(-) 0.2(+) | 0.3(-) 0.7(-) | 0.8(+) 0.9(+).
	wantP, wantO := []float64{0.15, 0.5, 0.85}, []float64{0.5, 0, 1}
	for i := range wantP {
		if math.Abs(pred[i]-wantP[i]) > 1e-12 || obs[i] != wantO[i] {
			t.Fatalf("bins %v %v, want %v %v", pred, obs, wantP, wantO)
		}
	}
	if pred, _, _ := ReliabilityCurve(probs[:2], labels[:2], 10); len(pred) != 2 {
		t.Errorf("two rows gave %d bins", len(pred))
	}
	if _, _, err := ReliabilityCurve([]float64{2}, []bool{true}, 10); !errors.Is(err, ErrNotProbability) {
		t.Errorf("score 2: %v", err)
	}
}
