package tasks

import "maps"

// Tally counts the examples of a Labeler's tasks, for prevalence reports.
type Tally struct {
	tasks    []Task
	patients int64
	indexed  int64
	examples int64
	rows     []Prevalence
}

// Prevalence is one task's counts over the examples tallied. A patient with several
// index dates counts once per index date. There is no censored column: every
// example is followed through its horizon (see Labeler), so an example is
// positive, negative or excluded for prior history.
type Prevalence struct {
	Task string `json:"task"`
	Kind Kind   `json:"kind"`
	// N is the number of labelled examples (positive or negative).
	N         int64 `json:"n"`
	Positives int64 `json:"positives"`
	// Prevalence is Positives / N, 0 when N is 0.
	Prevalence float64 `json:"prevalence"`
	// ExcludedPrior counts the examples with the target or an excluded code on or
	// before the index date.
	ExcludedPrior int64 `json:"excluded_prior"`
	// NBySplit and PositivesBySplit break N and Positives down by train, validation
	// and test.
	NBySplit         map[string]int64 `json:"n_by_split"`
	PositivesBySplit map[string]int64 `json:"positives_by_split"`
}

// NewTally returns an empty Tally for l's tasks.
func NewTally(l *Labeler) *Tally {
	t := &Tally{tasks: l.Tasks()}
	for _, task := range t.tasks {
		t.rows = append(t.rows, Prevalence{Task: task.Name, Kind: task.Kind, NBySplit: splitCounts(), PositivesBySplit: splitCounts()})
	}
	return t
}

func splitCounts() map[string]int64 {
	return map[string]int64{Train.String(): 0, Validation.String(): 0, Test.String(): 0}
}

// Add counts one patient and its examples, as Labeler.Examples returned them (nil
// for a patient without an index date). Call it once per patient.
func (t *Tally) Add(exs []Example) {
	t.patients++
	if len(exs) == 0 {
		return
	}
	t.indexed++
	for _, ex := range exs {
		t.examples++
		for i, lab := range ex.Labels {
			r := &t.rows[i]
			switch lab {
			case ExcludedPrior:
				r.ExcludedPrior++
			case Positive:
				r.Positives++
				r.PositivesBySplit[ex.Split.String()]++
				fallthrough
			case Negative:
				r.N++
				r.NBySplit[ex.Split.String()]++
			}
		}
	}
}

// Patients returns the number of patients added, and how many had an index date.
func (t *Tally) Patients() (all, indexed int64) { return t.patients, t.indexed }

// Examples returns the number of examples added (index dates, over all patients).
func (t *Tally) Examples() int64 { return t.examples }

// Prevalence returns one row per task, in task order.
func (t *Tally) Prevalence() []Prevalence {
	out := make([]Prevalence, len(t.rows))
	for i, r := range t.rows {
		if r.N > 0 {
			r.Prevalence = float64(r.Positives) / float64(r.N)
		}
		r.NBySplit, r.PositivesBySplit = maps.Clone(r.NBySplit), maps.Clone(r.PositivesBySplit)
		out[i] = r
	}
	return out
}
