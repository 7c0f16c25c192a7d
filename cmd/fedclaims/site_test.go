package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSiteCommandRefusesBadConfig: the agent stops at start, with the key or file at
// fault, before it connects anywhere.
func TestSiteCommandRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"certs", "init", "--out", pki, "--sites", "a"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	base := "site_id: a\nfederation_id: fed\naggregator:\n  address: 127.0.0.1:1\ncerts_dir: " + pki +
		"\ndata: [" + filepath.Join(dir, "nodata") + "]\nstate_dir: " + filepath.Join(dir, "state") + "\n"
	tests := []struct {
		name, yaml string
		env        map[string]string
		flags      []string
		want       string
	}{
		{"unknown key", base + "rounds: 3\n", nil, nil, "unknown key rounds"},
		{"invalid value", base + "threads: many\n", nil, nil, "key threads"},
		{"invalid environment", base, map[string]string{"FEDCLAIMS_BACKOFF_MAX": "soon"}, nil, "key backoff.max"},
		{"flag overrides to a bad address", base, nil, []string{"--aggregator-address", "nowhere"}, "key aggregator.address"},
		{"no certificate for the site", base, nil, []string{"--site-id", "b"}, "sites/b"},
		{"no dataset", base, nil, nil, "key data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p := filepath.Join(t.TempDir(), "site.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), append([]string{"site", "--config", p}, tt.flags...), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
}
