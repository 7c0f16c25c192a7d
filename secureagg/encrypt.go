package secureagg

import (
	"context"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Chunk is one ciphertext of a site's encrypted update: Params.Slots() values
// (weighted by the site's weight) and, in the last coefficient, the weight.
type Chunk struct {
	Header
	ct *rlwe.Ciphertext
}

// Weight returns the weight a site of count samples carries: min(1, count/cap).
func Weight(count, weightCap float64) float64 {
	return min(1, count/weightCap)
}

// Encrypt encrypts a site's update for a round under the collective public key:
// each value is multiplied by the site's weight (see Config.WeightCap) and
// encoded as a fixed-point coefficient (CKKS coefficient encoding), Slots() per
// chunk, every chunk carrying the weight in its last coefficient so that any
// chunk of the sum decodes to its own weighted mean. Chunks are encrypted in
// parallel on GOMAXPROCS workers.
func (p *Party) Encrypt(ctx context.Context, round uint64, update []float32, count float64) ([]*Chunk, error) {
	pk, err := p.publicKey()
	if err != nil {
		return nil, err
	}
	if math.IsNaN(count) || count < 0 || math.IsInf(count, 0) {
		return nil, fmt.Errorf("secureagg: %w: sample count %v", ErrRange, count)
	}
	w := Weight(count, p.cfg.WeightCap)
	for i, v := range update {
		x := float64(v) * w
		if math.IsNaN(x) || math.Abs(x) > SiteBound {
			return nil, fmt.Errorf("secureagg: %w: update[%d] = %v times weight %v exceeds %v", ErrRange, i, v, w, SiteBound)
		}
	}
	params := p.cfg.Params
	total := params.Chunks(len(update))
	slots := params.Slots()
	chunks := make([]*Chunk, total)
	scale := params.Scale()
	err = parallel(ctx, total, func() func(int) error {
		enc, err := newPKEncryptor(params, pk)
		return func(k int) error {
			if err != nil {
				return err
			}
			lo := k * slots
			hi := min(lo+slots, len(update))
			ct := hefloat.NewCiphertext(params.Parameters, 1, 0)
			m := enc.m.Coeffs[0]
			for j, v := range update[lo:hi] {
				m[j] = fixedPoint(float64(v)*w, scale, enc.q)
			}
			clear(m[hi-lo : slots])
			m[slots] = fixedPoint(w, scale, enc.q)
			enc.encrypt(ct)
			chunks[k] = &Chunk{
				Header: Header{Params: params.ID(), Federation: p.cfg.Federation, Round: round, Site: p.site, Index: uint32(k), Total: uint32(total)},
				ct:     ct,
			}
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return chunks, nil
}

// MarshalBinary encodes the chunk: header, then both polynomials.
func (c *Chunk) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, c.Header.size()+2*8*len(c.ct.Value[0].Coeffs[0]))
	b, err := c.Header.append(b, kindChunk)
	if err != nil {
		return nil, err
	}
	b = appendPoly(b, c.ct.Value[0])
	return appendPoly(b, c.ct.Value[1]), nil
}

// UnmarshalBinary decodes a chunk.
func (c *Chunk) UnmarshalBinary(p []byte) error {
	h, params, rest, err := decodeFor(p, kindChunk)
	if err != nil {
		return err
	}
	if h.Index >= h.Total {
		return fmt.Errorf("%w: chunk %s: index beyond total", ErrMalformed, h)
	}
	ct := hefloat.NewCiphertext(params.Parameters, 1, 0)
	q := params.Q()[0]
	if rest, err = decodePoly(rest, ct.Value[0], q, kindChunk, "c0"); err != nil {
		return err
	}
	if rest, err = decodePoly(rest, ct.Value[1], q, kindChunk, "c1"); err != nil {
		return err
	}
	if err := trailing(rest, kindChunk); err != nil {
		return err
	}
	*c = Chunk{Header: h, ct: ct}
	return nil
}

// Size returns the chunk's encoded size in bytes.
func (c *Chunk) Size() int { return c.Header.size() + 2*8*len(c.ct.Value[0].Coeffs[0]) }

// fixedPoint encodes x as the coefficient round(x*scale) mod q: CKKS
// coefficient encoding, as lattigo's encoder does for an unbatched plaintext.
// |x*scale| < 2^53 here, so float64 rounding is exact.
func fixedPoint(x, scale float64, q uint64) uint64 {
	c := int64(math.Round(x * scale))
	if c < 0 {
		return uint64(c + int64(q))
	}
	return uint64(c)
}

// pkEncryptor is lattigo's public-key RLWE encryption (rlwe.Encryptor, the
// no-special-prime path) written with lattigo's ring operations and samplers,
// so that its samplers draw from an AES-CTR PRNG and the plaintext and the
// first error share one NTT:
//
//	ct0 = NTT(u)*pk0 + NTT(m + e0),  ct1 = NTT(u)*pk1 + NTT(e1)
//
// with u ternary and e0, e1 Gaussian, as in rlwe.Encryptor. One per goroutine.
type pkEncryptor struct {
	rq     *ring.Ring
	q      uint64
	pk     *rlwe.PublicKey
	xs, xe ring.Sampler
	m, u   ring.Poly // m holds the plaintext coefficients to encrypt
}

func newPKEncryptor(params Parameters, pk *rlwe.PublicKey) (*pkEncryptor, error) {
	prng, err := newCTRPRNG()
	if err != nil {
		return nil, err
	}
	rq := params.RingQ()
	xs, err := ring.NewSampler(prng, rq, params.Xs(), false)
	if err != nil {
		return nil, fmt.Errorf("secureagg: secret sampler: %w", err)
	}
	xe, err := ring.NewSampler(prng, rq, params.Xe(), false)
	if err != nil {
		return nil, fmt.Errorf("secureagg: error sampler: %w", err)
	}
	return &pkEncryptor{rq: rq, q: params.Q()[0], pk: pk, xs: xs, xe: xe, m: rq.NewPoly(), u: rq.NewPoly()}, nil
}

// encrypt encrypts the coefficients in enc.m (consuming them) into ct, in the
// NTT domain.
func (enc *pkEncryptor) encrypt(ct *rlwe.Ciphertext) {
	rq := enc.rq
	c0, c1 := ct.Value[0], ct.Value[1]
	enc.xe.ReadAndAdd(enc.m)
	rq.NTT(enc.m, c0)
	enc.xe.Read(c1)
	rq.NTT(c1, c1)
	enc.xs.Read(enc.u)
	rq.NTT(enc.u, enc.u)
	rq.MulCoeffsMontgomeryThenAdd(enc.u, enc.pk.Value[0].Q, c0)
	rq.MulCoeffsMontgomeryThenAdd(enc.u, enc.pk.Value[1].Q, c1)
}
