package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fedclaims faults refuses an unknown scenario, bad rounds and a directory it did
// not write, before it starts anything.
func TestFaultsRefusesBadFlags(t *testing.T) {
	other := t.TempDir()
	keep := filepath.Join(other, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"faults", "--out", t.TempDir(), "--scenario", "meteor"}, "unknown scenario"},
		{[]string{"faults", "--out", t.TempDir(), "--rounds", "-1"}, "rounds"},
		{[]string{"faults", "--out", other}, "not empty"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fedclaims %s: %v, want an error naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a refused fault run touched a directory it did not write: %v", err)
	}
}
