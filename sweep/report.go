package sweep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/internal/jsonfile"
)

// Save writes dir/sweep.json, dir/sweep.md and the plots, each through a temporary
// file renamed into place.
func (r *Result) Save(dir string) error {
	if err := r.plots(dir); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, ResultFile), 0o644, r.WriteJSON); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ReportFile), 0o644, r.WriteMarkdown)
}

// WriteJSON writes sweep.json: the results without the per-row predictions, which
// stay in presets/NAME.json and baseline.json.
func (r *Result) WriteJSON(w io.Writer) error {
	c := *r
	c.Presets = make([]PresetResult, len(r.Presets))
	for i, p := range r.Presets {
		p.Tasks = append([]PresetTask(nil), p.Tasks...)
		for k := range p.Tasks {
			p.Tasks[k].Scores = nil
		}
		c.Presets[i] = p
	}
	c.Baseline = append([]BaselineTask(nil), r.Baseline...)
	for k := range c.Baseline {
		c.Baseline[k].Labels, c.Baseline[k].Patient, c.Baseline[k].Scores = nil, nil, nil
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// ReadResult parses sweep.json.
func ReadResult(path string) (*Result, error) {
	var r Result
	if err := jsonfile.Read(path, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// presetRows is the table of what each preset cost.
func (r *Result) presetRows() [][]string {
	rows := [][]string{{"preset", "parameters", "steps", "tokens", "FLOPs", "wall s", "CPU s", "GPU s", "valid MLM loss"}}
	for _, p := range r.Presets {
		rows = append(rows, []string{p.Name, fmt.Sprint(p.Params), fmt.Sprint(p.Steps), fmt.Sprint(p.Tokens),
			fmt.Sprintf("%.3g", p.FLOPs), fmt.Sprintf("%.1f", p.WallSeconds), fmt.Sprintf("%.1f", p.CPUSeconds),
			fmt.Sprintf("%.0f", p.GPUSeconds), fmt.Sprintf("%.3f", p.FinalLoss())})
	}
	return rows
}

// taskRows is the sweep table: AUPRC [95% CI] per task and preset, the baseline and
// the recommendation.
func (r *Result) taskRows() [][]string {
	head := []string{"task", "kind", "prevalence", "n test", "baseline"}
	for _, p := range r.Presets {
		head = append(head, p.Name)
	}
	head = append(head, "recommended")
	rows := [][]string{head}
	for k, bt := range r.Baseline {
		row := []string{bt.Name, bt.Kind, fmt.Sprintf("%.3f", bt.Prevalence), fmt.Sprint(bt.NTest), metricCI(bt.Metrics)}
		for _, p := range r.Presets {
			row = append(row, metricCI(p.Tasks[k].Metrics))
		}
		rec := "-"
		if k < len(r.Recommendations) {
			rec = r.Recommendations[k].Preset
		}
		rows = append(rows, append(row, rec))
	}
	return rows
}

func (r *Result) recommendationRows() [][]string {
	rows := [][]string{{"task", "recommended", "reason", "test positives", "AUPRC", "best (validation)", "largest", "largest's gain", "CPU-h saved", "saved", "smaller - best [95% CI], Holm p"}}
	for _, rec := range r.Recommendations {
		var ps []string
		for _, v := range rec.Verdicts {
			if c := v.Comparison; c != nil {
				ps = append(ps, fmt.Sprintf("%s %+.3f [%.3f, %.3f], p %.3g", v.Preset, c.Diff, c.CI[0], c.CI[1], c.PHolm))
			}
		}
		if len(ps) == 0 {
			ps = []string{"-"}
		}
		rows = append(rows, []string{rec.Task, rec.Preset, rec.Reason, fmt.Sprint(rec.PositivesTest), fmt.Sprintf("%.3f", rec.AUPRC), rec.Best, rec.Largest,
			fmt.Sprintf("%+.3f", rec.LargestGain), fmt.Sprintf("%.3f", rec.SavedHours), fmt.Sprintf("%.0f%%", rec.SavedPercent),
			strings.Join(ps, "; ")})
	}
	return rows
}

// WriteMarkdown writes sweep.md.
func (r *Result) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# Model-size sweep\n\n")
	if r.Mode == ModeFederated {
		fmt.Fprintf(&b, "Pretraining: federated, every preset through a local federation of %d sites (%d patients), each site training on its training split only, updates threshold-encrypted. ",
			len(r.Sites), r.Patients)
	} else {
		fmt.Fprintf(&b, "Pretraining: central, on the union of the training splits of %d sites (%d patients); vocabulary of %d tokens. ",
			len(r.Sites), r.Patients, r.VocabSize)
	}
	b.WriteString("Heads are fine-tuned and scored as `fedclaims eval` does, on the pooled sites' labels and splits; the baseline is trained once.\n\n")
	b.WriteString("## Recommendation\n\n")
	for _, rec := range r.Recommendations {
		b.WriteString("- " + rec.Summary + "\n")
	}
	b.WriteString("\n")
	b.WriteString(eval.MarkdownTable(r.recommendationRows()) + "\n")
	fmt.Fprintf(&b, "The best preset of a task is the one whose head has the lowest validation-split log-loss. A smaller preset is enough when it is shown non-inferior to the best on the test split within a margin of %g AUPRC (Holm-corrected one-sided p below %g): %s. "+
		"The recommendation is the smallest preset that is enough, else the best; a test that cannot show non-inferiority never counts as a pass. "+
		"A task whose test split has fewer than %d positives is not decided. Compute is %s.\n\n", r.Margin, r.Alpha, r.Test, eval.MinPositives, r.Compute)
	undecided := 0
	for _, rec := range r.Recommendations {
		if !rec.Decided {
			undecided++
		}
	}
	if undecided > 0 {
		fmt.Fprintf(&b, "**%d of %d tasks cannot be decided: their test split is too small.** Pool more sites or patients, or lengthen the horizon.\n\n", undecided, len(r.Recommendations))
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "- %s: not evaluated: %s\n", s.Name, s.Reason)
	}
	if len(r.Skipped) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("## AUPRC by task and preset\n\n")
	b.WriteString("Test-split AUPRC (average precision) with 95% patient-level bootstrap intervals.\n\n")
	b.WriteString(eval.MarkdownTable(r.taskRows()) + "\n")
	b.WriteString("## Pretraining\n\n")
	b.WriteString(eval.MarkdownTable(r.presetRows()) + "\n")
	b.WriteString("## Plots\n\n")
	var names []string
	for _, bt := range r.Baseline {
		names = append(names, bt.Name)
	}
	for _, f := range PlotFiles(names) {
		fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(f, ".png"), f)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteTable writes the sweep table and the one-line recommendations for a terminal.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, rows := range [][][]string{r.presetRows(), r.taskRows()} {
		for _, row := range rows {
			fmt.Fprintln(tw, strings.ReplaceAll(strings.Join(row, "\t"), "\n", " "))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, rec := range r.Recommendations {
		if _, err := fmt.Fprintln(w, rec.Summary); err != nil {
			return err
		}
	}
	return nil
}

// metricCI is m's AUPRC with its interval where it has one.
func metricCI(m eval.Metrics) string { return eval.FormatCI(m.AUPRC, m.AUPRCCI) }
