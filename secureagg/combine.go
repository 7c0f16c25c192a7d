package secureagg

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Decryption combines the decryption shares of a sealed aggregate from its
// decrypting set. It adds each share into the chunk's first polynomial as it
// arrives, so its memory is one model's first polynomials. It is safe for
// concurrent use.
type Decryption struct {
	agg    *Aggregate
	set    []SiteID
	digest [8]byte

	locks []sync.Mutex
	acc   []*rlwe.Ciphertext // c0 + sum of shares, per chunk; Value[1] unused

	seenMu sync.Mutex
	seen   map[SiteID][]shareSeen // per site, per chunk index
	counts map[SiteID]int
}

// shareSeen records a share that was added: the SHA-256 of its wire encoding
// after the header (set digest and coefficients), to tell a repeat of it from
// another share for the same site and chunk.
type shareSeen struct {
	added bool
	sum   [32]byte
}

// Result is a decrypted aggregate.
type Result struct {
	// Mean is the weighted mean of the contributing sites' updates.
	Mean []float32
	// Weight is the sum of the contributing sites' weights, the smallest over
	// chunks (they differ only when a site sent part of its chunks).
	Weight float64
	// Count is Weight times the federation's weight cap: the total sample count
	// when no site exceeds the cap.
	Count float64
}

// NewDecryption starts the combination of decryption shares of a sealed
// aggregate for a decrypting set of exactly Threshold sites.
func NewDecryption(agg *Aggregate, set []SiteID) (*Decryption, error) {
	if !agg.isSealed() {
		return nil, fmt.Errorf("secureagg: %w: seal the aggregate before decrypting it", ErrSetup)
	}
	set, err := sortedSites(set)
	if err != nil {
		return nil, fmt.Errorf("secureagg: decrypting set: %w", err)
	}
	if len(set) != agg.cfg.Threshold {
		return nil, fmt.Errorf("secureagg: %w: decrypting set of %d sites, the threshold is %d", ErrNotInSet, len(set), agg.cfg.Threshold)
	}
	for _, s := range set {
		if !agg.cfg.hasSite(s) {
			return nil, fmt.Errorf("secureagg: %w: site %d is not in the federation", ErrNotInSet, s)
		}
	}
	d := &Decryption{
		agg: agg, set: set, digest: SetDigest(set),
		locks:  make([]sync.Mutex, agg.total),
		acc:    make([]*rlwe.Ciphertext, agg.total),
		seen:   map[SiteID][]shareSeen{},
		counts: map[SiteID]int{},
	}
	for i, s := range agg.sums {
		d.acc[i] = hefloat.NewCiphertext(agg.cfg.Params.Parameters, 1, 0)
		d.acc[i].Value[0].Copy(s.Value[0])
	}
	return d, nil
}

// Add adds a decryption share. It refuses a share of another parameter set,
// federation or round, of another shape, from a site outside the decrypting set
// or made for another set; a refused share changes nothing.
//
// Adding is idempotent per (site, chunk index): a share identical to one already
// added (same header, same set, same coefficients: same bytes on the wire) returns
// nil and changes nothing, so that an upload broken mid-stream can be sent again
// whole. A different share for a (site, index) already added is refused with
// ErrDuplicate: a site's share is counted once, and never replaced.
//
// Two identical shares added concurrently both return nil once the first is
// counted, possibly before it is summed: call Result after every Add returned.
func (d *Decryption) Add(s *ShareChunk) error {
	if err := d.check(s.Header); err != nil {
		return err
	}
	if s.value.Value.N() != d.agg.cfg.Params.N() || s.value.Level() != 0 {
		return refuse("decryption share", s.Header, fmt.Errorf("%w: share polynomial of the wrong shape", ErrMalformed))
	}
	if s.Set != d.digest {
		return refuse("decryption share", s.Header, fmt.Errorf("%w: share made for another decrypting set", ErrNotInSet))
	}
	if first, err := d.claim(s.Header, shareSum(appendPoly(append([]byte(nil), s.Set[:]...), s.value.Value))); !first {
		return err
	}
	d.locks[s.Index].Lock()
	acc := d.acc[s.Index]
	d.agg.cfg.Params.RingQ().Add(acc.Value[0], s.value.Value, acc.Value[0])
	d.locks[s.Index].Unlock()
	return nil
}

// check refuses a share header that does not belong in this decryption.
func (d *Decryption) check(h Header) error {
	a := d.agg
	switch {
	case h.Params != a.cfg.Params.ID():
		return refuse("decryption share", h, ErrParams)
	case h.Federation != a.cfg.Federation:
		return refuse("decryption share", h, ErrFederation)
	case h.Round != a.round:
		return refuse("decryption share", h, fmt.Errorf("%w: aggregate is for round %d", ErrRound, a.round))
	case h.Total != a.total || h.Index >= a.total:
		return refuse("decryption share", h, fmt.Errorf("%w: the model has %d chunks", ErrShape, a.total))
	}
	if _, ok := slices.BinarySearch(d.set, h.Site); !ok {
		return refuse("decryption share", h, fmt.Errorf("%w: decrypting set is %v", ErrNotInSet, d.set))
	}
	return nil
}

// shareSum is the digest claim compares shares by: SHA-256 of the share's
// encoding after its header.
func shareSum(body []byte) [32]byte { return sha256.Sum256(body) }

// claim counts the share of (site, index) with digest sum. first reports whether
// it is the first share for that slot, to be summed; otherwise err is nil for a
// repeat of the same share and ErrDuplicate for another one.
func (d *Decryption) claim(s Header, sum [32]byte) (first bool, err error) {
	d.seenMu.Lock()
	defer d.seenMu.Unlock()
	slots, ok := d.seen[s.Site]
	if !ok {
		slots = make([]shareSeen, d.agg.total)
		d.seen[s.Site] = slots
	}
	if prev := slots[s.Index]; prev.added {
		if prev.sum == sum {
			return false, nil
		}
		return false, refuse("decryption share", s, fmt.Errorf("%w: another share for this site and chunk was already added", ErrDuplicate))
	}
	slots[s.Index] = shareSeen{added: true, sum: sum}
	d.counts[s.Site]++
	return true, nil
}

// Result decodes the aggregate once every site of the decrypting set has sent
// a share of every chunk; before that it returns ErrTooFewShares. Chunks are
// decoded in parallel.
func (d *Decryption) Result(ctx context.Context) (*Result, error) {
	d.seenMu.Lock()
	var complete int
	for _, n := range d.counts {
		if n == int(d.agg.total) {
			complete++
		}
	}
	d.seenMu.Unlock()
	if complete < d.agg.cfg.Threshold {
		return nil, fmt.Errorf("secureagg: round %d: %w: %d of the %d sites of the decrypting set sent all %d chunks",
			d.agg.round, ErrTooFewShares, complete, d.agg.cfg.Threshold, d.agg.total)
	}
	return decode(ctx, d.agg.cfg, d.agg.values, d.acc)
}

// decode turns decrypted chunks (first polynomial = plaintext) into the mean.
func decode(ctx context.Context, cfg Config, values int, acc []*rlwe.Ciphertext) (*Result, error) {
	params := cfg.Params
	slots := params.Slots()
	mean := make([]float32, values)
	weights := make([]float64, len(acc))
	err := parallel(ctx, len(acc), func() func(int) error {
		ecd := hefloat.NewEncoder(params.Parameters)
		pt := hefloat.NewPlaintext(params.Parameters, 0)
		pt.IsBatched = false
		vals := make([]float64, params.N())
		return func(k int) error {
			pt.Value = acc[k].Value[0]
			if err := ecd.Decode(pt, vals); err != nil {
				return fmt.Errorf("secureagg: decoding chunk %d: %w", k, err)
			}
			w := vals[slots]
			weights[k] = w
			lo := k * slots
			hi := min(lo+slots, values)
			if hi <= lo {
				return nil
			}
			if !(w > 0.5/float64(cfg.WeightCap)) {
				return fmt.Errorf("secureagg: %w: chunk %d decodes to weight %v: no site contributed", ErrTooFewShares, k, w)
			}
			for j := range hi - lo {
				mean[lo+j] = float32(vals[j] / w)
			}
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	minW := math.Inf(1)
	for _, w := range weights {
		minW = min(minW, w)
	}
	return &Result{Mean: mean, Weight: minW, Count: minW * cfg.WeightCap}, nil
}

// AddBinary decodes a decryption share from its wire encoding and adds it,
// reading the coefficients straight from p. It refuses what Add refuses, and a
// malformed encoding, before touching the accumulator; like Add, it returns nil
// for a repeat of a share already added (the same bytes, by either path) and
// ErrDuplicate for another share of the same site and chunk.
func (d *Decryption) AddBinary(p []byte) error {
	h, rest, err := decodeHeader(p, kindShareChunk)
	if err != nil {
		return err
	}
	if err := d.check(h); err != nil {
		return err
	}
	n := d.agg.cfg.Params.N()
	if len(rest) != 8+8*n {
		return fmt.Errorf("%w: decryption share %s: %d bytes after the header, want %d", ErrMalformed, h, len(rest), 8+8*n)
	}
	var set [8]byte
	copy(set[:], rest)
	if set != d.digest {
		return refuse("decryption share", h, fmt.Errorf("%w: share made for another decrypting set", ErrNotInSet))
	}
	q := d.agg.cfg.Params.Q()[0]
	if err := checkReduced(rest[8:], q); err != nil {
		return fmt.Errorf("%w: decryption share %s: %v", ErrMalformed, h, err)
	}
	if first, err := d.claim(h, shareSum(rest)); !first {
		return err
	}
	d.locks[h.Index].Lock()
	addBytes(d.acc[h.Index].Value[0].Coeffs[0], rest[8:], q)
	d.locks[h.Index].Unlock()
	return nil
}
