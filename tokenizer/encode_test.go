package tokenizer

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
)

func testVocab(t testing.TB) *Vocab {
	t.Helper()
	v, err := New(&CountTable{MinCount: 1, Patients: 100, Counts: map[string]int64{
		"ICD10//E11":   90, // 5
		"ICD10//I10":   80, // 6
		"ATC//C10AA05": 70, // 7
		"ATC//C10AA":   60, // 8
		"PROC//K549":   50, // 9
		"ICD10//N18.3": 40, // 10
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testEncoder(t testing.TB, v *Vocab, maxLen int) *Encoder {
	t.Helper()
	e, err := NewEncoder(v, maxLen)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func years(from, to int64) float32 { return float32(float64(to-from) / microsPerYear) }

func TestEncodeLayout(t *testing.T) {
	v := testVocab(t)
	birth := at(1950, 6, 1, 0)
	d1, d2, d3 := at(2015, 3, 2, 9), at(2015, 3, 9, 0), at(2016, 1, 1, 23)
	p := &claims.Patient{ID: 7, Sex: claims.SexFemale, Birth: birth, HasBirth: true, Events: []claims.Event{
		ev(d1, "VISIT//OP"),
		ev(d1, "ICD10//E11.9"), // falls back to E11
		ev(d1+1, "ICD10//E11.65"),
		ev(d1+2, "ATC//C10AA05"),
		ev(d1+3, "ICD10//E11"), // duplicate of E11 in the same visit
		ev(d2, "ICD10//I10"),
		ev(d2, "NDC//1234"), // not in the vocabulary: UNK
		ev(d2, "NDC//5678"), // UNK again, de-duplicated
		ev(d3, "ICD10//E11"),
		ev(d3, "MEDS_DEATH"),
	}}
	e := testEncoder(t, v, 64)
	got := e.Encode(p, NoCutoff)
	wantIDs := []int32{CLS, 5, 7, SEP, 6, UNK, SEP, 5, SEP}
	wantSegs := []int32{0, 1, 1, 1, 2, 2, 2, 1, 1}
	wantAges := []float32{years(birth, d3),
		years(birth, d1), years(birth, d1+2), years(birth, d1+2),
		years(birth, d2), years(birth, d2), years(birth, d2),
		years(birth, d3), years(birth, d3)}
	if !slices.Equal(got.IDs, wantIDs) {
		t.Errorf("ids = %v, want %v", got.IDs, wantIDs)
	}
	if !slices.Equal(got.Segments, wantSegs) {
		t.Errorf("segments = %v, want %v", got.Segments, wantSegs)
	}
	if !slices.Equal(got.Ages, wantAges) {
		t.Errorf("ages = %v, want %v", got.Ages, wantAges)
	}
	for i, pos := range got.Positions {
		if pos != int32(i) {
			t.Fatalf("positions = %v, want 0, 1, 2, ...", got.Positions)
		}
	}
	if a := got.Ages[1]; a < 64.7 || a > 64.8 {
		t.Errorf("age at 2015-03-02 of someone born 1950-06-01 = %v, want about 64.75", a)
	}

	// A cutoff on d2 keeps only the first visit; [CLS] is dated at the cutoff.
	got = e.Encode(p, at(2015, 3, 9, 0))
	if want := []int32{CLS, 5, 7, SEP}; !slices.Equal(got.IDs, want) {
		t.Errorf("ids before d2 = %v, want %v", got.IDs, want)
	}
	if got.Ages[0] != years(birth, at(2015, 3, 9, 0)) {
		t.Errorf("[CLS] age = %v, want the age at the cutoff", got.Ages[0])
	}
}

func TestEncodeUnknownBirthAndEmpty(t *testing.T) {
	e := testEncoder(t, testVocab(t), 16)
	p := &claims.Patient{ID: 1, Events: []claims.Event{ev(at(2015, 1, 1, 0), "ICD10//I10")}}
	got := e.Encode(p, NoCutoff)
	for _, a := range got.Ages {
		if a != AgeUnknown {
			t.Errorf("ages = %v, want all AgeUnknown", got.Ages)
			break
		}
	}
	empty := e.Encode(&claims.Patient{ID: 2, HasBirth: true}, NoCutoff)
	if !slices.Equal(empty.IDs, []int32{CLS}) || empty.Ages[0] != AgeUnknown {
		t.Errorf("empty patient = %+v, want [CLS] of unknown age", empty)
	}
	// Born after the event: a data error, clamped rather than negative.
	p = &claims.Patient{ID: 3, HasBirth: true, Birth: at(2020, 1, 1, 0), Events: []claims.Event{ev(at(2015, 1, 1, 0), "ICD10//I10")}}
	if got := e.Encode(p, NoCutoff); got.Ages[1] != 0 {
		t.Errorf("age before birth = %v, want 0", got.Ages[1])
	}
}

func TestEncodeTruncationKeepsRecent(t *testing.T) {
	v := testVocab(t)
	codes := []string{"ICD10//E11", "ICD10//I10", "ATC//C10AA05", "PROC//K549"}
	p := &claims.Patient{ID: 1}
	for d := range 30 {
		for _, c := range codes[:1+d%4] {
			p.Events = append(p.Events, ev(at(2014, 1, 1+d, 12), c))
		}
	}
	full := testEncoder(t, v, 1000).Encode(p, NoCutoff)
	for _, maxLen := range []int{2, 3, 7, 10, 25, full.Len(), full.Len() + 5} {
		got := testEncoder(t, v, maxLen).Encode(p, NoCutoff)
		if got.Len() > maxLen {
			t.Errorf("maxLen %d: length %d", maxLen, got.Len())
		}
		if got.IDs[0] != CLS || got.Ages[0] != full.Ages[0] {
			t.Errorf("maxLen %d: first token %d age %v, want [CLS] at the full history's age", maxLen, got.IDs[0], got.Ages[0])
		}
		tail := full.IDs[full.Len()-(got.Len()-1):]
		if !slices.Equal(got.IDs[1:], tail) {
			t.Errorf("maxLen %d: ids %v are not the most recent tokens %v", maxLen, got.IDs[1:], tail)
		}
		if got.Len() > 1 {
			if got.IDs[1] == SEP {
				t.Errorf("maxLen %d: starts with the [SEP] of a visit cut away", maxLen)
			}
			if got.Segments[1] != 1 {
				t.Errorf("maxLen %d: first kept visit has segment %d, want 1", maxLen, got.Segments[1])
			}
		}
		for i := 2; i < got.Len(); i++ {
			if got.Segments[i] != got.Segments[i-1] && got.IDs[i-1] != SEP {
				t.Errorf("maxLen %d: segment changes at %d without a [SEP] before it", maxLen, i)
			}
		}
	}
	if _, err := NewEncoder(v, 1); err == nil {
		t.Error("NewEncoder with maxLen 1 succeeded")
	}
}

// TestEncodeCutoff checks, on random histories, that an encoding up to a cutoff is the
// encoding of the history with every event at or after the cutoff removed, whatever
// those future events are and even when the events are out of order.
func TestEncodeCutoff(t *testing.T) {
	v := testVocab(t)
	e := testEncoder(t, v, 48)
	r := rand.New(rand.NewPCG(3, 4))
	codes := []string{"ICD10//E11.9", "ICD10//I10", "ATC//C10AA05", "ATC//C10AA01", "PROC//K549", "ICD10//N18.3", "NDC//1", "MEDS_DEATH"}
	for range 300 {
		p := &claims.Patient{ID: r.Int64(), HasBirth: true, Birth: at(1940, 1, 1, 0)}
		t0 := at(2012, 1, 1, 0)
		for range r.IntN(60) {
			p.Events = append(p.Events, ev(t0+r.Int64N(10*365*claims.MicrosPerDay), codes[r.IntN(len(codes))]))
		}
		if r.IntN(2) == 0 {
			slices.SortFunc(p.Events, func(a, b claims.Event) int { return cmp.Compare(a.Time, b.Time) })
		}
		cutoff := t0 + r.Int64N(10*365*claims.MicrosPerDay)
		past := &claims.Patient{ID: p.ID, HasBirth: true, Birth: p.Birth}
		for _, x := range p.Events {
			if x.Time < cutoff {
				past.Events = append(past.Events, x)
			}
		}
		got := e.Encode(p, cutoff)
		want := e.Encode(past, cutoff)
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Ages, want.Ages) || !slices.Equal(got.Segments, want.Segments) {
			t.Fatalf("encoding with cutoff differs from encoding of the past alone:\n%+v\n%+v", got, want)
		}
		for _, a := range got.Ages[1:] {
			if a >= years(p.Birth, cutoff) {
				t.Fatalf("token aged %v at or after the cutoff age %v", a, years(p.Birth, cutoff))
			}
		}
	}
}

func TestEncodeToDoesNotAllocate(t *testing.T) {
	e := testEncoder(t, testVocab(t), 128)
	p := benchPatient(200)
	var dst Encoding
	e.EncodeTo(&dst, p, NoCutoff)
	if n := testing.AllocsPerRun(50, func() { e.EncodeTo(&dst, p, NoCutoff) }); n != 0 {
		t.Errorf("EncodeTo allocates %v times per call once warm, want 0", n)
	}
}

// benchPatient returns a patient with n events over daily visits, mixing codes in the
// vocabulary, codes that fall back and codes that do not become tokens.
func benchPatient(n int) *claims.Patient {
	codes := []string{"ICD10//E11.9", "ICD10//I10", "ATC//C10AA05", "ATC//C10AA07", "PROC//K549", "NDC//00002143380", "VISIT//OP", "ICD10//N18.3"}
	p := &claims.Patient{ID: 1, HasBirth: true, Birth: at(1950, 1, 1, 0)}
	for i := range n {
		p.Events = append(p.Events, claims.Event{Time: at(2012, 1, 1, 0) + int64(i/4)*claims.MicrosPerDay, Code: codes[i%len(codes)], Value: float32(math.NaN())})
	}
	return p
}

func BenchmarkEncode(b *testing.B) {
	e := testEncoder(b, testVocab(b), 512)
	p := benchPatient(400)
	var dst Encoding
	b.ReportAllocs()
	for b.Loop() {
		e.EncodeTo(&dst, p, NoCutoff)
	}
	b.ReportMetric(float64(b.N*len(p.Events))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkCounterAdd(b *testing.B) {
	c := NewCounter()
	p := benchPatient(400)
	b.ReportAllocs()
	for b.Loop() {
		c.Add(p)
	}
	b.ReportMetric(float64(b.N*len(p.Events))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncodeSynth encodes whole synthetic histories, as pretraining does, with a
// vocabulary built from the same patients. BenchmarkCopyEvents is its floor: one pass
// that only copies each event's code into a slice.
func BenchmarkEncodeSynth(b *testing.B) {
	ps := synthPatients(b, 300)
	c := NewCounter()
	for _, p := range ps {
		c.Add(p)
	}
	tab, err := c.Table(DefaultMinCount)
	if err != nil {
		b.Fatal(err)
	}
	v, err := New(tab, DefaultMinCount)
	if err != nil {
		b.Fatal(err)
	}
	e := testEncoder(b, v, 512)
	var dst Encoding
	events, tokens := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range ps {
			e.EncodeTo(&dst, p, NoCutoff)
			events += len(p.Events)
			tokens += dst.Len()
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkCopyEvents(b *testing.B) {
	ps := synthPatients(b, 300)
	var codes []string
	events := 0
	for b.Loop() {
		for _, p := range ps {
			codes = codes[:0]
			for i := range p.Events {
				codes = append(codes, p.Events[i].Code)
			}
			events += len(codes)
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func synthPatients(b *testing.B, n int) []*claims.Patient {
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: n, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ps := make([]*claims.Patient, n)
	for i := range ps {
		ps[i] = g.Patient(0, i)
	}
	return ps
}
