package secureagg

import (
	"fmt"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Aggregate sums the encrypted chunks of one round as they arrive, in place.
// Its memory is one model's ciphertexts plus one bit per site and chunk,
// whatever the number of sites. It is safe for concurrent use: chunks of
// different indices are added in parallel.
type Aggregate struct {
	cfg    Config
	round  uint64
	values int
	total  uint32

	// gate lets Add run concurrently and Seal wait for them to finish.
	gate   sync.RWMutex
	sealed bool

	locks []sync.Mutex // one per chunk
	sums  []*rlwe.Ciphertext

	seenMu sync.Mutex
	seen   map[SiteID][]bool
	counts map[SiteID]int
	// per-chunk contributors, in arrival order
	contrib [][]SiteID
}

// NewAggregate returns an empty aggregate for a round of a model of values
// parameters.
func NewAggregate(cfg Config, round uint64, values int) (*Aggregate, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if values < 0 {
		return nil, fmt.Errorf("secureagg: %w: %d values", ErrShape, values)
	}
	total := cfg.Params.Chunks(values)
	a := &Aggregate{
		cfg: cfg, round: round, values: values, total: uint32(total),
		locks:   make([]sync.Mutex, total),
		sums:    make([]*rlwe.Ciphertext, total),
		seen:    map[SiteID][]bool{},
		counts:  map[SiteID]int{},
		contrib: make([][]SiteID, total),
	}
	for i := range a.sums {
		a.sums[i] = hefloat.NewCiphertext(cfg.Params.Parameters, 1, 0)
	}
	return a, nil
}

// Round returns the aggregate's round.
func (a *Aggregate) Round() uint64 { return a.round }

// Values returns the number of model parameters.
func (a *Aggregate) Values() int { return a.values }

// Total returns the number of chunks of one site's update.
func (a *Aggregate) Total() int { return int(a.total) }

// Add adds a chunk to the sum. It refuses, with a *MessageError wrapping the
// reason, a chunk of another parameter set, federation or round, of the wrong
// shape, from a site outside the federation, or one already added; a refused
// chunk leaves the sum unchanged.
func (a *Aggregate) Add(c *Chunk) error {
	a.gate.RLock()
	defer a.gate.RUnlock()
	if a.sealed {
		return refuse("chunk", c.Header, ErrSealed)
	}
	if err := a.check(c.Header); err != nil {
		return err
	}
	if c.ct == nil || c.ct.Level() != 0 || c.ct.Degree() != 1 || !c.ct.IsNTT {
		return refuse("chunk", c.Header, fmt.Errorf("%w: not a degree-1, level-0 NTT ciphertext", ErrMalformed))
	}
	if err := a.claim(c.Header); err != nil {
		return err
	}
	a.locks[c.Index].Lock()
	sum := a.sums[c.Index]
	rq := a.cfg.Params.RingQ()
	rq.Add(sum.Value[0], c.ct.Value[0], sum.Value[0])
	rq.Add(sum.Value[1], c.ct.Value[1], sum.Value[1])
	a.locks[c.Index].Unlock()
	return nil
}

// check refuses a chunk header that does not belong in this aggregate.
func (a *Aggregate) check(h Header) error {
	switch {
	case h.Params != a.cfg.Params.ID():
		return refuse("chunk", h, ErrParams)
	case h.Federation != a.cfg.Federation:
		return refuse("chunk", h, ErrFederation)
	case h.Round != a.round:
		return refuse("chunk", h, fmt.Errorf("%w: aggregate is for round %d", ErrRound, a.round))
	case h.Total != a.total || h.Index >= a.total:
		return refuse("chunk", h, fmt.Errorf("%w: the model has %d chunks", ErrShape, a.total))
	case !a.cfg.hasSite(h.Site):
		return refuse("chunk", h, fmt.Errorf("%w: site %d is not in the federation", ErrSetup, h.Site))
	}
	return nil
}

// claim records (site, index), refusing duplicates and a site beyond MaxSites.
func (a *Aggregate) claim(c Header) error {
	a.seenMu.Lock()
	defer a.seenMu.Unlock()
	bits, ok := a.seen[c.Site]
	if !ok {
		if len(a.seen) >= MaxSites {
			return refuse("chunk", c, ErrTooManySites)
		}
		bits = make([]bool, a.total)
		a.seen[c.Site] = bits
	}
	if bits[c.Index] {
		return refuse("chunk", c, ErrDuplicate)
	}
	bits[c.Index] = true
	a.counts[c.Site]++
	a.contrib[c.Index] = append(a.contrib[c.Index], c.Site)
	return nil
}

// Contributors returns the sites that sent every chunk, sorted.
func (a *Aggregate) Contributors() []SiteID {
	a.seenMu.Lock()
	defer a.seenMu.Unlock()
	var out []SiteID
	for s, n := range a.counts {
		if n == int(a.total) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Partial returns the sites that sent some but not all chunks, sorted. Their
// chunks stay in the sum; every chunk decodes to the weighted mean of the sites
// that sent it.
func (a *Aggregate) Partial() []SiteID {
	a.seenMu.Lock()
	defer a.seenMu.Unlock()
	var out []SiteID
	for s, n := range a.counts {
		if n < int(a.total) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Seal stops the aggregate accepting chunks and returns the sum chunks the
// decrypting sites need (the second polynomial of each sum, with the sites
// that contributed to it). Seal is idempotent.
func (a *Aggregate) Seal() []*SumChunk {
	a.gate.Lock()
	a.sealed = true
	a.gate.Unlock()
	out := make([]*SumChunk, a.total)
	for i, s := range a.sums {
		contrib := slices.Clone(a.contrib[i])
		slices.Sort(contrib)
		out[i] = &SumChunk{
			Header: Header{Params: a.cfg.Params.ID(), Federation: a.cfg.Federation, Round: a.round, Index: uint32(i), Total: a.total},
			Sites:  contrib,
			c1:     s.Value[1],
		}
	}
	return out
}

func (a *Aggregate) isSealed() bool {
	a.gate.RLock()
	defer a.gate.RUnlock()
	return a.sealed
}

// AddBinary decodes a chunk from its wire encoding and adds it, reading the
// coefficients straight from p into the sum without an intermediate
// ciphertext. It refuses what Add refuses, and a malformed encoding, before
// touching the sum.
func (a *Aggregate) AddBinary(p []byte) error {
	h, rest, err := decodeHeader(p, kindChunk)
	if err != nil {
		return err
	}
	a.gate.RLock()
	defer a.gate.RUnlock()
	if a.sealed {
		return refuse("chunk", h, ErrSealed)
	}
	if err := a.check(h); err != nil {
		return err
	}
	n := a.cfg.Params.N()
	if err := trailing(rest[min(len(rest), 16*n):], kindChunk); err != nil {
		return err
	}
	if len(rest) != 16*n {
		return fmt.Errorf("%w: chunk %s: %d bytes of coefficients, want %d", ErrMalformed, h, len(rest), 16*n)
	}
	q := a.cfg.Params.Q()[0]
	if err := checkReduced(rest, q); err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrMalformed, h, err)
	}
	if err := a.claim(h); err != nil {
		return err
	}
	a.locks[h.Index].Lock()
	sum := a.sums[h.Index]
	addBytes(sum.Value[0].Coeffs[0], rest[:8*n], q)
	addBytes(sum.Value[1].Coeffs[0], rest[8*n:], q)
	a.locks[h.Index].Unlock()
	return nil
}
