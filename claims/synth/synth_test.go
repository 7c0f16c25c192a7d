package synth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/claims"
)

func newGen(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return g
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Hospitals: 0, Patients: 10},
		{Hospitals: 2, Patients: 0},
		{Hospitals: 2, Patients: -5},
		{Hospitals: 1, Patients: 200_000_000},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
}

// The model's tables name real codes: every one must be in the embedded lists, or
// New fails; the common background codes must be there too, or they would silently
// drop out of the frequency ranking.
func TestTableCodesAreInCatalog(t *testing.T) {
	g := newGen(t, Config{Hospitals: 3, Patients: 10, Seed: 1})
	for _, v := range commonICD {
		if !g.cat.has(icdCode(v)) {
			t.Errorf("common ICD-10 code %s is not in the catalog", v)
		}
	}
	for _, v := range commonATC {
		if !g.cat.has(claims.SystemATC + claims.Separator + v) {
			t.Errorf("common ATC code %s is not in the catalog", v)
		}
	}
	if n := len(g.cat.icd); n < 20000 {
		t.Errorf("catalog holds %d ICD-10 codes, want the full 3-5 character list", n)
	}
	if n := len(g.cat.atc); n < 6000 {
		t.Errorf("catalog holds %d ATC codes, want the full list", n)
	}
}

func TestHospitals(t *testing.T) {
	g := newGen(t, Config{Hospitals: 7, Patients: 1000, Seed: 3})
	hs := g.Hospitals()
	want := []struct {
		id     string
		arch   Archetype
		digits int
	}{
		{"h01", General, 5}, {"h02", CancerCentre, 5}, {"h03", Clinic, 3},
		{"h04", General, 5}, {"h05", CancerCentre, 5}, {"h06", Clinic, 4}, {"h07", General, 5},
	}
	total := 0
	for i, w := range want {
		h := hs[i]
		if h.ID != w.id || h.Archetype != w.arch || h.ICDDigits != w.digits {
			t.Errorf("hospital %d = %s %s %d digits, want %s %s %d", i, h.ID, h.Archetype, h.ICDDigits, w.id, w.arch, w.digits)
		}
		total += h.Patients
	}
	if total != 7000 {
		t.Errorf("hospitals hold %d patients in all, want 7000", total)
	}
	if !(hs[0].Patients > hs[1].Patients && hs[1].Patients > hs[2].Patients) {
		t.Errorf("sizes %d, %d, %d: want general > cancer centre > clinic", hs[0].Patients, hs[1].Patients, hs[2].Patients)
	}
}

func TestSamePatientWhateverTheOrder(t *testing.T) {
	g := newGen(t, Config{Hospitals: 2, Patients: 50, Seed: 7})
	forward := make([]*claims.Patient, 50)
	for i := range forward {
		forward[i] = g.Patient(1, i)
	}
	again := newGen(t, Config{Hospitals: 2, Patients: 50, Seed: 7})
	for i := 49; i >= 0; i-- {
		if p := again.Patient(1, i); !samePatient(p, forward[i]) {
			t.Fatalf("patient %d differs when generated in reverse order by a second generator", i)
		}
	}
	other := newGen(t, Config{Hospitals: 2, Patients: 50, Seed: 8})
	same := 0
	for i := range forward {
		if samePatient(other.Patient(1, i), forward[i]) {
			same++
		}
	}
	if same > 2 {
		t.Errorf("%d of 50 patients are identical under seeds 7 and 8", same)
	}
}

// samePatient compares patients, treating NaN values as equal.
func samePatient(a, b *claims.Patient) bool {
	if a.ID != b.ID || a.Sex != b.Sex || a.Birth != b.Birth || a.HasBirth != b.HasBirth || len(a.Events) != len(b.Events) {
		return false
	}
	for i := range a.Events {
		x, y := a.Events[i], b.Events[i]
		if x.Time != y.Time || x.Code != y.Code || (x.HasValue() || y.HasValue()) && x.Value != y.Value {
			return false
		}
	}
	return true
}

func TestPatientsAreWellFormed(t *testing.T) {
	g := newGen(t, Config{Hospitals: 3, Patients: 400, Seed: 11})
	known := make(map[string]bool)
	for _, c := range g.Codes() {
		known[c.Code] = true
	}
	lo := time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	hi := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for hi_, h := range g.Hospitals() {
		var prevID int64 = -1
		for i := range h.Patients {
			p := g.Patient(hi_, i)
			where := fmt.Sprintf("%s patient %d", h.ID, i)
			if p.ID <= prevID {
				t.Fatalf("%s: id %d does not increase on %d", where, p.ID, prevID)
			}
			prevID = p.ID
			if !p.HasBirth || p.Sex == claims.SexUnknown {
				t.Fatalf("%s: no birth or sex", where)
			}
			if len(p.Events) == 0 {
				continue
			}
			if p.Birth > p.Events[0].Time {
				t.Fatalf("%s: born after the first event", where)
			}
			if age := float64(p.Events[len(p.Events)-1].Time-p.Birth) / (365.25 * 86400e6); age > 115 {
				t.Fatalf("%s: aged %.0f at the last event", where, age)
			}
			visits := 0
			for k, e := range p.Events {
				if e.Time < lo || e.Time >= hi {
					t.Fatalf("%s: event %d at %s, outside 2012-2022", where, k, time.UnixMicro(e.Time).UTC())
				}
				if k > 0 {
					prev := p.Events[k-1]
					if prev.Time > e.Time || prev.Time == e.Time && prev.Code >= e.Code {
						t.Fatalf("%s: events %d and %d out of order or repeated: %v %v", where, k-1, k, prev, e)
					}
				}
				if e.HasValue() {
					t.Fatalf("%s: event %d carries a value", where, k)
				}
				if !known[e.Code] {
					t.Fatalf("%s: code %s is not in Codes()", where, e.Code)
				}
				if e.Code == claims.CodeDeath && k != len(p.Events)-1 && p.Events[len(p.Events)-1].Time != e.Time {
					t.Fatalf("%s: events after death", where)
				}
				switch claims.System(e.Code) {
				case claims.SystemICD10:
					n := len(strings.ReplaceAll(claims.Value(e.Code), ".", ""))
					if n < 3 || n > h.ICDDigits {
						t.Fatalf("%s: %s has %d characters; %s records at most %d", where, e.Code, n, h.ID, h.ICDDigits)
					}
				case claims.SystemATC:
					if len(claims.Value(e.Code)) != 7 {
						t.Fatalf("%s: %s is not an ATC level-5 code", where, e.Code)
					}
				case claims.SystemVisit:
					visits++
				}
			}
			if visits == 0 && !(len(p.Events) == 1 && p.Events[0].Code == claims.CodeDeath) {
				t.Fatalf("%s: events without a visit", where)
			}
		}
	}
}

// TestWriteIsByteIdentical writes the same seed twice and compares every file, then
// reads one hospital back through the MEDS reader.
func TestWriteIsByteIdentical(t *testing.T) {
	cfg := Config{Hospitals: 3, Patients: 150, Seed: 42}
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if err := newGen(t, cfg).Write(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	files := readTree(t, dirs[0])
	if len(files) == 0 {
		t.Fatal("Write wrote nothing")
	}
	for _, id := range []string{"h01", "h02", "h03"} {
		for _, f := range []string{"metadata/codes.parquet", "metadata/dataset.json"} {
			if _, ok := files[filepath.Join(id, f)]; !ok {
				t.Errorf("%s/%s not written", id, f)
			}
		}
	}
	second := readTree(t, dirs[1])
	if len(second) != len(files) {
		t.Fatalf("runs wrote %d and %d files", len(files), len(second))
	}
	for name, b := range files {
		if !bytes.Equal(b, second[name]) {
			t.Errorf("%s differs between two runs with seed %d", name, cfg.Seed)
		}
	}

	g := newGen(t, cfg)
	r, err := claims.OpenMEDS(filepath.Join(dirs[0], "h02"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; ; i++ {
		p, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			if i != g.Hospitals()[1].Patients {
				t.Fatalf("read back %d patients, want %d", i, g.Hospitals()[1].Patients)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := g.Patient(1, i); !samePatient(p, want) {
			t.Fatalf("patient %d read back differs from the generated one", i)
		}
	}
	codes, err := claims.ReadCodes(filepath.Join(dirs[0], "h01", "metadata", "codes.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	byCode := make(map[string]claims.CodeInfo, len(codes))
	for _, c := range codes {
		byCode[c.Code] = c
	}
	for code, parent := range map[string]string{
		"ICD10//E11.65": "ICD10//E11.6", "ICD10//E11.6": "ICD10//E11", "ATC//C10AA05": "ATC//C10AA", "ATC//C10AA": "ATC//C10A",
	} {
		c, ok := byCode[code]
		if !ok || !reflect.DeepEqual(c.Parents, []string{parent}) || c.Description == "" {
			t.Errorf("codes.parquet row for %s = %+v, want a description and parent %s", code, c, parent)
		}
	}
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	err := newGen(t, Config{Hospitals: 1, Patients: 10, Seed: 1}).Write(ctx, dir)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "h01")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a cancelled write left h01 behind (stat: %v)", err)
	}
}

func TestMonthDay(t *testing.T) {
	for _, m := range []int32{-13, -1, 0, 1, 11, 12, 1355} {
		y, mo := 1900+int(math.Floor(float64(m)/12)), (int(m)%12+12)%12+1
		want := time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC).Unix() / 86400
		if got := monthDay(m); got != want {
			t.Errorf("monthDay(%d) = %d, want %d", m, got, want)
		}
	}
}
