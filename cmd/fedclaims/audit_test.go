package main

import (
	"bytes"
	"context"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
)

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Init(dir, certs.Options{Sites: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	pair, _, err := certs.LoadPair(certs.SiteFiles(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(path, audit.Options{Actor: "site/a", Signer: pair.PrivateKey.(crypto.Signer)})
	if err != nil {
		t.Fatal(err)
	}
	for round := uint64(1); round <= 4; round++ {
		if _, err := l.Append(context.Background(), audit.Entry{Type: audit.Upload, Federation: "f", Round: round, Site: "a", Fields: map[string]string{"sha256": audit.SHA256([]byte{byte(round)})}}); err != nil {
			t.Fatal(err)
		}
	}
	_, head := l.Head()
	l.Close()

	verify := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"audit", "verify"}, args...), &out, &errOut)
		return out.String(), err
	}
	out, err := verify(path, "--cert", certs.SiteFiles(dir, "a").Cert, "--head", head)
	if err != nil || !strings.Contains(out, "intact, 4 entries") {
		t.Fatalf("intact log: %q, %v", out, err)
	}
	if _, err := verify(path, "--cert", certs.SiteFiles(dir, "b").Cert); err == nil || !strings.Contains(err.Error(), "line 1 (seq 1): bad signature") {
		t.Errorf("another site's key: %v", err)
	}

	b, _ := os.ReadFile(path)
	third := bytes.Index(b, []byte(`"round":3`))
	b[third+len(`"round":`)] = '5'
	os.WriteFile(path, b, 0o600)
	_, err = verify(path)
	if err == nil || !strings.Contains(err.Error(), "line 3 (seq 3): hash mismatch") || !strings.Contains(err.Error(), path) {
		t.Errorf("one byte changed: %v", err)
	}
	if _, err := verify(filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("a missing file verified")
	}
}
