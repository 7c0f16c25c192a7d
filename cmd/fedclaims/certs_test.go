package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCertsCommands(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "pki")
	var out, errOut bytes.Buffer
	run1 := func(args ...string) error {
		out.Reset()
		errOut.Reset()
		return run(context.Background(), args, &out, &errOut)
	}
	if err := run1("certs", "init", "--out", ca, "--sites", "a,b", "--server-names", "agg.local,10.1.2.3"); err != nil {
		t.Fatalf("certs init: %v", err)
	}
	for _, want := range []string{"fedclaims://aggregator/aggregator", "fedclaims://admin/admin", "fedclaims://site/a", "fedclaims://site/b"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("certs init output lacks %s:\n%s", want, out.String())
		}
	}
	st, err := os.Stat(filepath.Join(ca, "sites", "a.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("sites/a.key: %v %v", st, err)
	}
	if err := run1("certs", "init", "--out", ca, "--sites", "c"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second init: %v", err)
	}
	joiner := filepath.Join(dir, "site-d")
	if err := run1("certs", "issue", "--ca", ca, "--site", "d", "--out", joiner); err != nil {
		t.Fatalf("certs issue: %v", err)
	}
	if !strings.Contains(out.String(), "fedclaims://site/d") {
		t.Errorf("certs issue output: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(joiner, "ca.crt")); err != nil {
		t.Error(err)
	}
	if err := run1("certs", "issue", "--ca", ca, "--site", "Bad/Id"); err == nil {
		t.Error("issue accepted a bad site id")
	}
	if err := run1("certs", "revoke", "--ca", ca, "--site", "b"); err != nil {
		t.Fatalf("certs revoke: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ca, "crl.pem")); err != nil {
		t.Error(err)
	}
	if err := run1("certs", "init", "--sites", "a"); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("init without --out: %v", err)
	}
}
