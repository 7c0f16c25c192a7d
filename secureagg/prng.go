package secureagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
)

// ctrPRNG is AES-256 in counter mode under a fresh key from crypto/rand: the
// generate function of NIST SP 800-90A's CTR_DRBG, without reseeding. It feeds
// lattigo's ring samplers for encryption, where lattigo's own blake2b XOF spent
// a third of the encryption time; with AES-NI the keystream is nearly free.
// Each instance serves one goroutine.
type ctrPRNG struct {
	stream cipher.Stream
}

func newCTRPRNG() (*ctrPRNG, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("secureagg: seeding the encryption PRNG: %w", err)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("secureagg: encryption PRNG: %w", err)
	}
	var iv [aes.BlockSize]byte
	return &ctrPRNG{stream: cipher.NewCTR(block, iv[:])}, nil
}

// Read fills b with keystream.
func (p *ctrPRNG) Read(b []byte) (int, error) {
	clear(b)
	p.stream.XORKeyStream(b, b)
	return len(b), nil
}
