package claims

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// writeShard writes rows as the single shard of a MEDS dataset, with whatever schema
// T gives, and returns the dataset directory.
func writeShard[T any](t testing.TB, rows []T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "data", "0.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Other tools' MEDS files: extra columns, no numeric_value, other time units.
func TestMEDSTolerant(t *testing.T) {
	type nanos struct {
		SubjectID int64   `parquet:"subject_id"`
		Time      *int64  `parquet:"time,optional,timestamp(nanosecond)"`
		Code      string  `parquet:"code"`
		Text      *string `parquet:"text_value,optional"`
		Extra     int32   `parquet:"hospital"`
	}
	type millis struct {
		Code      string  `parquet:"code"` // columns in another order
		Time      int64   `parquet:"time,timestamp(millisecond)"`
		SubjectID int32   `parquet:"subject_id"`
		Value     float64 `parquet:"numeric_value"`
	}
	type dates struct {
		SubjectID int64  `parquet:"subject_id"`
		Time      int32  `parquet:"time,date"` // days since the epoch
		Code      string `parquet:"code"`
	}
	ns := int64(1_420_070_400_123_456_789) // 2015-01-01T00:00:00.123456789Z
	tests := []struct {
		name string
		dir  string
		want []*Patient
	}{
		{"nanoseconds, extra columns, no numeric_value", writeShard(t, []nanos{
			{SubjectID: 1, Code: "GENDER//M"},
			{SubjectID: 1, Code: "RACE//X"}, // a static code the event model drops
			{SubjectID: 1, Time: &ns, Code: "ICD10//I10"},
		}), []*Patient{{ID: 1, Sex: SexMale, Events: []Event{{Time: ns / 1000, Code: "ICD10//I10", Value: nan}}}}},
		{"milliseconds, int32 ids, double values", writeShard(t, []millis{
			{SubjectID: 4, Time: 1_420_070_400_123, Code: "LAB//X", Value: 1.5},
			{SubjectID: 4, Time: 1_420_070_400_000, Code: "ICD10//I10", Value: 2},
		}), []*Patient{{ID: 4, Events: []Event{
			{Time: 1_420_070_400_000_000, Code: "ICD10//I10", Value: 2},
			{Time: 1_420_070_400_123_000, Code: "LAB//X", Value: 1.5},
		}}}},
		{"dates", writeShard(t, []dates{
			{SubjectID: 9, Time: 16436, Code: "ICD10//I10"},
		}), []*Patient{{ID: 9, Events: []Event{{Time: micros("2015-01-01T00:00:00Z"), Code: "ICD10//I10", Value: nan}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenMEDS(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			samePatients(t, readAll(t, r), tt.want)
		})
	}
}

func TestMEDSMalformed(t *testing.T) {
	type stringTime struct {
		SubjectID int64  `parquet:"subject_id"`
		Time      string `parquet:"time"`
		Code      string `parquet:"code"`
	}
	type intCode struct {
		SubjectID int64 `parquet:"subject_id"`
		Time      int64 `parquet:"time,timestamp(microsecond)"`
		Code      int64 `parquet:"code"`
	}
	type noCode struct {
		SubjectID int64 `parquet:"subject_id"`
		Time      int64 `parquet:"time,timestamp(microsecond)"`
	}
	type plainTime struct {
		SubjectID int64  `parquet:"subject_id"`
		Time      int64  `parquet:"time"`
		Code      string `parquet:"code"`
	}
	type stringValue struct {
		SubjectID int64  `parquet:"subject_id"`
		Time      int64  `parquet:"time,timestamp(microsecond)"`
		Code      string `parquet:"code"`
		Value     string `parquet:"numeric_value"`
	}
	type loose struct {
		SubjectID *int64 `parquet:"subject_id,optional"`
		Time      int64  `parquet:"time,timestamp(microsecond)"`
		Code      []byte `parquet:"code,optional"`
	}
	id := func(v int64) *int64 { return &v }

	valid := filepath.Join(t.TempDir(), "v")
	writeAll(t, valid, randomPatients(5, 200))
	whole, err := os.ReadFile(filepath.Join(valid, "data", "0000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	rawShard := func(b []byte) string {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "data"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "data", "0.parquet"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	tests := []struct {
		name   string
		dir    string
		row    int64
		column string
		is     error
	}{
		{"time as string", writeShard(t, []stringTime{{1, "2015-01-01", "A//1"}}), 0, "time", ErrColumnType},
		{"code as int64", writeShard(t, []intCode{{1, 0, 5}}), 0, "code", ErrColumnType},
		{"missing code", writeShard(t, []noCode{{1, 0}}), 0, "code", ErrMissingColumn},
		{"time without timestamp type", writeShard(t, []plainTime{{1, 0, "A//1"}}), 0, "time", ErrColumnType},
		{"numeric_value as string", writeShard(t, []stringValue{{1, 0, "A//1", "x"}}), 0, "numeric_value", ErrColumnType},
		{"null subject_id", writeShard(t, []loose{{id(1), 0, []byte("A//1")}, {nil, 0, []byte("A//1")}}), 2, "subject_id", ErrNull},
		{"null code", writeShard(t, []loose{{id(1), 0, []byte("A//1")}, {id(1), 0, nil}}), 2, "code", ErrNull},
		{"non-UTF-8 code", writeShard(t, []loose{{id(1), 0, []byte("A//1")}, {id(1), 0, []byte("A//\xff\xfe")}}), 2, "code", ErrNotUTF8},
		{"unsorted subjects", writeShard(t, []loose{{id(5), 0, []byte("A//1")}, {id(5), 1, []byte("A//1")}, {id(3), 0, []byte("A//1")}}), 3, "subject_id", ErrUnsorted},
		{"truncated", rawShard(whole[:len(whole)/2]), 0, "", ErrCorrupt},
		{"footer only", rawShard(whole[len(whole)-64:]), 0, "", ErrCorrupt},
		{"not parquet", rawShard([]byte("subject_id,time,code\n1,2015-01-01,A//1\n")), 0, "", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenMEDS(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for err == nil {
				_, err = r.Next(context.Background())
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want %v", err, tt.is)
			}
			if _, again := r.Next(context.Background()); again != err {
				t.Errorf("next call after %q returned %v", err, again)
			}
			if !strings.Contains(err.Error(), filepath.Join("data", "0.parquet")) {
				t.Errorf("error %q does not name the file", err)
			}
			var re *RowError
			if tt.column != "" || tt.row != 0 {
				if !errors.As(err, &re) || re.Row != tt.row || re.Column != tt.column {
					t.Errorf("error %q: want row %d column %q", err, tt.row, tt.column)
				}
			}
		})
	}
}

func TestMEDSSkipBadRows(t *testing.T) {
	type loose struct {
		SubjectID *int64 `parquet:"subject_id,optional"`
		Time      int64  `parquet:"time,timestamp(microsecond)"`
		Code      []byte `parquet:"code,optional"`
	}
	id := func(v int64) *int64 { return &v }
	dir := writeShard(t, []loose{
		{id(1), 10, []byte("A//1")},
		{nil, 11, []byte("A//1")},
		{id(1), 12, []byte("A//\xff")},
		{id(1), 13, nil},
		{id(2), 14, []byte("A//2")},
	})
	r, err := OpenMEDS(dir, SkipBadRows(true))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ps := readAll(t, r)
	st := r.Stats()
	if len(ps) != 2 || len(ps[0].Events) != 1 || len(ps[1].Events) != 1 {
		t.Fatalf("got %+v", ps)
	}
	if st.BadRows != 3 || !strings.Contains(st.FirstBad, "row 2: column subject_id") || st.Rows != 5 {
		t.Fatalf("stats %+v, want 3 bad rows of 5, the first at row 2", st)
	}
}

func TestMEDSShardLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	ps := randomPatients(8, 300)
	writeAll(t, dir, ps, ShardRows(2000))
	shards, err := filepath.Glob(filepath.Join(dir, "data", "*.parquet"))
	if err != nil || len(shards) < 3 {
		t.Fatalf("%d shards, %v", len(shards), err)
	}
	// MEDS tools put shards in split directories (train/, tuning/, held_out/).
	for i, s := range shards {
		split := filepath.Join(dir, "data", []string{"held_out", "train", "tuning"}[i%3])
		os.MkdirAll(split, 0o755)
		if err := os.Rename(s, filepath.Join(split, filepath.Base(s))); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	r.Close()
	if len(got) != len(ps) {
		t.Fatalf("read %d patients from split directories, wrote %d", len(got), len(ps))
	}

	// A subject split across two shards is caught.
	split := filepath.Join(t.TempDir(), "split")
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "b")
	p := ps[0]
	half := len(p.Events) / 2
	writeAll(t, a, []*Patient{{ID: p.ID, Sex: p.Sex, Events: p.Events[:half]}})
	writeAll(t, b, []*Patient{{ID: p.ID, Sex: p.Sex, Events: p.Events[half:]}})
	os.MkdirAll(filepath.Join(split, "data"), 0o755)
	os.Rename(filepath.Join(a, "data", "0000.parquet"), filepath.Join(split, "data", "0.parquet"))
	os.Rename(filepath.Join(b, "data", "0000.parquet"), filepath.Join(split, "data", "1.parquet"))
	r, err = OpenMEDS(split)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for err == nil {
		_, err = r.Next(context.Background())
	}
	if !strings.Contains(err.Error(), "1.parquet") || !strings.Contains(err.Error(), "one shard") {
		t.Fatalf("got %v, want an error naming 1.parquet and the one-shard rule", err)
	}
}
