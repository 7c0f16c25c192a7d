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

// maxBaseFederationID is the longest federation id the rest of the system
// configures (aggregator.Config refuses longer ones); ids up to it are
// length-prefixed by one byte, as in the first wire format.
const maxBaseFederationID = 255

// maxFederationID bounds the federation id of a message, which is the key
// context (KeyContext) of a federation id: the longest configured id with the
// longest key-epoch suffix, "#k" and the 20 digits of the largest uint64, so
// that every epoch of every configured federation fits. Ids longer than
// maxBaseFederationID take the extended length prefix (Header.append).
const maxFederationID = maxBaseFederationID + len("#k18446744073709551615")

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

func (h Header) size() int {
	return 2 + 2 + federationPrefix(len(h.Federation)) + len(h.Federation) + 8 + 4 + 4 + 4
}

// federationPrefix is the size of the length prefix of a federation id of n
// bytes: one byte for 1 to 255 bytes (the first wire format, unchanged), else
// a zero byte and a little-endian uint16. A zero length byte meant an empty id,
// which no message of a valid federation ever carried, so the extension
// changes the meaning of no valid message of the first format.
func federationPrefix(n int) int {
	if n >= 1 && n <= maxBaseFederationID {
		return 1
	}
	return 3
}

func (h Header) append(b []byte, k kind) ([]byte, error) { return h.appendVersion(b, k, Version) }

// appendVersion encodes the header of a message of kind k in format version v
// of that kind.
func (h Header) appendVersion(b []byte, k kind, v byte) ([]byte, error) {
	n := len(h.Federation)
	if n > maxFederationID {
		return nil, fmt.Errorf("secureagg: federation id of %d bytes exceeds %d", n, maxFederationID)
	}
	b = append(b, v, byte(k))
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Params))
	if federationPrefix(n) == 1 {
		b = append(b, byte(n))
	} else {
		b = append(b, 0)
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
	}
	b = append(b, h.Federation...)
	b = binary.LittleEndian.AppendUint64(b, h.Round)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Site))
	b = binary.LittleEndian.AppendUint32(b, h.Index)
	b = binary.LittleEndian.AppendUint32(b, h.Total)
	return b, nil
}

// decodeHeader reads a header of kind k in format Version and returns the
// rest of p.
func decodeHeader(p []byte, k kind) (Header, []byte, error) {
	h, _, rest, err := decodeHeaderVersion(p, k, Version)
	return h, rest, err
}

// decodeHeaderVersion reads a header of kind k in any format version from 1
// to latest, and returns the version and the rest of p.
func decodeHeaderVersion(p []byte, k kind, latest byte) (Header, byte, []byte, error) {
	var h Header
	if len(p) < 5 {
		return h, 0, nil, fmt.Errorf("%w: %s: %d bytes, too short for a header", ErrMalformed, k, len(p))
	}
	v := p[0]
	if v < 1 || v > latest {
		if latest == 1 {
			return h, 0, nil, fmt.Errorf("%w: %s: version %d, want %d", ErrMalformed, k, v, latest)
		}
		return h, 0, nil, fmt.Errorf("%w: %s: version %d, want 1 to %d", ErrMalformed, k, v, latest)
	}
	if kind(p[1]) != k {
		return h, 0, nil, fmt.Errorf("%w: got a %s where a %s was expected", ErrMalformed, kind(p[1]), k)
	}
	h.Params = ParamsID(binary.LittleEndian.Uint16(p[2:]))
	n := int(p[4])
	p = p[5:]
	if n == 0 {
		// Extended length: an id of 0 or more than maxBaseFederationID bytes.
		if len(p) < 2 {
			return h, 0, nil, fmt.Errorf("%w: %s: header truncated", ErrMalformed, k)
		}
		n = int(binary.LittleEndian.Uint16(p))
		p = p[2:]
		if federationPrefix(n) != 3 || n > maxFederationID {
			return h, 0, nil, fmt.Errorf("%w: %s: extended federation id length %d", ErrMalformed, k, n)
		}
	}
	if len(p) < n+20 {
		return h, 0, nil, fmt.Errorf("%w: %s: header truncated", ErrMalformed, k)
	}
	h.Federation = string(p[:n])
	p = p[n:]
	h.Round = binary.LittleEndian.Uint64(p)
	h.Site = SiteID(binary.LittleEndian.Uint32(p[8:]))
	h.Index = binary.LittleEndian.Uint32(p[12:])
	h.Total = binary.LittleEndian.Uint32(p[16:])
	return h, v, p[20:], nil
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

// decodeFor decodes the header of a message in format Version and the
// parameters it names.
func decodeFor(p []byte, k kind) (Header, Parameters, []byte, error) {
	h, _, params, rest, err := decodeForVersion(p, k, Version)
	return h, params, rest, err
}

// decodeForVersion decodes the header of a message in any format version from
// 1 to latest, and the parameters it names.
func decodeForVersion(p []byte, k kind, latest byte) (Header, byte, Parameters, []byte, error) {
	h, v, rest, err := decodeHeaderVersion(p, k, latest)
	if err != nil {
		return h, 0, Parameters{}, nil, err
	}
	params, err := parametersByID(h.Params)
	if err != nil {
		return h, 0, Parameters{}, nil, fmt.Errorf("%s %s: %w", k, h, err)
	}
	return h, v, params, rest, nil
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
