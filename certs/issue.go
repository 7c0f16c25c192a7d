package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// clockSkew back-dates every certificate so that parties whose clocks run a little
// behind the issuer's still accept it.
const clockSkew = 5 * time.Minute

// Default validity periods.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 2 * 365 * 24 * time.Hour
)

// CA is the consortium's certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// KeyPair is an issued certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed consortium CA named after the consortium, valid from now
// for validity.
func NewCA(consortium string, now time.Time, validity time.Duration) (*CA, error) {
	if consortium == "" {
		return nil, errors.New("new CA: empty consortium name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA: generating key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: consortium + " CA", Organization: []string{consortium}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new CA: signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Request describes a certificate to issue.
type Request struct {
	Role Role
	ID   string
	// DNSNames and IPs are the server's subject alternative names; only the
	// aggregator's certificate carries them.
	DNSNames []string
	IPs      []net.IP
	// NotBefore and NotAfter bound the validity; zero values mean from now (less a
	// small allowance for clock skew) for DefaultLeafValidity.
	NotBefore, NotAfter time.Time
}

// Issue signs a new key pair for req. The aggregator's certificate is for TLS server
// authentication only; site and admin certificates for client authentication only, so
// a site cannot pose as the aggregator.
func (ca *CA) Issue(req Request) (*KeyPair, error) {
	if !req.Role.valid() {
		return nil, fmt.Errorf("issue: unknown role %q", req.Role)
	}
	if err := ValidID(req.ID); err != nil {
		return nil, fmt.Errorf("issue %s: %w", req.Role, err)
	}
	if req.Role != RoleAggregator && (len(req.DNSNames) > 0 || len(req.IPs) > 0) {
		return nil, fmt.Errorf("issue %s %s: only the aggregator's certificate carries DNS names or IPs", req.Role, req.ID)
	}
	now := time.Now()
	if req.NotBefore.IsZero() {
		req.NotBefore = now.Add(-clockSkew)
	}
	if req.NotAfter.IsZero() {
		req.NotAfter = now.Add(DefaultLeafValidity)
	}
	if !req.NotAfter.After(req.NotBefore) {
		return nil, fmt.Errorf("issue %s %s: not-after %s is not after not-before %s", req.Role, req.ID, req.NotAfter, req.NotBefore)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue %s %s: generating key: %w", req.Role, req.ID, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issue %s %s: %w", req.Role, req.ID, err)
	}
	id := Identity{Role: req.Role, ID: req.ID}
	eku := x509.ExtKeyUsageClientAuth
	if req.Role == RoleAggregator {
		eku = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         req.ID,
			OrganizationalUnit: []string{string(req.Role)},
			Organization:       ca.Cert.Subject.Organization,
		},
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
		URIs:                  []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue %s %s: signing: %w", req.Role, req.ID, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue %s %s: %w", req.Role, req.ID, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// newSerial returns a random 128-bit serial number, as RFC 5280 recommends.
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial, nil
}
