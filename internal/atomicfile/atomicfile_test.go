package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		data string
		perm os.FileMode
	}{
		{"report.md", "a report\n", 0o644},
		{"site.key", "-----BEGIN PRIVATE KEY-----\n", 0o600},
		{"empty", "", 0o640},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, tc.name)
		// Twice: the second replaces the first.
		for _, data := range []string{"old", tc.data} {
			if err := WriteFile(path, []byte(data), tc.perm); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.data || fi.Mode().Perm() != tc.perm {
			t.Errorf("%s: read %q with mode %v, want %q with %v", tc.name, got, fi.Mode().Perm(), tc.data, tc.perm)
		}
	}
	assertOnly(t, dir, "empty", "report.md", "site.key")
}

// TestWriteFailureKeepsOldFile: a failed write leaves the old file whole and no
// temporary file behind, and the error names the file.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.txt")
	if err := WriteFile(path, []byte("the old model"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := Write(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half of the new")
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v: want one wrapping %v and naming %s", err, boom, path)
	}
	if got, _ := os.ReadFile(path); string(got) != "the old model" {
		t.Errorf("after a failed write the file holds %q", got)
	}
	assertOnly(t, dir, "model.txt")
}

func TestWriteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nowhere", "x.json")
	if err := WriteFile(path, []byte("{}"), 0o644); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v: want one naming %s", err, path)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("syncing a missing directory succeeded")
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %v, want %v", got, names)
	}
}
