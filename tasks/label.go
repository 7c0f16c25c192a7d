package tasks

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/fedclaims/fedclaims/claims"
)

// Label is a patient's outcome for one task at its index date.
type Label int8

const (
	// Negative: no occurrence in the horizon, and the patient was followed through it.
	Negative Label = 0
	// Positive: the first occurrence falls in (index, index + horizon].
	Positive Label = 1
	// ExcludedPrior: an occurrence on or before the index date, so not a first onset.
	ExcludedPrior Label = -1
	// ExcludedCensored: no occurrence in the horizon, but the record ends (the last
	// event, or death) before the horizon does, so the outcome is unknown.
	ExcludedCensored Label = -2
)

// Labelled reports whether l is a label (positive or negative) rather than an
// exclusion.
func (l Label) Labelled() bool { return l == Positive || l == Negative }

// String names l.
func (l Label) String() string {
	switch l {
	case Negative:
		return "negative"
	case Positive:
		return "positive"
	case ExcludedPrior:
		return "excluded_prior"
	case ExcludedCensored:
		return "excluded_censored"
	}
	return fmt.Sprintf("Label(%d)", int8(l))
}

// Split is the data split a patient belongs to.
type Split uint8

const (
	Train Split = iota
	Validation
	Test
)

// String names s.
func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Validation:
		return "validation"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", uint8(s))
}

// DefaultSalt is the split salt used when Options.Salt is empty.
const DefaultSalt = "fedclaims-split-v1"

// SplitOf assigns subject id to a split, 80% train, 10% validation and 10% test, by a
// FNV-1a hash of salt and id: the same patient lands in the same split for every task,
// every run and every site, and no patient is in two splits.
func SplitOf(id int64, salt string) Split {
	h := fnv.New64a()
	h.Write([]byte(salt))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(id))
	h.Write(b[:])
	switch bucket := h.Sum64() % 100; {
	case bucket < 80:
		return Train
	case bucket < 90:
		return Validation
	}
	return Test
}

// Options configure a Labeler.
type Options struct {
	// Seed makes the index dates: the same seed, patient and data end give the same
	// index date.
	Seed uint64
	// End is the end of the data (microseconds since the Unix epoch): the extraction
	// date, after which nothing can have been recorded. Index dates leave a whole
	// horizon before it. It is a property of the dataset, not of a patient, so that
	// a patient's index date cannot depend on how long the patient was seen
	// afterwards. Required.
	End int64
	// Salt salts the train/validation/test split; DefaultSalt when empty.
	Salt string
}

// Example is one patient's labels for a set of tasks at one index date.
type Example struct {
	SubjectID int64
	// Index is the index date, microseconds since the Unix epoch at midnight UTC.
	// The patient's history is the events strictly before it.
	Index int64
	Split Split
	// Labels holds one label per task, in the Labeler's task order.
	Labels []Label
}

// Labeler labels patients for a fixed set of tasks. It is immutable and safe for
// concurrent use.
//
// Cohort rules:
//   - One index date per patient, drawn uniformly among the midnights (UTC) from
//     first event + the longest look-back to End − the longest horizon, from a random
//     stream seeded by Options.Seed and the subject id. Patients without such a day
//     (too little history, or too close to End), and patients who died before it,
//     get no example.
//   - Per task: an occurrence on or before the index date excludes the patient
//     (ExcludedPrior); a first occurrence in (index, index + horizon] is Positive.
//   - Censoring: without an occurrence, a patient whose record ends before index +
//     horizon is excluded (ExcludedCensored), where the record ends at the last event
//     or at death, whichever is earlier; death before the horizon ends without the
//     outcome is thus excluded, not negative. Otherwise the patient is Negative.
//
// Excluding the censored rather than counting them negative keeps negatives honest
// (a patient lost from view may have had the outcome elsewhere); its price is a
// prevalence slightly above that of a fully followed population, since a positive is
// never censored.
type Labeler struct {
	tasks    []Task
	opts     Options
	lookback int64 // the longest look-back, in microseconds
	horizon  int64 // the longest horizon, in microseconds
	horizons []int64
}

// NewLabeler returns a Labeler for tasks.
func NewLabeler(tasks []Task, o Options) (*Labeler, error) {
	if len(tasks) == 0 {
		return nil, fmt.Errorf("tasks: labeler with no tasks")
	}
	if o.End == 0 {
		return nil, fmt.Errorf("tasks: Options.End (the end of the data) is required")
	}
	if o.Salt == "" {
		o.Salt = DefaultSalt
	}
	l := &Labeler{tasks: append([]Task(nil), tasks...), opts: o}
	for _, t := range tasks {
		if t.HorizonDays < 1 || t.LookbackDays < 0 || len(t.Prefixes) == 0 {
			return nil, fmt.Errorf("tasks: task %q: horizon %d days, look-back %d days, %d prefixes: want a positive horizon, a look-back of at least 0 and a prefix", t.Name, t.HorizonDays, t.LookbackDays, len(t.Prefixes))
		}
		h := int64(t.HorizonDays) * claims.MicrosPerDay
		l.horizons = append(l.horizons, h)
		l.horizon = max(l.horizon, h)
		l.lookback = max(l.lookback, int64(t.LookbackDays)*claims.MicrosPerDay)
	}
	return l, nil
}

// Tasks returns the tasks, in label order.
func (l *Labeler) Tasks() []Task { return append([]Task(nil), l.tasks...) }

// Index returns p's index date and false when p has none (see Labeler). It depends
// only on p's first event, its id, the seed and End.
func (l *Labeler) Index(p *claims.Patient) (int64, bool) {
	if len(p.Events) == 0 {
		return 0, false
	}
	first := p.Events[0].Time
	for _, e := range p.Events[1:] {
		first = min(first, e.Time)
	}
	lo := ceilDiv(first+l.lookback, claims.MicrosPerDay)
	hi := claims.Day(l.opts.End - l.horizon)
	if lo > hi {
		return 0, false
	}
	r := rand.New(rand.NewPCG(l.opts.Seed, uint64(p.ID)))
	return (lo + r.Int64N(hi-lo+1)) * claims.MicrosPerDay, true
}

// Label returns p's example, and false when p has no index date or died before it.
func (l *Labeler) Label(p *claims.Patient) (Example, bool) {
	index, ok := l.Index(p)
	if !ok {
		return Example{}, false
	}
	// The record ends at the last event, or at death when that comes first; events
	// after a recorded death are data errors and do not extend follow-up.
	end, death := int64(0), false
	for _, e := range p.Events {
		if e.Code == claims.CodeDeath {
			if !death || e.Time < end {
				end = e.Time
			}
			death = true
		} else if !death {
			end = max(end, e.Time)
		}
	}
	if death && end < index {
		return Example{}, false
	}
	ex := Example{SubjectID: p.ID, Index: index, Split: SplitOf(p.ID, l.opts.Salt), Labels: make([]Label, len(l.tasks))}
	for i := range l.tasks {
		ex.Labels[i] = l.label(&l.tasks[i], l.horizons[i], p, index, end)
	}
	return ex, true
}

func (l *Labeler) label(t *Task, horizon int64, p *claims.Patient, index, end int64) Label {
	onset, found := int64(0), false
	for _, e := range p.Events {
		if t.Matches(e.Code) && (!found || e.Time < onset) {
			onset, found = e.Time, true
		}
	}
	switch {
	case found && onset <= index:
		return ExcludedPrior
	case found && onset <= index+horizon:
		return Positive
	case end < index+horizon:
		return ExcludedCensored
	}
	return Negative
}

// History returns the view of p that a model may see at index: p with only the events
// strictly before index. The events are shared with p, not copied, but capped, so
// that appending to the history cannot overwrite p's later events and no slicing of
// it can reach them.
func History(p *claims.Patient, index int64) *claims.Patient {
	h := *p
	n := 0
	for n < len(p.Events) && p.Events[n].Time < index {
		n++
	}
	// Events are sorted by time, so the past is a prefix. In an unsorted record the
	// prefix stops at the first event on or after index: an event dated earlier but
	// stored after it is dropped, never one dated later let in.
	h.Events = p.Events[:n:n]
	return &h
}

func ceilDiv(a, b int64) int64 { return -claims.FloorDiv(-a, b) }
