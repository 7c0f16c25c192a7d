package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/tasks"
)

// The follow-up leakage check asks whether a task's labels can be predicted from
// how a patient is followed rather than from the patient's health. A labelling rule
// that treats short follow-up differently for positives and negatives (a positive
// kept without being followed through the horizon, a negative not) lets a model win
// by predicting drop-out: the length of the record, the calendar time of the index.
//
// For every task it fits two gradient-boosting models on exactly the same rows: one
// on follow-up features (days of record before the index, the index's calendar
// year, age, sex) and one on age and sex alone, and tests whether the follow-up
// model has the higher AUPRC (paired, outcome-stratified patient bootstrap,
// one-sided, Holm-corrected across the tasks). Age and sex are in both, so only
// what follow-up adds is tested. A task leaks when the Holm-corrected p-value is
// below LeakageAlpha.
//
// The check is about the labels, not about a model, so it scores every labelled
// example rather than the test split alone: the patients are cut into
// leakageFolds folds by a hash of their id, and each fold is predicted by models
// trained on the other folds (one of them held out for early stopping). Out-of-fold
// predictions of every patient give the test ten times the positives of the test
// split, which is what lets it see a leak at the size of one site.

// LeakageAlpha is the level below which a task's labels are said to leak follow-up.
const LeakageAlpha = 0.05

// leakageFolds is the number of cross-fitting folds of the check.
const leakageFolds = 5

// leakageFold is subject id's fold, by an FNV-1a hash so that every run, site and
// task puts a patient in the same fold, independent of the evaluation's splits.
func leakageFold(id int64) int {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(id))
	h.Write([]byte("fedclaims-leakage-fold"))
	h.Write(b[:])
	return int(h.Sum64() % leakageFolds)
}

// Leakage is one task's result.
type Leakage struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// N and Positives count the labelled examples, all of them scored out of fold.
	N         int `json:"n"`
	Positives int `json:"positives"`
	// FollowUpAUPRC and AgeSexAUPRC are the two models' out-of-fold AUPRC.
	FollowUpAUPRC float64 `json:"followup_auprc"`
	AgeSexAUPRC   float64 `json:"age_sex_auprc"`
	// Comparison is follow-up minus age and sex; absent when undecided.
	Comparison *eval.Comparison `json:"comparison,omitempty"`
	// Undecided says why the task could not be tested (too few positives, a split
	// without a class).
	Undecided string `json:"undecided,omitempty"`
	Leaks     bool   `json:"leaks"`
}

// LeakageReport is the check over a set of tasks.
type LeakageReport struct {
	Rule  string    `json:"rule"`
	Tasks []Leakage `json:"tasks"`
}

// Leaks reports whether any task leaks.
func (r *LeakageReport) Leaks() bool {
	for _, t := range r.Tasks {
		if t.Leaks {
			return true
		}
	}
	return false
}

const leakageRule = "per task, a gradient-boosting model on follow-up features (days of record before the index, index year, age, sex) against one on age and sex alone, same rows, " +
	"every labelled example predicted out of fold (5 folds of patients); AUPRC difference with a paired, outcome-stratified patient bootstrap; one-sided p Holm-corrected across tasks; a task leaks when p_holm < 0.05"

// Follow-up feature columns; the age-and-sex model uses the last three.
const (
	colRecordDays = iota
	colIndexYear
	colAge
	colFemale
	colMale
	numLeakageCols
)

// leakageFeatures is one example's follow-up features, as a dense row.
func leakageFeatures(p *claims.Patient, index int64) [numLeakageCols]float32 {
	var f [numLeakageCols]float32
	const day = float64(claims.MicrosPerDay)
	if len(p.Events) > 0 {
		first := p.Events[0].Time
		for _, e := range p.Events {
			first = min(first, e.Time)
		}
		f[colRecordDays] = float32(float64(index-first) / day)
	}
	f[colIndexYear] = float32(1970 + float64(index)/day/365.25)
	if p.HasBirth {
		f[colAge] = float32(float64(index-p.Birth) / day / 365.25)
	}
	switch p.Sex {
	case claims.SexFemale:
		f[colFemale] = 1
	case claims.SexMale:
		f[colMale] = 1
	}
	return f
}

// appendDense appends the columns cols of row to x, leaving zeros out as the CSR
// format wants.
func appendDense(x *baseline.CSR, row []float32) error {
	var idx []int32
	var val []float32
	for j, v := range row {
		if v != 0 {
			idx, val = append(idx, int32(j)), append(val, v)
		}
	}
	return x.AppendRow(idx, val)
}

// LeakageCheck runs the check on patients for ts, labelled as o says. It is an
// error only when the input is wrong; a task that cannot be tested is listed as
// undecided.
func LeakageCheck(ctx context.Context, patients []*claims.Patient, ts []tasks.Task, o Options) (*LeakageReport, error) {
	l, err := o.Labeler(ts)
	if err != nil {
		return nil, err
	}
	// Every example's features, once for all tasks: the follow-up model's (x[0])
	// and the age-and-sex model's (x[1], the same row without the follow-up).
	var exs []tasks.Example
	var folds []int
	x := [2]*baseline.CSR{baseline.NewCSR(numLeakageCols), baseline.NewCSR(numLeakageCols)}
	for _, p := range patients {
		for _, ex := range l.Examples(p) {
			f := leakageFeatures(p, ex.Index)
			ageSex := f
			ageSex[colRecordDays], ageSex[colIndexYear] = 0, 0
			for m, row := range [2][numLeakageCols]float32{f, ageSex} {
				if err := appendDense(x[m], row[:]); err != nil {
					return nil, err
				}
			}
			exs = append(exs, ex)
			folds = append(folds, leakageFold(ex.SubjectID))
		}
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("leakage check: none of %d patients has an index date", len(patients))
	}
	params := baseline.DefaultParams()
	params.NumIterations, params.LearningRate, params.NumLeaves = max(o.Iterations, 1), 0.05, 15
	params.EarlyStoppingRound, params.Seed, params.NumThreads = 20, o.Seed, o.Threads
	bs := eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed}
	rep := &LeakageReport{Rule: leakageRule}
	var ps []float64
	var decided []int
	for ti, t := range l.Tasks() {
		res := Leakage{Name: t.Name, Kind: string(t.Kind)}
		// The task's labelled examples, in order, and each one's fold.
		var rows []int
		var labels []bool
		var ids []int64
		for i, ex := range exs {
			if lab := ex.Labels[ti]; lab.Labelled() {
				rows = append(rows, i)
				labels = append(labels, lab == tasks.Positive)
				ids = append(ids, ex.SubjectID)
				if lab == tasks.Positive {
					res.Positives++
				}
			}
		}
		res.N = len(rows)
		// dataset is the rows of the given folds of the task, for model m, and where
		// they sit in rows.
		dataset := func(m int, in func(fold int) bool) (*baseline.Dataset, []int) {
			var sel, at []int
			d := &baseline.Dataset{}
			for k, i := range rows {
				if in(folds[i]) {
					sel, at = append(sel, i), append(at, k)
					d.Label = append(d.Label, labels[k])
				}
			}
			d.X = x[m].SelectRows(sel)
			return d, at
		}
		// Out-of-fold scores of every labelled example, per model.
		scores := [2][]float64{make([]float64, len(rows)), make([]float64, len(rows))}
	folds:
		for f := range leakageFolds {
			valid := (f + 1) % leakageFolds
			for m := range 2 {
				train, _ := dataset(m, func(g int) bool { return g != f && g != valid })
				validSet, _ := dataset(m, func(g int) bool { return g == valid })
				test, at := dataset(m, func(g int) bool { return g == f })
				model, err := baseline.Train(ctx, train, validSet, params, nil)
				if errors.Is(err, baseline.ErrOneClass) {
					res.Undecided = "a fold's training rows hold one class only"
					break folds
				}
				if err != nil {
					return nil, fmt.Errorf("leakage check: task %s: %w", t.Name, err)
				}
				for k, v := range model.Predict(test.X, params.NumThreads) {
					scores[m][at[k]] = v
				}
			}
		}
		if res.Undecided == "" {
			res.FollowUpAUPRC, _ = eval.AveragePrecision(scores[0], labels)
			res.AgeSexAUPRC, _ = eval.AveragePrecision(scores[1], labels)
			c, err := eval.Compare(scores[0], scores[1], labels, ids, bs, eval.MetricAUPRC, 0)
			switch {
			case errors.Is(err, eval.ErrTooFewPositives), errors.Is(err, eval.ErrNoNegatives):
				res.Undecided = fmt.Sprintf("too few positives (%d)", res.Positives)
			case err != nil:
				return nil, fmt.Errorf("leakage check: task %s: %w", t.Name, err)
			default:
				res.Comparison = &c
				ps = append(ps, c.P)
				decided = append(decided, len(rep.Tasks))
			}
		}
		rep.Tasks = append(rep.Tasks, res)
	}
	for j, adj := range eval.Holm(ps) {
		t := &rep.Tasks[decided[j]]
		t.Comparison.PHolm = adj
		t.Leaks = adj < LeakageAlpha
	}
	return rep, nil
}

// WriteTable writes the check as a table for a terminal or Markdown (markdown true).
func (r *LeakageReport) WriteTable(w io.Writer, markdown bool) error {
	rows := [][]string{{"task", "n", "positives", "follow-up AUPRC", "age+sex AUPRC", "difference [95% CI]", "p (Holm)", "verdict"}}
	for _, t := range r.Tasks {
		diff, p, verdict := "-", "-", "no leak shown"
		switch {
		case t.Undecided != "":
			verdict = "undecided: " + t.Undecided
		case t.Leaks:
			verdict = "LEAKS follow-up"
		}
		if c := t.Comparison; c != nil {
			diff = fmt.Sprintf("%+.3f [%.3f, %.3f]", c.Diff, c.CI[0], c.CI[1])
			p = fmt.Sprintf("%.3g", c.PHolm)
		}
		rows = append(rows, []string{t.Name, fmt.Sprint(t.N), fmt.Sprint(t.Positives),
			fmt.Sprintf("%.3f", t.FollowUpAUPRC), fmt.Sprintf("%.3f", t.AgeSexAUPRC), diff, p, verdict})
	}
	if markdown {
		var b strings.Builder
		b.WriteString("# Follow-up leakage check\n\nRule: " + r.Rule + ".\n\n")
		b.WriteString(eval.MarkdownTable(rows))
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
