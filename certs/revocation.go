package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// RevocationList is the consortium's revocation list file (crl.pem, written by
// Revoke), cached for checks on every call rather than only at the TLS handshake:
// connections are long-lived, and a revocation must not wait for the next one.
//
// Revoked stats the file on every call and parses it again only when it changed
// (another file, size or modification time; Revoke replaces the file by renaming a
// new one over it), checking the signature against the CA each time it does. A
// missing file means nothing is revoked; a file that cannot be read, parsed or
// verified is an error on every call until it is replaced, so that a damaged list
// fails closed. A nil *RevocationList revokes nothing.
//
// RevocationList is safe for concurrent use.
type RevocationList struct {
	file string
	ca   *x509.Certificate

	mu      sync.Mutex
	loaded  bool        // the fields below describe the file as last seen
	stat    fs.FileInfo // nil when the file was missing
	serials map[string]bool
	err     error
}

// NewRevocationList returns the list in file, signed by ca. Nothing is read until the
// first Revoked.
func NewRevocationList(file string, ca *x509.Certificate) *RevocationList {
	return &RevocationList{file: file, ca: ca}
}

// LoadRevocationList returns the revocation list a party's files name (f.CRL, signed
// by the CA in f.CA), or nil, which revokes nothing, when f names none. It reads the
// list once, so that a damaged one is found at start.
func LoadRevocationList(f Files) (*RevocationList, error) {
	if f.CRL == "" {
		return nil, nil
	}
	ca, err := LoadCert(f.CA)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	l := NewRevocationList(f.CRL, ca)
	if _, err := l.serialsNow(); err != nil {
		return nil, err
	}
	return l, nil
}

// File returns the list's file name.
func (l *RevocationList) File() string {
	if l == nil {
		return ""
	}
	return l.file
}

// Revoked reports whether leaf is on the list as the file stands now. The error,
// which names the file, means the list could not be checked: refuse the caller.
func (l *RevocationList) Revoked(leaf *x509.Certificate) (bool, error) {
	if l == nil {
		return false, nil
	}
	if leaf == nil || leaf.SerialNumber == nil {
		return false, errors.New("revocation check: no certificate")
	}
	serials, err := l.serialsNow()
	if err != nil {
		return false, err
	}
	return serials[leaf.SerialNumber.String()], nil
}

// serialsNow returns the revoked serials of the file as it stands, re-reading it if
// it changed since the last call.
func (l *RevocationList) serialsNow() (map[string]bool, error) {
	st, err := os.Stat(l.file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("revocation list %s: %w", l.file, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded && sameVersion(l.stat, st) {
		return l.serials, l.err
	}
	l.loaded, l.stat, l.serials, l.err = true, st, nil, nil
	if st == nil {
		return nil, nil
	}
	l.serials, l.err = Revoked(l.file, l.ca)
	if l.err != nil {
		l.err = fmt.Errorf("revocation list: %w", l.err)
	} else if l.serials == nil {
		// Removed between the Stat and the read: check again next time.
		l.loaded = false
	}
	return l.serials, l.err
}

// sameVersion reports whether two stats (nil for a missing file) show the same
// version of a file.
func sameVersion(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// PeerCertificate returns the certificate of a gRPC call's peer that the TLS
// handshake verified. It fails on a connection without TLS.
func PeerCertificate(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("%w: no peer in context", ErrNoIdentity)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, fmt.Errorf("%w: connection from %s is not TLS", ErrNoIdentity, p.Addr)
	}
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, fmt.Errorf("%w: peer certificate not verified", ErrNoIdentity)
	}
	return info.State.VerifiedChains[0][0], nil
}
