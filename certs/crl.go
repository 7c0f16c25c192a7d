package certs

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// crlValidity is how long a revocation list is declared current; fedclaims parties
// read the newest file on every handshake rather than relying on NextUpdate.
const crlValidity = 365 * 24 * time.Hour

// Revoke adds the certificate in certFile to the revocation list of the consortium
// in caDir (caDir/crl.pem), creating the list on first use. Revoking a certificate
// twice is not an error.
func Revoke(caDir, certFile string) error {
	ca, err := LoadCA(caDir)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	cert, err := LoadCert(certFile)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("revoke: %s was not issued by %s: %w", certFile, caDir, err)
	}
	crlFile := filepath.Join(caDir, "crl.pem")
	var entries []x509.RevocationListEntry
	number := big.NewInt(1)
	old, err := readCRL(crlFile, ca.Cert)
	switch {
	case err == nil:
		entries = old.RevokedCertificateEntries
		if old.Number != nil {
			number.Add(old.Number, big.NewInt(1))
		}
		for _, e := range entries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return nil
			}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("revoke: %w", err)
	}
	now := time.Now()
	entries = append(entries, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: now})
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(crlValidity),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return fmt.Errorf("revoke: signing revocation list: %w", err)
	}
	return atomicfile.WriteFile(crlFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// Revoked returns the serial numbers (decimal) on the revocation list in file, after
// checking the list's signature against ca. A missing file means nothing is revoked;
// a file that exists but cannot be read or verified is an error, so that a damaged
// list fails closed.
func Revoked(file string, ca *x509.Certificate) (map[string]bool, error) {
	crl, err := readCRL(file, ca)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.String()] = true
	}
	return out, nil
}

func readCRL(file string, ca *x509.Certificate) (*x509.RevocationList, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	crl, err := parseCRL(b, ca)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return crl, nil
}

func parseCRL(b []byte, ca *x509.Certificate) (*x509.RevocationList, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		return nil, errors.New("no PEM X509 CRL block")
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("not signed by the consortium CA: %w", err)
	}
	return crl, nil
}
