package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// mimicStyleDataset writes n patients whose codes are in the MIMIC-IV MEDS ETL's
// convention, lab-heavy as that ETL's output is, and returns its directory.
func mimicStyleDataset(t *testing.T, dir string, n int) string {
	t.Helper()
	nan := float32(math.NaN())
	start := time.Date(2150, 3, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	w, err := claims.NewMEDSWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := int64(10000 + i)
		p := &claims.Patient{ID: id, Sex: claims.Sex(1 + i%2), Birth: start - int64(60+i)*365*claims.MicrosPerDay, HasBirth: true}
		at := func(day int) int64 { return start + int64(day+i)*claims.MicrosPerDay }
		add := func(day int, code string, v float32) {
			p.Events = append(p.Events, claims.Event{Time: at(day), Code: code, Value: v})
		}
		add(0, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", nan)
		add(0, "DIAGNOSIS//ICD//10//E039", nan)
		if i%2 == 0 {
			add(0, "DIAGNOSIS//ICD//9//4019", nan)
		}
		if i%3 == 0 {
			add(1, "PROCEDURE//ICD//10//0DTJ4ZZ", nan)
		} else {
			add(1, "PROCEDURE//ICD//9//3893", nan)
		}
		add(1, "MEDICATION//START//Acetaminophen", nan)
		add(1, "MEDICATION//Heparin//Administered", nan)
		add(2, "MEDICATION//STOP//Acetaminophen", nan)
		for k := range 30 {
			code := "LAB//51221//%"
			if k%2 == 1 {
				code = "LAB//50912//mg/dL"
			}
			add(k%3, code, float32(30+k))
		}
		add(2, "HOSPITAL_DISCHARGE//HOME", nan)
		slices.SortStableFunc(p.Events, func(a, b claims.Event) int { return int(a.Time - b.Time) })
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runBoth runs one command line and returns its stdout and stderr.
func runBoth(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDataInspectMIMICConvention(t *testing.T) {
	dir := t.TempDir()
	data := mimicStyleDataset(t, filepath.Join(dir, "mimic"), 4)
	rules := writeFile(t, filepath.Join(dir, "codes.yaml"),
		"- pattern: 'HOSPITAL_(ADMISSION|DISCHARGE)//.*'\n  drop: true\n- pattern: 'LAB//(\\d+)//.*'\n  system: LOINC\n  code: 'mimic-$1'\n")
	tests := []struct {
		name     string
		args     []string
		bySystem map[string]int64
		dropped  int64
	}{
		{"built-ins", nil, map[string]int64{
			"ICD10CM": 4, "ICD9CM": 2, "ICD10PCS": 2, "ICD9PROC": 2, "DRUG": 8, "LAB": 120, "unrecognised": 12,
		}, 0},
		{"user rules first", []string{"--codes", rules}, map[string]int64{
			"ICD10CM": 4, "ICD9CM": 2, "ICD10PCS": 2, "ICD9PROC": 2, "DRUG": 8, "LOINC": 120, "unrecognised": 4,
		}, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := runBoth(t, append([]string{"data", "inspect", data}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var s claims.Summary
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			for k, v := range tc.bySystem {
				want[k] = v
			}
			if !reflect.DeepEqual(s.EventsBySystem, want) {
				t.Errorf("events_by_system %v, want %v", s.EventsBySystem, want)
			}
			if s.Skipped["code dropped by a codes rule"] != tc.dropped {
				t.Errorf("rows_not_used %v, want %d dropped", s.Skipped, tc.dropped)
			}
			if s.EventsByKind["diagnosis"] != 6 || s.EventsByKind["procedure"] != 4 || s.EventsByKind["medication"] != 8 {
				t.Errorf("events_by_kind %v", s.EventsByKind)
			}
			// Under 10% of events unrecognised: no warning.
			if strings.Contains(stderr, "known code system") {
				t.Errorf("warned at %.1f%% unrecognised: %s", 100*s.UnrecognisedShare(), stderr)
			}
		})
	}
}

func TestDataInspectWarnsUnrecognised(t *testing.T) {
	dir := t.TempDir()
	w, err := claims.NewMEDSWriter(filepath.Join(dir, "local"))
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for i := range 3 {
		p := &claims.Patient{ID: int64(i + 1), Sex: claims.SexFemale, Events: []claims.Event{
			{Time: day, Code: "ICD10CM/E11.9", Value: float32(math.NaN())},
			{Time: day, Code: "LOCALDX//250", Value: float32(math.NaN())},
			{Time: day, Code: "LOCALDX//401", Value: float32(math.NaN())},
			{Time: day, Code: "Race/5", Value: float32(math.NaN())},
		}}
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runBoth(t, "data", "inspect", filepath.Join(dir, "local"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=WARN", "events outside every known code system", "share=75.0%",
		`top_prefixes="\"LOCALDX\" (6 events), \"Race\" (3 events)"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr)
		}
	}
	if !strings.Contains(out, `"events_by_system":{"ICD10CM":3,"unrecognised":9}`) {
		t.Errorf("inspect: %s", out)
	}
}

func TestVocabKeepsCodesOfEveryKind(t *testing.T) {
	dir := t.TempDir()
	data := mimicStyleDataset(t, filepath.Join(dir, "mimic"), 6)
	out := filepath.Join(dir, "vocab.json")
	if _, err := runCmd(t, "vocab", "build", "--data", data, "--out", out, "--min-count", "2", "--include-test-split"); err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for id := int32(tokenizer.NumSpecial); id < int32(v.Len()); id++ {
		toks = append(toks, v.Token(id))
	}
	for _, want := range []string{
		"ICD10CM//E03.9", "ICD10CM//E03", // roll-up to the category
		"ICD9CM//401.9", "ICD9CM//401",
		"ICD10PCS//0DTJ4ZZ", "ICD9PROC//38.93",
		"DRUG//ACETAMINOPHEN", "DRUG//HEPARIN",
		"LAB//51221//%", "LAB//50912//mg/dL",
		"HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "MEDICATION//STOP//Acetaminophen", // kept as their own tokens
	} {
		if !slices.Contains(toks, want) {
			t.Errorf("vocabulary lacks %s: %q", want, toks)
		}
	}
	// The k-floor still applies: ICD10PCS is on 2 of 6 patients, kept at 2, not at 3.
	if _, err := runCmd(t, "vocab", "build", "--data", data, "--out", out, "--min-count", "3", "--include-test-split"); err != nil {
		t.Fatal(err)
	}
	if v, err = tokenizer.ReadFile(out); err != nil {
		t.Fatal(err)
	}
	if id := v.ID("ICD10PCS//0DTJ4ZZ"); id != tokenizer.UNK {
		t.Errorf("ICD10PCS//0DTJ4ZZ on 2 patients kept at --min-count 3 (id %d)", id)
	}
}

func TestCodesFlagBadFile(t *testing.T) {
	dir := t.TempDir()
	data := mimicStyleDataset(t, filepath.Join(dir, "mimic"), 2)
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "- pattern: 'LAB//(.*)'\n  system: LAB\n  code: $1\n- pattern: 'X('\n  system: LAB\n  code: x\n")
	want := "codes file " + bad + ": rule 2 (line 4): field pattern"
	vocab := filepath.Join(dir, "v.json")
	for _, args := range [][]string{
		{"data", "inspect", data},
		{"data", "describe", data},
		{"data", "convert", data, "--out", filepath.Join(dir, "out")},
		{"vocab", "build", "--data", data, "--out", vocab},
		{"vocab", "count", "--data", data, "--out", vocab},
		{"tasks", "prevalence", "--data", data},
		{"eval", "--data", data, "--out", filepath.Join(dir, "eval")},
	} {
		_, err := runCmd(t, append(args, "--codes", bad)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want one containing %q", args, err, want)
		}
	}
}

func TestRefuseEmptyResults(t *testing.T) {
	dir := t.TempDir()
	data := mimicStyleDataset(t, filepath.Join(dir, "mimic"), 3)
	local := filepath.Join(dir, "local")
	w, err := claims.NewMEDSWriter(local)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := &claims.Patient{ID: int64(i + 1), Sex: claims.SexMale, Events: []claims.Event{
			{Time: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC).UnixMicro(), Code: "LOCALDX//" + string(rune('a'+i)), Value: float32(math.NaN())},
		}}
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	vocab := filepath.Join(dir, "vocab.json")
	noPersons := filepath.Join(dir, "omop")
	if err := os.Mkdir(noPersons, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(noPersons, "person.csv"), "person_id,gender_concept_id,year_of_birth\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"vocab build, unknown convention", []string{"vocab", "build", "--data", local, "--out", vocab, "--include-test-split"},
			[]string{"refusing to write " + vocab + ", a vocabulary of the 5 special tokens alone",
				`no event matched a known code system; the data's top prefixes are "LOCALDX" (3 events)`, "--codes FILE"}},
		{"vocab build, below the floor", []string{"vocab", "build", "--data", data, "--out", vocab, "--include-test-split", "--min-count", "10"},
			[]string{"special tokens alone", "every code of the 3 patients read is seen in fewer than --min-count 10 of them"}},
		{"vocab count", []string{"vocab", "count", "--data", local, "--out", vocab, "--include-test-split"},
			[]string{"refusing to write an empty count table", "no event matched a known code system"}},
		{"data convert", []string{"data", "convert", noPersons, "--out", vocab},
			[]string{"refusing to write " + vocab + ", a dataset without subjects"}},
		{"eval, no labelled patients", []string{"eval", "--data", data, "--out", filepath.Join(dir, "eval")},
			[]string{"no labelled patients", "none of 3 patients has an index date", "lookback", "events span 2150-03-01 to 2150-03-05"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCmd(t, tc.args...)
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want one containing %q", err, want)
				}
			}
			if _, serr := os.Stat(vocab); serr == nil {
				t.Errorf("%s written", vocab)
			}
		})
	}

	// pretrain on a vocabulary of specials alone blames the vocabulary, not the preset.
	empty, err := tokenizer.New(&tokenizer.CountTable{MinCount: 10, Patients: 3, Counts: map[string]int64{}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.WriteFile(vocab); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, "pretrain", "--data", data, "--vocab", vocab, "--out", filepath.Join(dir, "ckpt"), "--steps", "1")
	if err == nil || !strings.Contains(err.Error(), "the vocabulary holds only the 5 special tokens") || strings.Contains(err.Error(), "--preset") {
		t.Errorf("pretrain on an empty vocabulary: %v", err)
	}
	// pretrain with no patient holding a vocabulary code names the vocabulary.
	other, err := tokenizer.New(&tokenizer.CountTable{MinCount: 1, Patients: 3, Counts: map[string]int64{"ICD10//I10": 3}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFile(vocab); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, "pretrain", "--data", local, "--vocab", vocab, "--out", filepath.Join(dir, "ckpt"), "--steps", "1", "--include-test-split")
	if err == nil || !strings.Contains(err.Error(), "none of the 3 patients read has a code in the vocabulary "+vocab) {
		t.Errorf("pretrain without sequences: %v", err)
	}
}
