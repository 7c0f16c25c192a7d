package tasks

import (
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
	slices.SortStableFunc(p.Events, func(a, b claims.Event) int { return int(a.Time/day - b.Time/day) })
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

// TestLabel pins the index date by giving every patient exactly one possible day:
// the first event on D0 and End on D0 + 365 + 730 days, so the index is D0 + 365 days.
func TestLabel(t *testing.T) {
	d0 := date(2014, 1, 1)
	index := d0 + 365*day
	end := index + 730*day
	l := labeler(t, Options{Seed: 9, End: end}, t2d, statins)
	first := ev(d0, "ICD10//I10")
	last := ev(end, "ICD10//I10") // followed to the end of the data
	tests := []struct {
		name   string
		events []claims.Event
		ok     bool
		want   []Label
	}{
		{"negative", []claims.Event{first, last}, true, []Label{Negative, Negative}},
		{"onset in horizon", []claims.Event{first, ev(index+100*day, "ICD10//E11.9"), last}, true, []Label{Positive, Negative}},
		{"onset on the last day of the horizon", []claims.Event{first, ev(index+730*day, "ICD10//E11")}, true, []Label{Positive, Negative}},
		{"onset the day after the index", []claims.Event{first, ev(index+day, "ICD10//E11"), last}, true, []Label{Positive, Negative}},
		{"onset a microsecond after the index", []claims.Event{first, ev(index+1, "ICD10//E11"), last}, true, []Label{Positive, Negative}},
		{"onset at the index", []claims.Event{first, ev(index, "ICD10//E11.9"), last}, true, []Label{ExcludedPrior, Negative}},
		{"onset before the index", []claims.Event{first, ev(index-day, "ICD10//E11"), ev(index+day, "ICD10//E11"), last}, true, []Label{ExcludedPrior, Negative}},
		{"onset after the horizon", []claims.Event{first, ev(index+731*day, "ICD10//E11"), last}, true, []Label{Negative, Negative}},
		{"drug started in the drug horizon", []claims.Event{first, ev(index+200*day, "ATC//C10AA05"), last}, true, []Label{Negative, Positive}},
		{"drug started after the drug horizon", []claims.Event{first, ev(index+366*day, "ATC//C10AA05"), last}, true, []Label{Negative, Negative}},
		{"prior drug user", []claims.Event{first, ev(index-30*day, "ATC//C10AA01"), ev(index+30*day, "ATC//C10AA01"), last}, true, []Label{Negative, ExcludedPrior}},
		{"another drug class", []claims.Event{first, ev(index+30*day, "ATC//C10AX09"), last}, true, []Label{Negative, Negative}},
		{"record ends in the horizon", []claims.Event{first, ev(index+400*day, "ICD10//I10")}, true, []Label{ExcludedCensored, Negative}},
		{"record ends at the index", []claims.Event{first, ev(index-day, "ICD10//I10")}, true, []Label{ExcludedCensored, ExcludedCensored}},
		{"death in the horizon", []claims.Event{first, ev(index+500*day, claims.CodeDeath)}, true, []Label{ExcludedCensored, Negative}},
		{"death after onset", []claims.Event{first, ev(index+100*day, "ICD10//E11"), ev(index+500*day, claims.CodeDeath)}, true, []Label{Positive, Negative}},
		{"events after death do not extend follow-up", []claims.Event{first, ev(index+500*day, claims.CodeDeath), last}, true, []Label{ExcludedCensored, Negative}},
		{"death before the index", []claims.Event{first, ev(index-day, claims.CodeDeath), last}, false, nil},
		{"too little history", []claims.Event{ev(d0+day, "ICD10//I10"), last}, false, nil},
		{"no events", nil, false, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := patient(int64(i), tt.events...)
			ex, ok := l.Label(p)
			if ok != tt.ok {
				t.Fatalf("eligible = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if ex.Index != index || ex.SubjectID != p.ID || ex.Split != SplitOf(p.ID, DefaultSalt) {
				t.Errorf("example %+v, want index %d", ex, index)
			}
			if !slices.Equal(ex.Labels, tt.want) {
				t.Errorf("labels = %v, want %v", ex.Labels, tt.want)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	end := date(2023, 1, 1)
	l := labeler(t, Options{Seed: 1, End: end}, t2d, statins)
	other := labeler(t, Options{Seed: 2, End: end}, t2d, statins)
	r := rand.New(rand.NewPCG(5, 6))
	var differ, n int
	days := make(map[int64]bool)
	for id := range int64(2000) {
		first := date(2012, 1, 1) + r.Int64N(3*365*day)
		p := patient(id, ev(first+r.Int64N(day), "ICD10//I10"), ev(date(2022, 6, 1), "ICD10//I10"))
		idx, ok := l.Index(p)
		if !ok {
			t.Fatalf("patient %d with history from %s has no index", id, time.UnixMicro(first).UTC())
		}
		n++
		if idx%day != 0 {
			t.Fatalf("index %d is not a midnight", idx)
		}
		if idx < p.Events[0].Time+365*day || idx > end-730*day {
			t.Fatalf("index %s outside [first + 365 days, end - 730 days]", time.UnixMicro(idx).UTC())
		}
		days[idx] = true
		// Same seed, same index; and the future does not move it.
		q := patient(id, append(slices.Clone(p.Events), ev(idx+10*day, "ICD10//E11"), ev(end-day, claims.CodeDeath))...)
		if again, _ := l.Index(q); again != idx {
			t.Fatalf("index moved from %d to %d when future events were added", idx, again)
		}
		if o, _ := other.Index(p); o != idx {
			differ++
		}
	}
	if differ < n*9/10 {
		t.Errorf("another seed changed only %d of %d index dates", differ, n)
	}
	if len(days) < n/2 {
		t.Errorf("%d patients share only %d index days", n, len(days))
	}
	if _, err := NewLabeler([]Task{t2d}, Options{}); err == nil {
		t.Error("NewLabeler without End succeeded")
	}
	if _, err := NewLabeler(nil, Options{End: end}); err == nil {
		t.Error("NewLabeler without tasks succeeded")
	}
	if _, err := NewLabeler([]Task{{Name: "x", Prefixes: []string{"ICD10//E11"}}}, Options{End: end}); err == nil {
		t.Error("NewLabeler with a zero horizon succeeded")
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
// patients, whatever happens on or after the index date changes neither the index, nor
// the history, nor the encoder's input; only the labels may change.
func TestNoLeakage(t *testing.T) {
	tasks := Default()
	end := date(2023, 1, 1)
	l := labeler(t, Options{Seed: 3, End: end}, tasks...)
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
	randomEvents := func(from, to int64, n int) []claims.Event {
		var es []claims.Event
		for range n {
			es = append(es, ev(from+r.Int64N(to-from), codes[r.IntN(len(codes))]))
		}
		return es
	}
	checked := 0
	for id := range int64(500) {
		p := patient(id, randomEvents(date(2012, 1, 1), end, 1+r.IntN(80))...)
		ex, ok := l.Label(p)
		if !ok {
			continue
		}
		checked++
		h := History(p, ex.Index)
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

		// Rewrite the future: drop it, then fill it with every target code.
		past := slices.Clone(h.Events)
		future := randomEvents(ex.Index, end, 40)
		for _, task := range tasks {
			future = append(future, ev(ex.Index+r.Int64N(30*day), task.Prefixes[0]+".1"))
		}
		q := patient(id, append(slices.Clone(past), future...)...)
		ex2, ok := l.Label(q)
		if !ok || ex2.Index != ex.Index || ex2.Split != ex.Split {
			t.Fatalf("changing the future moved the index or split: %+v -> %+v (ok %v)", ex, ex2, ok)
		}
		h2 := History(q, ex2.Index)
		if !slices.EqualFunc(h.Events, h2.Events, func(a, b claims.Event) bool { return a.Time == b.Time && a.Code == b.Code }) {
			t.Fatal("changing the future changed the history")
		}
		got := enc.Encode(q, ex2.Index)
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Ages, want.Ages) || !slices.Equal(got.Segments, want.Segments) {
			t.Fatal("changing the future changed the encoder's input")
		}
		// Appending to a history must not write into the patient's future.
		next := q.Events[len(h2.Events)]
		h2.Events = append(h2.Events, ev(0, "ICD10//X99"))
		if got := q.Events[len(h2.Events)-1]; got.Time != next.Time || got.Code != next.Code {
			t.Fatal("appending to the history overwrote the patient's events")
		}
	}
	if checked < 200 {
		t.Fatalf("only %d of 500 random patients had an index date", checked)
	}
}

func TestTally(t *testing.T) {
	d0 := date(2014, 1, 1)
	index := d0 + 365*day
	end := index + 730*day
	l := labeler(t, Options{End: end}, t2d, statins)
	tally := NewTally(l)
	first, last := ev(d0, "ICD10//I10"), ev(end, "ICD10//I10")
	for id := range int64(40) {
		var p *claims.Patient
		switch id % 4 {
		case 0:
			p = patient(id, first, ev(index+day, "ICD10//E11"), last)
		case 1:
			p = patient(id, first, ev(index-day, "ATC//C10AA05"), last)
		case 2:
			p = patient(id, first, ev(index+day, "ICD10//I10"))
		case 3:
			p = patient(id, ev(index, "ICD10//I10")) // no history
		}
		tally.Add(l.Label(p))
	}
	all, indexed := tally.Patients()
	if all != 40 || indexed != 30 {
		t.Errorf("patients = %d, %d, want 40, 30", all, indexed)
	}
	rows := tally.Prevalence()
	want := []Prevalence{
		{Task: "t2d", Kind: Disease, N: 20, Positives: 10, Prevalence: 0.5, ExcludedCensored: 10},
		{Task: "statins", Kind: Medication, N: 10, Positives: 0, Prevalence: 0, ExcludedPrior: 10, ExcludedCensored: 10},
	}
	for i, w := range want {
		g := rows[i]
		if g.Task != w.Task || g.Kind != w.Kind || g.N != w.N || g.Positives != w.Positives || g.Prevalence != w.Prevalence || g.ExcludedPrior != w.ExcludedPrior || g.ExcludedCensored != w.ExcludedCensored {
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
}
