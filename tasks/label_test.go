package tasks

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tokenizer"
)

const day = claims.MicrosPerDay

func date(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMicro()
}

func ev(t int64, code string) claims.Event {
	return claims.Event{Time: t, Code: code, Value: float32(math.NaN())}
}

func patient(id int64, events ...claims.Event) *claims.Patient {
	p := &claims.Patient{ID: id, Sex: claims.SexMale, HasBirth: true, Birth: date(1950, 1, 1), Events: events}
	slices.SortStableFunc(p.Events, func(a, b claims.Event) int { return cmp.Compare(a.Time, b.Time) })
	return p
}

func labeler(t *testing.T, o Options, ts ...Task) *Labeler {
	t.Helper()
	l, err := NewLabeler(ts, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	t2d     = Task{Name: "t2d", Kind: Disease, Prefixes: []string{"ICD10//E11"}, HorizonDays: 730, LookbackDays: 365}
	statins = Task{Name: "statins", Kind: Medication, Prefixes: []string{"ATC//C10AA"}, HorizonDays: 365, LookbackDays: 365}
)

func withObs(p *claims.Patient, end int64) *claims.Patient {
	p.ObservationEnd, p.HasObservationEnd = end, true
	return p
}

// oracle is the label of t at index by the definition: prior history of the target
// or an excluded code on or before the index excludes; a target code in (index,
// index + horizon] is positive; anything else negative.
func oracle(t *Task, p *claims.Patient, index int64) Label {
	positive := false
	for _, e := range p.Events {
		if e.Time <= index && (t.Matches(e.Code) || t.Excludes(e.Code)) {
			return ExcludedPrior
		}
		if e.Time > index && e.Time <= index+int64(t.HorizonDays)*day && t.Matches(e.Code) {
			positive = true
		}
	}
	if positive {
		return Positive
	}
	return Negative
}

// TestLabel pins the index date by giving every patient exactly one candidate: the
// first event on D0, a visit on the day before D0 + 365 days (the longest
// look-back), so that the midnight after it is the index, and follow-up to exactly
// index + 730 days (the longest horizon), so that no later day is a candidate.
func TestLabel(t *testing.T) {
	d0 := date(2014, 1, 1)
	index := d0 + 365*day
	end := index + 730*day
	t2dx := t2d
	t2dx.ExcludePrefixes = []string{"ICD10//E10"}
	l := labeler(t, Options{Seed: 9}, t2dx, statins)
	first := ev(d0, "ICD10//I10")
	visit := ev(index-12*3600*1_000_000, "VISIT//9202") // noon of the day before the index
	obs := func(p *claims.Patient) *claims.Patient { return withObs(p, end) }
	none := func(p *claims.Patient) *claims.Patient { return p }
	tests := []struct {
		name   string
		obs    func(*claims.Patient) *claims.Patient
		events []claims.Event
		want   []Label // nil: no example
	}{
		{"negative", obs, nil, []Label{Negative, Negative}},
		{"onset in horizon", obs, []claims.Event{ev(index+100*day, "ICD10//E11.9")}, []Label{Positive, Negative}},
		{"onset on the last day of the horizon", obs, []claims.Event{ev(index+730*day, "ICD10//E11")}, []Label{Positive, Negative}},
		{"onset the day after the index", obs, []claims.Event{ev(index+day, "ICD10//E11")}, []Label{Positive, Negative}},
		{"onset a microsecond after the index", obs, []claims.Event{ev(index+1, "ICD10//E11")}, []Label{Positive, Negative}},
		{"onset at the index", obs, []claims.Event{ev(index, "ICD10//E11.9")}, []Label{ExcludedPrior, Negative}},
		{"onset on the visit day", obs, []claims.Event{ev(visit.Time, "ICD10//E11.9"), ev(index+day, "ICD10//E11")}, []Label{ExcludedPrior, Negative}},
		{"onset after the horizon", obs, []claims.Event{ev(index+731*day, "ICD10//E11")}, []Label{Negative, Negative}},
		{"ICD-10-CM onset matches an ICD10 task", obs, []claims.Event{ev(index+100*day, "ICD10CM//E11.65")}, []Label{Positive, Negative}},
		{"excluded history", obs, []claims.Event{ev(visit.Time, "ICD10CM//E10.9"), ev(index+100*day, "ICD10//E11.9")}, []Label{ExcludedPrior, Negative}},
		{"excluded code after the index is no history", obs, []claims.Event{ev(index+50*day, "ICD10//E10.9")}, []Label{Negative, Negative}},
		{"drug started in the drug horizon", obs, []claims.Event{ev(index+200*day, "ATC//C10AA05")}, []Label{Negative, Positive}},
		{"drug started after the drug horizon", obs, []claims.Event{ev(index+366*day, "ATC//C10AA05")}, []Label{Negative, Negative}},
		{"prior drug user", obs, []claims.Event{ev(index-30*day, "ATC//C10AA01"), ev(index+30*day, "ATC//C10AA01")}, []Label{Negative, ExcludedPrior}},
		{"another drug class", obs, []claims.Event{ev(index+30*day, "ATC//C10AX09")}, []Label{Negative, Negative}},
		// Death is a competing event: without the outcome before it, negative.
		{"death in the horizon, observation end recorded", obs, []claims.Event{ev(index+500*day, claims.CodeDeath)}, []Label{Negative, Negative}},
		{"death the day after the index", obs, []claims.Event{ev(index+day, claims.CodeDeath)}, []Label{Negative, Negative}},
		{"death after onset", obs, []claims.Event{ev(index+100*day, "ICD10//E11"), ev(index+500*day, claims.CodeDeath)}, []Label{Positive, Negative}},
		{"death a horizon after the index, no observation end", none, []claims.Event{ev(end, claims.CodeDeath)}, []Label{Negative, Negative}},
		{"last event a horizon after the index, no observation end", none, []claims.Event{ev(end, "ICD10//I10")}, []Label{Negative, Negative}},
		// Too little follow-up: no index at all, whatever the outcome.
		{"death in the horizon, no observation end", none, []claims.Event{ev(index+500*day, claims.CodeDeath)}, nil},
		{"onset, then the record ends in the horizon", none, []claims.Event{ev(index+100*day, "ICD10//E11"), ev(index+400*day, "ICD10//I10")}, nil},
		{"no onset, the record ends in the horizon", none, []claims.Event{ev(index+400*day, "ICD10//I10")}, nil},
		{"the record ends at the index", none, nil, nil},
		{"death before the index", obs, []claims.Event{ev(index-6*3600*1_000_000, claims.CodeDeath)}, nil},
		{"death at the index", obs, []claims.Event{ev(index, claims.CodeDeath)}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.obs(patient(int64(i), append([]claims.Event{first, visit}, tt.events...)...))
			exs := l.Examples(p)
			if tt.want == nil {
				if exs != nil {
					t.Fatalf("examples %+v, want none", exs)
				}
				return
			}
			if len(exs) != 1 {
				t.Fatalf("%d examples %+v, want 1", len(exs), exs)
			}
			ex := exs[0]
			if ex.Index != index || ex.SubjectID != p.ID || ex.Split != SplitOf(p.ID, DefaultSalt) {
				t.Errorf("example %+v, want index %d", ex, index)
			}
			if !slices.Equal(ex.Labels, tt.want) {
				t.Errorf("labels = %v, want %v", ex.Labels, tt.want)
			}
		})
	}

	// Too little history: the first event a day later leaves the visit too early.
	if exs := l.Examples(withObs(patient(100, ev(d0+day, "ICD10//I10"), visit), end)); exs != nil {
		t.Errorf("too little history: examples %+v", exs)
	}
	if exs := l.Examples(withObs(patient(101), end)); exs != nil {
		t.Errorf("no events: examples %+v", exs)
	}
	// End caps follow-up, even past an observation end.
	capped := labeler(t, Options{Seed: 9, End: end - day}, t2dx, statins)
	if exs := capped.Examples(withObs(patient(102, first, visit), end)); exs != nil {
		t.Errorf("End a day before index + horizon: examples %+v", exs)
	}
	// ExactSystem: an ICD10 task no longer matches ICD-10-CM codes.
	exact := t2d
	exact.ExactSystem = true
	le := labeler(t, Options{}, exact)
	p := withObs(patient(103, first, visit, ev(index+100*day, "ICD10CM//E11.65")), end)
	if exs := le.Examples(p); len(exs) != 1 || exs[0].Labels[0] != Negative {
		t.Errorf("exact_system: examples %+v, want one negative", exs)
	}
}

func TestFollowUpEnd(t *testing.T) {
	a, b, c := date(2015, 1, 1), date(2016, 1, 1), date(2017, 1, 1)
	tests := []struct {
		name string
		p    *claims.Patient
		end  int64
		want int64
	}{
		{"last event", patient(1, ev(a, "ICD10//I10"), ev(b, "ICD10//I10")), 0, b},
		{"death is the last event", patient(1, ev(a, "ICD10//I10"), ev(b, claims.CodeDeath)), 0, b},
		{"observation end after the last event", withObs(patient(1, ev(a, "ICD10//I10"), ev(b, claims.CodeDeath)), c), 0, c},
		{"observation end before the last event", withObs(patient(1, ev(a, "ICD10//I10"), ev(c, "ICD10//I10")), b), 0, c},
		{"End caps", withObs(patient(1, ev(a, "ICD10//I10")), c), b, b},
		{"End after follow-up", patient(1, ev(a, "ICD10//I10")), c, a},
		{"observation end alone", withObs(patient(1), b), 0, b},
		{"nothing", patient(1), 0, 0},
	}
	for _, tt := range tests {
		l := labeler(t, Options{End: tt.end}, t2d)
		if got := l.FollowUpEnd(tt.p); got != tt.want {
			t.Errorf("%s: FollowUpEnd = %s, want %s", tt.name, claims.FormatTime(got), claims.FormatTime(tt.want))
		}
	}
}

// randomPatient makes a patient with visits, target codes, perhaps a death and
// perhaps an observation end, for the property tests.
func randomPatient(r *rand.Rand, id, from int64) *claims.Patient {
	codes := []string{"ICD10//E11.9", "ICD10CM//E11.65", "ICD10//E10.1", "ICD10//I10", "ICD10//I50.0", "ATC//C10AA05", "ATC//C10BA02", "ICD10//N18.3", "PROC//ECG", "VISIT//9202"}
	span := (1 + r.Int64N(8*365)) * day
	var es []claims.Event
	for range 1 + r.IntN(60) {
		es = append(es, ev(from+r.Int64N(span), codes[r.IntN(len(codes))]))
	}
	p := patient(id, es...)
	last := p.Events[len(p.Events)-1].Time
	if r.IntN(4) == 0 {
		p.Events = append(p.Events, ev(last+r.Int64N(400*day), claims.CodeDeath))
	}
	if r.IntN(2) == 0 {
		withObs(p, last+r.Int64N(4*365*day)-365*day)
	}
	return p
}

// TestIndexRules checks the index dates of random patients against the rules:
// each is the midnight after a day with an event other than death, at least the
// longest look-back after the first event, before any death, with follow-up
// through the longest horizon; with MaxIndexPerPatient unbounded every such day is
// an index; and the labels are the definition's.
func TestIndexRules(t *testing.T) {
	ts := []Task{t2d, statins}
	ts[0].ExcludePrefixes = []string{"ICD10//E10"}
	all := labeler(t, Options{Seed: 1, MaxIndexPerPatient: 1 << 30}, ts...)
	one := labeler(t, Options{Seed: 1}, ts...)
	r := rand.New(rand.NewPCG(1, 2))
	indexed, positives := 0, 0
	for id := range int64(2000) {
		p := randomPatient(r, id, date(2012, 1, 1))
		fu := all.FollowUpEnd(p)
		first, death := p.Events[0].Time, int64(math.MaxInt64)
		want := map[int64]bool{}
		for _, e := range p.Events {
			if e.Code == claims.CodeDeath {
				death = min(death, e.Time)
			}
		}
		for _, e := range p.Events {
			c := (claims.Day(e.Time) + 1) * day
			if e.Code != claims.CodeDeath && c >= first+365*day && c+730*day <= fu && c < death {
				want[c] = true
			}
		}
		exs := all.Examples(p)
		if len(exs) != len(want) {
			t.Fatalf("patient %d: %d index dates, want the %d candidates", id, len(exs), len(want))
		}
		for k, ex := range exs {
			if !want[ex.Index] || (k > 0 && ex.Index <= exs[k-1].Index) {
				t.Fatalf("patient %d: index %s is no candidate or out of order", id, claims.FormatTime(ex.Index))
			}
			if ex.Index+730*day > fu {
				t.Fatalf("patient %d: index %s without follow-up through the horizon (follow-up to %s)", id, claims.FormatTime(ex.Index), claims.FormatTime(fu))
			}
			for i := range ts {
				if got, want := ex.Labels[i], oracle(&ts[i], p, ex.Index); got != want {
					t.Fatalf("patient %d at %s: task %s label %v, want %v", id, claims.FormatTime(ex.Index), ts[i].Name, got, want)
				}
				if ex.Labels[i] == Positive {
					positives++
				}
			}
		}
		o := one.Examples(p)
		if (len(o) == 1) != (len(exs) > 0) || (len(o) == 1 && !want[o[0].Index]) {
			t.Fatalf("patient %d: one index %+v, want one of the %d candidates", id, o, len(want))
		}
		if len(exs) > 0 {
			indexed++
		}
	}
	if indexed < 300 || positives < 100 {
		t.Errorf("only %d indexed patients and %d positives: the test checks too little", indexed, positives)
	}
}

// TestShortFollowUp: a patient is never labelled at an index whose horizon runs past
// its follow-up, positive or negative; it gets an earlier index or none.
func TestShortFollowUp(t *testing.T) {
	l := labeler(t, Options{Seed: 4, MaxIndexPerPatient: 1000}, t2d)
	monthly := func(from, to int64) []claims.Event {
		var es []claims.Event
		for t := from; t < to; t += 30 * day {
			es = append(es, ev(t+9*3600*1_000_000, "VISIT//9202"))
		}
		return es
	}
	a := date(2014, 1, 1)
	onset := date(2016, 6, 1)
	for _, tt := range []struct {
		name string
		p    *claims.Patient
		// latest is the latest index allowed; 0 for no example.
		latest int64
	}{
		// Under the old rule this patient was a positive at any index in the two
		// years before the onset: the positive needed no follow-up.
		{"positive, the record ends at the onset", patient(1, append(monthly(a, onset), ev(onset, "ICD10//E11.9"))...), 0},
		{"negative, the record ends early", patient(2, monthly(a, onset)...), 0},
		{"positive, followed a while after", patient(3, append(monthly(a, date(2017, 6, 1)), ev(onset, "ICD10//E11.9"))...), date(2017, 6, 1) - 730*day},
		{"death without an observation end", patient(4, append(monthly(a, date(2017, 1, 1)), ev(date(2017, 3, 1), claims.CodeDeath))...), date(2017, 3, 1) - 730*day},
		{"observation end beyond the record", withObs(patient(5, append(monthly(a, onset), ev(onset, "ICD10//E11.9"))...), date(2019, 1, 1)), onset + day},
	} {
		exs := l.Examples(tt.p)
		if tt.latest == 0 {
			if exs != nil {
				t.Errorf("%s: %d examples, the last at %s, want none", tt.name, len(exs), claims.FormatTime(exs[len(exs)-1].Index))
			}
			continue
		}
		if len(exs) == 0 {
			t.Errorf("%s: no example", tt.name)
			continue
		}
		for _, ex := range exs {
			if ex.Index > tt.latest {
				t.Errorf("%s: index %s after the latest allowed, %s", tt.name, claims.FormatTime(ex.Index), claims.FormatTime(tt.latest))
			}
		}
	}
}

func TestSeveralIndexes(t *testing.T) {
	l := labeler(t, Options{Seed: 5, MaxIndexPerPatient: 3}, t2d, statins)
	l2 := labeler(t, Options{Seed: 5, MaxIndexPerPatient: 3}, t2d, statins)
	other := labeler(t, Options{Seed: 6, MaxIndexPerPatient: 3}, t2d, statins)
	all := labeler(t, Options{Seed: 5, MaxIndexPerPatient: 1 << 30}, t2d, statins)
	r := rand.New(rand.NewPCG(3, 4))
	differ, several := 0, 0
	for id := range int64(1000) {
		p := randomPatient(r, id, date(2012, 1, 1))
		exs := l.Examples(p)
		n := len(all.Examples(p))
		if len(exs) != min(3, n) {
			t.Fatalf("patient %d: %d index dates of %d candidates, want %d", id, len(exs), n, min(3, n))
		}
		if len(exs) > 1 {
			several++
		}
		for k, ex := range exs {
			if k > 0 && ex.Index <= exs[k-1].Index {
				t.Fatalf("patient %d: index dates not distinct and sorted: %+v", id, exs)
			}
			if ex.Split != exs[0].Split || ex.Split != SplitOf(p.ID, DefaultSalt) || ex.SubjectID != p.ID {
				t.Fatalf("patient %d: examples in different splits or of another subject", id)
			}
		}
		again := l2.Examples(p)
		if len(again) != len(exs) {
			t.Fatal("the same seed gave a different number of index dates")
		}
		for k := range exs {
			if again[k].Index != exs[k].Index || !slices.Equal(again[k].Labels, exs[k].Labels) {
				t.Fatal("the same seed gave other examples")
			}
		}
		if o := other.Examples(p); n > 3 && !slices.EqualFunc(o, exs, func(a, b Example) bool { return a.Index == b.Index }) {
			differ++
		}
		// Labels of one example do not alias another's.
		if len(exs) > 1 {
			exs[0].Labels = append(exs[0].Labels, Positive)
			if exs[1].Labels[0] != again[1].Labels[0] {
				t.Fatal("appending to one example's labels changed another's")
			}
		}
	}
	if several < 100 || differ < several/2 {
		t.Errorf("%d patients with several index dates, %d moved by another seed", several, differ)
	}
}

// TestDateShifted: MIMIC-IV shifts each patient into its own years; follow-up is
// each patient's own, so patients a century apart are labelled alike.
func TestDateShifted(t *testing.T) {
	l := labeler(t, Options{Seed: 1}, t2d)
	mk := func(id int64, y int) *claims.Patient {
		var es []claims.Event
		for m := range 48 {
			es = append(es, ev(date(y, time.Month(1+m%12), 15)+int64(m/12)*365*day, "VISIT//9202"))
		}
		es = append(es, ev(date(y+2, 3, 3), "ICD10CM//E11.9"))
		return withObs(patient(id, es...), date(y+4, 6, 1))
	}
	early, late := mk(1, 2110), mk(2, 2190)
	for _, p := range []*claims.Patient{early, late} {
		exs := l.Examples(p)
		if len(exs) != 1 {
			t.Fatalf("patient %d (from %s): %d examples, want 1", p.ID, claims.FormatTime(p.Events[0].Time), len(exs))
		}
		if y := time.UnixMicro(exs[0].Index).UTC().Year(); y < 2110 || (p == late && y < 2190) {
			t.Errorf("patient %d: index in %d", p.ID, y)
		}
	}
	// A dataset-wide end (the later patient's) would have censored the earlier
	// one only under the old rule; an End cap before a patient's record leaves it
	// without an index, as it must.
	capped := labeler(t, Options{Seed: 1, End: date(2150, 1, 1)}, t2d)
	if capped.Examples(early) == nil || capped.Examples(late) != nil {
		t.Error("End 2150 should index the 2110 patient and not the 2190 one")
	}
}

func TestNewLabeler(t *testing.T) {
	if _, err := NewLabeler([]Task{t2d}, Options{}); err != nil {
		t.Errorf("NewLabeler without End: %v (End is optional)", err)
	}
	if _, err := NewLabeler(nil, Options{}); err == nil {
		t.Error("NewLabeler without tasks succeeded")
	}
	if _, err := NewLabeler([]Task{{Name: "x", Prefixes: []string{"ICD10//E11"}}}, Options{}); err == nil {
		t.Error("NewLabeler with a zero horizon succeeded")
	}
	if _, err := NewLabeler([]Task{t2d}, Options{MaxIndexPerPatient: -1}); err == nil {
		t.Error("NewLabeler with a negative MaxIndexPerPatient succeeded")
	}
}

func TestSplitOf(t *testing.T) {
	var counts [3]int
	moved := 0
	const n = 100_000
	for id := range int64(n) {
		s := SplitOf(id-n/2, DefaultSalt)
		if SplitOf(id-n/2, DefaultSalt) != s {
			t.Fatal("split is not deterministic")
		}
		counts[s]++
		if SplitOf(id-n/2, "another salt") != s {
			moved++
		}
	}
	want := [3]float64{0.8, 0.1, 0.1}
	for s, c := range counts {
		if f := float64(c) / n; math.Abs(f-want[s]) > 0.01 {
			t.Errorf("split %s holds %.3f of patients, want %.2f", Split(s), f, want[s])
		}
	}
	// Two independent 80/10/10 draws agree with probability 0.66.
	if f := float64(moved) / n; f < 0.3 || f > 0.38 {
		t.Errorf("another salt moved %.3f of patients, want about 0.34", f)
	}
}

// TestNoLeakage is the guarantee the encoder and the baseline rely on: for random
// patients, what the events on or after an index date are (their codes) changes
// neither the index dates, nor the histories, nor the encoder's input; only the
// labels may change. (When events happen does: the index dates are visit days with
// follow-up after them, which is what anchoring to care means.)
func TestNoLeakage(t *testing.T) {
	tasks := Default()
	l := labeler(t, Options{Seed: 3, MaxIndexPerPatient: 2}, tasks...)
	v, err := tokenizer.New(&tokenizer.CountTable{MinCount: 1, Patients: 100, Counts: map[string]int64{
		"ICD10//E11": 50, "ICD10//E11.9": 40, "ICD10//I10": 60, "ICD10//I50": 20, "ATC//C10AA": 30, "ATC//C10AA05": 30, "ICD10//N18": 10,
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tokenizer.NewEncoder(v, 64)
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{"ICD10//E11.9", "ICD10//I10", "ICD10//I50.0", "ATC//C10AA05", "ICD10//N18.3", "ATC//B01AF01", "PROC//ECG", "VISIT//OP"}
	r := rand.New(rand.NewPCG(7, 8))
	checked := 0
	for id := range int64(500) {
		var es []claims.Event
		for range 1 + r.IntN(80) {
			es = append(es, ev(date(2012, 1, 1)+r.Int64N(11*365*day), codes[r.IntN(len(codes))]))
		}
		p := withObs(patient(id, es...), date(2023, 1, 1))
		exs := l.Examples(p)
		if len(exs) == 0 {
			continue
		}
		for _, ex := range exs {
			checked++
			h := History(p, ex.Index)
			if h.HasObservationEnd {
				t.Fatal("the history tells the observation end")
			}
			for _, e := range h.Events {
				if e.Time >= ex.Index {
					t.Fatalf("history holds an event at %d, on or after the index %d", e.Time, ex.Index)
				}
			}
			if cap(h.Events) != len(h.Events) {
				t.Fatal("history can be resliced into the future")
			}
			want := enc.Encode(h, ex.Index)
			if got := enc.Encode(p, ex.Index); !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Ages, want.Ages) || !slices.Equal(got.Segments, want.Segments) {
				t.Fatalf("encoding the patient at the index differs from encoding its history")
			}

			// Rewrite the future: every event on or after the index becomes a target
			// code of some task, at the same time; and more target codes are added on
			// days that already have events.
			future := slices.Clone(p.Events)
			for k := range future {
				if future[k].Time >= ex.Index {
					future[k].Code = tasks[r.IntN(len(tasks))].Prefixes[0] + ".1"
					future = append(future, ev(future[k].Time, tasks[r.IntN(len(tasks))].Prefixes[0]))
				}
			}
			q := withObs(patient(id, future...), p.ObservationEnd)
			exs2 := l.Examples(q)
			if len(exs2) != len(exs) {
				t.Fatalf("changing the future changed the number of index dates: %d -> %d", len(exs), len(exs2))
			}
			for k := range exs {
				if exs2[k].Index != exs[k].Index || exs2[k].Split != exs[k].Split {
					t.Fatalf("changing the future moved an index or split: %+v -> %+v", exs[k], exs2[k])
				}
			}
			h2 := History(q, ex.Index)
			if !slices.EqualFunc(h.Events, h2.Events, func(a, b claims.Event) bool { return a.Time == b.Time && a.Code == b.Code }) {
				t.Fatal("changing the future changed the history")
			}
			got := enc.Encode(q, ex.Index)
			if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Ages, want.Ages) || !slices.Equal(got.Segments, want.Segments) {
				t.Fatal("changing the future changed the encoder's input")
			}
			// Appending to a history must not write into the patient's future.
			if len(h2.Events) < len(q.Events) {
				next := q.Events[len(h2.Events)]
				h2.Events = append(h2.Events, ev(0, "ICD10//X99"))
				if got := q.Events[len(h2.Events)-1]; got.Time != next.Time || got.Code != next.Code {
					t.Fatal("appending to the history overwrote the patient's events")
				}
			}
		}
	}
	if checked < 200 {
		t.Fatalf("only %d index dates among 500 random patients", checked)
	}
}

func TestTally(t *testing.T) {
	d0 := date(2014, 1, 1)
	index := d0 + 365*day
	end := index + 730*day
	l := labeler(t, Options{}, t2d, statins)
	tally := NewTally(l)
	first, visit := ev(d0, "ICD10//I10"), ev(index-day, "VISIT//9202")
	for id := range int64(40) {
		var p *claims.Patient
		switch id % 4 {
		case 0:
			p = withObs(patient(id, first, visit, ev(index+day, "ICD10//E11")), end)
		case 1:
			p = withObs(patient(id, first, visit, ev(index-day, "ATC//C10AA05")), end)
		case 2:
			p = patient(id, first, visit, ev(index+day, "ICD10//I10")) // too little follow-up
		case 3:
			p = withObs(patient(id, ev(index, "ICD10//I10")), end) // no history
		}
		tally.Add(l.Examples(p))
	}
	all, indexed := tally.Patients()
	if all != 40 || indexed != 20 || tally.Examples() != 20 {
		t.Errorf("patients = %d, %d, examples %d, want 40, 20, 20", all, indexed, tally.Examples())
	}
	rows := tally.Prevalence()
	want := []Prevalence{
		{Task: "t2d", Kind: Disease, N: 20, Positives: 10, Prevalence: 0.5},
		{Task: "statins", Kind: Medication, N: 10, Positives: 0, Prevalence: 0, ExcludedPrior: 10},
	}
	for i, w := range want {
		g := rows[i]
		if g.Task != w.Task || g.Kind != w.Kind || g.N != w.N || g.Positives != w.Positives || g.Prevalence != w.Prevalence || g.ExcludedPrior != w.ExcludedPrior {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
		var sum int64
		for _, n := range g.NBySplit {
			sum += n
		}
		if sum != g.N {
			t.Errorf("row %d: splits sum to %d, want %d", i, sum, g.N)
		}
	}

	// Several index dates per patient count once each.
	l3 := labeler(t, Options{MaxIndexPerPatient: 3}, t2d)
	tally = NewTally(l3)
	var es []claims.Event
	for k := range 10 {
		es = append(es, ev(d0+int64(k)*30*day, "VISIT//9202"), ev(index+int64(k)*day, "VISIT//9202"))
	}
	tally.Add(l3.Examples(withObs(patient(1, es...), end+5*day)))
	tally.Add(nil)
	if all, indexed := tally.Patients(); all != 2 || indexed != 1 || tally.Examples() != 3 || tally.Prevalence()[0].N != 3 {
		t.Errorf("several index dates: patients %d, %d, examples %d, n %d; want 2, 1, 3, 3", all, indexed, tally.Examples(), tally.Prevalence()[0].N)
	}
}
