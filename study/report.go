package study

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/fedclaims/fedclaims/eval"
)

func diffText(d float64, c *[2]float64) string {
	if c == nil {
		return fmt.Sprintf("%+.3f", d)
	}
	return fmt.Sprintf("%+.3f [%+.3f, %+.3f]", d, c[0], c[1])
}

func holmText(p, rev *float64) string {
	if p == nil {
		return "–"
	}
	return eval.FormatP(*p) + " / " + eval.FormatP(*rev)
}

// WriteMarkdown writes study.md.
func (r *Result) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# fedclaims study\n\n")
	fmt.Fprintf(&b, "Mode %s; labelled sites %s; pretraining-only sites %s; %d labelled patients; %d pretraining histories; vocabulary %d tokens; wall %.0f s.\n\n",
		r.Mode, strings.Join(r.Sites, ", "), orNone(r.PretrainOnlySites), r.Patients, r.PretrainingHistories, r.VocabSize, r.WallSeconds)
	fmt.Fprintf(&b, "Test: %s. Primary tasks: %s.\n\n", r.Test, r.PrimaryRule)
	if r.Resamples > 0 {
		fmt.Fprintf(&b, "Resolution: %d bootstrap resamples; the smallest Holm p the main table can show is %s (its one-sided tests / (resamples + 1))", r.Resamples, eval.FormatP(r.PHolmFloor))
		if r.PHolmFloor >= r.Alpha {
			fmt.Fprintf(&b, ", not below alpha %.2g: no comparison of the table can be significant; raise eval.bootstrap", r.Alpha)
		}
		b.WriteString(".\n\n")
	}

	b.WriteString("## Floors\n\n")
	for _, f := range r.Floors {
		mark := "not reached"
		if f.Reached {
			mark = "reached"
		}
		fmt.Fprintf(&b, "- **%s**: %s. %s\n", f.Name, mark, f.Detail)
	}
	b.WriteString("\n## Encoders against the baseline\n\n")
	rows := [][]string{{"task", "primary", "test positives", "baseline AUPRC", "encoder", "mode", "params", "tokens/param", "AUPRC", "encoder − baseline", "Holm p (encoder / baseline better)", "verdict"}}
	for _, t := range r.Tasks {
		for i, e := range t.Encoders {
			name, prim, pos, base := "", "", "", ""
			if i == 0 {
				name, pos, base = t.Name, fmt.Sprint(t.PositivesTest), eval.FormatCI(t.Baseline.AUPRC, t.Baseline.CI)
				if t.Primary {
					prim = "yes"
				}
			}
			rows = append(rows, []string{name, prim, pos, base, e.Name, e.Mode, fmt.Sprint(e.Params), fmt.Sprintf("%.2f", e.TokensPerParam),
				eval.FormatCI(e.AUPRC, e.AUPRCCI), diffText(e.DiffVsBaseline, e.CI), holmText(e.PHolm, e.PReverseHolm), e.Verdict})
		}
	}
	b.WriteString(eval.MarkdownTable(rows) + "\n")
	b.WriteString("## Which size is enough\n\n")
	for _, t := range r.Tasks {
		if t.Recommendation != "" {
			fmt.Fprintf(&b, "- %s\n", t.Recommendation)
		}
	}
	if len(r.Skipped) > 0 {
		b.WriteString("\nNot evaluated: ")
		for i, s := range r.Skipped {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s (%s)", s.Name, s.Reason)
		}
		b.WriteString("\n")
	}

	if s := r.SiteAlone; s != nil {
		fmt.Fprintf(&b, "\n## Site %s: the consortium's encoder against its site-alone encoder\n\nHeads fitted and tested on the site's own %d patients; %s against %s; Holm across the site's tasks.\n\n", s.Site, s.Patients, s.Federated, s.SiteAlone)
		rows := [][]string{{"task", "test positives", "consortium encoder", "site-alone", "baseline", "consortium − site-alone", "Holm p (consortium / site-alone better)", "verdict"}}
		for _, t := range s.Tasks {
			d, p, v := "–", "–", t.Undecided
			if c := t.Comparison; c != nil {
				d = diffText(c.Diff, &c.CI)
				p = eval.FormatP(c.PHolm) + " / " + eval.FormatP(c.PReverseHolm)
				v = t.Verdict
			}
			rows = append(rows, []string{t.Name, fmt.Sprint(t.PositivesTest), fmt.Sprintf("%.3f", t.Federated), fmt.Sprintf("%.3f", t.SiteAlone), fmt.Sprintf("%.3f", t.Baseline), d, p, v})
		}
		b.WriteString(eval.MarkdownTable(rows) + "\n")
	}

	b.WriteString("## Controls\n\n")
	for _, ctl := range []struct {
		name string
		c    *Control
	}{{"Shuffled visits", r.Controls.ShuffledVisits}, {"temporal_strength 0", r.Controls.TemporalStrength0}} {
		if ctl.c == nil {
			fmt.Fprintf(&b, "%s: not run.\n\n", ctl.name)
			continue
		}
		fmt.Fprintf(&b, "### %s (%s)\n\n%s: %s.\n\n", ctl.name, ctl.c.Encoder, ctl.c.What, ctl.c.Summary)
		rows := [][]string{{"task", "primary", "test positives", "encoder", "baseline", "encoder change", "baseline change", "encoder − baseline", "Holm p (encoder / baseline better)", "verdict"}}
		for _, t := range ctl.c.Tasks {
			d, p := "–", "–"
			if c := t.Comparison; c != nil {
				d = diffText(c.Diff, &c.CI)
				p = eval.FormatP(c.PHolm) + " / " + eval.FormatP(c.PReverseHolm)
			}
			prim := ""
			if t.Primary {
				prim = "yes"
			}
			rows = append(rows, []string{t.Name, prim, fmt.Sprint(t.PositivesTest), fmt.Sprintf("%.3f", t.Encoder), fmt.Sprintf("%.3f", t.Baseline),
				fmt.Sprintf("%+.3f", t.EncoderChange), fmt.Sprintf("%+.3f", t.BaselineChange), d, p, t.Verdict})
		}
		b.WriteString(eval.MarkdownTable(rows) + "\n")
	}

	b.WriteString("## The recipe, on validation data\n\nMean validation log-loss of the primary tasks' heads (lower is better) and the final validation MLM loss; each change against the full recipe.\n\n")
	rows = [][]string{{"change", "arm", "valid MLM loss", "valid log-loss (primary)", "against the full recipe"}}
	for _, c := range r.Recipe {
		vs := ""
		if c.VsFullRecipe != nil {
			vs = fmt.Sprintf("%+.4f", *c.VsFullRecipe)
		}
		rows = append(rows, []string{c.Change, c.Arm, fmt.Sprintf("%.3f", c.ValidMLMLoss), fmt.Sprintf("%.4f", c.ValidLogLossPrimary), vs})
	}
	b.WriteString(eval.MarkdownTable(rows) + "\n")

	if len(r.LabelEfficiency) > 0 {
		b.WriteString("## Label efficiency\n\nHeads on nested subsets of the labelled training patients, tested on the whole test split; the intervals are paired bootstrap intervals, not corrected for the number of points.\n\n")
		rows := [][]string{{"task", "labelled patients", "training positives", "encoder", "baseline", "encoder − baseline", "note"}}
		for _, lc := range r.LabelEfficiency {
			for _, p := range lc.Points {
				d := "–"
				if p.Diff != nil {
					d = diffText(p.Diff.Diff, &p.Diff.CI)
				}
				rows = append(rows, []string{lc.Task, fmt.Sprint(p.Patients), fmt.Sprint(p.Positives),
					eval.FormatCI(p.Encoder.AUPRC, p.Encoder.AUPRCCI), eval.FormatCI(p.Baseline.AUPRC, p.Baseline.AUPRCCI), d, p.Skipped + p.Undecided})
			}
		}
		b.WriteString(eval.MarkdownTable(rows) + "\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// WriteSummary prints the floors and the primary tasks' rows: what the command
// prints when the study ends (study.md has everything).
func (r *Result) WriteSummary(w io.Writer) error {
	var b bytes.Buffer
	rows := [][]string{{"task", "test positives", "baseline", "encoder", "mode", "AUPRC", "encoder − baseline", "Holm p (encoder / baseline better)", "verdict"}}
	for _, t := range r.Tasks {
		if !t.Primary {
			continue
		}
		for i, e := range t.Encoders {
			name, pos, base := "", "", ""
			if i == 0 {
				name, pos, base = t.Name, fmt.Sprint(t.PositivesTest), eval.FormatCI(t.Baseline.AUPRC, t.Baseline.CI)
			}
			rows = append(rows, []string{name, pos, base, e.Name, e.Mode, eval.FormatCI(e.AUPRC, e.AUPRCCI), diffText(e.DiffVsBaseline, e.CI), holmText(e.PHolm, e.PReverseHolm), e.Verdict})
		}
	}
	b.WriteString(eval.MarkdownTable(rows) + "\n")
	for _, f := range r.Floors {
		mark := "NOT reached"
		if f.Reached {
			mark = "reached"
		}
		fmt.Fprintf(&b, "%s: %s (%s)\n", f.Name, mark, f.Detail)
	}
	fmt.Fprintf(&b, "wall %.0f s\n", r.WallSeconds)
	_, err := w.Write(b.Bytes())
	return err
}
