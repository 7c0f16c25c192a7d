package tasks

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
)

// splitPatients are 40 patients with an event each; subject i is in the dataset
// split want(i).
func splitPatients() []*claims.Patient {
	var ps []*claims.Patient
	for i := range int64(40) {
		ps = append(ps, patient(i+1, ev(date(2015, 1, 1)+i*claims.MicrosPerDay, "ICD10//E11.9")))
	}
	return ps
}

// want assigns subject id to a MEDS split name: most train, some tuning, some
// held out, and one the dataset puts in a split of its own name.
func want(id int64) string {
	switch {
	case id%5 == 0:
		return claims.SplitHeldOut
	case id%7 == 0:
		return claims.SplitTuning
	case id == 11:
		return "external"
	}
	return claims.SplitTrain
}

func writeMEDS(t *testing.T, dir string, ps []*claims.Patient, opts ...claims.WriterOption) {
	t.Helper()
	w, err := claims.NewMEDSWriter(dir, opts...)
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

// TestDatasetSplitsHonoured: with metadata/subject_splits.parquet and with the
// data/<split>/ layout, the dataset's split decides: no held-out, tuning or
// otherwise named patient reaches pretraining, and the Labeler's examples carry
// tuning as Validation and held_out as Test.
func TestDatasetSplitsHonoured(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	writeMEDS(t, file, splitPatients(), claims.SubjectSplits(want))

	layout := filepath.Join(root, "layout")
	bySplit := map[string][]*claims.Patient{}
	for _, p := range splitPatients() {
		bySplit[want(p.ID)] = append(bySplit[want(p.ID)], p)
	}
	for name, ps := range bySplit {
		tmp := filepath.Join(root, "tmp-"+name)
		writeMEDS(t, tmp, ps)
		if err := os.MkdirAll(filepath.Join(layout, "data", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(tmp, "data", "0000.parquet"), filepath.Join(layout, "data", name, "0.parquet")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, dir, source string
	}{
		{"subject_splits.parquet", file, "dataset's (metadata/subject_splits.parquet)"},
		{"data/<split>/ layout", layout, "dataset's (data/train|tuning|held_out/)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSplits(tc.dir, "ignored salt")
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tc.source {
				t.Errorf("split %q, want %q", s, tc.source)
			}
			src, err := claims.Open(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			pr := NewSplitsPretrainingReader(src, s)
			defer pr.Close()
			n := 0
			for {
				p, err := pr.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if want(p.ID) != claims.SplitTrain {
					t.Fatalf("subject %d of the dataset's %s split reached pretraining", p.ID, want(p.ID))
				}
				n++
			}
			if n == 0 || pr.Excluded == 0 {
				t.Fatalf("pretrained on %d, left out %d", n, pr.Excluded)
			}
			l, err := NewLabeler([]Task{{Name: "t", Prefixes: []string{"ICD10//E11"}, HorizonDays: 1}}, Options{Splits: s})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range splitPatients() {
				got, ok := s.Of(p.ID)
				wantSplit, assigned := map[string]Split{claims.SplitTrain: Train, claims.SplitTuning: Validation, claims.SplitHeldOut: Test}[want(p.ID)]
				if ok != assigned || (ok && got != wantSplit) {
					t.Errorf("subject %d: split %v %v, want %v %v", p.ID, got, ok, wantSplit, assigned)
				}
				if s.Name(p.ID) != map[bool]string{true: want(p.ID), false: ""}[assigned] {
					t.Errorf("subject %d: name %q", p.ID, s.Name(p.ID))
				}
				// Unassigned patients give no example whatever their record.
				if !assigned && l.Examples(p) != nil {
					t.Errorf("subject %d in no split has examples", p.ID)
				}
			}
		})
	}
	if s, err := LoadSplits(filepath.Join(root, "tmp-train"), "x"); err != nil || s.FromDataset() || s.String() != "fedclaims hash" {
		t.Errorf("no declared split: %v, %v", s, err)
	}
}

// TestGivenLabelsRoundTrip: fedclaims' own labels exported as MEDS labels and read
// back as given labels give the same examples: subject, index date, split and, per
// task, the same positives and negatives.
func TestGivenLabelsRoundTrip(t *testing.T) {
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 300, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, maxIndex := range []int{1, 3} {
		l, err := NewLabeler(Default(), Options{Seed: 1, MaxIndexPerPatient: maxIndex})
		if err != nil {
			t.Fatal(err)
		}
		var patients []*claims.Patient
		var exs []Example
		for i := range g.Hospitals()[0].Patients {
			p := g.Patient(0, i)
			patients = append(patients, p)
			exs = append(exs, l.Examples(p)...)
		}
		sets := map[string][]claims.MEDSLabel{}
		dir := t.TempDir()
		for ti, task := range l.Tasks() {
			sets[task.Name] = ExportLabels(exs, ti)
			if err := claims.WriteMEDSLabels(filepath.Join(dir, task.Name+".parquet"), sets[task.Name]); err != nil {
				t.Fatal(err)
			}
		}
		read, err := claims.ReadLabelDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		gl, err := NewGivenLabeler(read, Options{})
		if err != nil {
			t.Fatal(err)
		}
		gi := map[string]int{}
		for i, task := range gl.Tasks() {
			gi[task.Name] = i
			if task.Kind != Given {
				t.Errorf("task %s kind %q", task.Name, task.Kind)
			}
		}
		type key struct{ id, index int64 }
		orig := map[key]Example{}
		for _, ex := range exs {
			orig[key{ex.SubjectID, ex.Index}] = ex
		}
		got := 0
		for _, p := range patients {
			for _, ex := range gl.Examples(p) {
				got++
				o, ok := orig[key{ex.SubjectID, ex.Index}]
				if !ok {
					t.Fatalf("subject %d: given example at %s was no index date", ex.SubjectID, claims.FormatTime(ex.Index))
				}
				if ex.Split != o.Split {
					t.Fatalf("subject %d: split %v, was %v", ex.SubjectID, ex.Split, o.Split)
				}
				for ti, task := range l.Tasks() {
					a, b := o.Labels[ti], ex.Labels[gi[task.Name]]
					if a.Labelled() != b.Labelled() || (a.Labelled() && a != b) {
						t.Fatalf("subject %d task %s: label %v, was %v", ex.SubjectID, task.Name, b, a)
					}
				}
			}
		}
		// An example none of whose tasks labels it (all excluded) is not exported.
		want := 0
		for _, ex := range exs {
			for _, lab := range ex.Labels {
				if lab.Labelled() {
					want++
					break
				}
			}
		}
		if got != want || got == 0 {
			t.Fatalf("max index %d: %d given examples, want %d", maxIndex, got, want)
		}
	}
}

func TestGivenLabelerErrors(t *testing.T) {
	row := func(id, at int64, v bool) claims.MEDSLabel {
		return claims.MEDSLabel{SubjectID: id, PredictionTime: at, Value: v, Known: true}
	}
	tests := []struct {
		name string
		sets map[string][]claims.MEDSLabel
		want string
	}{
		{"none", nil, "no label sets"},
		{"bad name", map[string][]claims.MEDSLabel{"Long-LOS": {row(1, 0, true)}}, "rename the file"},
		{"conflict", map[string][]claims.MEDSLabel{"t": {row(1, 0, true), row(1, 0, false)}}, "subject 1 has labels positive and negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewGivenLabeler(tc.sets, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestUnion: datasets pooled into one cohort keep each its own split, and
// datasets all split by one hash stay that hash.
func TestUnion(t *testing.T) {
	own := DatasetSplits(&claims.DatasetSplits{Source: claims.SubjectSplitsFile,
		Subjects: map[int64]string{1: claims.SplitHeldOut, 2: claims.SplitTrain, 3: "other"}})
	hash := HashSplits("s")
	hashIDs := []int64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	u := Union([]string{"h01", "h02"}, []*Splits{own, hash}, [][]int64{{1, 2, 3}, hashIDs})
	for _, id := range []int64{1, 2, 3} {
		want, wantOK := own.Of(id)
		if got, ok := u.Of(id); got != want || ok != wantOK {
			t.Errorf("subject %d: %v %v, want its dataset's %v %v", id, got, ok, want, wantOK)
		}
	}
	for _, id := range hashIDs {
		if got, ok := u.Of(id); !ok || got != SplitOf(id, "s") {
			t.Errorf("subject %d: %v %v, want the hash's %v", id, got, ok, SplitOf(id, "s"))
		}
	}
	if u.InPretraining(1) || !u.InPretraining(2) || u.InPretraining(3) {
		t.Error("the union pretrains on a held-out or unsplit subject, or not on a training one")
	}
	if want := "h01: dataset's (metadata/subject_splits.parquet); h02: fedclaims hash"; u.String() != want {
		t.Errorf("String %q, want %q", u.String(), want)
	}
	if h := Union([]string{"a", "b"}, []*Splits{hash, HashSplits("s")}, [][]int64{{1}, {2}}); h.FromDataset() || h.String() != "fedclaims hash" {
		t.Errorf("a union of one hash: %v", h)
	}
}
