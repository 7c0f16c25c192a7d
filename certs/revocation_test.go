package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestRevocationList follows one list through the changes of its file: each step
// changes the file and then checks every site.
func TestRevocationList(t *testing.T) {
	dir := consortium(t)
	other := consortium(t)
	crl := filepath.Join(dir, "crl.pem")
	ca := must(LoadCert(filepath.Join(dir, "ca.crt")))
	leaf := map[string]*x509.Certificate{}
	for _, s := range []string{"a", "b", "c"} {
		leaf[s] = must(LoadCert(SiteFiles(dir, s).Cert))
	}
	l := NewRevocationList(crl, ca)
	revoke := func(site string) func(t *testing.T) {
		return func(t *testing.T) {
			if err := Revoke(dir, SiteFiles(dir, site).Cert); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(b []byte) func(t *testing.T) {
		return func(t *testing.T) {
			if err := os.WriteFile(crl, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var saved []byte
	save := func(t *testing.T) {
		var err error
		if saved, err = os.ReadFile(crl); err != nil {
			t.Fatal(err)
		}
	}
	if err := Revoke(other, SiteFiles(other, "a").Cert); err != nil {
		t.Fatal(err)
	}
	foreign := must(os.ReadFile(filepath.Join(other, "crl.pem")))
	tests := []struct {
		name    string
		change  func(t *testing.T)
		revoked []string // of a, b, c
		wantErr string   // every check fails with this
	}{
		{"no list yet", nil, nil, ""},
		{"b revoked", revoke("b"), []string{"b"}, ""},
		{"b again: no change", revoke("b"), []string{"b"}, ""},
		{"c revoked too", func(t *testing.T) { revoke("c")(t); save(t) }, []string{"b", "c"}, ""},
		{"damaged", write([]byte("garbage")), nil, "no PEM X509 CRL block"},
		{"still damaged on the next call", nil, nil, "no PEM X509 CRL block"},
		{"signed by another CA", write(foreign), nil, "not signed by the consortium CA"},
		{"restored", func(t *testing.T) { write(saved)(t) }, []string{"b", "c"}, ""},
		{"removed", func(t *testing.T) { os.Remove(crl) }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.change != nil {
				tt.change(t)
			}
			for _, s := range []string{"a", "b", "c"} {
				got, err := l.Revoked(leaf[s])
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), crl) {
						t.Fatalf("site %s: %v, %v; want an error naming %s: %s", s, got, err, crl, tt.wantErr)
					}
					continue
				}
				want := false
				for _, r := range tt.revoked {
					want = want || r == s
				}
				if err != nil || got != want {
					t.Fatalf("site %s: revoked %v, %v; want %v", s, got, err, want)
				}
			}
		})
	}

	var none *RevocationList
	if got, err := none.Revoked(leaf["b"]); got || err != nil {
		t.Errorf("nil list: %v, %v", got, err)
	}
	if _, err := l.Revoked(nil); err == nil {
		t.Error("a nil certificate checked as not revoked")
	}
}

func TestLoadRevocationList(t *testing.T) {
	dir := consortium(t)
	f := AggregatorFiles(dir)
	l, err := LoadRevocationList(f)
	if err != nil || l == nil || l.File() != f.CRL {
		t.Fatalf("load with no list yet: %v, %v", l, err)
	}
	if err := os.WriteFile(f.CRL, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRevocationList(f); err == nil || !strings.Contains(err.Error(), f.CRL) {
		t.Errorf("damaged list at start: %v", err)
	}
	f.CRL = ""
	if l, err := LoadRevocationList(f); l != nil || err != nil {
		t.Errorf("no list named: %v, %v", l, err)
	}
}

// TestRevocationListConcurrent checks sites while the list is rewritten.
func TestRevocationListConcurrent(t *testing.T) {
	dir := consortium(t)
	ca := must(LoadCert(filepath.Join(dir, "ca.crt")))
	b := must(LoadCert(SiteFiles(dir, "b").Cert))
	l := NewRevocationList(filepath.Join(dir, "crl.pem"), ca)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Revoked(b); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for _, s := range []string{"a", "b", "c"} {
		if err := Revoke(dir, SiteFiles(dir, s).Cert); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got, err := l.Revoked(b); !got || err != nil {
		t.Fatalf("after revoking: %v, %v", got, err)
	}
}
