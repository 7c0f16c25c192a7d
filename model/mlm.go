package model

import (
	"math/rand/v2"
	"slices"
)

// Masked is the MLM objective's choice for one batch: the flat positions (b·T+t)
// it predicts and the original token at each.
type Masked struct {
	Index  []int32
	Target []int32
	cand   []int32 // scratch, kept to reuse
}

// MaskTokens picks MaskFraction of each sequence's code tokens (never [PAD],
// [CLS], [SEP], [MASK] or [UNK]; at least one where the sequence has any) and
// corrupts them in b.Tokens the BERT way: 80% become [MASK], 10% a random code,
// 10% stay. It returns what was picked; b.Tokens is modified in place.
func MaskTokens(b *Batch, vocab int, rng *rand.Rand) Masked {
	var mk Masked
	mk.mask(b, vocab, rng)
	return mk
}

// mask is MaskTokens into mk, reusing its slices.
func (mk *Masked) mask(b *Batch, vocab int, rng *rand.Rand) {
	mk.Index, mk.Target = mk.Index[:0], mk.Target[:0]
	cand := mk.cand[:0]
	defer func() { mk.cand = cand }()
	for s := range b.B {
		cand = cand[:0]
		for t := range b.T {
			if b.Tokens[s*b.T+t] >= FirstCode {
				cand = append(cand, int32(s*b.T+t))
			}
		}
		if len(cand) == 0 {
			continue
		}
		k := max(1, int(MaskFraction*float64(len(cand))+0.5))
		// A partial Fisher-Yates shuffle picks k distinct positions.
		for i := range k {
			j := i + rng.IntN(len(cand)-i)
			cand[i], cand[j] = cand[j], cand[i]
		}
		picked := cand[:k]
		slices.Sort(picked)
		for _, idx := range picked {
			mk.Index = append(mk.Index, idx)
			mk.Target = append(mk.Target, b.Tokens[idx])
			switch u := rng.Float64(); {
			case u < 0.8:
				b.Tokens[idx] = MASK
			case u < 0.9:
				b.Tokens[idx] = int32(FirstCode + rng.IntN(vocab-FirstCode))
			}
		}
	}
}

// MLM runs the model over b and returns the summed cross-entropy of the masked
// targets, each weighted by weight. With train set, dropout is drawn from rng and
// the gradient of that weighted sum is added to the model's gradients.
func (m *Model) MLM(b *Batch, mk Masked, weight float32, train bool, rng *rand.Rand) float64 {
	c := m.cfg
	h, v, k := c.Hidden, c.Vocab, len(mk.Index)
	hidden := m.Forward(b, train, rng)
	if k == 0 {
		return 0
	}
	ws := m.ws
	ws.hm = grow(ws.hm, k*h)
	ws.logits = grow(ws.logits, k*v)
	ws.dhm = grow(ws.dhm, k*h)
	for i, idx := range mk.Index {
		copy(ws.hm[i*h:(i+1)*h], hidden[int(idx)*h:(int(idx)+1)*h])
	}
	m.gemm(false, true, k, v, h, 1, ws.hm, h, m.w.tok, h, 0, ws.logits, v)
	addBias(ws.logits, m.w.mlmB)
	ws.wts = grow(ws.wts, k)
	wts := ws.wts
	for i := range wts {
		wts[i] = weight
	}
	loss := softmaxXent(m.pool, ws.logits, mk.Target, wts, v, ws.headPart)
	if !train {
		return loss
	}
	// logits now hold dloss/dlogits.
	addColSums(m.g.mlmB, ws.logits)
	m.gemm(true, false, v, h, k, 1, ws.logits, v, ws.hm, h, 1, m.g.tok, h)
	m.gemm(false, false, k, h, v, 1, ws.logits, v, m.w.tok, h, 0, ws.dhm, h)
	dhidden := ws.dh // free until Backward's first block
	clear(dhidden)
	for i, idx := range mk.Index {
		copy(dhidden[int(idx)*h:(int(idx)+1)*h], ws.dhm[i*h:(i+1)*h])
	}
	// Backward reads dhidden before it writes ws.dh.
	m.Backward(b, dhidden)
	return loss
}

func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}
