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
