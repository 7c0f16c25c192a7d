package jsonfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	type rec struct {
		A int
		B []string
	}
	in := rec{A: 3, B: []string{"x", "y"}}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	var out rec
	if err := Read(path, &out); err != nil {
		t.Fatal(err)
	}
	if out.A != in.A || strings.Join(out.B, ",") != "x,y" {
		t.Fatalf("read %+v, wrote %+v", out, in)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	var v map[string]int
	if err := Read(filepath.Join(dir, "missing.json"), &v); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"a": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Read(bad, &v); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("malformed file: %v, want an error naming %s", err, bad)
	}
}
