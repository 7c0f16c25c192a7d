package study

import (
	"errors"
	"fmt"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/internal/jsonfile"
	"github.com/fedclaims/fedclaims/sweep"
)

// Result is study.json.
type Result struct {
	Mode              string   `json:"mode"`
	Sites             []string `json:"sites"`
	PretrainOnlySites []string `json:"pretrain_only_sites"`
	// Patients are the labelled sites' patients; PretrainingHistories the
	// histories every encoder pretrains on (labelled training splits and every
	// patient of a pretraining-only site).
	Patients             int     `json:"patients"`
	PretrainingHistories int     `json:"pretraining_histories"`
	VocabSize            int     `json:"vocab_size"`
	Alpha                float64 `json:"alpha"`
	Margin               float64 `json:"margin"`
	PrimaryRule          string  `json:"primary_rule"`
	Test                 string  `json:"test"`
	// Resamples is the bootstrap size B of every comparison; PHolmFloor the
	// smallest Holm-corrected p the main table can show, m/(B+1) for its m
	// one-sided tests: at or above Alpha no comparison can be significant.
	Resamples  int     `json:"resamples"`
	PHolmFloor float64 `json:"p_holm_floor"`
	Tasks      []Task  `json:"tasks"`
	// Skipped are the tasks that could not be evaluated at all.
	Skipped         []baseline.Skipped    `json:"skipped,omitempty"`
	Controls        Controls_             `json:"controls"`
	SiteAlone       *SiteComparison       `json:"site_alone"`
	Recipe          []RecipeChange        `json:"recipe"`
	LabelEfficiency []pipeline.LabelCurve `json:"label_efficiency"`
	Floors          []Floor               `json:"floors"`
	// WallSeconds is this invocation's wall time (a resumed study counts only
	// what it ran).
	WallSeconds float64 `json:"wall_seconds"`
}

const testText = "each encoder's head minus the time-aware gradient-boosting baseline on the same test rows: AUPRC difference, 95% interval of the paired outcome-stratified patient bootstrap, one-sided p-values in both directions, Holm-corrected across every (task, encoder) comparison of the table (both directions in one family); no interval and no test from fewer than 10 test positives"

// Task is one task's row of the main table.
type Task struct {
	Name          string    `json:"name"`
	Kind          string    `json:"kind"`
	Primary       bool      `json:"primary"`
	PositivesTest int       `json:"positives_test"`
	NTest         int       `json:"n_test"`
	Baseline      Metric    `json:"baseline"`
	Encoders      []Encoder `json:"encoders"`
	// Recommended is the smallest scale shown enough (sweep.Recommend over the
	// scales), Recommendation its sentence.
	Recommended    string `json:"recommended"`
	Recommendation string `json:"recommendation"`
}

// Metric is an AUPRC with its interval (absent below 10 test positives).
type Metric struct {
	AUPRC float64     `json:"auprc"`
	CI    *[2]float64 `json:"ci,omitempty"`
}

// Encoder is one encoder's score on a task against the baseline.
type Encoder struct {
	Name           string      `json:"name"`
	Mode           string      `json:"mode"`
	Site           string      `json:"site,omitempty"`
	Params         int         `json:"params"`
	Tokens         int64       `json:"tokens"`
	TokensPerParam float64     `json:"tokens_per_param"`
	AUPRC          float64     `json:"auprc"`
	AUPRCCI        *[2]float64 `json:"auprc_ci,omitempty"`
	ValidLogLoss   float64     `json:"valid_logloss"`
	// DiffVsBaseline is AUPRC minus the baseline's; CI its paired interval, P and
	// PHolm the one-sided p-value that the encoder is better (raw and Holm),
	// PReverseHolm that the baseline is.
	DiffVsBaseline float64     `json:"diff_vs_baseline"`
	CI             *[2]float64 `json:"ci"`
	P              *float64    `json:"p,omitempty"`
	PHolm          *float64    `json:"p_holm"`
	PReverseHolm   *float64    `json:"p_reverse_holm,omitempty"`
	Verdict        string      `json:"verdict"`
}

// Controls_ are the two control experiments.
type Controls_ struct {
	ShuffledVisits    *Control `json:"shuffled_visits"`
	TemporalStrength0 *Control `json:"temporal_strength_0"`
}

// Control is one control experiment: the encoder and the baseline on the changed
// data beside the same arm on the consortium's data.
type Control struct {
	What    string        `json:"what"`
	Encoder string        `json:"encoder"`
	Tasks   []ControlTask `json:"tasks"`
	Summary string        `json:"summary"`
}

// ControlTask is one task under a control.
type ControlTask struct {
	Name          string  `json:"name"`
	Primary       bool    `json:"primary"`
	PositivesTest int     `json:"positives_test"`
	Encoder       float64 `json:"encoder_auprc"`
	Baseline      float64 `json:"baseline_auprc"`
	// Reference* are the same arm and the baseline on the consortium's own data;
	// *Change the control minus the reference.
	ReferenceEncoder  float64 `json:"reference_encoder_auprc"`
	ReferenceBaseline float64 `json:"reference_baseline_auprc"`
	EncoderChange     float64 `json:"encoder_change"`
	BaselineChange    float64 `json:"baseline_change"`
	// Comparison is the encoder minus the baseline under the control (Holm across
	// the control's tasks); absent below 10 test positives.
	Comparison *eval.Comparison `json:"comparison,omitempty"`
	Verdict    string           `json:"verdict"`
}

// SiteComparison is one small site's federated encoder against its own.
type SiteComparison struct {
	Site      string     `json:"site"`
	Patients  int        `json:"patients"`
	Federated string     `json:"federated"`
	SiteAlone string     `json:"site_alone"`
	Tasks     []SiteTask `json:"tasks"`
}

// SiteTask is one task at the site: heads fitted and tested on the site's data.
type SiteTask struct {
	Name          string  `json:"name"`
	PositivesTest int     `json:"positives_test"`
	Federated     float64 `json:"federated_auprc"`
	SiteAlone     float64 `json:"site_alone_auprc"`
	Baseline      float64 `json:"baseline_auprc"`
	// Comparison is federated minus site-alone (Holm across the site's tasks).
	Comparison *eval.Comparison `json:"comparison,omitempty"`
	Verdict    string           `json:"verdict,omitempty"`
	Undecided  string           `json:"undecided,omitempty"`
}

// RecipeChange is one change of the recipe measured on validation data.
type RecipeChange struct {
	Change string `json:"change"`
	Arm    string `json:"arm"`
	// ValidMLMLoss is the final MLM loss on the validation histories (whole
	// histories, the same masks for every arm).
	ValidMLMLoss float64 `json:"valid_mlm_loss"`
	// ValidLogLossPrimary is the heads' mean validation log-loss over the primary
	// tasks; VsFullRecipe its difference from the full recipe's (negative: the
	// change helps).
	ValidLogLossPrimary float64  `json:"valid_logloss_primary"`
	VsFullRecipe        *float64 `json:"vs_full_recipe,omitempty"`
}

// Floor is one of the study's floors and whether this run reached it.
type Floor struct {
	Name    string `json:"name"`
	Reached bool   `json:"reached"`
	Detail  string `json:"detail"`
}

// verdict reads a Holm-corrected comparison of a against b.
func verdict(c *eval.Comparison, alpha float64, a, b string) string {
	switch {
	case c.PHolm < alpha:
		return a + " better"
	case c.PReverseHolm < alpha:
		return b + " better"
	}
	return "no significant difference"
}

func metricOf(m eval.Metrics) Metric { return Metric{AUPRC: m.AUPRC, CI: m.AUPRCCI} }

// mainTable compares every encoder with the baseline on every task, Holm across
// the whole table.
// It also returns the number of one-sided tests in the Holm family.
func mainTable(w *sweep.Workspace, encoders []sweep.PresetResult, recs []sweep.Recommendation, primary map[string]bool, c *Config) ([]Task, int, error) {
	bs := eval.Bootstrap{Resamples: c.Eval.Bootstrap, Seed: c.Seed}
	var out []Task
	// The Holm family: both directions of every (task, encoder) comparison.
	type at struct{ task, enc int }
	var where []at
	var family []*eval.Comparison
	for k, bt := range w.Baseline {
		t := Task{Name: bt.Name, Kind: bt.Kind, Primary: primary[bt.Name], PositivesTest: eval.Positives(bt.Labels),
			NTest: bt.NTest, Baseline: metricOf(bt.Metrics)}
		for _, r := range recs {
			if r.Task == bt.Name {
				t.Recommended, t.Recommendation = r.Preset, r.Summary
			}
		}
		for _, e := range encoders {
			pt := e.Tasks[k]
			row := Encoder{Name: e.Name, Mode: e.Mode, Site: e.Site, Params: e.Params, Tokens: e.Tokens,
				TokensPerParam: e.TokensPerParam, AUPRC: pt.Metrics.AUPRC, AUPRCCI: pt.Metrics.AUPRCCI,
				ValidLogLoss: pt.ValidLogLoss, DiffVsBaseline: pt.Metrics.AUPRC - bt.Metrics.AUPRC,
			}
			cmp, untested, err := compare(pt.Scores, bt.Scores, bt, bs)
			if err != nil {
				return nil, 0, fmt.Errorf("task %s: %s against the baseline: %w", bt.Name, e.Name, err)
			}
			if cmp != nil {
				where = append(where, at{len(out), len(t.Encoders)})
				family = append(family, cmp)
			}
			row.Verdict = untested
			t.Encoders = append(t.Encoders, row)
		}
		out = append(out, t)
	}
	eval.HolmBoth(family)
	for i, f := range where {
		row, cmp := &out[f.task].Encoders[f.enc], family[i]
		ci, p, ph, prh := cmp.CI, cmp.P, cmp.PHolm, cmp.PReverseHolm
		row.CI, row.P, row.PHolm, row.PReverseHolm = &ci, &p, &ph, &prh
		row.DiffVsBaseline = cmp.Diff
		row.Verdict = verdict(cmp, c.Alpha, "encoder", "baseline")
	}
	return out, 2 * len(family), nil
}

// compare is the paired AUPRC comparison of scores a against b on bt's test rows.
// A comparison its rows cannot decide (too few positives, no negatives) is no
// error: it comes back nil with the row's verdict; any other failure is an error,
// since it means the scores and the rows do not belong together.
func compare(a, b []float64, bt sweep.BaselineTask, bs eval.Bootstrap) (*eval.Comparison, string, error) {
	cmp, err := eval.Compare(a, b, bt.Labels, bt.Patient, bs, "auprc", 0)
	switch {
	case err == nil:
		return &cmp, "", nil
	case isTooSmall(err):
		return nil, noTest(err), nil
	}
	return nil, "", err
}

// controlTable sets a control's encoder and baseline beside the reference arm's.
func controlTable(what string, w *sweep.Workspace, r *sweep.PresetResult, main *sweep.Workspace, ref *sweep.PresetResult, primary map[string]bool, c *Config) (*Control, error) {
	ctl := &Control{What: what, Encoder: r.Name}
	bs := eval.Bootstrap{Resamples: c.Eval.Bootstrap, Seed: c.Seed}
	refBase := map[string]int{}
	for k, bt := range main.Baseline {
		refBase[bt.Name] = k
	}
	var family []*eval.Comparison
	for k, bt := range w.Baseline {
		ct := ControlTask{Name: bt.Name, Primary: primary[bt.Name], PositivesTest: eval.Positives(bt.Labels),
			Encoder: r.Tasks[k].Metrics.AUPRC, Baseline: bt.Metrics.AUPRC}
		if rk, ok := refBase[bt.Name]; ok {
			ct.ReferenceEncoder, ct.ReferenceBaseline = ref.Tasks[rk].Metrics.AUPRC, main.Baseline[rk].Metrics.AUPRC
			ct.EncoderChange, ct.BaselineChange = ct.Encoder-ct.ReferenceEncoder, ct.Baseline-ct.ReferenceBaseline
		}
		cmp, untested, err := compare(r.Tasks[k].Scores, bt.Scores, bt, bs)
		if err != nil {
			return nil, fmt.Errorf("%s: task %s: %s against the baseline: %w", what, bt.Name, r.Name, err)
		}
		if cmp != nil {
			family = append(family, cmp)
		}
		ct.Comparison, ct.Verdict = cmp, untested
		ctl.Tasks = append(ctl.Tasks, ct)
	}
	eval.HolmBoth(family)
	for k := range ctl.Tasks {
		if cmp := ctl.Tasks[k].Comparison; cmp != nil {
			ctl.Tasks[k].Verdict = verdict(cmp, c.Alpha, "encoder", "baseline")
		}
	}
	var encMove, baseMove float64
	n := 0
	for _, t := range ctl.Tasks {
		if t.Primary {
			encMove += t.EncoderChange
			baseMove += t.BaselineChange
			n++
		}
	}
	if n > 0 {
		ctl.Summary = fmt.Sprintf("over the %d primary tasks the encoder's AUPRC moved by %+.3f on average and the baseline's by %+.3f against the consortium's own data", n, encMove/float64(n), baseMove/float64(n))
	}
	return ctl, nil
}

// floors judges the floors on this run.
func floors(r *Result, c *Config) []Floor {
	var out []Floor
	// 1. the federated (or, in a central study, the scales') encoder beats the
	// baseline on the primary tasks: per task the scale best on validation.
	wins, n := 0, 0
	detail := ""
	for _, t := range r.Tasks {
		if !t.Primary {
			continue
		}
		n++
		var best *Encoder
		for i := range t.Encoders {
			e := &t.Encoders[i]
			if e.Mode != c.Mode {
				continue
			}
			if best == nil || e.ValidLogLoss < best.ValidLogLoss {
				best = e
			}
		}
		if best == nil {
			continue
		}
		won := best.PHolm != nil && *best.PHolm < c.Alpha
		if won {
			wins++
		}
		detail += fmt.Sprintf("%s: %s %+.3f, %s; ", t.Name, best.Name, best.DiffVsBaseline, pText(best.PHolm))
	}
	need := min(3, n)
	out = append(out, Floor{Name: fmt.Sprintf("the %s encoder (scale best on validation) beats the time-aware baseline with Holm p < %.2g on at least %d of the %d primary tasks", c.Mode, c.Alpha, need, n),
		Reached: n > 0 && wins >= need, Detail: fmt.Sprintf("%d of %d: %s", wins, n, detail)})

	// 2. federated within 0.01 AUPRC of centralised at equal tokens.
	if c.Mode == sweep.ModeFederated {
		ok, compared, detail := true, 0, ""
		for _, t := range r.Tasks {
			if !t.Primary {
				continue
			}
			var fed, cen *Encoder
			for i := range t.Encoders {
				switch t.Encoders[i].Name {
				case c.Central:
					fed = &t.Encoders[i]
				case c.Central + "-central":
					cen = &t.Encoders[i]
				}
			}
			if fed == nil || cen == nil {
				continue
			}
			compared++
			d := fed.AUPRC - cen.AUPRC
			if d < -0.01 {
				ok = false
			}
			detail += fmt.Sprintf("%s: %+.3f; ", t.Name, d)
		}
		out = append(out, Floor{Name: "federated within 0.01 AUPRC of centralised at equal tokens (" + c.Central + ", primary tasks, federated minus central)", Reached: ok && compared > 0, Detail: detail})
	}

	// 3. a small site gains significantly over its site-alone encoder.
	if s := r.SiteAlone; s != nil {
		gained, detail := false, ""
		for _, t := range s.Tasks {
			if t.Comparison == nil {
				detail += fmt.Sprintf("%s: %d test positives, no test; ", t.Name, t.PositivesTest)
				continue
			}
			if t.Comparison.PHolm < c.Alpha {
				gained = true
			}
			detail += fmt.Sprintf("%s: %+.3f, Holm p %s; ", t.Name, t.Comparison.Diff, eval.FormatP(t.Comparison.PHolm))
		}
		out = append(out, Floor{Name: "site " + s.Site + " gains significantly over its site-alone encoder on at least one task", Reached: gained, Detail: detail})
	}
	out = append(out, Floor{Name: "both controls reported", Reached: r.Controls.ShuffledVisits != nil && r.Controls.TemporalStrength0 != nil,
		Detail: "shuffled visits and temporal_strength 0 (see controls)"})
	return out
}

func pText(p *float64) string {
	if p == nil {
		return "no test"
	}
	return "Holm p " + eval.FormatP(*p)
}

// Save writes dir/study.json and dir/study.md (each through a temporary file
// renamed into place) and the figures.
func (r *Result) Save(dir string) error {
	if err := r.plots(dir); err != nil {
		return err
	}
	if err := jsonfile.Write(dir+"/"+ResultFile, r); err != nil {
		return err
	}
	return atomicfile.Write(dir+"/"+ReportFile, 0o644, r.WriteMarkdown)
}

// isTooSmall reports whether a comparison was refused for the size of the test
// split, not for a fault in the scores.
func isTooSmall(err error) bool {
	return errors.Is(err, eval.ErrTooFewPositives) || errors.Is(err, eval.ErrNoNegatives)
}

// noTest is the verdict of a row without a test. Compare counts positive rows and
// positive patients, so a row can show 10 test positives from 9 patients and
// still have no test; the verdict says which.
func noTest(err error) string {
	switch {
	case errors.Is(err, eval.ErrTooFewPositives):
		return fmt.Sprintf("no test: fewer than %d positive rows or positive patients", eval.MinPositives)
	case errors.Is(err, eval.ErrNoNegatives):
		return "no test: no negative patients"
	}
	return "no test: " + err.Error()
}
