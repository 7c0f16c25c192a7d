package secureagg

import (
	"encoding/binary"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/ring"
)

// Version is the wire format version, the first byte of every message.
const Version byte = 1

// kind is the second byte of every message, so that one message type is never
// decoded as another.
type kind byte

const (
	kindPublicKeyShare kind = iota + 1
	kindPublicKey
	kindShamirShare
	kindChunk
	kindSumChunk
	kindShareChunk
	kindSealedShamirShare
	kindPartyState
)

func (k kind) String() string {
	switch k {
	case kindPublicKeyShare:
		return "public-key share"
	case kindPublicKey:
		return "public key"
	case kindShamirShare:
		return "shamir share"
	case kindChunk:
		return "chunk"
	case kindSumChunk:
		return "sum chunk"
	case kindShareChunk:
		return "decryption share"
	case kindSealedShamirShare:
		return "sealed shamir share"
	case kindPartyState:
		return "party state"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// SiteID identifies a site within a federation.
type SiteID uint32

// maxFederationID bounds the federation id, which is length-prefixed by one byte.
const maxFederationID = 255

// Header binds a message to its federation, round, sender and position.
// Fields that do not apply to a message type are zero.
type Header struct {
	Params     ParamsID
	Federation string
	Round      uint64
	Site       SiteID // sender; for a Shamir share, the dealer
	Index      uint32 // chunk index; for a Shamir share, the recipient
	Total      uint32 // number of chunks in the model
}

func (h Header) String() string {
	return fmt.Sprintf("(params %d, federation %q, round %d, site %d, index %d of %d)",
		h.Params, h.Federation, h.Round, h.Site, h.Index, h.Total)
}

func (h Header) size() int { return 2 + 2 + 1 + len(h.Federation) + 8 + 4 + 4 + 4 }

func (h Header) append(b []byte, k kind) ([]byte, error) {
	if len(h.Federation) > maxFederationID {
		return nil, fmt.Errorf("secureagg: federation id of %d bytes exceeds %d", len(h.Federation), maxFederationID)
	}
	b = append(b, Version, byte(k))
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Params))
	b = append(b, byte(len(h.Federation)))
	b = append(b, h.Federation...)
	b = binary.LittleEndian.AppendUint64(b, h.Round)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Site))
	b = binary.LittleEndian.AppendUint32(b, h.Index)
	b = binary.LittleEndian.AppendUint32(b, h.Total)
	return b, nil
}

// decodeHeader reads a header of kind k and returns the rest of p.
func decodeHeader(p []byte, k kind) (Header, []byte, error) {
	var h Header
	if len(p) < 5 {
		return h, nil, fmt.Errorf("%w: %s: %d bytes, too short for a header", ErrMalformed, k, len(p))
	}
	if p[0] != Version {
		return h, nil, fmt.Errorf("%w: %s: version %d, want %d", ErrMalformed, k, p[0], Version)
	}
	if kind(p[1]) != k {
		return h, nil, fmt.Errorf("%w: got a %s where a %s was expected", ErrMalformed, kind(p[1]), k)
	}
	h.Params = ParamsID(binary.LittleEndian.Uint16(p[2:]))
	n := int(p[4])
	p = p[5:]
	if len(p) < n+20 {
		return h, nil, fmt.Errorf("%w: %s: header truncated", ErrMalformed, k)
	}
	h.Federation = string(p[:n])
	p = p[n:]
	h.Round = binary.LittleEndian.Uint64(p)
	h.Site = SiteID(binary.LittleEndian.Uint32(p[8:]))
	h.Index = binary.LittleEndian.Uint32(p[12:])
	h.Total = binary.LittleEndian.Uint32(p[16:])
	return h, p[20:], nil
}

// appendPoly writes the coefficients of a one-modulus polynomial, 8 bytes each.
func appendPoly(b []byte, pol ring.Poly) []byte {
	for _, c := range pol.Coeffs[0] {
		b = binary.LittleEndian.AppendUint64(b, c)
	}
	return b
}

// decodePoly fills pol from p, checking that every coefficient is reduced modulo q,
// and returns the rest of p.
func decodePoly(p []byte, pol ring.Poly, q uint64, k kind, field string) ([]byte, error) {
	coeffs := pol.Coeffs[0]
	if len(p) < 8*len(coeffs) {
		return nil, fmt.Errorf("%w: %s: field %s: %d bytes, want %d", ErrMalformed, k, field, len(p), 8*len(coeffs))
	}
	for i := range coeffs {
		c := binary.LittleEndian.Uint64(p[8*i:])
		if c >= q {
			return nil, fmt.Errorf("%w: %s: field %s: coefficient %d is not reduced modulo q", ErrMalformed, k, field, i)
		}
		coeffs[i] = c
	}
	return p[8*len(coeffs):], nil
}

func polyBytes(p Parameters) int { return 8 * p.N() }

// decodeFor decodes the header of a message and the parameters it names.
func decodeFor(p []byte, k kind) (Header, Parameters, []byte, error) {
	h, rest, err := decodeHeader(p, k)
	if err != nil {
		return h, Parameters{}, nil, err
	}
	params, err := parametersByID(h.Params)
	if err != nil {
		return h, Parameters{}, nil, fmt.Errorf("%s %s: %w", k, h, err)
	}
	return h, params, rest, nil
}

func trailing(rest []byte, k kind) error {
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, k, len(rest))
	}
	return nil
}

// checkReduced reports the first little-endian coefficient of p not below q.
func checkReduced(p []byte, q uint64) error {
	for i := 0; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:]) >= q {
			return fmt.Errorf("coefficient %d is not reduced modulo q", i/8)
		}
	}
	return nil
}

// addBytes adds the little-endian coefficients of p to sum modulo q; both
// operands are below q, so one conditional subtraction reduces.
func addBytes(sum []uint64, p []byte, q uint64) {
	p = p[:8*len(sum)]
	for i := range sum {
		s := sum[i] + binary.LittleEndian.Uint64(p[8*i:])
		if s >= q {
			s -= q
		}
		sum[i] = s
	}
}
