package tasks

import (
	"fmt"
	"maps"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
)

// Benchmark task sets (MEDS-DEV, EHRSHOT-style) come as MEDS label files rather
// than as code prefixes. A given-labels Labeler serves them to the evaluation as
// it serves fedclaims' own tasks: the same examples, split and history rule, the
// index date taken from the label's prediction time. And ExportLabels writes
// fedclaims' own tasks as MEDS labels, so that another tool scores the same task.
//
// MEDS lets a model use data up to and including the prediction time; fedclaims'
// history is the events strictly before the index date. So a label's index date is
// its prediction time plus one microsecond, and an exported label's prediction time
// is the index date minus one microsecond (23:59:59.999999 of the last day of
// history): both sides then see exactly the same events, and a round trip gives
// back the same examples.

// Given is the Kind of a task whose labels come from a MEDS label file.
const Given Kind = "labels"

// Unlabelled marks a task without a label at an index date: a given-labels task
// that labels the patient at other prediction times, or not at this one, or with
// a null boolean_value.
const Unlabelled Label = -3

// givenExample is one prediction time of one patient with every task's label.
type givenExample struct {
	index  int64
	labels []Label
}

// NewGivenLabeler returns a Labeler whose tasks are the label sets (task name ->
// MEDS labels), in name order, and whose examples are their rows: one example
// per (patient, prediction time), labelled for each task that labels it there,
// Unlabelled for the others. o.Splits (or the hash under o.Salt) assigns the
// splits; o's Seed, End and MaxIndexPerPatient do not apply. A task name must be a
// fedclaims task name (it names report rows and files), and one task must not give
// one patient two different labels at one time.
func NewGivenLabeler(sets map[string][]claims.MEDSLabel, o Options) (*Labeler, error) {
	if len(sets) == 0 {
		return nil, fmt.Errorf("tasks: no label sets")
	}
	names := slices.Sorted(maps.Keys(sets))
	l := &Labeler{opts: o, splits: o.splits(), given: map[int64][]givenExample{}}
	at := map[[2]int64]int{} // (subject, index) -> position in l.given[subject]
	for ti, name := range names {
		if !namePattern.MatchString(name) {
			return nil, fmt.Errorf("tasks: labels of task %q: the name must be lower case letters, digits and underscores, starting with a letter (rename the file)", name)
		}
		l.tasks = append(l.tasks, Task{Name: name, Kind: Given, Description: "MEDS labels"})
		for _, r := range sets[name] {
			lab := Unlabelled
			if r.Known {
				lab = Negative
				if r.Value {
					lab = Positive
				}
			}
			index := r.PredictionTime + 1
			key := [2]int64{r.SubjectID, index}
			k, ok := at[key]
			if !ok {
				labels := make([]Label, len(names))
				for i := range labels {
					labels[i] = Unlabelled
				}
				k = len(l.given[r.SubjectID])
				l.given[r.SubjectID] = append(l.given[r.SubjectID], givenExample{index: index, labels: labels})
				at[key] = k
			}
			g := &l.given[r.SubjectID][k]
			if prev := g.labels[ti]; prev != Unlabelled && lab != Unlabelled && prev != lab {
				return nil, fmt.Errorf("tasks: labels of task %s: subject %d has labels %s and %s at %s",
					name, r.SubjectID, prev, lab, claims.FormatTime(r.PredictionTime))
			}
			if lab != Unlabelled {
				g.labels[ti] = lab
			}
		}
	}
	for id := range l.given {
		slices.SortFunc(l.given[id], func(a, b givenExample) int { return int(sign(a.index - b.index)) })
	}
	return l, nil
}

func sign(d int64) int64 {
	switch {
	case d < 0:
		return -1
	case d > 0:
		return 1
	}
	return 0
}

// givenExamples returns p's examples from the given labels, in index order.
func (l *Labeler) givenExamples(p *claims.Patient, split Split) []Example {
	gs := l.given[p.ID]
	if len(gs) == 0 {
		return nil
	}
	exs := make([]Example, len(gs))
	for k, g := range gs {
		exs[k] = Example{SubjectID: p.ID, Index: g.index, Split: split, Labels: slices.Clone(g.labels)}
	}
	return exs
}

// GivenSubjects returns the subjects a given-labels Labeler has labels for (nil
// for a task Labeler), to tell how many of them the data lacks.
func (l *Labeler) GivenSubjects() []int64 {
	if l.given == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(l.given))
}

// ExportLabels turns the examples of task ti into MEDS labels: one row per
// labelled example (positive or negative; excluded ones have no label), its
// prediction time the index date minus one microsecond.
func ExportLabels(exs []Example, ti int) []claims.MEDSLabel {
	var out []claims.MEDSLabel
	for _, ex := range exs {
		if lab := ex.Labels[ti]; lab.Labelled() {
			out = append(out, claims.MEDSLabel{SubjectID: ex.SubjectID, PredictionTime: ex.Index - 1, Value: lab == Positive, Known: true})
		}
	}
	return out
}
