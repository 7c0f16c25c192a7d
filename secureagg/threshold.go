package secureagg

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

// Thresholdizer re-shares each site's secret-key share with Shamir's scheme
// (lattigo's mhe.Thresholdizer), so that any t of the N sites can decrypt.
// Every site deals one share to every site, itself included; each site's
// threshold secret is the sum of the N shares dealt to it.
//
// A Shamir share is secret: it must reach its recipient over a confidential
// channel. Relayed through the aggregator in the clear, t of them would give the
// aggregator the key.
type Thresholdizer struct {
	params Parameters
	fed    string
	thr    mhe.Thresholdizer
}

// ShamirShare is the share a dealer (Header.Site) deals to a recipient
// (Header.Index) for a threshold of Header.Total, or the sum of the shares dealt
// to one recipient.
type ShamirShare struct {
	Header
	value mhe.ShamirSecretShare
}

// NewThresholdizer returns the re-sharing protocol for a federation.
func NewThresholdizer(params Parameters, federation string) *Thresholdizer {
	return &Thresholdizer{params: params, fed: federation, thr: mhe.NewThresholdizer(params.rlweParams())}
}

// AllocateShare allocates a share.
func (t *Thresholdizer) AllocateShare() *ShamirShare {
	return &ShamirShare{value: t.thr.AllocateThresholdSecretShare()}
}

// GenShares deals the dealer's secret-key share to every site of sites, for
// threshold t; the result is in the order of sites.
func (t *Thresholdizer) GenShares(dealer SiteID, sk *rlwe.SecretKey, threshold int, sites []SiteID) ([]*ShamirShare, error) {
	if threshold < 1 || threshold > len(sites) {
		return nil, fmt.Errorf("secureagg: %w: threshold %d for %d sites", ErrSetup, threshold, len(sites))
	}
	poly, err := t.thr.GenShamirPolynomial(threshold, sk)
	if err != nil {
		return nil, fmt.Errorf("secureagg: shamir polynomial: %w", err)
	}
	out := make([]*ShamirShare, len(sites))
	for i, to := range sites {
		s := t.AllocateShare()
		t.thr.GenShamirSecretShare(mhe.ShamirPublicPoint(shamirPoint(to)), poly, &s.value)
		s.Header = Header{Params: t.params.ID(), Federation: t.fed, Site: dealer, Index: uint32(to), Total: uint32(threshold)}
		out[i] = s
	}
	return out, nil
}

// AggregateShares writes a+b into out; both must be for the same recipient and
// threshold in this federation.
func (t *Thresholdizer) AggregateShares(a, b, out *ShamirShare) error {
	for _, s := range []*ShamirShare{a, b} {
		switch {
		case s.Params != t.params.ID():
			return refuse("shamir share", s.Header, ErrParams)
		case s.Federation != t.fed:
			return refuse("shamir share", s.Header, ErrFederation)
		}
	}
	if a.Index != b.Index || a.Total != b.Total {
		return refuse("shamir share", b.Header, fmt.Errorf("%w: recipient or threshold differs from %s", ErrSetup, a.Header))
	}
	h := a.Header
	if err := t.thr.AggregateShares(a.value, b.value, &out.value); err != nil {
		return refuse("shamir share", b.Header, err)
	}
	out.Header = h
	out.Header.Site = 0
	return nil
}

// MarshalBinary encodes the share. The result is secret.
func (s *ShamirShare) MarshalBinary() ([]byte, error) {
	b, err := s.Header.append(nil, kindShamirShare)
	if err != nil {
		return nil, err
	}
	return appendPoly(b, s.value.Q), nil
}

// UnmarshalBinary decodes a share.
func (s *ShamirShare) UnmarshalBinary(p []byte) error {
	h, params, rest, err := decodeFor(p, kindShamirShare)
	if err != nil {
		return err
	}
	v := mhe.ShamirSecretShare{Poly: params.RingQP().NewPoly()}
	if rest, err = decodePoly(rest, v.Q, params.Q()[0], kindShamirShare, "value"); err != nil {
		return err
	}
	if err := trailing(rest, kindShamirShare); err != nil {
		return err
	}
	*s = ShamirShare{Header: h, value: v}
	return nil
}
