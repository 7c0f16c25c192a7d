package tasks

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
)

// Label is a patient's outcome for one task at one index date.
type Label int8

const (
	// Negative: no occurrence of the target in (index, index + horizon], and the
	// patient was followed through it (see Labeler).
	Negative Label = 0
	// Positive: the first occurrence of the target falls in (index, index + horizon].
	Positive Label = 1
	// ExcludedPrior: the target, or a code of the task's ExcludePrefixes, occurs on
	// or before the index date, so an onset after it would not be a first onset.
	ExcludedPrior Label = -1
)

// There is no censored label: a Labeler keeps only index dates with follow-up
// through the longest horizon (see Labeler), so every example is observed for every
// task. (Label -2, once ExcludedCensored, is no longer produced.)

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
	case Unlabelled:
		return "unlabelled"
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
	// Seed makes the index dates: the same seed and patient give the same index
	// dates.
	Seed uint64
	// End, when not 0, is the extraction date (microseconds since the Unix epoch), a
	// cap on every patient's follow-up: nothing after it counts as observed. 0 means
	// no cap; follow-up then comes from each patient's own record (see Labeler).
	End int64
	// Salt salts the train/validation/test split; DefaultSalt when empty.
	Salt string
	// Splits, when set, assigns the splits instead of the hash under Salt: the
	// dataset's own split (LoadSplits). Patients it puts in no split get no example.
	Splits *Splits
	// MaxIndexPerPatient is the most index dates drawn per patient; 0 and 1 both
	// mean one.
	MaxIndexPerPatient int
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
// Rules, per patient and never from another patient's dates:
//
//   - Follow-up end: the later of the patient's ObservationEnd (when recorded) and
//     its last event (death included); when Options.End is set, no later than End.
//     An observation end is taken over the last event because a patient may be
//     observed past the last thing recorded (a healthy patient has few events); the
//     last event over the observation end because an event proves observation (OMOP
//     periods may be single hospital stays that end before later events). Death
//     does not end follow-up when an observation end is recorded: a patient who died
//     without the outcome is known never to have had it. Without an observation
//     end the last event ends follow-up, and for a patient who died that is normally
//     the death. Follow-up is a property of each patient, not the dataset's last
//     date, so that date-shifted data (MIMIC-IV puts each patient in its own years)
//     are labelled like any other.
//   - Index dates are anchored to care: a candidate is the midnight (UTC) after a
//     day with at least one event other than birth, death or observation end (a
//     visit day, whose events are then all in the history), such that candidate >=
//     first event + the longest look-back of the tasks, candidate + the longest
//     horizon <= follow-up end, and candidate < the first recorded death (a dead
//     patient is at no risk). A patient without a candidate has no example. Of the
//     candidates, min(MaxIndexPerPatient, #candidates) distinct ones are drawn
//     uniformly without replacement from a PCG stream seeded by (Options.Seed,
//     subject id), and returned in index order. Whether a day is a candidate
//     depends only on the record up to that day and on the follow-up requirement,
//     never on outcomes, and every task shares the index.
//   - Per task, at each index: ExcludedPrior when any target code or excluded code
//     (Task.Matches, Task.Excludes) occurs on or before the index; otherwise
//     Positive when the first target occurrence falls in (index, index + horizon];
//     otherwise Negative.
//   - Death in (index, index + horizon] without the outcome is Negative, for every
//     task alike: death is a competing event, and the patient is known not to have
//     had the outcome. Risks are thus those of the population with its deaths, not
//     of a world without death.
//   - Nothing is censored: every index has follow-up through index + the longest
//     horizon, so positives and negatives are observed alike. (The former rule
//     assigned a positive before looking at follow-up and excluded negatives that
//     were not followed, so that labels rewarded predicting who stays in the data.)
//     The price is that patients without that much follow-up, and the last horizon
//     of every record, give no index.
//   - Splits are per patient (SplitOf): all a patient's index dates are in one split.
type Labeler struct {
	tasks    []Task
	opts     Options
	lookback int64 // the longest look-back, in microseconds
	horizon  int64 // the longest horizon, in microseconds
	horizons []int64
	splits   *Splits
	given    map[int64][]givenExample // NewGivenLabeler's labels; nil for tasks
}

// splits is the split o asks for: o.Splits, else the hash under o.Salt.
func (o Options) splits() *Splits {
	if o.Splits != nil {
		return o.Splits
	}
	return HashSplits(o.Salt)
}

// Splits returns the split the Labeler assigns examples to.
func (l *Labeler) Splits() *Splits { return l.splits }

// NewLabeler returns a Labeler for tasks.
func NewLabeler(tasks []Task, o Options) (*Labeler, error) {
	if len(tasks) == 0 {
		return nil, fmt.Errorf("tasks: labeler with no tasks")
	}
	if o.MaxIndexPerPatient < 0 {
		return nil, fmt.Errorf("tasks: Options.MaxIndexPerPatient is %d, want 0 or more", o.MaxIndexPerPatient)
	}
	if o.MaxIndexPerPatient == 0 {
		o.MaxIndexPerPatient = 1
	}
	if o.Salt == "" {
		o.Salt = DefaultSalt
	}
	l := &Labeler{tasks: append([]Task(nil), tasks...), opts: o, splits: o.splits()}
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

// FollowUpEnd returns the end of p's follow-up (see Labeler): the later of its
// observation end and its last event, capped at Options.End when set. It is 0 when
// p has neither events nor an observation end.
func (l *Labeler) FollowUpEnd(p *claims.Patient) int64 {
	end, ok := p.ObservationEnd, p.HasObservationEnd
	for _, e := range p.Events {
		if !ok || e.Time > end {
			end, ok = e.Time, true
		}
	}
	if !ok {
		return 0
	}
	if l.opts.End != 0 {
		end = min(end, l.opts.End)
	}
	return end
}

// isCareEvent reports whether an event with code makes its day a visit day: any
// event but birth, death and the observation end, which are facts about the
// patient rather than care.
func isCareEvent(code string) bool {
	return code != claims.CodeBirth && code != claims.CodeDeath && code != claims.CodeObservationEnd
}

// candidates returns p's candidate index dates in increasing order (see Labeler).
func (l *Labeler) candidates(p *claims.Patient) []int64 {
	if len(p.Events) == 0 {
		return nil
	}
	first, death, died := p.Events[0].Time, int64(0), false
	for _, e := range p.Events {
		first = min(first, e.Time)
		if e.Code == claims.CodeDeath && (!died || e.Time < death) {
			death, died = e.Time, true
		}
	}
	lo := first + l.lookback
	hi := l.FollowUpEnd(p) - l.horizon
	var out []int64
	for _, e := range p.Events {
		if !isCareEvent(e.Code) {
			continue
		}
		c := (claims.Day(e.Time) + 1) * claims.MicrosPerDay
		if c < lo || c > hi || (died && c >= death) {
			continue
		}
		out = append(out, c)
	}
	// Events are sorted by time, so the candidates are too; sorting anyway keeps
	// an unsorted record's candidates the same set in the same order.
	slices.Sort(out)
	return slices.Compact(out)
}

// indexes draws p's index dates from its candidates (see Labeler), in increasing
// order; nil when p has none.
func (l *Labeler) indexes(p *claims.Patient) []int64 {
	cands := l.candidates(p)
	n := len(cands)
	if n == 0 {
		return nil
	}
	k := min(l.opts.MaxIndexPerPatient, n)
	r := rand.New(rand.NewPCG(l.opts.Seed, uint64(p.ID)))
	// A partial Fisher-Yates shuffle: the first k are a uniform draw without
	// replacement.
	for i := range k {
		j := i + r.IntN(n-i)
		cands[i], cands[j] = cands[j], cands[i]
	}
	out := cands[:k:k]
	slices.Sort(out)
	return out
}

// Examples returns p's examples, one per index date, in index order; nil when p has
// no candidate index date (see Labeler).
func (l *Labeler) Examples(p *claims.Patient) []Example {
	split, ok := l.splits.Of(p.ID)
	if !ok {
		return nil
	}
	if l.given != nil {
		return l.givenExamples(p, split)
	}
	idx := l.indexes(p)
	if len(idx) == 0 {
		return nil
	}
	exs := make([]Example, len(idx))
	labels := make([]Label, len(idx)*len(l.tasks))
	for k, index := range idx {
		ex := Example{SubjectID: p.ID, Index: index, Split: split, Labels: labels[k*len(l.tasks) : (k+1)*len(l.tasks) : (k+1)*len(l.tasks)]}
		for i := range l.tasks {
			ex.Labels[i] = label(&l.tasks[i], l.horizons[i], p, index)
		}
		exs[k] = ex
	}
	return exs
}

// label is p's label for t at index (see Labeler). Follow-up through index +
// horizon is the caller's guarantee.
func label(t *Task, horizon int64, p *claims.Patient, index int64) Label {
	positive := false
	for _, e := range p.Events {
		switch {
		case e.Time <= index:
			if t.Matches(e.Code) || t.Excludes(e.Code) {
				return ExcludedPrior
			}
		case e.Time <= index+horizon:
			positive = positive || t.Matches(e.Code)
		}
	}
	if positive {
		return Positive
	}
	return Negative
}

// History returns the view of p that a model may see at index: p with only the events
// strictly before index, and without its observation end, which tells how long the
// patient will be followed. The events are shared with p, not copied, but capped, so
// that appending to the history cannot overwrite p's later events and no slicing of
// it can reach them.
func History(p *claims.Patient, index int64) *claims.Patient {
	h := *p
	h.ObservationEnd, h.HasObservationEnd = 0, false
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
