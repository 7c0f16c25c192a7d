package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
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
)

// TaskResult is one task's row of the report.
type TaskResult struct {
	Name       string             `json:"name"`
	Kind       string             `json:"kind"`
	Prevalence float64            `json:"prevalence"`
	NTest      int                `json:"n_test"`
	Models     map[string]Metrics `json:"models"`
}

// Report is the evaluation report: report.json is exactly its JSON encoding.
type Report struct {
	Tasks []TaskResult `json:"tasks"`
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

// Evaluate scores every model of one task with bootstrap intervals. A test split
// without positives or negatives is an error naming the task.
func Evaluate(p Predictions, b Bootstrap) (TaskResult, error) {
	if p.Kind != KindDisease && p.Kind != KindMedication {
		return TaskResult{}, fmt.Errorf("task %s: kind %q, want %q or %q", p.Name, p.Kind, KindDisease, KindMedication)
	}
	prev, err := Prevalence(p.Labels)
	if err != nil {
		return TaskResult{}, fmt.Errorf("task %s: test split: %w", p.Name, err)
	}
	r := TaskResult{Name: p.Name, Kind: p.Kind, Prevalence: prev, NTest: len(p.Labels), Models: map[string]Metrics{}}
	for model, scores := range p.Scores {
		m, err := Score(scores, p.Labels, p.Patient, b)
		if err != nil {
			return TaskResult{}, fmt.Errorf("task %s: model %s on the test split: %w", p.Name, model, err)
		}
		r.Models[model] = m
	}
	return r, nil
}

// WriteJSON writes the report as report.json's shape, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func ci(m Metrics, ok bool, v func(Metrics) (float64, [2]float64)) string {
	if !ok {
		return "-"
	}
	x, c := v(m)
	return fmt.Sprintf("%.3f [%.3f, %.3f]", x, c[0], c[1])
}

func auprc(m Metrics) (float64, [2]float64) { return m.AUPRC, m.AUPRCCI }

// rows returns the table a clinician reads: task, prevalence, n, encoder AUPRC [CI],
// baseline AUPRC [CI], and the difference encoder minus baseline.
func (r *Report) rows() [][]string {
	out := [][]string{{"task", "kind", "prevalence", "n", "encoder AUPRC [95% CI]", "baseline AUPRC [95% CI]", "difference"}}
	for _, t := range r.Tasks {
		enc, hasEnc := t.Models[ModelEncoder]
		base, hasBase := t.Models[ModelBaseline]
		diff := "-"
		if hasEnc && hasBase {
			diff = fmt.Sprintf("%+.3f", enc.AUPRC-base.AUPRC)
		}
		out = append(out, []string{
			t.Name, t.Kind, fmt.Sprintf("%.3f", t.Prevalence), fmt.Sprint(t.NTest),
			ci(enc, hasEnc, auprc), ci(base, hasBase, auprc), diff,
		})
	}
	return out
}

// WriteMarkdown writes the table as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# Evaluation report\n\n")
	b.WriteString("AUPRC is average precision (step-wise, as scikit-learn computes it); intervals are 95% percentile intervals from patient-level bootstrap resamples of the test split. Difference is encoder minus baseline.\n\n")
	rows := r.rows()
	for i, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		if i == 0 {
			b.WriteString(strings.Repeat("|---", len(row)) + "|\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteTable writes the same table aligned for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range r.rows() {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// Save writes dir/report.json and dir/report.md, each through a temporary file
// renamed into place.
func (r *Report) Save(dir string) error {
	if err := atomicfile.Write(filepath.Join(dir, "report.json"), 0o644, r.WriteJSON); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "report.md"), 0o644, r.WriteMarkdown)
}
