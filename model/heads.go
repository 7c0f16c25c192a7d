package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Example is one labelled patient for a binary task: the encoded history up to
// the index date and whether the outcome followed.
type Example struct {
	Seq   Sequence
	Label bool
}

// Pooling turns an encoder's hidden states into one vector per sequence.
type Pooling string

const (
	PoolCLS  Pooling = "cls"  // the [CLS] token's final state
	PoolMean Pooling = "mean" // the mean over the sequence's real (non-padding) tokens
)

// HeadConfig sets how FineTune trains a binary head.
type HeadConfig struct {
	Pooling Pooling
	// Frozen keeps the encoder fixed and fits only a logistic head on its pooled
	// features, computed once: much cheaper than fine-tuning. A frozen head wants
	// a larger learning rate than fine-tuning (1e-2 rather than 1e-4).
	Frozen bool
	// Train is the optimiser of the encoder (fine-tuning) and the head; its Steps
	// are ignored, the schedule spans Epochs.
	Train    TrainConfig
	Epochs   int
	Patience int // epochs without a better validation score before stopping
	Batch    int
	// ClassWeight weights positives by negatives/positives in the training loss,
	// so that a rare outcome is not ignored.
	ClassWeight bool
	Seed        uint64
	// Score rates validation predictions, higher better; AveragePrecision when nil.
	Score func(labels []bool, scores []float64) float64
}

// DefaultHeadConfig fine-tunes with [CLS] pooling and class weighting.
func DefaultHeadConfig() HeadConfig {
	tc := DefaultTrainConfig(1)
	tc.LR = 1e-4
	return HeadConfig{Pooling: PoolCLS, Train: tc, Epochs: 5, Patience: 2, Batch: 16, ClassWeight: true, Seed: 1}
}

// Classifier is an encoder with one binary head: p = σ(w·pool(h) + b).
type Classifier struct {
	Encoder *Model
	Pooling Pooling
	W       []float32
	B       float32
	// ValidScore is the best validation score reached, at BestEpoch (1-based).
	ValidScore float64
	BestEpoch  int
}

// AveragePrecision is the area under the step-wise precision-recall curve, the
// mean of precision at each positive's rank (ties ranked together). It is 0
// without positives.
func AveragePrecision(labels []bool, scores []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	pos := 0
	for _, l := range labels {
		if l {
			pos++
		}
	}
	if pos == 0 {
		return 0
	}
	var ap float64
	tp, seen := 0, 0
	for i := 0; i < len(idx); {
		j, tpHere := i, 0
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				tpHere++
			}
			j++
		}
		tp += tpHere
		seen += j - i
		ap += float64(tpHere) / float64(pos) * float64(tp) / float64(seen)
		i = j
	}
	return ap
}

// pooled writes the pooled vector of each sequence of b into out (B×H).
func pooled(out, hidden []float32, b *Batch, h int, p Pooling) {
	for s := range b.B {
		o := out[s*h : (s+1)*h]
		if p == PoolCLS {
			copy(o, hidden[s*b.T*h:(s*b.T+1)*h])
			continue
		}
		clear(o)
		n := 0
		for t := range b.T {
			if b.Tokens[s*b.T+t] == PAD {
				continue
			}
			n++
			row := hidden[(s*b.T+t)*h : (s*b.T+t+1)*h]
			for i := range o {
				o[i] += row[i]
			}
		}
		if n > 0 {
			inv := 1 / float32(n)
			for i := range o {
				o[i] *= inv
			}
		}
	}
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Predict returns the outcome probability of each sequence of b.
func (c *Classifier) Predict(b *Batch) []float64 {
	h := c.Encoder.cfg.Hidden
	hidden := c.Encoder.Forward(b, false, nil)
	pool := make([]float32, b.B*h)
	pooled(pool, hidden, b, h, c.Pooling)
	out := make([]float64, b.B)
	for s := range out {
		out[s] = sigmoid(c.logit(pool[s*h : (s+1)*h]))
	}
	return out
}

// PredictAll predicts seqs in length-sorted batches of batch sequences and
// returns the probabilities in seqs' order.
func (c *Classifier) PredictAll(seqs []Sequence, batch int) []float64 {
	out := make([]float64, len(seqs))
	forBatches(seqs, batch, func(idx []int, b *Batch) {
		for i, p := range c.Predict(b) {
			out[idx[i]] = p
		}
	})
	return out
}

// forBatches calls fn on batches of seqs grouped by length (least padding), with
// the indices of their sequences.
func forBatches(seqs []Sequence, batch int, fn func(idx []int, b *Batch)) {
	idx := make([]int, len(seqs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return seqs[idx[a]].Len() < seqs[idx[b]].Len() })
	for i := 0; i < len(idx); i += batch {
		part := idx[i:min(i+batch, len(idx))]
		fn(part, Pad(seqs, part))
	}
}

func (c *Classifier) logit(x []float32) float64 {
	z := float64(c.B)
	for i, v := range x {
		z += float64(c.W[i]) * float64(v)
	}
	return z
}

// FineTune trains a binary head for one task on enc (which it copies and leaves
// unchanged), with early stopping on the validation score.
func FineTune(ctx context.Context, enc *Model, train, valid []Example, hc HeadConfig) (*Classifier, error) {
	if len(train) == 0 || len(valid) == 0 {
		return nil, fmt.Errorf("fine-tune: %d training and %d validation examples, need some of each", len(train), len(valid))
	}
	if hc.Pooling != PoolCLS && hc.Pooling != PoolMean {
		return nil, fmt.Errorf("fine-tune: pooling %q must be %q or %q", hc.Pooling, PoolCLS, PoolMean)
	}
	if hc.Epochs <= 0 || hc.Batch <= 0 {
		return nil, fmt.Errorf("fine-tune: epochs %d and batch %d must be positive", hc.Epochs, hc.Batch)
	}
	score := hc.Score
	if score == nil {
		score = AveragePrecision
	}
	cfg := enc.cfg
	h := cfg.Hidden
	m, err := New(cfg, 0)
	if err != nil {
		return nil, err
	}
	copy(m.params, enc.params)
	m.pool = enc.pool
	c := &Classifier{Encoder: m, Pooling: hc.Pooling, W: make([]float32, h)}

	trainSeqs, validSeqs := make([]Sequence, len(train)), make([]Sequence, len(valid))
	labels, validLabels := make([]bool, len(train)), make([]bool, len(valid))
	npos := 0
	for i, e := range train {
		trainSeqs[i], labels[i] = e.Seq, e.Label
		if e.Label {
			npos++
		}
	}
	for i, e := range valid {
		validSeqs[i], validLabels[i] = e.Seq, e.Label
	}
	if err := CheckSequences(trainSeqs, cfg); err != nil {
		return nil, fmt.Errorf("fine-tune: training %w", err)
	}
	if err := CheckSequences(validSeqs, cfg); err != nil {
		return nil, fmt.Errorf("fine-tune: validation %w", err)
	}
	posWeight := float32(1)
	if hc.ClassWeight && npos > 0 && npos < len(train) {
		posWeight = float32(len(train)-npos) / float32(npos)
	}
	tc := hc.Train
	batchesPerEpoch := (len(train) + hc.Batch - 1) / hc.Batch
	tc.Steps = hc.Epochs * batchesPerEpoch
	tc.Accum = 1
	if tc.Warmup > tc.Steps {
		tc.Warmup = tc.Steps / 10
	}
	if err := tc.Validate(); err != nil {
		return nil, fmt.Errorf("fine-tune: %w", err)
	}
	headOpt := newAdamW(make([]bool, h+1))
	head := make([]float32, h+1) // W then B, for the optimiser
	headGrad := make([]float32, h+1)
	var encOpt *AdamW
	if !hc.Frozen {
		encOpt = NewAdamW(cfg)
	}
	rng := rand.New(rand.NewPCG(hc.Seed, 0x68656164))

	// A frozen encoder's features are computed once.
	var feats []float32
	if hc.Frozen {
		feats = make([]float32, len(train)*h)
		forBatches(trainSeqs, hc.Batch, func(idx []int, b *Batch) {
			hidden := m.Forward(b, false, nil)
			pool := make([]float32, b.B*h)
			pooled(pool, hidden, b, h, hc.Pooling)
			for i, j := range idx {
				copy(feats[j*h:(j+1)*h], pool[i*h:(i+1)*h])
			}
		})
	}

	best := math.Inf(-1)
	var bestParams []float32
	bestHead := make([]float32, h+1)
	sinceBest := 0
	pool := make([]float32, hc.Batch*h)
	dpool := make([]float32, hc.Batch*h)
	var dhidden []float32
	for epoch := 1; epoch <= hc.Epochs; epoch++ {
		order := rng.Perm(len(train))
		for i := 0; i < len(order); i += hc.Batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			idx := order[i:min(i+hc.Batch, len(order))]
			nb := len(idx)
			var b *Batch
			if hc.Frozen {
				for k, j := range idx {
					copy(pool[k*h:(k+1)*h], feats[j*h:(j+1)*h])
				}
			} else {
				b = Pad(trainSeqs, idx)
				hidden := m.Forward(b, true, rng)
				pooled(pool, hidden, b, h, hc.Pooling)
			}
			// Weighted binary cross-entropy, normalised by the batch's total weight.
			clear(headGrad)
			var wsum float32
			for _, j := range idx {
				if labels[j] {
					wsum += posWeight
				} else {
					wsum++
				}
			}
			for k, j := range idx {
				x := pool[k*h : (k+1)*h]
				p := sigmoid(c.logit(x))
				y, w := float32(0), float32(1)
				if labels[j] {
					y, w = 1, posWeight
				}
				dz := w * (float32(p) - y) / wsum
				for d := range h {
					headGrad[d] += dz * x[d]
					dpool[k*h+d] = dz * c.W[d]
				}
				headGrad[h] += dz
			}
			if !hc.Frozen {
				m.ZeroGrad()
				dhidden = grow(dhidden, b.B*b.T*h)
				clear(dhidden)
				for s := range nb {
					dp := dpool[s*h : (s+1)*h]
					if hc.Pooling == PoolCLS {
						copy(dhidden[s*b.T*h:], dp)
						continue
					}
					n := 0
					for t := range b.T {
						if b.Tokens[s*b.T+t] != PAD {
							n++
						}
					}
					for t := range b.T {
						if b.Tokens[s*b.T+t] == PAD {
							continue
						}
						row := dhidden[(s*b.T+t)*h : (s*b.T+t+1)*h]
						for d := range row {
							row[d] = dp[d] / float32(n)
						}
					}
				}
				m.Backward(b, dhidden)
				encOpt.Update(m.params, m.grads, tc)
			}
			copy(head, c.W)
			head[h] = c.B
			headOpt.Update(head, headGrad, tc)
			copy(c.W, head[:h])
			c.B = head[h]
		}
		s := score(validLabels, c.PredictAll(validSeqs, hc.Batch))
		if s > best {
			best, sinceBest = s, 0
			c.ValidScore, c.BestEpoch = s, epoch
			copy(bestHead, c.W)
			bestHead[h] = c.B
			if !hc.Frozen {
				bestParams = append(bestParams[:0], m.params...)
			}
		} else if sinceBest++; sinceBest >= hc.Patience {
			break
		}
	}
	copy(c.W, bestHead[:h])
	c.B = bestHead[h]
	if bestParams != nil {
		copy(m.params, bestParams)
	}
	return c, nil
}
