package fedclaimspb

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/fedclaims/fedclaims/certs"
)

// ErrShareKey reports a share key that does not verify.
var ErrShareKey = errors.New("bad share key")

// shareKeyMessage is what a share key's signature covers: a domain label, the
// federation, the site and the key, each length-prefixed so no two tuples encode alike.
func shareKeyMessage(federation, site string, pub []byte) []byte {
	var b []byte
	for _, f := range [][]byte{[]byte("fedclaims share key v1"), []byte(federation), []byte(site), pub} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// SignShareKey binds a site's share-encryption public key to its certificate for one
// federation: signer is the certificate's key.
func SignShareKey(signer crypto.Signer, cert *x509.Certificate, federation string, pub []byte) (*SignedKey, error) {
	id, err := certs.IdentityOf(cert)
	if err != nil {
		return nil, fmt.Errorf("signing share key: %w", err)
	}
	if id.Role != certs.RoleSite {
		return nil, fmt.Errorf("signing share key: %s is not a site", id)
	}
	msg := shareKeyMessage(federation, id.ID, pub)
	var sig []byte
	switch signer.Public().(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
	case ed25519.PublicKey:
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("signing share key: unsupported key type %T", signer.Public())
	}
	if err != nil {
		return nil, fmt.Errorf("signing share key: %w", err)
	}
	return &SignedKey{SiteId: id.ID, PublicKey: append([]byte(nil), pub...), Certificate: cert.Raw, Signature: sig}, nil
}

// VerifyShareKey checks a relayed share key: its certificate chains to the consortium
// CA (roots) at now and names site k.SiteId, and its signature covers this federation,
// that site and the key. A site encrypts Shamir shares only to keys that pass.
func VerifyShareKey(k *SignedKey, federation string, roots *x509.CertPool, now time.Time) error {
	if k == nil {
		return fmt.Errorf("%w: missing", ErrShareKey)
	}
	cert, err := x509.ParseCertificate(k.Certificate)
	if err != nil {
		return fmt.Errorf("%w: site %q: %w", ErrShareKey, k.SiteId, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("%w: site %q: %w", ErrShareKey, k.SiteId, err)
	}
	id, err := certs.IdentityOf(cert)
	if err != nil {
		return fmt.Errorf("%w: site %q: %w", ErrShareKey, k.SiteId, err)
	}
	if id.Role != certs.RoleSite || id.ID != k.SiteId {
		return fmt.Errorf("%w: key for site %q signed by %s", ErrShareKey, k.SiteId, id)
	}
	algo := x509.ECDSAWithSHA256
	if _, ok := cert.PublicKey.(ed25519.PublicKey); ok {
		algo = x509.PureEd25519
	}
	if err := cert.CheckSignature(algo, shareKeyMessage(federation, k.SiteId, k.PublicKey), k.Signature); err != nil {
		return fmt.Errorf("%w: site %q: %w", ErrShareKey, k.SiteId, err)
	}
	return nil
}
