package secureagg

import (
	"context"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
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
	err = parallel(ctx, total, func() func(int) error {
		ecd := hefloat.NewEncoder(params.Parameters)
		enc := rlwe.NewEncryptor(params.Parameters, pk)
		pt := hefloat.NewPlaintext(params.Parameters, 0)
		pt.IsBatched = false
		vals := make([]float64, params.N())
		return func(k int) error {
			lo := k * slots
			hi := min(lo+slots, len(update))
			clear(vals)
			for j, v := range update[lo:hi] {
				vals[j] = float64(v) * w
			}
			vals[slots] = w
			if err := ecd.Encode(vals, pt); err != nil {
				return fmt.Errorf("secureagg: encoding chunk %d: %w", k, err)
			}
			ct := hefloat.NewCiphertext(params.Parameters, 1, 0)
			if err := enc.Encrypt(pt, ct); err != nil {
				return fmt.Errorf("secureagg: encrypting chunk %d: %w", k, err)
			}
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
