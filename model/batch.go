package model

import "fmt"

// Batch is the encoder's input: B sequences padded to T tokens, row-major.
// Tokens use the tokenizer's ids ([PAD]=0 marks padding, which attention ignores).
// Ages are in years at each token; the age embedding is a learned projection of
// age/100. With Config.TimeBuckets set, the encoder also derives each token's time
// before the cutoff and gap since the previous visit from Ages, [CLS] (column 0,
// at the cutoff) and the [SEP]s between visits, as the tokenizer lays them out; see
// timeBuckets.
type Batch struct {
	B, T      int
	Tokens    []int32
	Segments  []int32
	Positions []int32
	Ages      []float32
}

// Validate reports the first field or element that does not fit cfg.
func (b *Batch) Validate(cfg Config) error {
	n := b.B * b.T
	if b.B <= 0 || b.T <= 0 {
		return fmt.Errorf("batch: shape %dx%d must be positive", b.B, b.T)
	}
	for name, l := range map[string]int{"tokens": len(b.Tokens), "segments": len(b.Segments), "positions": len(b.Positions), "ages": len(b.Ages)} {
		if l != n {
			return fmt.Errorf("batch: %s has %d elements, want %d (B=%d, T=%d)", name, l, n, b.B, b.T)
		}
	}
	for i := range n {
		switch {
		case b.Tokens[i] < 0 || int(b.Tokens[i]) >= cfg.Vocab:
			return fmt.Errorf("batch: tokens[%d] = %d outside the vocabulary [0, %d)", i, b.Tokens[i], cfg.Vocab)
		case b.Segments[i] < 0 || int(b.Segments[i]) >= cfg.Segments:
			return fmt.Errorf("batch: segments[%d] = %d outside [0, %d)", i, b.Segments[i], cfg.Segments)
		case b.Positions[i] < 0 || int(b.Positions[i]) >= cfg.MaxLen:
			return fmt.Errorf("batch: positions[%d] = %d outside [0, %d)", i, b.Positions[i], cfg.MaxLen)
		}
	}
	return nil
}
