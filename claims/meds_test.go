package claims

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

func micros(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

var nan = float32(math.NaN())

func samplePatients() []*Patient {
	return []*Patient{
		{ID: -5, Sex: SexFemale, Birth: micros("1950-03-01T00:00:00Z"), HasBirth: true, Events: []Event{
			{Time: micros("2015-01-02T00:00:00Z"), Code: "ICD10//E11.9", Value: nan},
			{Time: micros("2015-01-02T00:00:00Z"), Code: "VISIT//OUT", Value: nan},
			{Time: micros("2016-05-01T10:30:00Z"), Code: "LAB//HBA1C", Value: 7.25},
			{Time: micros("2019-12-31T23:59:59Z"), Code: CodeDeath, Value: nan},
		}},
		{ID: 3, Sex: SexMale, Events: []Event{
			{Time: micros("2012-06-01T00:00:00Z"), Code: "ATC//C10AA05", Value: nan},
		}},
		{ID: 7, Birth: micros("1901-01-01T00:00:00Z"), HasBirth: true}, // no sex, no events
		{ID: 9, Sex: SexFemale, Events: []Event{
			{Time: micros("1969-12-31T23:59:59Z"), Code: "ICD10//I10", Value: 0},
		}},
	}
}

// randomPatients makes n patients with a handful of events each, for shard and
// batch boundaries.
func randomPatients(seed uint64, n int) []*Patient {
	rng := rand.New(rand.NewPCG(seed, 1))
	codes := []string{"ICD10//E11.9", "ICD10//I10", "ATC//A10BH01", "PROC//X1", "VISIT//9201"}
	ps := make([]*Patient, n)
	for i := range ps {
		p := &Patient{ID: int64(i*3 + 1), Sex: Sex(rng.IntN(3))}
		if rng.IntN(4) > 0 {
			p.Birth, p.HasBirth = micros("1940-01-01T00:00:00Z")+rng.Int64N(1e15), true
		}
		t := micros("2012-01-01T00:00:00Z")
		for k := rng.IntN(40); k > 0; k-- {
			t += rng.Int64N(1e13)
			v := nan
			if rng.IntN(5) == 0 {
				v = rng.Float32()
			}
			p.Events = append(p.Events, Event{Time: t, Code: codes[rng.IntN(len(codes))], Value: v})
		}
		if p.Sex == SexUnknown && !p.HasBirth && len(p.Events) == 0 {
			p.Sex = SexFemale // a patient without rows does not exist in MEDS
		}
		sortEvents(p.Events)
		ps[i] = p
	}
	return ps
}

func writeAll(t testing.TB, dir string, ps []*Patient, opts ...WriterOption) {
	t.Helper()
	w, err := NewMEDSWriter(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, r Reader) []*Patient {
	t.Helper()
	var ps []*Patient
	for {
		p, err := r.Next(context.Background())
		if err == io.EOF {
			return ps
		}
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
}

// samePatients compares patients, treating NaN values as equal and nil and empty
// event lists alike.
func samePatients(t *testing.T, got, want []*Patient) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d patients, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := *got[i], *want[i]
		if len(g.Events) != len(w.Events) {
			t.Fatalf("patient %d: %d events, want %d", w.ID, len(g.Events), len(w.Events))
		}
		for k := range w.Events {
			ge, we := g.Events[k], w.Events[k]
			if ge.Time != we.Time || ge.Code != we.Code || ge.HasValue() != we.HasValue() || (we.HasValue() && ge.Value != we.Value) {
				t.Fatalf("patient %d event %d: got %+v, want %+v", w.ID, k, ge, we)
			}
		}
		g.Events, w.Events = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("patient %d: got %+v, want %+v", w.ID, g, w)
		}
	}
}

func TestMEDSRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		patients []*Patient
		opts     []WriterOption
	}{
		{"sample", samplePatients(), nil},
		{"empty", nil, nil},
		{"many shards", randomPatients(1, 500), []WriterOption{ShardRows(700)}},
		{"several batches", randomPatients(2, 2000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ds")
			writeAll(t, dir, tt.patients, tt.opts...)
			r, err := OpenMEDS(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			samePatients(t, readAll(t, r), tt.patients)
		})
	}
}

func TestMEDSWriterMetadata(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	codes := []CodeInfo{
		{Code: "ICD10//E11.9", Description: "Type 2 diabetes mellitus without complications", Parents: []string{"ICD10//E11"}},
		{Code: "ICD10//E11", Description: "Type 2 diabetes mellitus"},
		{Code: "ATC//C10AA05", Description: "atorvastatin", Parents: []string{"ATC//C10AA"}},
	}
	writeAll(t, dir, samplePatients(), Codes(codes), Metadata(DatasetMetadata{Name: "h1", Version: "1"}))
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Codes()
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if len(got[i].Parents) == 0 {
			got[i].Parents = nil
		}
	}
	if !reflect.DeepEqual(got, codes) {
		t.Fatalf("codes: got %+v, want %+v", got, codes)
	}
	b, err := os.ReadFile(filepath.Join(dir, "metadata", "dataset.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"meds_version": "0.4"`)) || !bytes.Contains(b, []byte(`"dataset_name": "h1"`)) {
		t.Fatalf("dataset.json: %s", b)
	}
}

func TestMEDSCodesAbsent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	writeAll(t, dir, samplePatients())
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if codes, err := r.Codes(); codes != nil || err != nil {
		t.Fatalf("got %v, %v; want nil, nil", codes, err)
	}
}

func TestMEDSWriterDeterministic(t *testing.T) {
	base := t.TempDir()
	ps := randomPatients(3, 300)
	var shards [2][]byte
	for i := range shards {
		dir := filepath.Join(base, "ds")
		writeAll(t, dir, ps, ShardRows(1<<20))
		b, err := os.ReadFile(filepath.Join(dir, "data", "0000.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		shards[i] = b
	}
	if !bytes.Equal(shards[0], shards[1]) {
		t.Fatal("the same patients gave different shard bytes")
	}
	// Replacing left no temporary directories behind.
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("after two writes %s holds %d entries, want 1", base, len(entries))
	}
}

func TestMEDSWriterRejects(t *testing.T) {
	tests := []struct {
		name string
		ps   []*Patient
	}{
		{"decreasing ids", []*Patient{{ID: 5}, {ID: 4}}},
		{"repeated id", []*Patient{{ID: 5}, {ID: 5}}},
		{"unsorted events", []*Patient{{ID: 1, Events: []Event{{Time: 10, Code: "A//1"}, {Time: 5, Code: "A//2"}}}}},
		{"bad utf-8", []*Patient{{ID: 1, Events: []Event{{Time: 10, Code: "A//\xff"}}}}},
		{"empty code", []*Patient{{ID: 1, Events: []Event{{Time: 10}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "ds")
			w, err := NewMEDSWriter(dir)
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for _, p := range tt.ps {
				if werr = w.Write(p); werr != nil {
					break
				}
			}
			if werr == nil {
				t.Fatal("no error")
			}
			w.Abort()
			if entries, _ := os.ReadDir(base); len(entries) != 0 {
				t.Fatalf("abort left %d entries", len(entries))
			}
		})
	}
}

func TestMEDSWriterRefusesOtherDirs(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMEDSWriter(dir); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("got %v, want a refusal naming notes.txt", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatal(err)
	}
}

func TestWriteMEDSFromReader(t *testing.T) {
	src := filepath.Join(t.TempDir(), "a")
	ps := randomPatients(4, 50)
	writeAll(t, src, ps)
	r, err := OpenMEDS(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "b")
	if err := WriteMEDS(context.Background(), dst, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r2, err := OpenMEDS(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	samePatients(t, readAll(t, r2), ps)
}

func TestMEDSReaderCancel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	writeAll(t, dir, samplePatients())
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestMEDSReaderStreams checks that reading holds one patient and one batch, not
// the file: the live heap halfway through and at the end of a dataset is far below
// what holding its events would take.
func TestMEDSReaderStreams(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	var events int64
	func() {
		ps := randomPatients(6, 40000)
		for _, p := range ps {
			events += int64(len(p.Events))
		}
		writeAll(t, dir, ps, ShardRows(1<<30))
	}()
	held := events * int64(unsafe.Sizeof(Event{}))
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	var peak uint64
	for {
		_, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n++; n%10000 == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	if n != 40000 {
		t.Fatalf("read %d patients, want 40000", n)
	}
	t.Logf("peak live heap %d bytes; the events alone take %d", peak, held)
	if int64(peak) > held/2 {
		t.Fatalf("live heap reached %d bytes while reading; all %d events take %d", peak, events, held)
	}
}

// TestMEDSObservationEnd: the observation end travels as one MEDS_OBSERVATION_END
// row in time order among the events and comes back as the field, never as an
// event; of several such rows the latest wins.
func TestMEDSObservationEnd(t *testing.T) {
	day := func(s string) int64 { return micros(s + "T00:00:00Z") }
	ev := func(when, code string) Event { return Event{Time: day(when), Code: code, Value: nan} }
	ps := []*Patient{
		// Before the last event, as with OMOP periods that are single stays.
		{ID: 1, Sex: SexFemale, ObservationEnd: day("2015-03-01"), HasObservationEnd: true, Events: []Event{
			ev("2015-01-01", "ICD10//E11.9"), ev("2015-03-01", "VISIT//9202"), ev("2016-01-01", "ICD10//I10"),
		}},
		// After every event, and after death.
		{ID: 2, ObservationEnd: day("2020-01-01"), HasObservationEnd: true, Events: []Event{
			ev("2015-01-01", "ICD10//E11.9"), ev("2017-01-01", CodeDeath),
		}},
		// Before every event; and a patient with nothing but an observation end.
		{ID: 3, ObservationEnd: day("1960-01-01"), HasObservationEnd: true, Events: []Event{ev("2015-01-01", "ATC//C10AA05")}},
		{ID: 4, ObservationEnd: day("2001-01-01"), HasObservationEnd: true},
		{ID: 5, Sex: SexMale, Events: []Event{ev("2015-01-01", "ATC//C10AA05")}}, // none
	}
	dir := filepath.Join(t.TempDir(), "ds")
	writeAll(t, dir, ps)
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	samePatients(t, readAll(t, r), ps)
	r.Close()

	// The rows are in time order within each subject, the observation end after
	// the events of its own time.
	rows := readRows(t, filepath.Join(dir, "data", "0000.parquet"))
	var codes []string
	for i, row := range rows {
		if i > 0 && row.SubjectID == rows[i-1].SubjectID && row.Time != nil && rows[i-1].Time != nil && *row.Time < *rows[i-1].Time {
			t.Fatalf("row %d of subject %d is earlier than the row before it", i, row.SubjectID)
		}
		if row.SubjectID == 1 {
			codes = append(codes, row.Code)
		}
	}
	if want := []string{"GENDER//F", "ICD10//E11.9", "VISIT//9202", CodeObservationEnd, "ICD10//I10"}; !reflect.DeepEqual(codes, want) {
		t.Errorf("subject 1 rows %q, want %q", codes, want)
	}

	// Two MEDS_OBSERVATION_END rows: the latest wins, whatever their order.
	two := []*Patient{{ID: 1, ObservationEnd: day("2015-01-01"), HasObservationEnd: true, Events: []Event{
		ev("2014-01-01", "ICD10//I10"), ev("2018-06-01", CodeObservationEnd),
	}}}
	dir2 := filepath.Join(t.TempDir(), "ds")
	writeAll(t, dir2, two)
	r2, err := OpenMEDS(dir2)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got := readAll(t, r2)
	if len(got) != 1 || !got[0].HasObservationEnd || got[0].ObservationEnd != day("2018-06-01") || len(got[0].Events) != 1 {
		t.Fatalf("two observation ends read as %+v, want the later one and the one event", got)
	}
}

func readRows(t *testing.T, path string) []medsRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	pf, err := openParquet(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	rd := parquet.NewGenericReader[medsRow](pf)
	defer rd.Close()
	rows := make([]medsRow, pf.NumRows())
	if n, err := rd.Read(rows); n != len(rows) || (err != nil && err != io.EOF) {
		t.Fatalf("read %d of %d rows: %v", n, len(rows), err)
	}
	return rows
}
