package eval

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// Model names in a report.
const (
	ModelEncoder  = "encoder"
	ModelBaseline = "baseline"
)

// Task kinds.
const (
	KindDisease    = "disease"
	KindMedication = "medication"
	// KindLabels is a task whose labels came as MEDS labels (fedclaims eval
	// --labels): what they mean is the label file's, not a code list's.
	KindLabels = "labels"
)

// Verdicts, as TaskResult.Verdict holds them; a task that could not be decided
// reads "too few positives (n)" or "undecided: <reason>".
const (
	VerdictEncoderBetter  = "encoder better"
	VerdictBaselineBetter = "baseline better"
	VerdictNoDifference   = "no significant difference"
	VerdictBaselineOnly   = "baseline only"
)

// Alpha is the level at which a Holm-adjusted p-value makes a difference a claim.
const Alpha = 0.05

// TaskResult is one task's row of the report.
type TaskResult struct {
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Prevalence float64 `json:"prevalence"`
	NTest      int     `json:"n_test"`
	// PositivesTest is the number of positive rows of the test split.
	PositivesTest int `json:"positives_test"`
	// Models holds each model's metrics; empty when the task was not scored.
	Models map[string]Metrics `json:"models"`
	// Comparison is the paired comparison encoder - baseline on AUPRC (margin 0),
	// ComparisonAUROC the same on AUROC; nil unless both models were scored on a
	// split with at least MinPositives positives.
	Comparison      *Comparison `json:"comparison,omitempty"`
	ComparisonAUROC *Comparison `json:"comparison_auroc,omitempty"`
	// Undecided says why the encoder and the baseline could not be compared.
	Undecided string `json:"undecided,omitempty"`
	// Verdict is the AUPRC comparison's outcome: "encoder better" (Comparison.PHolm
	// < Alpha), "baseline better" (Comparison.PReverseHolm < Alpha), "no significant
	// difference", "too few positives (n)", "undecided: <reason>", or "baseline only"
	// when the task has no encoder scores.
	Verdict string `json:"verdict"`
}

// Report is the evaluation report: report.json is exactly its JSON encoding. Build
// it with NewReport; the writers apply NewReport's correction themselves, so that a
// Report built as a literal is written as NewReport would have built it.
type Report struct {
	// Dataset names the dataset scored (its dataset.json, see claims.DatasetMetadata),
	// Split whose train/validation/test split it was ("dataset's (...)" or
	// "fedclaims hash"); empty when the caller did not say.
	Dataset string       `json:"dataset,omitempty"`
	Split   string       `json:"split,omitempty"`
	Tasks   []TaskResult `json:"tasks"`
}

// Predictions are one task's test-split predictions from each model, with the
// labels and the patient id of every row.
type Predictions struct {
	Name    string
	Kind    string
	Labels  []bool
	Patient []int64
	Scores  map[string][]float64
}

// Undecidable is the report row of a task that never reached scoring, with the
// reason, for example "no event in the data has code system ICD10 or ICD10CM".
func Undecidable(name, kind, reason string) TaskResult {
	t := TaskResult{Name: name, Kind: kind, Models: map[string]Metrics{}, Undecided: reason}
	t.Verdict = verdict(t, t.Comparison)
	return t
}

// modelNames returns the models of scores in report order: encoder, baseline, then
// the others by name.
func modelNames[V any](scores map[string]V) []string {
	names := make([]string, 0, len(scores))
	for name := range scores {
		names = append(names, name)
	}
	rankOf := func(n string) int {
		switch n {
		case ModelEncoder:
			return 0
		case ModelBaseline:
			return 1
		}
		return 2
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(rankOf(a), rankOf(b)), strings.Compare(a, b))
	})
	return names
}

// Evaluate scores every model of one task (Score) and, when the task has both
// "encoder" and "baseline" scores and its split at least MinPositives positives,
// compares them (Compare, encoder - baseline, margin 0, on AUPRC and on AUROC). Every
// model and both comparisons are scored on the same resamples.
//
// A degenerate test split (empty, no positives or no negatives) is not an error: the
// result has Undecided set and no models. Errors are for wrong input: an unknown
// kind, lengths that differ, no model scores, a NaN score or one outside [0, 1].
func Evaluate(p Predictions, b Bootstrap) (TaskResult, error) {
	fail := func(format string, args ...any) (TaskResult, error) {
		return TaskResult{}, fmt.Errorf("task %s: "+format, append([]any{p.Name}, args...)...)
	}
	if p.Kind != KindDisease && p.Kind != KindMedication && p.Kind != KindLabels {
		return fail("kind %q, want %q, %q or %q", p.Kind, KindDisease, KindMedication, KindLabels)
	}
	if len(p.Patient) != len(p.Labels) {
		return fail("%d patient ids for %d labels: %w", len(p.Patient), len(p.Labels), ErrLength)
	}
	if len(p.Scores) == 0 {
		return fail("no model scores")
	}
	if b.Resamples <= 0 {
		return fail("%d bootstrap resamples, want at least 1", b.Resamples)
	}
	names := modelNames(p.Scores)
	for _, model := range names {
		s := p.Scores[model]
		if len(s) != len(p.Labels) {
			return fail("model %s: %d scores for %d labels: %w", model, len(s), len(p.Labels), ErrLength)
		}
		if len(s) > 0 {
			if err := checkProbabilities(s, p.Labels); err != nil {
				return fail("model %s on the test split: %w", model, err)
			}
		}
	}
	n, pos := len(p.Labels), Positives(p.Labels)
	r := TaskResult{Name: p.Name, Kind: p.Kind, NTest: n, PositivesTest: pos, Models: map[string]Metrics{}}
	switch {
	case n == 0:
		r.Undecided = "the test split is empty"
	case pos == 0:
		r.Undecided = "the test split has no positives"
	case pos == n:
		r.Undecided = "the test split has no negatives"
	}
	if n > 0 {
		r.Prevalence = float64(pos) / float64(n)
	}
	if r.Undecided != "" {
		r.Verdict = verdict(r, r.Comparison)
		return r, nil
	}
	rks := make([]*ranking, len(names))
	for k, model := range names {
		rk, err := rank(p.Scores[model], p.Labels)
		if err != nil {
			return fail("model %s on the test split: %w", model, err)
		}
		m, err := pointMetrics(rk, p.Scores[model], p.Labels)
		if err != nil {
			return fail("model %s on the test split: %w", model, err)
		}
		rks[k], r.Models[model] = rk, m
	}
	_, hasEnc := p.Scores[ModelEncoder]
	_, hasBase := p.Scores[ModelBaseline]
	ready := resampleReady(p.Labels, p.Patient)
	switch {
	case ready == nil:
		boot, err := bootstrap(rks, p.Labels, p.Patient, b, []string{MetricAUPRC, MetricAUROC})
		if err != nil {
			return fail("%w", err)
		}
		for k, model := range names {
			m := r.Models[model]
			setIntervals(&m, boot[k])
			r.Models[model] = m
		}
		if hasEnc && hasBase {
			enc, base := slices.Index(names, ModelEncoder), slices.Index(names, ModelBaseline)
			for m, metric := range []string{MetricAUPRC, MetricAUROC} {
				c, err := comparison(rks[enc], rks[base], boot[enc][m], boot[base][m], metric, 0)
				if err != nil {
					return fail("comparing %s with %s: %w", ModelEncoder, ModelBaseline, err)
				}
				if metric == MetricAUPRC {
					r.Comparison = &c
				} else {
					r.ComparisonAUROC = &c
				}
			}
		}
	case hasEnc && hasBase && errors.Is(ready, ErrTooFewPositives) && pos < MinPositives:
		r.Undecided = tooFew(pos)
	case hasEnc && hasBase && errors.Is(ready, ErrTooFewPositives):
		pp, _ := positivePatients(p.Labels, p.Patient)
		r.Undecided = fmt.Sprintf("too few positive patients (%d, with %d positive rows)", pp, pos)
	case hasEnc && hasBase:
		r.Undecided = "every test patient has a positive row, so a resample could lack negatives"
	}
	r.Verdict = verdict(r, r.Comparison)
	return r, nil
}

func tooFew(n int) string { return fmt.Sprintf("too few positives (%d)", n) }

// verdict is t's verdict read from comparison c (t.Comparison, or
// t.ComparisonAUROC for the AUROC table).
func verdict(t TaskResult, c *Comparison) string {
	_, hasEnc := t.Models[ModelEncoder]
	_, hasBase := t.Models[ModelBaseline]
	undecided := func(reason string) string {
		if reason == "" {
			return "undecided"
		}
		return "undecided: " + reason
	}
	switch {
	case len(t.Models) == 0:
		return undecided(t.Undecided)
	case !hasEnc && hasBase:
		return VerdictBaselineOnly
	case !hasBase:
		return undecided("no baseline scores")
	case c == nil && t.PositivesTest < MinPositives:
		return tooFew(t.PositivesTest)
	case c == nil:
		return undecided(cmp.Or(t.Undecided, "no comparison"))
	case c.PHolm < Alpha:
		return VerdictEncoderBetter
	case c.PReverseHolm < Alpha:
		return VerdictBaselineBetter
	}
	return VerdictNoDifference
}

// NewReport assembles the report of tasks: it Holm-adjusts the AUPRC comparisons'
// p-values and their reverse tests' as one family across the tasks, the AUROC
// comparisons' and theirs as another, and sets every verdict from the adjusted AUPRC
// p-values. The tasks are copied, their comparisons too; the same tasks give the
// same report.
//
// Both directions are in one family so that the chance of any false claim, "encoder
// better" or "baseline better", on any task of the report is at most Alpha; testing
// each direction at Alpha on its own would let a tie be called a win one way or the
// other twice as often.
func NewReport(tasks []TaskResult) *Report {
	r := &Report{Tasks: slices.Clone(tasks)}
	for _, get := range []func(*TaskResult) **Comparison{
		func(t *TaskResult) **Comparison { return &t.Comparison },
		func(t *TaskResult) **Comparison { return &t.ComparisonAUROC },
	} {
		var cs []*Comparison
		for i := range r.Tasks {
			if c := get(&r.Tasks[i]); *c != nil {
				cp := **c
				*c = &cp
				cs = append(cs, &cp)
			}
		}
		HolmBoth(cs)
	}
	for i := range r.Tasks {
		r.Tasks[i].Verdict = verdict(r.Tasks[i], r.Tasks[i].Comparison)
	}
	return r
}

// WriteJSON writes the report as report.json's shape, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.renew())
}

// metricCell is "0.412 [0.380, 0.450]", "0.412 [-]" without an interval, "-" without
// the model.
func metricCell(m Metrics, ok bool, auroc bool) string {
	if !ok {
		return "-"
	}
	v, c := m.AUPRC, m.AUPRCCI
	if auroc {
		v, c = m.AUROC, m.AUROCCI
	}
	if c == nil {
		return fmt.Sprintf("%.3f [-]", v)
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", v, c[0], c[1])
}

func pCell(p float64) string {
	if p < 0.001 {
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", p)
}

// comparisonRows is the table for one metric: task, kind, n, positives, prevalence,
// encoder [CI], baseline [CI], the paired difference [CI], its Holm p-values in both
// directions and the verdict.
func (r *Report) comparisonRows(auroc bool) [][]string {
	name := "AUPRC"
	if auroc {
		name = "AUROC"
	}
	out := [][]string{{"task", "kind", "n", "positives", "prevalence",
		"encoder " + name + " [95% CI]", "baseline " + name + " [95% CI]",
		"difference [95% CI]", "p Holm (encoder better / baseline better)", "verdict"}}
	for _, t := range r.Tasks {
		enc, hasEnc := t.Models[ModelEncoder]
		base, hasBase := t.Models[ModelBaseline]
		c := t.Comparison
		if auroc {
			c = t.ComparisonAUROC
		}
		v := verdict(t, c)
		diff, p := "-", "-"
		switch {
		case c != nil:
			diff = fmt.Sprintf("%+.3f [%+.3f, %+.3f]", c.Diff, c.CI[0], c.CI[1])
			p = pCell(c.PHolm) + " / " + pCell(c.PReverseHolm)
		case len(t.Models) > 0 && t.PositivesTest < MinPositives:
			diff = tooFew(t.PositivesTest)
		}
		prev := "-"
		if t.NTest > 0 {
			prev = fmt.Sprintf("%.3f", t.Prevalence)
		}
		out = append(out, []string{
			t.Name, t.Kind, fmt.Sprint(t.NTest), fmt.Sprint(t.PositivesTest), prev,
			metricCell(enc, hasEnc, auroc), metricCell(base, hasBase, auroc), diff, p, v,
		})
	}
	return out
}

func slopeCell(s float64) string {
	switch s {
	case MaxCalibrationSlope:
		return fmt.Sprintf(">= %d (separated)", MaxCalibrationSlope)
	case -MaxCalibrationSlope:
		return fmt.Sprintf("<= -%d (separated)", MaxCalibrationSlope)
	}
	return fmt.Sprintf("%.3f", s)
}

// calibrationRows is the calibration table: one row per scored model of each task.
func (r *Report) calibrationRows() [][]string {
	out := [][]string{{"task", "model", "Brier", "calibration slope", "calibration intercept"}}
	for _, t := range r.Tasks {
		for _, model := range modelNames(t.Models) {
			m := t.Models[model]
			out = append(out, []string{t.Name, model, fmt.Sprintf("%.4f", m.Brier),
				slopeCell(m.CalibrationSlope), fmt.Sprintf("%+.3f", m.CalibrationIntercept)})
		}
	}
	return out
}

// rules states how to read the tables.
func (r *Report) rules() []string {
	compared := 0
	for _, t := range r.Tasks {
		if t.Comparison != nil {
			compared++
		}
	}
	return []string{
		"Intervals are 95% percentile intervals from patient-level bootstrap resamples of the test split, stratified by outcome (patients with a positive row and patients without are each resampled to their own count); the difference, encoder minus baseline, is paired: both models are scored on the same resamples.",
		fmt.Sprintf("p-values are one-sided bootstrap p-values, for \"encoder better\" and for \"baseline better\", Holm-corrected together (both directions, one family) across the %s compared in this report (AUPRC and AUROC separately); a difference is a claim only when its Holm p < %.2f, otherwise the verdict is \"%s\".", plural(compared, "task"), Alpha, VerdictNoDifference),
		fmt.Sprintf("No interval and no test is computed from fewer than %d positives. AUPRC is average precision, step-wise as scikit-learn computes it.", MinPositives),
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// tables are the report's three tables, titled.
func (r *Report) tables() []struct {
	title string
	rows  [][]string
} {
	return []struct {
		title string
		rows  [][]string
	}{
		{"AUPRC", r.comparisonRows(false)},
		{"AUROC", r.comparisonRows(true)},
		{"Calibration", r.calibrationRows()},
	}
}

// WriteMarkdown writes the rules and the AUPRC, AUROC and calibration tables as
// Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	r = r.renew()
	var b bytes.Buffer
	b.WriteString("# Evaluation report\n\n")
	b.WriteString(r.source())
	b.WriteString(strings.Join(r.rules(), " ") + "\n")
	for _, tb := range r.tables() {
		b.WriteString("\n## " + tb.title + "\n\n")
		b.WriteString(MarkdownTable(tb.rows))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteTable writes the rules and the same tables aligned for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	r = r.renew()
	if _, err := io.WriteString(w, r.source()); err != nil {
		return err
	}
	for _, s := range r.rules() {
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	for _, tb := range r.tables() {
		if _, err := fmt.Fprintf(w, "\n%s\n", tb.title); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, row := range tb.rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// Save writes dir/report.json and dir/report.md, each through a temporary file
// renamed into place.
func (r *Report) Save(dir string) error {
	if err := atomicfile.Write(filepath.Join(dir, "report.json"), 0o644, r.WriteJSON); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "report.md"), 0o644, r.WriteMarkdown)
}
