package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flagCase is a command line that must be refused with an error naming want.
type flagCase struct {
	args []string
	want string
}

// checkRefusesFlags runs each case and then cmd --out into a directory it did not
// write: every run must be refused, and that directory left as it was.
func checkRefusesFlags(t *testing.T, cmd string, cases []flagCase) {
	t.Helper()
	other := t.TempDir()
	keep := filepath.Join(other, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, flagCase{[]string{cmd, "--out", other}, "not empty"})
	for _, tt := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fedclaims %s: %v, want an error naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a refused %s touched a directory it did not write: %v", cmd, err)
	}
}
