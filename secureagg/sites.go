package secureagg

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

// sortedSites returns a sorted copy of ids, or an error naming a repeated id.
func sortedSites(ids []SiteID) ([]SiteID, error) {
	s := slices.Clone(ids)
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return nil, fmt.Errorf("%w: site %d listed twice", ErrDuplicate, s[i])
		}
	}
	return s, nil
}

func appendSites(b []byte, ids []SiteID) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ids)))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint32(b, uint32(id))
	}
	return b
}

func decodeSites(p []byte, k kind, field string) ([]SiteID, []byte, error) {
	if len(p) < 2 {
		return nil, nil, fmt.Errorf("%w: %s: field %s truncated", ErrMalformed, k, field)
	}
	n := int(binary.LittleEndian.Uint16(p))
	p = p[2:]
	if len(p) < 4*n {
		return nil, nil, fmt.Errorf("%w: %s: field %s: %d sites announced, %d bytes left", ErrMalformed, k, field, n, len(p))
	}
	ids := make([]SiteID, n)
	for i := range ids {
		ids[i] = SiteID(binary.LittleEndian.Uint32(p[4*i:]))
		if i > 0 && ids[i] <= ids[i-1] {
			return nil, nil, fmt.Errorf("%w: %s: field %s: sites not strictly increasing at position %d", ErrMalformed, k, field, i)
		}
	}
	return ids, p[4*n:], nil
}

// SetDigest returns a short digest of a decrypting set. Decryption shares carry
// it, because a share computed for one set (its Lagrange coefficient) is wrong
// for any other.
func SetDigest(set []SiteID) [8]byte {
	s := slices.Clone(set)
	slices.Sort(s)
	h := sha256.New()
	h.Write([]byte("fedclaims/secureagg/set/v1"))
	h.Write(appendSites(nil, s))
	var d [8]byte
	copy(d[:], h.Sum(nil))
	return d
}

// shamirPoint maps a site to its public Shamir evaluation point; zero is the
// secret's own point and is never used.
func shamirPoint(id SiteID) uint64 { return uint64(id) + 1 }
