package certs

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// A consortium directory holds
//
//	ca.crt ca.key            the consortium CA
//	aggregator.crt .key      the aggregator's server certificate
//	admin.crt admin.key      the coordinator's admin certificate
//	sites/<id>.crt <id>.key  one client certificate per site
//	crl.pem                  revoked certificates, once any is revoked
//
// Each party needs only ca.crt, its own pair and crl.pem; ca.key belongs offline.

// Files names the PEM files one party loads: the CA certificate it trusts, its own
// certificate and key, and optionally the CA's revocation list.
type Files struct {
	CA, Cert, Key string
	// CRL, when set, is a PEM revocation list signed by the CA; a missing file means
	// nothing has been revoked yet.
	CRL string
}

// AggregatorFiles names the aggregator's files in a consortium directory.
func AggregatorFiles(dir string) Files {
	return partyFiles(dir, "aggregator")
}

// AdminFiles names the admin's files in a consortium directory.
func AdminFiles(dir string) Files {
	return partyFiles(dir, "admin")
}

// SiteFiles names site id's files in a consortium directory.
func SiteFiles(dir, id string) Files {
	return partyFiles(dir, filepath.Join("sites", id))
}

func partyFiles(dir, base string) Files {
	return Files{
		CA:   filepath.Join(dir, "ca.crt"),
		Cert: filepath.Join(dir, base+".crt"),
		Key:  filepath.Join(dir, base+".key"),
		CRL:  filepath.Join(dir, "crl.pem"),
	}
}

// Options configure a new consortium directory.
type Options struct {
	// Consortium names the CA and goes in every certificate's organization.
	Consortium string
	// Sites are the site ids to issue client certificates for.
	Sites []string
	// ServerNames are the aggregator's DNS names and IP addresses; empty means
	// localhost, 127.0.0.1 and ::1.
	ServerNames []string
	// Admin is the admin certificate's id; empty means "admin".
	Admin string
	// Validity of the leaf certificates; zero means DefaultLeafValidity.
	Validity time.Duration
}

// Init creates a consortium directory: the CA, the aggregator's server certificate,
// the admin certificate and one client certificate per site. It refuses a directory
// that already holds a CA.
func Init(dir string, opts Options) error {
	if opts.Consortium == "" {
		opts.Consortium = "fedclaims"
	}
	if opts.Admin == "" {
		opts.Admin = "admin"
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultLeafValidity
	}
	if len(opts.ServerNames) == 0 {
		opts.ServerNames = []string{"localhost", "127.0.0.1", "::1"}
	}
	seen := map[string]bool{}
	for _, s := range opts.Sites {
		if err := ValidID(s); err != nil {
			return fmt.Errorf("certs init: site %w", err)
		}
		if seen[s] {
			return fmt.Errorf("certs init: site %q listed twice", s)
		}
		seen[s] = true
	}
	var dns []string
	var ips []net.IP
	for _, n := range opts.ServerNames {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	caFile := filepath.Join(dir, "ca.key")
	if _, err := os.Stat(caFile); err == nil {
		return fmt.Errorf("certs init: %s already exists; use a fresh directory or issue into this one", caFile)
	}
	now := time.Now()
	ca, err := NewCA(opts.Consortium, now, max(DefaultCAValidity, opts.Validity))
	if err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	leaf := func(role Role, id string, dns []string, ips []net.IP) Request {
		return Request{Role: role, ID: id, DNSNames: dns, IPs: ips, NotBefore: now.Add(-clockSkew), NotAfter: now.Add(opts.Validity)}
	}
	type issued struct {
		req   Request
		files Files
	}
	all := []issued{
		{leaf(RoleAggregator, "aggregator", dns, ips), AggregatorFiles(dir)},
		{leaf(RoleAdmin, opts.Admin, nil, nil), AdminFiles(dir)},
	}
	for _, s := range opts.Sites {
		all = append(all, issued{leaf(RoleSite, s, nil, nil), SiteFiles(dir, s)})
	}
	// Issue everything before writing anything, so a failure leaves no partial directory.
	pairs := make([]*KeyPair, len(all))
	for i, is := range all {
		if pairs[i], err = ca.Issue(is.req); err != nil {
			return fmt.Errorf("certs init: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "sites"), 0o755); err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	if err := writeCert(filepath.Join(dir, "ca.crt"), ca.Cert); err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	for i, is := range all {
		if err := WriteKeyPair(is.files, pairs[i]); err != nil {
			return fmt.Errorf("certs init: %w", err)
		}
	}
	// The CA key goes last: its presence marks a complete directory.
	caKey, ok := ca.Key.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("certs init: CA key is not ECDSA")
	}
	if err := writeKey(caFile, caKey); err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	return nil
}

// IssueSite adds site id to a consortium: it signs with the CA in caDir and writes
// the site's pair, and a copy of ca.crt, under outDir in the same layout. It refuses
// to overwrite an existing certificate for the site.
func IssueSite(caDir, outDir, id string, validity time.Duration) (*KeyPair, error) {
	if err := ValidID(id); err != nil {
		return nil, fmt.Errorf("certs issue: site %w", err)
	}
	ca, err := LoadCA(caDir)
	if err != nil {
		return nil, fmt.Errorf("certs issue: %w", err)
	}
	files := SiteFiles(outDir, id)
	for _, f := range []string{files.Cert, files.Key} {
		if _, err := os.Stat(f); err == nil {
			return nil, fmt.Errorf("certs issue: %s already exists", f)
		}
	}
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	now := time.Now()
	kp, err := ca.Issue(Request{Role: RoleSite, ID: id, NotBefore: now.Add(-clockSkew), NotAfter: now.Add(validity)})
	if err != nil {
		return nil, fmt.Errorf("certs issue: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(files.Cert), 0o755); err != nil {
		return nil, fmt.Errorf("certs issue: %w", err)
	}
	if existing, err := LoadCert(files.CA); err == nil {
		if !existing.Equal(ca.Cert) {
			return nil, fmt.Errorf("certs issue: %s holds a different CA than %s", files.CA, filepath.Join(caDir, "ca.crt"))
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := writeCert(files.CA, ca.Cert); err != nil {
			return nil, fmt.Errorf("certs issue: %w", err)
		}
	} else {
		return nil, fmt.Errorf("certs issue: %w", err)
	}
	if err := WriteKeyPair(files, kp); err != nil {
		return nil, fmt.Errorf("certs issue: %w", err)
	}
	return kp, nil
}

// LoadCA reads ca.crt and ca.key from a consortium directory and checks they match.
func LoadCA(dir string) (*CA, error) {
	cert, err := LoadCert(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", filepath.Join(dir, "ca.crt"))
	}
	keyFile := filepath.Join(dir, "ca.key")
	key, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", keyFile, filepath.Join(dir, "ca.crt"))
	}
	return &CA{Cert: cert, Key: key}, nil
}

// WriteKeyPair writes kp's certificate to f.Cert (0644) and key to f.Key (0600), each
// through a temporary file renamed into place.
func WriteKeyPair(f Files, kp *KeyPair) error {
	if err := writeKey(f.Key, kp.Key); err != nil {
		return err
	}
	return writeCert(f.Cert, kp.Cert)
}

// LoadCert reads the first certificate of a PEM file.
func LoadCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCert(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cert, nil
}

// ParseCert decodes the first PEM block of b, which must be a certificate.
func ParseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// LoadPair reads f.Cert and f.Key as a TLS certificate and checks that the
// certificate names a fedclaims party.
func LoadPair(f Files) (tls.Certificate, Identity, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, Identity{}, fmt.Errorf("loading %s and %s: %w", f.Cert, f.Key, err)
	}
	id, err := IdentityOf(pair.Leaf)
	if err != nil {
		return tls.Certificate{}, Identity{}, fmt.Errorf("%s: %w", f.Cert, err)
	}
	return pair, id, nil
}

func loadKey(file string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%T, want an ECDSA key", k)
	}
	return ek, nil
}

func writeCert(file string, cert *x509.Certificate) error {
	return atomicfile.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

func writeKey(file string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return atomicfile.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
