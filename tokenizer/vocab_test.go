package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/claims"
)

// at returns the microseconds of a UTC date and hour.
func at(y int, m time.Month, d, h int) int64 {
	return time.Date(y, m, d, h, 0, 0, 0, time.UTC).UnixMicro()
}

func ev(t int64, code string) claims.Event {
	return claims.Event{Time: t, Code: code, Value: float32(math.NaN())}
}

// patientsWith returns n patients, each with the given codes once, on one day.
func patientsWith(firstID int64, n int, codes ...string) []*claims.Patient {
	ps := make([]*claims.Patient, n)
	for i := range ps {
		p := &claims.Patient{ID: firstID + int64(i)}
		for _, c := range codes {
			p.Events = append(p.Events, ev(at(2015, 1, 1, 0), c))
		}
		ps[i] = p
	}
	return ps
}

func tableOf(t *testing.T, k int, groups ...[]*claims.Patient) *CountTable {
	t.Helper()
	c := NewCounter()
	for _, g := range groups {
		for _, p := range g {
			c.Add(p)
		}
	}
	tab, err := c.Table(k)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestFallback(t *testing.T) {
	tests := []struct {
		code string
		want []string
	}{
		{"ICD10//E11.91", []string{"ICD10//E11.9", "ICD10//E11"}},
		{"ICD10//E11.9", []string{"ICD10//E11"}},
		{"ICD10//E11", nil},
		{"ICD10CM//S72.001A", []string{"ICD10CM//S72.001", "ICD10CM//S72.00", "ICD10CM//S72.0", "ICD10CM//S72"}},
		{"ICD9CM//250.01", []string{"ICD9CM//250.0", "ICD9CM//250"}},
		{"ATC//C10AA05", []string{"ATC//C10AA"}},
		{"ATC//C10AA", nil},
		{"ATC//C10", nil},
		{"NDC//00002143380", nil},
		{"PROC//K549", nil},
		{"MEDS_DEATH", nil},
	}
	for _, tt := range tests {
		var got []string
		for c, ok := Fallback(tt.code); ok; c, ok = Fallback(c) {
			got = append(got, c)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("fallback chain of %s = %v, want %v", tt.code, got, tt.want)
		}
	}
}

// readCodes reads the first column of a gzipped CSV in testdata.
func readCodes(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(zr).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var codes []string
	for _, r := range rows[1:] {
		codes = append(codes, r[0])
	}
	return codes
}

// TestFallbackRealCodes walks every ICD-10-CM code of three chapters and every ATC
// code up its fallback chain: each step must land on a code that exists in the
// published code lists, and the chain must end at the category / level 4.
func TestFallbackRealCodes(t *testing.T) {
	icd := readCodes(t, "icd10cm-E-I-N.csv.gz")
	atc := readCodes(t, "atc.csv.gz")
	known := make(map[string]bool)
	var codes []string
	for _, c := range icd {
		code := "ICD10CM//" + c
		if len(c) > 3 {
			code = "ICD10CM//" + c[:3] + "." + c[3:]
		}
		known[code] = true
		codes = append(codes, code)
	}
	for _, c := range atc {
		known["ATC//"+c] = true
		codes = append(codes, "ATC//"+c)
	}
	if len(icd) < 3000 || len(atc) < 6000 {
		t.Fatalf("code lists too short: %d ICD-10-CM, %d ATC", len(icd), len(atc))
	}
	// The compiled ATC list lacks a few recent level-4 groups (L01FF, J06BD) that
	// its level-5 codes name; more than a handful would mean Fallback is wrong.
	var atcOrphans []string
	for _, code := range codes {
		top := code
		for f, ok := Fallback(code); ok; f, ok = Fallback(f) {
			if !known[f] && claims.System(f) == claims.SystemATC {
				atcOrphans = append(atcOrphans, code)
			}
			top = f
		}
		v := claims.Value(top)
		switch {
		case claims.System(top) == claims.SystemICD10CM && len(v) != 3:
			t.Errorf("%s: chain ends at %s, not at a 3-character category", code, top)
		case claims.System(top) == claims.SystemICD10CM && !known[top]:
			t.Errorf("%s: chain ends at %s, which is not in the code list", code, top)
		case claims.System(top) == claims.SystemATC && len(claims.Value(code)) >= 5 && len(v) != 5:
			t.Errorf("%s: chain ends at %s, not at level 4", code, top)
		}
	}
	if len(atcOrphans) > len(atc)/200 {
		t.Errorf("%d ATC codes fall back to a code missing from the ATC list: %v", len(atcOrphans), atcOrphans)
	}
}

func TestCounterFloorAndRollUp(t *testing.T) {
	// 12 patients with E11.9 (kept), 4 with E11.65 and 3 with E11.21 (rare, but they
	// make E11.6 rare and E11 common), 20 with C10AA05, 5 with NDC codes (rare).
	groups := [][]*claims.Patient{
		patientsWith(0, 12, "ICD10//E11.9", "ICD10//E11.9", "GENDER//F", "VISIT//IP"),
		patientsWith(100, 4, "ICD10//E11.65"),
		patientsWith(200, 3, "ICD10//E11.21"),
		patientsWith(300, 20, "ATC//C10AA05", "MEDS_DEATH"),
		patientsWith(400, 5, "NDC//00002143380"),
	}
	tab := tableOf(t, 10, groups...)
	want := map[string]int64{
		"ICD10//E11.9": 12,
		"ICD10//E11":   19,
		"ATC//C10AA05": 20,
		"ATC//C10AA":   20,
	}
	if !equalMaps(tab.Counts, want) {
		t.Errorf("counts = %v, want %v", tab.Counts, want)
	}
	if tab.Patients != 44 || tab.MinCount != 10 {
		t.Errorf("patients, min count = %d, %d, want 44, 10", tab.Patients, tab.MinCount)
	}
	for code, n := range tab.Counts {
		if n < 10 {
			t.Errorf("code %s left the site with count %d < k", code, n)
		}
	}
	if _, err := NewCounter().Table(0); err == nil {
		t.Error("Table(0) succeeded")
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMergeIndependentOfOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	codes := []string{"ICD10//E11.9", "ICD10//I10", "ICD10//N18.3", "ICD10//I50.0", "ATC//C10AA05", "ATC//A10BH01", "PROC//K549", "ATC//A02BC01"}
	var tables []*CountTable
	for site := range 5 {
		c := NewCounter()
		for i := range 200 {
			p := &claims.Patient{ID: int64(site*1000 + i)}
			for _, code := range codes {
				if r.IntN(8) == 0 {
					p.Events = append(p.Events, ev(at(2016, 3, 1, 0), code))
				}
			}
			c.Add(p)
		}
		tab, err := c.Table(DefaultMinCount)
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, tab)
	}
	var want []byte
	for range 10 {
		r.Shuffle(len(tables), func(i, j int) { tables[i], tables[j] = tables[j], tables[i] })
		m, err := Merge(tables...)
		if err != nil {
			t.Fatal(err)
		}
		v, err := New(m, DefaultMinCount)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := m.Save(&b); err != nil {
			t.Fatal(err)
		}
		if err := v.Save(&b); err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = b.Bytes()
		} else if !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("merge in another order gave different output:\n%s\nwant\n%s", b.Bytes(), want)
		}
	}
	m, _ := Merge(tables...)
	if m.Patients != 1000 {
		t.Errorf("merged patients = %d, want 1000", m.Patients)
	}
}

func TestMergeFloors(t *testing.T) {
	a := &CountTable{MinCount: 5, Patients: 100, Counts: map[string]int64{"ICD10//I10": 6, "ICD10//E11": 50}}
	b := &CountTable{MinCount: 10, Patients: 100, Counts: map[string]int64{"ICD10//E11": 10}}
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// I10's 6 is below the stricter floor of the merged table.
	want := map[string]int64{"ICD10//E11": 60}
	if m.MinCount != 10 || !equalMaps(m.Counts, want) {
		t.Errorf("merge = floor %d counts %v, want floor 10 counts %v", m.MinCount, m.Counts, want)
	}
	bad := &CountTable{MinCount: 10, Patients: 100, Counts: map[string]int64{"ICD10//E11": 3}}
	if _, err := Merge(a, bad); err == nil || !strings.Contains(err.Error(), "below the floor") {
		t.Errorf("merge of a table under its floor: err = %v", err)
	}
	if _, err := Merge(); err == nil {
		t.Error("merge of nothing succeeded")
	}
}

func TestVocabIDs(t *testing.T) {
	tab := &CountTable{MinCount: 10, Patients: 1000, Counts: map[string]int64{
		"ICD10//E11":   300,
		"ICD10//E11.9": 200,
		"ATC//C10AA":   200,
		"ATC//C10AA05": 150,
		"PROC//K549":   40,
		"ICD10//I10":   12,
	}}
	v, err := New(tab, 20) // I10 falls under the stricter floor
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := []string{"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]",
		"ICD10//E11", "ATC//C10AA", "ICD10//E11.9", "ATC//C10AA05", "PROC//K549"}
	for id, tok := range wantTokens {
		if got := v.Token(int32(id)); got != tok {
			t.Errorf("token %d = %q, want %q", id, got, tok)
		}
	}
	if v.Len() != len(wantTokens) || v.MinCount() != 20 {
		t.Errorf("len, min count = %d, %d, want %d, 20", v.Len(), v.MinCount(), len(wantTokens))
	}
	tests := []struct {
		code string
		want int32
	}{
		{"ICD10//E11.9", 7},
		{"ICD10//E11.91", 7}, // rare child of a kept code
		{"ICD10//E11.65", 5}, // falls back to its category
		{"ICD10//E11", 5},
		{"ICD10//I10", UNK},   // under the floor, no parent
		{"ATC//C10AA07", 6},   // level 5 to level 4
		{"ATC//C10BA02", UNK}, // level 4 C10BA absent, and ATC stops at level 4
		{"PROC//K549", 9},
		{"NDC//00002143380", UNK},
		{"[CLS]", UNK},
		{"", UNK},
	}
	for _, tt := range tests {
		if got := v.ID(tt.code); got != tt.want {
			t.Errorf("ID(%q) = %d (%s), want %d", tt.code, got, v.Token(got), tt.want)
		}
	}
	if v.Token(-1) != "" || v.Token(int32(v.Len())) != "" || v.Count(7) != 200 || v.Count(CLS) != 0 {
		t.Error("Token/Count out of range or counts wrong")
	}
	if _, err := New(tab, 0); err == nil {
		t.Error("New with min count 0 succeeded")
	}
}

func TestVocabSaveLoad(t *testing.T) {
	tab := &CountTable{MinCount: 10, Patients: 100, Counts: map[string]int64{"ICD10//E11": 30, "ATC//C10AA05": 20}}
	v, err := New(tab, 10)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vocab.json")
	if err := v.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	w, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() != v.Len() || w.MinCount() != v.MinCount() {
		t.Fatalf("loaded len %d floor %d, want %d %d", w.Len(), w.MinCount(), v.Len(), v.MinCount())
	}
	for id := range int32(v.Len()) {
		if v.Token(id) != w.Token(id) || v.Count(id) != w.Count(id) || w.ID(w.Token(id)) != v.ID(v.Token(id)) {
			t.Errorf("token %d differs after load", id)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after an atomic write, want 1", len(entries))
	}
}

func TestLoadErrors(t *testing.T) {
	const specials = `"[PAD]","[CLS]","[SEP]","[MASK]","[UNK]"`
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "unexpected EOF"},
		{"wrong format", `{"format":"x","version":1,"min_count":1,"tokens":[],"counts":[]}`, "field format"},
		{"future version", `{"format":"fedclaims-vocab","version":2,"min_count":1,"tokens":[],"counts":[]}`, "field version"},
		{"zero floor", `{"format":"fedclaims-vocab","version":1,"min_count":0,"tokens":[` + specials + `],"counts":[0,0,0,0,0]}`, "field min_count"},
		{"length mismatch", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":[` + specials + `],"counts":[0]}`, "5 tokens but 1 counts"},
		{"no specials", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":["ICD10//E11"],"counts":[3]}`, "fewer than the 5 special"},
		{"specials out of order", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":["[CLS]","[PAD]","[SEP]","[MASK]","[UNK]"],"counts":[0,0,0,0,0]}`, "tokens[0]"},
		{"not a code", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":[` + specials + `,"MEDS_BIRTH"],"counts":[0,0,0,0,0,4]}`, "tokens[5]"},
		{"duplicate", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":[` + specials + `,"ICD10//E11","ICD10//E11"],"counts":[0,0,0,0,0,4,4]}`, "appears twice"},
		{"negative count", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":[` + specials + `,"ICD10//E11"],"counts":[0,0,0,0,0,-4]}`, "counts[5]"},
		{"unknown field", `{"format":"fedclaims-vocab","version":1,"min_count":1,"tokens":[],"counts":[],"extra":1}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load: err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}

func TestCountsSaveLoad(t *testing.T) {
	tab := tableOf(t, 3, patientsWith(0, 5, "ICD10//E11.9", "ATC//C10AA05"), patientsWith(10, 2, "ICD10//I10"))
	path := filepath.Join(t.TempDir(), "counts.json")
	if err := tab.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCounts(path)
	if err != nil {
		t.Fatal(err)
	}
	if !equalMaps(got.Counts, tab.Counts) || got.MinCount != 3 || got.Patients != 7 {
		t.Errorf("round trip = %+v, want %+v", got, tab)
	}
	tests := []struct{ name, json, want string }{
		{"below floor", `{"format":"fedclaims-code-counts","version":1,"min_count":10,"patients":50,"counts":{"ICD10//E11":9}}`, `"ICD10//E11" has count 9, below the floor`},
		{"more than patients", `{"format":"fedclaims-code-counts","version":1,"min_count":10,"patients":50,"counts":{"ICD10//E11":51}}`, "more than the 50 patients"},
		{"not a code", `{"format":"fedclaims-code-counts","version":1,"min_count":1,"patients":50,"counts":{"GENDER//F":20}}`, `"GENDER//F" is not a diagnosis`},
		{"wrong version", `{"format":"fedclaims-code-counts","version":9,"min_count":1,"patients":50,"counts":{}}`, "field version"},
		{"wrong type", `{"format":"fedclaims-code-counts","version":1,"min_count":"ten","patients":50,"counts":{}}`, "min_count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCounts(strings.NewReader(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadCounts: err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	v, err := New(&CountTable{MinCount: 2, Patients: 10, Counts: map[string]int64{"ICD10//E11": 3, "ATC//C10AA05": 2}}, 2)
	if err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	v.Save(&b)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What loads must save and load again to the same vocabulary.
		var out bytes.Buffer
		if err := v.Save(&out); err != nil {
			t.Fatal(err)
		}
		w, err := Load(&out)
		if err != nil {
			t.Fatalf("reloading a saved vocabulary: %v", err)
		}
		if w.Len() != v.Len() {
			t.Fatalf("reload changed length %d -> %d", v.Len(), w.Len())
		}
		for id := range int32(v.Len()) {
			if v.ID(v.Token(id)) != w.ID(w.Token(id)) {
				t.Fatalf("reload changed token %d", id)
			}
		}
	})
}

func FuzzLoadCounts(f *testing.F) {
	var b bytes.Buffer
	(&CountTable{MinCount: 2, Patients: 10, Counts: map[string]int64{"ICD10//E11": 3}}).Save(&b)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := LoadCounts(bytes.NewReader(data))
		if err != nil {
			return
		}
		for code, n := range tab.Counts {
			if n < int64(tab.MinCount) {
				t.Fatalf("loaded code %q with count %d under floor %d", code, n, tab.MinCount)
			}
		}
		m, err := Merge(tab, tab)
		if err != nil {
			if tab.Patients > math.MaxInt64/2 {
				return // the sum overflows
			}
			t.Fatalf("merging a loaded table: %v", err)
		}
		if err := m.validate(); err != nil {
			t.Fatalf("merged table is invalid: %v", err)
		}
	})
}
