package secureagg

import (
	"crypto/hpke"
	"fmt"
)

// A Shamir share is secret, but sites connect only to the aggregator, which
// relays the shares. So each share travels sealed to its recipient with HPKE
// (RFC 9180, Go's crypto/hpke): the ML-KEM-768 + X25519 hybrid KEM (the shares
// outlive the session, so a future quantum computer must not open recorded
// traffic), HKDF-SHA256 and AES-256-GCM. The cleartext header is the HPKE info
// string, so a sealed share cannot be replayed under another header.

func transportSuite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.MLKEM768X25519(), hpke.HKDFSHA256(), hpke.AES256GCM()
}

const sealInfo = "fedclaims/secureagg/shamir/v1"

// TransportKey is a site's key pair for receiving sealed Shamir shares. Its
// public half must reach the dealers authenticated (for instance signed under
// the site's certificate): an aggregator that swapped it would read the share.
type TransportKey struct {
	priv hpke.PrivateKey
}

// NewTransportKey generates a transport key pair.
func NewTransportKey() (*TransportKey, error) {
	kem, _, _ := transportSuite()
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("secureagg: transport key: %w", err)
	}
	return &TransportKey{priv: priv}, nil
}

// PublicKey returns the public half, to be given to every dealer.
func (k *TransportKey) PublicKey() []byte { return k.priv.PublicKey().Bytes() }

// MarshalBinary encodes the private key: a version byte, then the key. The
// result is secret.
func (k *TransportKey) MarshalBinary() ([]byte, error) {
	b, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("secureagg: transport key: %w", err)
	}
	return append([]byte{Version}, b...), nil
}

// UnmarshalBinary decodes a private key.
func (k *TransportKey) UnmarshalBinary(p []byte) error {
	if len(p) == 0 || p[0] != Version {
		return fmt.Errorf("%w: transport key: missing or unknown version", ErrMalformed)
	}
	kem, _, _ := transportSuite()
	priv, err := kem.NewPrivateKey(p[1:])
	if err != nil {
		return fmt.Errorf("%w: transport key: %v", ErrMalformed, err)
	}
	k.priv = priv
	return nil
}

// SealedShamirShare is a Shamir share encrypted to its recipient; its header
// is in the clear for routing.
type SealedShamirShare struct {
	Header
	sealed []byte
}

func sealInfoFor(h Header) ([]byte, error) {
	return h.append([]byte(sealInfo), kindShamirShare)
}

// Seal encrypts the share to the recipient's transport public key.
func (s *ShamirShare) Seal(recipient []byte) (*SealedShamirShare, error) {
	kem, kdf, aead := transportSuite()
	pub, err := kem.NewPublicKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("secureagg: recipient %d transport key: %w", s.Index, err)
	}
	plain, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	info, err := sealInfoFor(s.Header)
	if err != nil {
		return nil, err
	}
	sealed, err := hpke.Seal(pub, kdf, aead, info, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("secureagg: sealing shamir share %s: %w", s.Header, err)
	}
	return &SealedShamirShare{Header: s.Header, sealed: sealed}, nil
}

// Open decrypts a sealed share with the recipient's transport key and checks
// that the share inside carries the header outside.
func (s *SealedShamirShare) Open(k *TransportKey) (*ShamirShare, error) {
	_, kdf, aead := transportSuite()
	info, err := sealInfoFor(s.Header)
	if err != nil {
		return nil, err
	}
	plain, err := hpke.Open(k.priv, kdf, aead, info, s.sealed)
	if err != nil {
		return nil, refuse("sealed shamir share", s.Header, fmt.Errorf("%w: does not open: %v", ErrMalformed, err))
	}
	defer clear(plain)
	var share ShamirShare
	if err := share.UnmarshalBinary(plain); err != nil {
		return nil, err
	}
	if share.Header != s.Header {
		return nil, refuse("sealed shamir share", s.Header, fmt.Errorf("%w: inner header %s differs", ErrMalformed, share.Header))
	}
	return &share, nil
}

// MarshalBinary encodes the sealed share.
func (s *SealedShamirShare) MarshalBinary() ([]byte, error) {
	b, err := s.Header.append(nil, kindSealedShamirShare)
	if err != nil {
		return nil, err
	}
	return append(b, s.sealed...), nil
}

// UnmarshalBinary decodes a sealed share; Open authenticates it.
func (s *SealedShamirShare) UnmarshalBinary(p []byte) error {
	h, _, rest, err := decodeFor(p, kindSealedShamirShare)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return fmt.Errorf("%w: sealed shamir share %s: empty ciphertext", ErrMalformed, h)
	}
	*s = SealedShamirShare{Header: h, sealed: append([]byte(nil), rest...)}
	return nil
}
