package secureagg

import (
	"context"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// SumChunk is what a decrypting site receives of one chunk of the aggregate:
// its second polynomial, which is all a decryption share depends on, and the
// sites whose chunks it sums.
type SumChunk struct {
	Header
	Sites []SiteID
	c1    ring.Poly
}

// ShareChunk is a site's decryption share of one sum chunk: c1*s_i + e, where
// s_i is the site's additive key share for the decrypting set whose digest it
// carries and e is flooding noise of standard deviation Params.FloodSigma(t).
type ShareChunk struct {
	Header
	Set   [8]byte
	value mhe.KeySwitchShare
}

// additiveKey returns the party's additive share of the secret key for a
// decrypting set: its threshold share times its Lagrange coefficient for the
// set.
func (p *Party) additiveKey(set []SiteID) (*rlwe.SecretKey, error) {
	cfg := p.cfg
	if len(set) != cfg.Threshold {
		return nil, fmt.Errorf("secureagg: %w: decrypting set of %d sites, the threshold is %d", ErrNotInSet, len(set), cfg.Threshold)
	}
	if _, ok := slices.BinarySearch(set, p.site); !ok {
		return nil, fmt.Errorf("secureagg: %w: site %d is not in the decrypting set %v", ErrNotInSet, p.site, set)
	}
	for _, s := range set {
		if !cfg.hasSite(s) {
			return nil, fmt.Errorf("secureagg: %w: site %d of the decrypting set is not in the federation", ErrNotInSet, s)
		}
	}
	// Unreachable: Config.normalize refuses a threshold equal to the number of sites.
	if cfg.Threshold == len(cfg.Sites) {
		return p.sk, nil
	}
	p.mu.Lock()
	tsk := p.tsk
	p.mu.Unlock()
	if tsk == nil {
		return nil, fmt.Errorf("secureagg: %w: site %d has no threshold share yet", ErrSetup, p.site)
	}
	rp := cfg.Params.rlweParams()
	all := make([]mhe.ShamirPublicPoint, len(cfg.Sites))
	for i, s := range cfg.Sites {
		all[i] = mhe.ShamirPublicPoint(shamirPoint(s))
	}
	active := make([]mhe.ShamirPublicPoint, len(set))
	for i, s := range set {
		active[i] = mhe.ShamirPublicPoint(shamirPoint(s))
	}
	own := mhe.ShamirPublicPoint(shamirPoint(p.site))
	cmb := mhe.NewCombiner(rp, own, all, cfg.Threshold)
	sk := rlwe.NewSecretKey(rp)
	if err := cmb.GenAdditiveShare(active, own, *tsk, sk); err != nil {
		return nil, fmt.Errorf("secureagg: additive share: %w", err)
	}
	return sk, nil
}

// DecryptShare computes the party's decryption shares of the sum chunks of one
// round for a decrypting set of exactly Threshold sites, in parallel. It
// refuses chunks of another federation or parameter set, chunks summing fewer
// than Config.MinSites contributions, chunks of an older
// round than one it already shared on, and any chunk index of a round it
// already gave a share for: a site decrypts at most one aggregate per round.
func (p *Party) DecryptShare(ctx context.Context, set []SiteID, sums []*SumChunk) ([]*ShareChunk, error) {
	set, err := sortedSites(set)
	if err != nil {
		return nil, fmt.Errorf("secureagg: decrypting set: %w", err)
	}
	sk, err := p.additiveKey(set)
	if err != nil {
		return nil, err
	}
	if len(sums) == 0 {
		return nil, nil
	}
	params := p.cfg.Params
	round := sums[0].Round
	for _, s := range sums {
		switch {
		case s.Params != params.ID():
			return nil, refuse("sum chunk", s.Header, ErrParams)
		case s.Federation != p.cfg.Federation:
			return nil, refuse("sum chunk", s.Header, ErrFederation)
		case s.Round != round:
			return nil, refuse("sum chunk", s.Header, fmt.Errorf("%w: batch mixes rounds %d and %d", ErrRound, round, s.Round))
		case len(s.Sites) < p.cfg.MinSites:
			return nil, refuse("sum chunk", s.Header, fmt.Errorf("%w: %d contributions, the federation requires %d", ErrTooFewSites, len(s.Sites), p.cfg.MinSites))
		}
	}
	if err := p.reserve(round, sums); err != nil {
		return nil, err
	}
	digest := SetDigest(set)
	flood := params.FloodSigma(len(set))
	base, err := mhe.NewKeySwitchProtocol(params.rlweParams(), ring.DiscreteGaussian{Sigma: flood, Bound: 6 * flood})
	if err != nil {
		return nil, fmt.Errorf("secureagg: flooding: %w", err)
	}
	zero := rlwe.NewSecretKey(params.rlweParams())
	out := make([]*ShareChunk, len(sums))
	err = parallel(ctx, len(sums), func() func(int) error {
		ks := base.ShallowCopy()
		rq := params.RingQ()
		ct := hefloat.NewCiphertext(params.Parameters, 1, 0)
		return func(i int) error {
			s := sums[i]
			ct.Value[1] = s.c1
			sh := ks.AllocateShare(0)
			ks.GenShare(sk, zero, ct, &sh)
			// GenShare may leave coefficients in [q, 2q); the wire wants them reduced.
			rq.Reduce(sh.Value, sh.Value)
			h := s.Header
			h.Site = p.site
			out[i] = &ShareChunk{Header: h, Set: digest, value: sh}
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// reserve records that the party shares on these chunks of round, refusing a
// chunk it already shared on and any round older than the latest.
func (p *Party) reserve(round uint64, sums []*SumChunk) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shared != nil && round < p.sharedRound {
		return refuse("sum chunk", sums[0].Header, fmt.Errorf("%w: already shared on round %d", ErrRound, p.sharedRound))
	}
	if p.shared == nil || round > p.sharedRound {
		p.sharedRound, p.shared = round, map[uint32]bool{}
	}
	for _, s := range sums {
		if p.shared[s.Index] {
			return refuse("sum chunk", s.Header, fmt.Errorf("%w: already gave a decryption share for this chunk", ErrDuplicate))
		}
	}
	for _, s := range sums {
		p.shared[s.Index] = true
	}
	return nil
}

// MarshalBinary encodes the sum chunk.
func (s *SumChunk) MarshalBinary() ([]byte, error) {
	b, err := s.Header.append(nil, kindSumChunk)
	if err != nil {
		return nil, err
	}
	b = appendSites(b, s.Sites)
	return appendPoly(b, s.c1), nil
}

// UnmarshalBinary decodes a sum chunk.
func (s *SumChunk) UnmarshalBinary(p []byte) error {
	h, params, rest, err := decodeFor(p, kindSumChunk)
	if err != nil {
		return err
	}
	if h.Index >= h.Total {
		return fmt.Errorf("%w: sum chunk %s: index beyond total", ErrMalformed, h)
	}
	sites, rest, err := decodeSites(rest, kindSumChunk, "sites")
	if err != nil {
		return err
	}
	c1 := params.RingQ().NewPoly()
	if rest, err = decodePoly(rest, c1, params.Q()[0], kindSumChunk, "c1"); err != nil {
		return err
	}
	if err := trailing(rest, kindSumChunk); err != nil {
		return err
	}
	*s = SumChunk{Header: h, Sites: sites, c1: c1}
	return nil
}

// MarshalBinary encodes the decryption share.
func (s *ShareChunk) MarshalBinary() ([]byte, error) {
	b, err := s.Header.append(nil, kindShareChunk)
	if err != nil {
		return nil, err
	}
	b = append(b, s.Set[:]...)
	return appendPoly(b, s.value.Value), nil
}

// UnmarshalBinary decodes a decryption share.
func (s *ShareChunk) UnmarshalBinary(p []byte) error {
	h, params, rest, err := decodeFor(p, kindShareChunk)
	if err != nil {
		return err
	}
	if h.Index >= h.Total {
		return fmt.Errorf("%w: decryption share %s: index beyond total", ErrMalformed, h)
	}
	if len(rest) < 8 {
		return fmt.Errorf("%w: decryption share %s: set digest truncated", ErrMalformed, h)
	}
	var set [8]byte
	copy(set[:], rest)
	v := mhe.KeySwitchShare{Value: params.RingQ().NewPoly()}
	if rest, err = decodePoly(rest[8:], v.Value, params.Q()[0], kindShareChunk, "value"); err != nil {
		return err
	}
	if err := trailing(rest, kindShareChunk); err != nil {
		return err
	}
	*s = ShareChunk{Header: h, Set: set, value: v}
	return nil
}
