package certs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePEM feeds arbitrary bytes to the certificate, key and revocation-list
// parsers: none may panic, and a certificate that parses must either name a party or
// be refused with ErrNoIdentity.
func FuzzParsePEM(f *testing.F) {
	dir := f.TempDir()
	if err := Init(dir, Options{Sites: []string{"a"}}); err != nil {
		f.Fatal(err)
	}
	if err := Revoke(dir, SiteFiles(dir, "a").Cert); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"ca.crt", "sites/a.crt", "sites/a.key", "crl.pem"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ca, err := LoadCert(filepath.Join(dir, "ca.crt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCert(b); err == nil {
			id, err := IdentityOf(c)
			if err != nil && !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("IdentityOf: %v does not wrap ErrNoIdentity", err)
			}
			if err == nil && (!id.Role.valid() || ValidID(id.ID) != nil) {
				t.Fatalf("IdentityOf accepted %+v", id)
			}
		}
		parseKey(b)
		parseCRL(b, ca)
	})
}
