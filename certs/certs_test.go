package certs

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// consortium makes a consortium directory with sites a, b and c.
func consortium(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := Init(dir, Options{Consortium: "test", Sites: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitLayout(t *testing.T) {
	dir := consortium(t)
	for _, f := range []Files{AggregatorFiles(dir), AdminFiles(dir), SiteFiles(dir, "a"), SiteFiles(dir, "b"), SiteFiles(dir, "c")} {
		st, err := os.Stat(f.Key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f.Key, st.Mode().Perm())
		}
		if _, _, err := LoadPair(f); err != nil {
			t.Error(err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "ca.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key: %v, %v", st, err)
	}
	agg, err := LoadCert(AggregatorFiles(dir).Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(agg.DNSNames, "localhost") || len(agg.IPAddresses) != 2 || !agg.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("aggregator SANs: %v %v", agg.DNSNames, agg.IPAddresses)
	}
	if !slices.Equal(agg.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("aggregator EKU %v", agg.ExtKeyUsage)
	}
	site, _ := LoadCert(SiteFiles(dir, "b").Cert)
	id, err := IdentityOf(site)
	if err != nil || id != (Identity{RoleSite, "b"}) {
		t.Errorf("site b identity %v, %v", id, err)
	}
	if site.URIs[0].String() != "fedclaims://site/b" || site.Subject.CommonName != "b" {
		t.Errorf("site b subject %v URIs %v", site.Subject, site.URIs)
	}
	if err := Init(dir, Options{Sites: []string{"x"}}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second init: %v", err)
	}
}

func TestInitRejects(t *testing.T) {
	for _, sites := range [][]string{{"a", "a"}, {"A"}, {"../x"}, {""}} {
		dir := t.TempDir()
		if err := Init(dir, Options{Sites: sites}); err == nil {
			t.Errorf("sites %q: no error", sites)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("sites %q: wrote %d entries", sites, len(ents))
		}
	}
}

func TestServerNames(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{ServerNames: []string{"agg.example.org", "10.0.0.7"}}); err != nil {
		t.Fatal(err)
	}
	agg, err := LoadCert(AggregatorFiles(dir).Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(agg.DNSNames, []string{"agg.example.org"}) || len(agg.IPAddresses) != 1 || agg.IPAddresses[0].String() != "10.0.0.7" {
		t.Errorf("SANs %v %v", agg.DNSNames, agg.IPAddresses)
	}
}

func TestIssueSite(t *testing.T) {
	dir := consortium(t)
	out := t.TempDir()
	kp, err := IssueSite(dir, out, "d", 0)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := IdentityOf(kp.Cert); id != (Identity{RoleSite, "d"}) {
		t.Errorf("identity %v", id)
	}
	ca, _ := LoadCert(filepath.Join(dir, "ca.crt"))
	got, err := LoadCert(filepath.Join(out, "ca.crt"))
	if err != nil || !got.Equal(ca) {
		t.Errorf("ca.crt copy: %v", err)
	}
	if _, err := IssueSite(dir, out, "d", 0); err == nil {
		t.Error("reissue over an existing certificate succeeded")
	}
	if _, err := IssueSite(dir, dir, "e", 0); err != nil {
		t.Errorf("issue into the CA's own directory: %v", err)
	}
	other := consortium(t)
	if _, err := IssueSite(other, out, "f", 0); err == nil {
		t.Error("issue into a directory holding another CA succeeded")
	}
}

// handshake runs one TLS handshake over loopback and a one-byte exchange, returning
// the identity the server saw and each side's error.
func handshake(t *testing.T, server, client *tls.Config) (Identity, error, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		id  Identity
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		id, err := ConnIdentity(tc.ConnectionState())
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- result{id, err}
	}()
	clientErr := func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(c, client)
		if err := tc.Handshake(); err != nil {
			return err
		}
		// In TLS 1.3 the server judges the client certificate after the client's
		// handshake returns; its verdict arrives with the first read.
		_, err = io.ReadFull(tc, make([]byte, 1))
		return err
	}()
	r := <-done
	return r.id, r.err, clientErr
}

func writePair(t *testing.T, dir, name string, kp *KeyPair, caFile string) Files {
	t.Helper()
	f := Files{CA: caFile, Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	if err := WriteKeyPair(f, kp); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestHandshake(t *testing.T) {
	dir := consortium(t)
	other := consortium(t)
	scratch := t.TempDir()
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.Issue(Request{Role: RoleSite, ID: "old", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expiredFiles := writePair(t, scratch, "old", expired, filepath.Join(dir, "ca.crt"))
	if err := Revoke(dir, SiteFiles(dir, "c").Cert); err != nil {
		t.Fatal(err)
	}
	// A client trusting our CA but holding another consortium's site certificate.
	foreign := SiteFiles(other, "a")
	foreign.CA = filepath.Join(dir, "ca.crt")

	server := must(ServerTLS(AggregatorFiles(dir)))
	tls12 := must(ClientTLS(SiteFiles(dir, "a"), "127.0.0.1"))
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	noCert := must(ClientTLS(SiteFiles(dir, "a"), ""))
	noCert.Certificates = nil

	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		want   Identity // zero: the handshake must fail
		why    string   // a fragment of the failing side's error
	}{
		{"site", server, must(ClientTLS(SiteFiles(dir, "a"), "")), Identity{RoleSite, "a"}, ""},
		{"site by IP", server, must(ClientTLS(SiteFiles(dir, "b"), "127.0.0.1")), Identity{RoleSite, "b"}, ""},
		{"admin", server, must(ClientTLS(AdminFiles(dir), "")), Identity{RoleAdmin, "admin"}, ""},
		{"other CA", server, must(loadUnchecked(foreign, "")), Identity{}, "unknown authority"},
		{"no certificate", server, noCert, Identity{}, "didn't provide a certificate"},
		{"TLS 1.2", server, tls12, Identity{}, "unsupported versions"},
		{"expired", server, must(ClientTLS(expiredFiles, "")), Identity{}, "expired"},
		{"revoked", server, must(ClientTLS(SiteFiles(dir, "c"), "")), Identity{}, "certificate revoked"},
		{"server from other CA", must(ServerTLS(AggregatorFiles(other))), must(ClientTLS(SiteFiles(dir, "a"), "")), Identity{}, "unknown authority"},
		{"wrong server name", server, must(ClientTLS(SiteFiles(dir, "a"), "agg.example.org")), Identity{}, "not agg.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, serr, cerr := handshake(t, tt.server, tt.client)
			if tt.want == (Identity{}) {
				if serr == nil && cerr == nil {
					t.Fatalf("handshake succeeded as %v", id)
				}
				if msg := fmt.Sprintf("server: %v; client: %v", serr, cerr); !strings.Contains(msg, tt.why) {
					t.Errorf("%s; want %q", msg, tt.why)
				}
				return
			}
			if serr != nil || cerr != nil {
				t.Fatalf("server: %v; client: %v", serr, cerr)
			}
			if id != tt.want {
				t.Errorf("server saw %v, want %v", id, tt.want)
			}
		})
	}
}

// loadUnchecked builds a client configuration like ClientTLS but without checking
// that the certificate is signed by f.CA, as an impostor would.
func loadUnchecked(f Files, serverName string) (*tls.Config, error) {
	pair, _, err := LoadPair(f)
	if err != nil {
		return nil, err
	}
	ca, err := LoadCert(f.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "localhost"}, nil
}

func TestClientTLSRefusesForeignPair(t *testing.T) {
	dir, other := consortium(t), consortium(t)
	f := SiteFiles(other, "a")
	f.CA = filepath.Join(dir, "ca.crt")
	if _, err := ClientTLS(f, ""); err == nil {
		t.Error("ClientTLS accepted a certificate from another CA")
	}
	if _, err := ServerTLS(SiteFiles(dir, "a")); err == nil {
		t.Error("ServerTLS accepted a site certificate")
	}
	if _, err := ClientTLS(AggregatorFiles(dir), ""); err == nil {
		t.Error("ClientTLS accepted the aggregator certificate")
	}
}

func TestRevokeIdempotentAndDamagedCRL(t *testing.T) {
	dir := consortium(t)
	for range 2 {
		if err := Revoke(dir, SiteFiles(dir, "b").Cert); err != nil {
			t.Fatal(err)
		}
	}
	ca, _ := LoadCert(filepath.Join(dir, "ca.crt"))
	b, _ := LoadCert(SiteFiles(dir, "b").Cert)
	got, err := Revoked(filepath.Join(dir, "crl.pem"), ca)
	if err != nil || len(got) != 1 || !got[b.SerialNumber.String()] {
		t.Fatalf("revoked %v, %v", got, err)
	}
	// A damaged list must refuse everyone rather than admit the revoked.
	if err := os.WriteFile(filepath.Join(dir, "crl.pem"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, serr, cerr := handshake(t, must(ServerTLS(AggregatorFiles(dir))), must(ClientTLS(SiteFiles(dir, "a"), "")))
	if serr == nil && cerr == nil {
		t.Error("handshake succeeded with a damaged revocation list")
	}
}

func TestIdentityOf(t *testing.T) {
	u := func(s string) *url.URL {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		want Identity
	}{
		{"site", &x509.Certificate{Subject: pkix.Name{CommonName: "a", OrganizationalUnit: []string{"site"}}, URIs: []*url.URL{u("fedclaims://site/a")}}, Identity{RoleSite, "a"}},
		{"aggregator", &x509.Certificate{Subject: pkix.Name{CommonName: "aggregator", OrganizationalUnit: []string{"aggregator"}}, URIs: []*url.URL{u("fedclaims://aggregator/aggregator")}}, Identity{RoleAggregator, "aggregator"}},
		{"nil", nil, Identity{}},
		{"no URI", &x509.Certificate{Subject: pkix.Name{CommonName: "a", OrganizationalUnit: []string{"site"}}}, Identity{}},
		{"two URIs", &x509.Certificate{Subject: pkix.Name{CommonName: "a", OrganizationalUnit: []string{"site"}}, URIs: []*url.URL{u("fedclaims://site/a"), u("fedclaims://site/b")}}, Identity{}},
		{"CN disagrees", &x509.Certificate{Subject: pkix.Name{CommonName: "b", OrganizationalUnit: []string{"site"}}, URIs: []*url.URL{u("fedclaims://site/a")}}, Identity{}},
		{"OU disagrees", &x509.Certificate{Subject: pkix.Name{CommonName: "a", OrganizationalUnit: []string{"admin"}}, URIs: []*url.URL{u("fedclaims://site/a")}}, Identity{}},
		{"unknown role", &x509.Certificate{Subject: pkix.Name{CommonName: "a", OrganizationalUnit: []string{"root"}}, URIs: []*url.URL{u("fedclaims://root/a")}}, Identity{}},
		{"bad id", &x509.Certificate{Subject: pkix.Name{CommonName: "A/B", OrganizationalUnit: []string{"site"}}, URIs: []*url.URL{u("fedclaims://site/A/B")}}, Identity{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IdentityOf(tt.cert)
			if tt.want == (Identity{}) {
				if !errors.Is(err, ErrNoIdentity) {
					t.Errorf("got %v, %v; want ErrNoIdentity", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
