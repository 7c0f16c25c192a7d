package secureagg

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// PublicKeyGen is the collective public-key generation protocol (lattigo's
// mhe.PublicKeyGenProtocol) over a common reference polynomial drawn from a
// PRNG keyed by the parameter set and the federation id, so that every party
// derives the same one without communicating.
type PublicKeyGen struct {
	params Parameters
	fed    string
	proto  mhe.PublicKeyGenProtocol
	crp    mhe.PublicKeyGenCRP
}

// PublicKeyShare is a site's share of the collective public key, or an
// aggregation of several, with the sites it holds.
type PublicKeyShare struct {
	Header
	Sites []SiteID
	value mhe.PublicKeyGenShare
}

// PublicKey is the collective public key, as the aggregator publishes it. Only
// its first polynomial travels; the second is the common reference polynomial.
type PublicKey struct {
	Header
	Sites []SiteID
	pk    *rlwe.PublicKey
}

// NewPublicKeyGen returns the protocol for a federation.
func NewPublicKeyGen(params Parameters, federation string) (*PublicKeyGen, error) {
	if len(federation) == 0 || len(federation) > maxFederationID {
		return nil, fmt.Errorf("secureagg: federation id must have 1 to %d bytes, got %d", maxFederationID, len(federation))
	}
	crs, err := newCRS(params, federation, "ckg")
	if err != nil {
		return nil, err
	}
	proto := mhe.NewPublicKeyGenProtocol(params.rlweParams())
	return &PublicKeyGen{params: params, fed: federation, proto: proto, crp: proto.SampleCRP(crs)}, nil
}

// newCRS returns the common reference string of a federation for one purpose.
func newCRS(params Parameters, federation, purpose string) (*sampling.KeyedPRNG, error) {
	h := sha256.New()
	h.Write([]byte("fedclaims/secureagg/crs/v1/" + purpose))
	h.Write(binary.LittleEndian.AppendUint16(nil, uint16(params.ID())))
	h.Write([]byte(federation))
	prng, err := sampling.NewKeyedPRNG(h.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("secureagg: common reference string: %w", err)
	}
	return prng, nil
}

func (g *PublicKeyGen) header(site SiteID) Header {
	return Header{Params: g.params.ID(), Federation: g.fed, Site: site}
}

// AllocateShare allocates a share.
func (g *PublicKeyGen) AllocateShare() *PublicKeyShare {
	return &PublicKeyShare{Header: g.header(0), value: g.proto.AllocateShare()}
}

// GenShare writes the site's share -a*s_i + e_i into share.
func (g *PublicKeyGen) GenShare(site SiteID, sk *rlwe.SecretKey, share *PublicKeyShare) {
	g.proto.GenShare(sk, g.crp, &share.value)
	share.Header = g.header(site)
	share.Sites = []SiteID{site}
}

// check refuses a share of another parameter set or federation.
func (g *PublicKeyGen) check(s *PublicKeyShare) error {
	switch {
	case s.Params != g.params.ID():
		return refuse("public-key share", s.Header, ErrParams)
	case s.Federation != g.fed:
		return refuse("public-key share", s.Header, ErrFederation)
	}
	return nil
}

// AggregateShares writes a+b into out (which may be a or b), refusing shares of
// another federation or parameter set and shares that hold a site twice.
func (g *PublicKeyGen) AggregateShares(a, b, out *PublicKeyShare) error {
	for _, s := range []*PublicKeyShare{a, b} {
		if err := g.check(s); err != nil {
			return err
		}
	}
	sites := append(slices.Clone(a.Sites), b.Sites...)
	sorted, err := sortedSites(sites)
	if err != nil {
		return refuse("public-key share", b.Header, err)
	}
	g.proto.AggregateShares(a.value, b.value, &out.value)
	out.Header = g.header(0)
	out.Sites = sorted
	return nil
}

// GenPublicKey turns the aggregation of all sites' shares into the collective
// public key.
func (g *PublicKeyGen) GenPublicKey(agg *PublicKeyShare) (*PublicKey, error) {
	if err := g.check(agg); err != nil {
		return nil, err
	}
	if len(agg.Sites) == 0 {
		return nil, fmt.Errorf("secureagg: %w: public key from no shares", ErrSetup)
	}
	pk := rlwe.NewPublicKey(g.params.rlweParams())
	g.proto.GenPublicKey(agg.value, g.crp, pk)
	return &PublicKey{Header: g.header(0), Sites: slices.Clone(agg.Sites), pk: pk}, nil
}

// MarshalBinary encodes the share.
func (s *PublicKeyShare) MarshalBinary() ([]byte, error) {
	b, err := s.Header.append(nil, kindPublicKeyShare)
	if err != nil {
		return nil, err
	}
	b = appendSites(b, s.Sites)
	return appendPoly(b, s.value.Value.Q), nil
}

// UnmarshalBinary decodes a share.
func (s *PublicKeyShare) UnmarshalBinary(p []byte) error {
	h, params, rest, err := decodeFor(p, kindPublicKeyShare)
	if err != nil {
		return err
	}
	sites, rest, err := decodeSites(rest, kindPublicKeyShare, "sites")
	if err != nil {
		return err
	}
	v := mhe.PublicKeyGenShare{Value: params.RingQP().NewPoly()}
	if rest, err = decodePoly(rest, v.Value.Q, params.Q()[0], kindPublicKeyShare, "value"); err != nil {
		return err
	}
	if err := trailing(rest, kindPublicKeyShare); err != nil {
		return err
	}
	*s = PublicKeyShare{Header: h, Sites: sites, value: v}
	return nil
}

// MarshalBinary encodes the public key.
func (k *PublicKey) MarshalBinary() ([]byte, error) {
	b, err := k.Header.append(nil, kindPublicKey)
	if err != nil {
		return nil, err
	}
	b = appendSites(b, k.Sites)
	return appendPoly(b, k.pk.Value[0].Q), nil
}

// UnmarshalBinary decodes a public key, recomputing its second polynomial from
// the federation's common reference string.
func (k *PublicKey) UnmarshalBinary(p []byte) error {
	h, params, rest, err := decodeFor(p, kindPublicKey)
	if err != nil {
		return err
	}
	sites, rest, err := decodeSites(rest, kindPublicKey, "sites")
	if err != nil {
		return err
	}
	if len(h.Federation) == 0 {
		return fmt.Errorf("%w: public key: empty federation id", ErrMalformed)
	}
	g, err := NewPublicKeyGen(params, h.Federation)
	if err != nil {
		return err
	}
	pk := rlwe.NewPublicKey(params.rlweParams())
	if rest, err = decodePoly(rest, pk.Value[0].Q, params.Q()[0], kindPublicKey, "p0"); err != nil {
		return err
	}
	if err := trailing(rest, kindPublicKey); err != nil {
		return err
	}
	pk.Value[1] = *g.crp.Value.CopyNew()
	*k = PublicKey{Header: h, Sites: sites, pk: pk}
	return nil
}
