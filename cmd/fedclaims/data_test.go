package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dataMIMICDemo = "../../claims/testdata/omop-mimic-iv-demo"

// dataRun runs one fedclaims command line and decodes its single line of JSON.
func dataRun(t *testing.T, args ...string) (map[string]any, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		return nil, err
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%v printed %d lines, want one JSON object:\n%s", args, n, out.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%v: %v in %q", args, err, out.String())
	}
	return m, nil
}

func TestDataInspectAndConvert(t *testing.T) {
	omop, err := dataRun(t, "data", "inspect", dataMIMICDemo)
	if err != nil {
		t.Fatal(err)
	}
	if omop["format"] != "omop" || omop["subjects"] != 100.0 || omop["first_time"] != "2110-01-04T14:33:00Z" {
		t.Fatalf("inspect: %v", omop)
	}
	for _, k := range []string{"events", "codes", "last_time"} {
		if _, ok := omop[k]; !ok {
			t.Errorf("inspect output lacks %s", k)
		}
	}
	out := filepath.Join(t.TempDir(), "meds")
	conv, err := dataRun(t, "data", "convert", "--out", out, "--shard-rows", "10000", dataMIMICDemo)
	if err != nil {
		t.Fatal(err)
	}
	if conv["events"] != omop["events"] {
		t.Fatalf("convert wrote %v events, inspect counted %v", conv["events"], omop["events"])
	}
	meds, err := dataRun(t, "data", "inspect", out)
	if err != nil {
		t.Fatal(err)
	}
	if meds["format"] != "meds" {
		t.Fatalf("format %v", meds["format"])
	}
	// Every demo person has an observation period, and the conversion carries it.
	if omop["with_observation_end"] != 100.0 {
		t.Errorf("inspect: with_observation_end %v, want 100", omop["with_observation_end"])
	}
	for _, k := range []string{"subjects", "events", "codes", "first_time", "last_time", "events_by_kind", "with_observation_end"} {
		if a, b := mustJSON(t, omop[k]), mustJSON(t, meds[k]); a != b {
			t.Errorf("%s: OMOP %s, its MEDS conversion %s", k, a, b)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDataInspectBadInput(t *testing.T) {
	badOMOP := t.TempDir()
	os.WriteFile(filepath.Join(badOMOP, "person.csv"), []byte("person_id,gender_concept_id,year_of_birth\n1,8507,1950\n2,8532,19x0\n3,8532,1970\n"), 0o644)
	truncated := t.TempDir()
	os.MkdirAll(filepath.Join(truncated, "data"), 0o755)
	os.WriteFile(filepath.Join(truncated, "data", "0.parquet"), []byte("PAR1\x15\x00"), 0o644)

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"bad row", []string{"data", "inspect", badOMOP}, []string{"person.csv", "line 3", "column year_of_birth"}},
		{"truncated parquet", []string{"data", "inspect", truncated}, []string{filepath.Join("data", "0.parquet"), "corrupt or truncated"}},
		{"no dataset", []string{"data", "inspect", t.TempDir()}, []string{"neither a MEDS dataset"}},
		{"missing path", []string{"data", "inspect", filepath.Join(badOMOP, "nope")}, []string{"nope"}},
		{"convert without --out", []string{"data", "convert", badOMOP}, []string{"--out"}},
		{"unknown ICD-10 system", []string{"data", "inspect", "--omop-icd10", "ICD11", dataMIMICDemo}, []string{"ICD11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dataRun(t, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	got, err := dataRun(t, "data", "inspect", "--skip-bad-rows", badOMOP)
	if err != nil {
		t.Fatal(err)
	}
	if got["subjects"] != 2.0 || got["bad_rows_skipped"] != 1.0 || !strings.Contains(got["first_bad_row"].(string), "line 3") {
		t.Fatalf("with --skip-bad-rows: %v", got)
	}
	// A failed conversion leaves nothing at the target.
	out := filepath.Join(t.TempDir(), "meds")
	if _, err := dataRun(t, "data", "convert", "--out", out, badOMOP); err == nil {
		t.Fatal("convert of a bad export succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Fatalf("failed convert left %d entries behind", len(entries))
	}
}
