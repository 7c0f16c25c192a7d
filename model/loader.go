package model

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// Sequence is one encoded patient, already cut to the model's MaxLen.
type Sequence struct {
	Tokens    []int32
	Segments  []int32
	Positions []int32
	Ages      []float32
}

// Len is the number of tokens.
func (s Sequence) Len() int { return len(s.Tokens) }

func (s Sequence) validate() error {
	n := len(s.Tokens)
	if n == 0 {
		return fmt.Errorf("empty sequence")
	}
	if len(s.Segments) != n || len(s.Positions) != n || len(s.Ages) != n {
		return fmt.Errorf("tokens, segments, positions and ages have %d, %d, %d and %d elements", n, len(s.Segments), len(s.Positions), len(s.Ages))
	}
	return nil
}

// Loader deals length-bucketed batches: each epoch it shuffles the sequences,
// sorts them by length (stable, so ties stay shuffled), cuts them into batches of
// consecutive sequences, so that each batch pads little, and shuffles the batch
// order. Everything follows from (seed, epoch), so that Epoch and Cursor are the
// whole state a resume needs.
type Loader struct {
	seqs      []Sequence
	batchSize int
	seed      uint64
	Epoch     int // epochs completed
	Cursor    int // batches dealt in the current epoch
	order     [][]int
	orderOf   int // the epoch order was built for, -1 for none
}

// NewLoader validates seqs and returns a loader of batches of batchSize.
func NewLoader(seqs []Sequence, batchSize int, seed uint64) (*Loader, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("loader: no sequences")
	}
	if batchSize <= 0 {
		return nil, fmt.Errorf("loader: batch size %d must be positive", batchSize)
	}
	for i, s := range seqs {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("loader: sequence %d: %w", i, err)
		}
	}
	return &Loader{seqs: seqs, batchSize: batchSize, seed: seed, orderOf: -1}, nil
}

// BatchesPerEpoch is the number of batches in one pass over the sequences.
func (l *Loader) BatchesPerEpoch() int { return (len(l.seqs) + l.batchSize - 1) / l.batchSize }

func (l *Loader) buildOrder() {
	rng := rand.New(rand.NewPCG(l.seed, uint64(l.Epoch)))
	idx := rng.Perm(len(l.seqs))
	sort.SliceStable(idx, func(a, b int) bool { return l.seqs[idx[a]].Len() < l.seqs[idx[b]].Len() })
	l.order = l.order[:0]
	for i := 0; i < len(idx); i += l.batchSize {
		l.order = append(l.order, idx[i:min(i+l.batchSize, len(idx))])
	}
	rng.Shuffle(len(l.order), func(a, b int) { l.order[a], l.order[b] = l.order[b], l.order[a] })
	l.orderOf = l.Epoch
}

// Next returns the next batch, padded with [PAD] to its longest sequence.
func (l *Loader) Next() *Batch {
	if l.orderOf != l.Epoch {
		l.buildOrder()
	}
	if l.Cursor >= len(l.order) {
		l.Epoch++
		l.Cursor = 0
		l.buildOrder()
	}
	b := Pad(l.seqs, l.order[l.Cursor])
	l.Cursor++
	return b
}

// Pad builds a batch of the sequences at idx, padded to the longest of them.
func Pad(seqs []Sequence, idx []int) *Batch {
	t := 0
	for _, i := range idx {
		t = max(t, seqs[i].Len())
	}
	n := len(idx) * t
	b := &Batch{B: len(idx), T: t, Tokens: make([]int32, n), Segments: make([]int32, n),
		Positions: make([]int32, n), Ages: make([]float32, n)}
	for r, i := range idx {
		s := seqs[i]
		copy(b.Tokens[r*t:], s.Tokens)
		copy(b.Segments[r*t:], s.Segments)
		copy(b.Positions[r*t:], s.Positions)
		copy(b.Ages[r*t:], s.Ages)
	}
	return b
}

// Batches cuts seqs, in order, into padded batches of at most size sequences:
// for evaluation, where order matters and shuffling does not.
func Batches(seqs []Sequence, size int) []*Batch {
	var bs []*Batch
	for i := 0; i < len(seqs); i += size {
		idx := make([]int, 0, size)
		for j := i; j < min(i+size, len(seqs)); j++ {
			idx = append(idx, j)
		}
		bs = append(bs, Pad(seqs, idx))
	}
	return bs
}
