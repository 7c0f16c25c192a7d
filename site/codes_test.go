package site

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "codes.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	for path, body := range map[string]string{
		good: "- pattern: 'LOCAL//(.*)'\n  system: ICD10\n  code: $1\n",
		bad:  "- pattern: 'LOCAL//(.*)'\n  drop: true\n  code: $1\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, codes, wantErr string
	}{
		{"none", "", ""},
		{"good", good, ""},
		{"bad rule", bad, "key codes: codes file " + bad + ": rule 1 (line 1): field drop"},
		{"missing", filepath.Join(dir, "missing.yaml"), "key codes: codes file: open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadFile(writeYAML(t, goodYAML+"codes: '"+tc.codes+"'\n"))
			if tc.wantErr == "" {
				if err != nil || c.Codes != tc.codes {
					t.Fatalf("got %q, %v; want codes %q", c.Codes, err, tc.codes)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want a config error containing %q", err, tc.wantErr)
			}
		})
	}
}
