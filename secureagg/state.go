package secureagg

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

// MarshalBinary encodes the party's whole state so that a site agent can
// persist it across restarts: configuration, secret-key share, threshold
// share, collective public key, and which chunks of the latest round it has
// already shared on. The result is secret; store it encrypted at rest.
func (p *Party) MarshalBinary() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := Header{Params: p.cfg.Params.ID(), Federation: p.cfg.Federation, Round: p.sharedRound, Site: p.site, Total: uint32(p.cfg.Threshold)}
	b, err := h.append(nil, kindPartyState)
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.cfg.WeightCap))
	b = binary.LittleEndian.AppendUint16(b, uint16(p.cfg.MinSites))
	b = appendSites(b, p.cfg.Sites)
	b = appendPoly(b, p.sk.Value.Q)
	b = appendOptionalPoly(b, p.tsk != nil, func(b []byte) []byte { return appendPoly(b, p.tsk.Q) })
	b = appendOptionalPoly(b, p.pk != nil, func(b []byte) []byte { return appendPoly(b, p.pk.Value[0].Q) })
	shared := make([]uint32, 0, len(p.shared))
	for i := range p.shared {
		shared = append(shared, i)
	}
	slices.Sort(shared)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(shared)))
	for _, i := range shared {
		b = binary.LittleEndian.AppendUint32(b, i)
	}
	return b, nil
}

func appendOptionalPoly(b []byte, present bool, f func([]byte) []byte) []byte {
	if !present {
		return append(b, 0)
	}
	return f(append(b, 1))
}

// UnmarshalBinary restores a party encoded by MarshalBinary.
func (p *Party) UnmarshalBinary(data []byte) error {
	const k = kindPartyState
	h, params, rest, err := decodeFor(data, k)
	if err != nil {
		return err
	}
	if len(rest) < 10 {
		return fmt.Errorf("%w: %s: weight cap truncated", ErrMalformed, k)
	}
	cfg := Config{Params: params, Federation: h.Federation, Threshold: int(h.Total),
		WeightCap: math.Float64frombits(binary.LittleEndian.Uint64(rest)),
		MinSites:  int(binary.LittleEndian.Uint16(rest[8:]))}
	if cfg.Sites, rest, err = decodeSites(rest[10:], k, "sites"); err != nil {
		return err
	}
	if cfg.Threshold == 0 || cfg.WeightCap == 0 || cfg.MinSites == 0 {
		return fmt.Errorf("%w: %s: threshold, weight cap or minimum of sites is zero", ErrMalformed, k)
	}
	if cfg, err = cfg.normalize(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, k, err)
	}
	if !cfg.hasSite(h.Site) {
		return fmt.Errorf("%w: %s: site %d is not in its federation", ErrMalformed, k, h.Site)
	}
	rp := params.rlweParams()
	q := params.Q()[0]
	sk := rlwe.NewSecretKey(rp)
	if rest, err = decodePoly(rest, sk.Value.Q, q, k, "secret key"); err != nil {
		return err
	}
	var tsk *mhe.ShamirSecretShare
	if rest, err = decodeOptional(rest, k, "threshold share", func(r []byte) ([]byte, error) {
		s := mhe.ShamirSecretShare{Poly: params.RingQP().NewPoly()}
		tsk = &s
		return decodePoly(r, s.Q, q, k, "threshold share")
	}); err != nil {
		return err
	}
	var pk *rlwe.PublicKey
	if rest, err = decodeOptional(rest, k, "public key", func(r []byte) ([]byte, error) {
		g, err := NewPublicKeyGen(params, cfg.Federation)
		if err != nil {
			return nil, err
		}
		pk = rlwe.NewPublicKey(rp)
		pk.Value[1] = *g.crp.Value.CopyNew()
		return decodePoly(r, pk.Value[0].Q, q, k, "public key")
	}); err != nil {
		return err
	}
	if len(rest) < 4 {
		return fmt.Errorf("%w: %s: shared chunks truncated", ErrMalformed, k)
	}
	n := int(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if n > len(rest)/4 {
		return fmt.Errorf("%w: %s: %d shared chunks announced, %d bytes left", ErrMalformed, k, n, len(rest))
	}
	var shared map[uint32]bool
	if n > 0 {
		shared = make(map[uint32]bool, n)
	}
	for i := range n {
		idx := binary.LittleEndian.Uint32(rest[4*i:])
		if i > 0 && idx <= binary.LittleEndian.Uint32(rest[4*i-4:]) {
			return fmt.Errorf("%w: %s: shared chunks not strictly increasing", ErrMalformed, k)
		}
		shared[idx] = true
	}
	if err := trailing(rest[4*n:], k); err != nil {
		return err
	}
	if shared == nil && h.Round != 0 {
		return fmt.Errorf("%w: %s: round %d without shared chunks", ErrMalformed, k, h.Round)
	}
	*p = Party{cfg: cfg, site: h.Site, sk: sk, tsk: tsk, pk: pk, sharedRound: h.Round, shared: shared}
	return nil
}

func decodeOptional(p []byte, k kind, field string, f func([]byte) ([]byte, error)) ([]byte, error) {
	if len(p) < 1 {
		return nil, fmt.Errorf("%w: %s: field %s truncated", ErrMalformed, k, field)
	}
	switch p[0] {
	case 0:
		return p[1:], nil
	case 1:
		return f(p[1:])
	}
	return nil, fmt.Errorf("%w: %s: field %s: presence byte %d", ErrMalformed, k, field, p[0])
}
