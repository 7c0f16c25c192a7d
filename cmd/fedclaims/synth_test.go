package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestSynthCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"synth", "--out", dir, "--hospitals", "3", "--patients", "40", "--seed", "9"}, &out, &errOut)
	if err != nil {
		t.Fatalf("synth: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("synth printed %d lines, want one per hospital:\n%s", len(lines), out.String())
	}
	total := 0
	for i, l := range lines {
		var h struct {
			ID        string `json:"id"`
			Archetype string `json:"archetype"`
			Patients  int    `json:"patients"`
			Events    int64  `json:"events"`
		}
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		total += h.Patients
		var inspect bytes.Buffer
		if err := run(context.Background(), []string{"data", "inspect", filepath.Join(dir, h.ID)}, &inspect, &errOut); err != nil {
			t.Fatalf("data inspect %s: %v\n%s", h.ID, err, errOut.String())
		}
		var s struct {
			Format   string `json:"format"`
			Subjects int    `json:"subjects"`
			Events   int64  `json:"events"`
		}
		if err := json.Unmarshal(inspect.Bytes(), &s); err != nil {
			t.Fatalf("data inspect %s: %v: %s", h.ID, err, inspect.String())
		}
		if s.Format != "meds" || s.Subjects != h.Patients || s.Events != h.Events {
			t.Errorf("data inspect %s = %+v; synth reported %d patients, %d events", h.ID, s, h.Patients, h.Events)
		}
	}
	if total != 120 {
		t.Errorf("hospitals hold %d patients, want 3*40", total)
	}
}

func TestSynthCommandRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"synth"},
		{"synth", "--out", t.TempDir(), "--hospitals", "0"},
		{"synth", "--out", t.TempDir(), "--patients", "-1"},
		{"synth", "--out", t.TempDir(), "--seed", "x"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%v succeeded, want an error", args)
		}
	}
}

func TestSynthReport(t *testing.T) {
	report := func(args ...string) []map[string]any {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append([]string{"synth", "--report", "--json", "--hospitals", "3", "--patients", "60", "--seed", "4"}, args...)
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		var rows []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%v: %v in %q", args, err, l)
			}
			rows = append(rows, m)
		}
		return rows
	}
	full, flat := report(), report("--temporal-strength", "0")
	if len(full) != 4 || full[3]["dataset"] != "all" || full[0]["dataset"] != "h01 general" {
		t.Fatalf("rows %v: want the three hospitals and all", full)
	}
	if full[3]["patients"] != 180.0 {
		t.Errorf("all: %v patients, want 180", full[3]["patients"])
	}
	for _, k := range []string{"visits_per_patient_year", "codes_per_visit_mean", "codes_per_visit_median", "gap_days_median", "gaps_under_30_days", "zipf_slope", "zipf_rank_last"} {
		if v, ok := full[3][k].(float64); !ok || v == 0 {
			t.Errorf("all: %s = %v, want a figure", k, full[3][k])
		}
	}
	if full[3]["events"] == flat[3]["events"] {
		t.Errorf("strength 0 and 1 both give %v events", full[3]["events"])
	}
	var table, errOut bytes.Buffer
	if err := run(context.Background(), []string{"synth", "--report", "--hospitals", "1", "--patients", "20"}, &table, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "visits/patient-year") || !strings.Contains(table.String(), "h01 general") {
		t.Errorf("table:\n%s", table.String())
	}
}

func TestSynthReportRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"synth", "--report", "--out", t.TempDir()}, "--report"},
		{[]string{"synth", "--out", t.TempDir(), "--json"}, "--json"},
		{[]string{"synth", "--report", "--temporal-strength", "1.5"}, "--temporal-strength"},
		{[]string{"synth", "--out", t.TempDir(), "--temporal-strength", "-1"}, "--temporal-strength"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

func TestDataDescribe(t *testing.T) {
	d, err := dataRun(t, "data", "describe", "--json", dataMIMICDemo)
	if err != nil {
		t.Fatal(err)
	}
	if d["dataset"] != "omop-mimic-iv-demo" || d["patients"] != 100.0 {
		t.Fatalf("describe: %v", d)
	}
	if v, _ := d["visits"].(float64); v < 100 {
		t.Errorf("describe: %v visits", d["visits"])
	}
	if _, err := dataRun(t, "data", "describe", t.TempDir()); err == nil {
		t.Error("describe of an empty directory succeeded")
	}
}
