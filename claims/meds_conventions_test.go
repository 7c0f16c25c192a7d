package claims

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestDatasetMetadataRoundTrip: what the writer puts in dataset.json (its ETL
// fields filled) is what ReadDatasetMetadata and MEDSReader.Metadata give back,
// and subject_splits.parquet holds the split of every patient written.
func TestDatasetMetadataRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta DatasetMetadata
		want DatasetMetadata
	}{
		{"defaults", DatasetMetadata{Name: "h1"}, DatasetMetadata{Name: "h1", ETLName: "fedclaims", ETLVersion: "dev", MEDSVer: MEDSVersion}},
		{"given", DatasetMetadata{Name: "h2", Version: "3", ETLName: "fedclaims", ETLVersion: "v1.2.0", CreatedAt: "2026-01-02T03:04:05Z"},
			DatasetMetadata{Name: "h2", Version: "3", ETLName: "fedclaims", ETLVersion: "v1.2.0", MEDSVer: MEDSVersion, CreatedAt: "2026-01-02T03:04:05Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ds")
			splitOf := func(id int64) string { return map[bool]string{true: SplitHeldOut, false: SplitTrain}[id == 3] }
			writeAll(t, dir, samplePatients(), Metadata(tc.meta), SubjectSplits(splitOf))
			r, err := OpenMEDS(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := r.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || *got != tc.want {
				t.Fatalf("metadata %+v, want %+v", got, tc.want)
			}
			ds, err := ReadDatasetSplits(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int64]string{-5: SplitTrain, 3: SplitHeldOut, 7: SplitTrain, 9: SplitTrain}
			if ds == nil || ds.Source != SubjectSplitsFile || !maps.Equal(ds.Subjects, want) {
				t.Fatalf("splits %+v, want %v from %s", ds, want, SubjectSplitsFile)
			}
		})
	}
}

func TestDatasetMetadataAbsentAndMalformed(t *testing.T) {
	dir := t.TempDir()
	if m, err := ReadDatasetMetadata(dir); m != nil || err != nil {
		t.Fatalf("no dataset.json: got %v, %v", m, err)
	}
	os.MkdirAll(filepath.Join(dir, "metadata"), 0o755)
	path := filepath.Join(dir, "metadata", "dataset.json")
	os.WriteFile(path, []byte(`{"dataset_name": 5}`), 0o644)
	if _, err := ReadDatasetMetadata(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("malformed dataset.json: error %v does not name %s", err, path)
	}
}

// TestSplitLayout: shards under data/train|tuning|held_out/ give each subject the
// split of its directory; shards directly in data/ declare no split.
func TestSplitLayout(t *testing.T) {
	root := t.TempDir()
	layout := filepath.Join(root, "layout")
	for split, ps := range map[string][]*Patient{
		SplitTrain:   samplePatients()[:2],
		SplitTuning:  samplePatients()[2:3],
		SplitHeldOut: samplePatients()[3:],
	} {
		src := filepath.Join(root, split)
		writeAll(t, src, ps)
		os.MkdirAll(filepath.Join(layout, "data", split), 0o755)
		if err := os.Rename(filepath.Join(src, "data", "0000.parquet"), filepath.Join(layout, "data", split, "0.parquet")); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := ReadDatasetSplits(layout)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{-5: SplitTrain, 3: SplitTrain, 7: SplitTuning, 9: SplitHeldOut}
	if ds == nil || !maps.Equal(ds.Subjects, want) || ds.Source != splitLayoutSource {
		t.Fatalf("layout splits %+v, want %v", ds, want)
	}
	if ds, err := ReadDatasetSplits(filepath.Join(root, SplitTrain)); ds != nil || err != nil {
		t.Fatalf("flat data/: got %+v, %v; want no split", ds, err)
	}
}

type badSplitRow struct {
	SubjectID *int64  `parquet:"subject_id,optional"`
	Split     *string `parquet:"split,optional"`
}

type wrongTypeSplitRow struct {
	SubjectID string `parquet:"subject_id"`
	Split     string `parquet:"split"`
}

func writeSideParquet[T any](t *testing.T, path string, rows []T) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
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
	f.Close()
}

func ptr[T any](v T) *T { return &v }

// TestMalformedSubjectSplits: each malformed file gives one error naming the file
// and, where there is one, the row and column.
func TestMalformedSubjectSplits(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, path string)
		want  []string
	}{
		{"null subject", func(t *testing.T, p string) {
			writeSideParquet(t, p, []badSplitRow{{ptr[int64](1), ptr("train")}, {nil, ptr("train")}})
		}, []string{"row 2", "column subject_id", "null"}},
		{"null split", func(t *testing.T, p string) { writeSideParquet(t, p, []badSplitRow{{ptr[int64](1), nil}}) }, []string{"row 1", "column split"}},
		{"empty split", func(t *testing.T, p string) { writeSideParquet(t, p, []badSplitRow{{ptr[int64](1), ptr("")}}) }, []string{"row 1", "empty"}},
		{"duplicate", func(t *testing.T, p string) {
			writeSideParquet(t, p, []badSplitRow{{ptr[int64](1), ptr("train")}, {ptr[int64](1), ptr("held_out")}})
		}, []string{"row 2", "subject 1 is listed twice"}},
		{"wrong type", func(t *testing.T, p string) { writeSideParquet(t, p, []wrongTypeSplitRow{{"1", "train"}}) }, []string{"column subject_id", "want int64"}},
		{"missing column", func(t *testing.T, p string) { writeSideParquet(t, p, []subjectSplitRowNoSplit{{1}}) }, []string{"column split", "missing column"}},
		{"not parquet", func(t *testing.T, p string) { os.WriteFile(p, []byte("subject_id,split\n1,train\n"), 0o644) }, []string{"corrupt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, filepath.FromSlash(SubjectSplitsFile))
			os.MkdirAll(filepath.Dir(path), 0o755)
			tc.write(t, path)
			_, err := ReadDatasetSplits(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

type subjectSplitRowNoSplit struct {
	SubjectID int64 `parquet:"subject_id"`
}

// TestMEDSLabelsRoundTrip: labels written are read back, a null boolean_value as
// unknown, from both task layouts.
func TestMEDSLabelsRoundTrip(t *testing.T) {
	rows := []MEDSLabel{
		{SubjectID: 1, PredictionTime: micros("2015-01-02T23:59:59Z"), Value: true, Known: true},
		{SubjectID: 2, PredictionTime: micros("1969-12-31T00:00:00Z"), Known: true},
		{SubjectID: -3, PredictionTime: micros("2020-06-01T12:00:00Z")},
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "diabetes"), 0o755)
	if err := WriteMEDSLabels(filepath.Join(dir, "diabetes", "0.parquet"), rows); err != nil {
		t.Fatal(err)
	}
	if err := WriteMEDSLabels(filepath.Join(dir, "statin.parquet"), rows[:1]); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLabelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]MEDSLabel{"diabetes": rows, "statin": rows[:1]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("labels %+v, want %+v", got, want)
	}
}

type badLabelRow struct {
	SubjectID      *int64 `parquet:"subject_id,optional"`
	PredictionTime *int64 `parquet:"prediction_time,optional,timestamp(microsecond)"`
	BooleanValue   *bool  `parquet:"boolean_value,optional"`
}

type intLabelRow struct {
	SubjectID      int64 `parquet:"subject_id"`
	PredictionTime int64 `parquet:"prediction_time,timestamp(microsecond)"`
	IntegerValue   int64 `parquet:"integer_value"`
}

type untimedLabelRow struct {
	SubjectID      int64 `parquet:"subject_id"`
	PredictionTime int64 `parquet:"prediction_time"`
	BooleanValue   bool  `parquet:"boolean_value"`
}

func TestMalformedLabels(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, path string)
		want  []string
	}{
		{"null subject", func(t *testing.T, p string) {
			writeSideParquet(t, p, []badLabelRow{{ptr[int64](1), ptr[int64](0), ptr(true)}, {nil, ptr[int64](0), ptr(true)}})
		}, []string{"row 2", "column subject_id"}},
		{"null time", func(t *testing.T, p string) { writeSideParquet(t, p, []badLabelRow{{ptr[int64](1), nil, ptr(true)}}) }, []string{"row 1", "column prediction_time"}},
		{"no boolean_value", func(t *testing.T, p string) { writeSideParquet(t, p, []intLabelRow{{1, 0, 1}}) }, []string{"boolean_value", "binary tasks only"}},
		{"time not a timestamp", func(t *testing.T, p string) { writeSideParquet(t, p, []untimedLabelRow{{1, 0, true}}) }, []string{"column prediction_time", "want timestamp"}},
		{"truncated", func(t *testing.T, p string) {
			writeSideParquet(t, p, []badLabelRow{{ptr[int64](1), ptr[int64](0), ptr(true)}})
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, []string{"corrupt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "task.parquet")
			tc.write(t, path)
			_, err := ReadLabelDir(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := ReadLabelDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no task") {
		t.Errorf("empty label directory: %v", err)
	}
}

// FuzzSplitsAndLabels: any bytes as subject_splits.parquet or a label file give
// rows or an error naming the file, never a panic.
func FuzzSplitsAndLabels(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.parquet")
	if err := WriteMEDSLabels(seed, []MEDSLabel{{SubjectID: 1, PredictionTime: 5, Value: true, Known: true}}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(seed)
	f.Add(b)
	if err := WriteSubjectSplits(seed, map[int64]string{1: SplitTrain, 2: SplitHeldOut}); err != nil {
		f.Fatal(err)
	}
	b, _ = os.ReadFile(seed)
	f.Add(b)
	f.Add([]byte("PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadMEDSLabels(path); err != nil && !strings.Contains(err.Error(), path) {
			t.Fatalf("labels error %q does not name the file", err)
		}
		m, err := ReadSubjectSplits(path)
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Fatalf("splits error %q does not name the file", err)
		}
		for id, s := range m {
			if s == "" {
				t.Fatalf("subject %d with an empty split", id)
			}
		}
	})
}
