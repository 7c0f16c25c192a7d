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
	// PoolBoth is PoolCLS's state followed by PoolMean's, 2·Hidden wide: the
	// head chooses how much of each to use instead of the evaluation choosing one.
	PoolBoth Pooling = "both"
)

// Poolings lists the valid poolings.
func Poolings() []Pooling { return []Pooling{PoolCLS, PoolMean, PoolBoth} }

// Validate reports whether p is one of Poolings.
func (p Pooling) Validate() error {
	switch p {
	case PoolCLS, PoolMean, PoolBoth:
		return nil
	}
	return fmt.Errorf("pooling %q must be one of %v", p, Poolings())
}

// Width is the number of pooled features p gives an encoder of hidden width h.
func (p Pooling) Width(h int) int {
	if p == PoolBoth {
		return 2 * h
	}
	return h
}

// HeadConfig sets how FineTune trains a binary head.
//
// The default (DefaultHeadConfig) is the linear probe that EHRSHOT and CLMBR
// evaluate encoders with: the encoder stays frozen, its pooled features are
// computed once and standardised with the training split's mean and standard
// deviation, and an L2-regularised logistic regression is fitted on them to
// convergence in float64, its strength chosen on validation log-loss. Fine-tuning
// the encoder together with the head (Frozen false) is the option; it stops early
// on validation log-loss and keeps its best epoch.
type HeadConfig struct {
	Pooling Pooling
	// Frozen keeps the encoder fixed and fits the linear probe on its pooled
	// features: deterministic, and much cheaper than fine-tuning (one encoder pass
	// over the training and validation splits; then, per λ, a few Newton steps of
	// O(n·h²) on n training examples, holding n·(h+1) float64s). Train, Epochs,
	// Patience and Seed are then unused.
	Frozen bool
	// Lambdas is the probe's grid of L2 strengths λ, each the weight of
	// λ/2·Σ w_d² (the intercept unpenalised) against the mean training log-loss
	// on standardised features; the probe keeps the one whose head scores best on
	// validation. ProbeLambdas() when nil.
	Lambdas []float64
	// Train is the optimiser of the encoder and head when fine-tuning; its Steps
	// are ignored, the schedule spans Epochs.
	Train    TrainConfig
	Epochs   int // fine-tuning epochs at most
	Patience int // fine-tuning epochs without a better validation score before stopping
	Batch    int // sequences per encoder batch (both modes) and per fine-tuning step
	// ClassWeight weights positives by negatives/positives in the training loss
	// (both modes). It makes the head predict as if the outcome were as common as
	// its absence, so its probabilities overstate a rare outcome's risk and are
	// not calibrated; it is off by default and only for when ranking alone matters.
	ClassWeight bool
	Seed        uint64 // fine-tuning's example order and dropout
	// Score rates validation probabilities, higher better: it chooses the probe's
	// λ and the fine-tuned epoch. NegLogLoss (binary log-loss, which a handful of
	// positives moves far less than it does AUPRC) when nil.
	Score func(labels []bool, scores []float64) float64
}

// DefaultHeadConfig is the linear probe on [CLS] pooling over ProbeLambdas,
// without class weighting. Setting Frozen to false fine-tunes with its Train (a
// learning rate of 1e-4), Epochs, Patience and Batch, stopping on validation
// log-loss.
func DefaultHeadConfig() HeadConfig {
	tc := DefaultTrainConfig(1)
	tc.LR = 1e-4
	return HeadConfig{Pooling: PoolCLS, Frozen: true, Train: tc, Epochs: 5, Patience: 2, Batch: 16, Seed: 1}
}

// Classifier is an encoder with one binary head: p = σ(w·pool(h) + b).
type Classifier struct {
	Encoder *Model
	Pooling Pooling
	// W and B act on the raw pooled features: a probe's standardisation is folded
	// into them.
	W []float32
	B float32
	// ValidScore is HeadConfig.Score, and ValidLogLoss the binary log-loss, of the
	// returned classifier's validation predictions.
	ValidScore   float64
	ValidLogLoss float64
	// Lambda is the probe's chosen L2 strength (0 when fine-tuned).
	Lambda float64
	// Mean and Scale are a probe's standardisation of the raw pooled features,
	// (x_d - Mean_d)·Scale_d, measured on the training split; they are already
	// folded into W and B and kept to be saved with the head. Nil when fine-tuned.
	Mean, Scale []float64
	// BestEpoch is the fine-tuned epoch kept (1-based; 0 for a probe), and
	// EpochScores the validation score after each epoch run.
	BestEpoch   int
	EpochScores []float64
}

// logLossEps bounds the probabilities LogLoss takes logarithms of.
const logLossEps = 1e-15

// LogLoss is the mean binary cross-entropy of the probabilities p for labels,
// each clipped to [1e-15, 1-1e-15] so that one confident mistake costs at most
// about 34.5 nats rather than infinity. It is NaN without labels.
func LogLoss(labels []bool, p []float64) float64 {
	var s float64
	for i, l := range labels {
		q := min(max(p[i], logLossEps), 1-logLossEps)
		if l {
			s -= math.Log(q)
		} else {
			s -= math.Log1p(-q)
		}
	}
	return s / float64(len(labels))
}

// NegLogLoss is -LogLoss, a higher-is-better HeadConfig.Score.
func NegLogLoss(labels []bool, p []float64) float64 { return -LogLoss(labels, p) }

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

// pooled writes the pooled vector of each sequence of b into out (B×p.Width(h)).
func pooled(out, hidden []float32, b *Batch, h int, p Pooling) {
	w := p.Width(h)
	for s := range b.B {
		o := out[s*w : (s+1)*w]
		cls := hidden[s*b.T*h : (s*b.T+1)*h]
		switch p {
		case PoolCLS:
			copy(o, cls)
			continue
		case PoolBoth:
			copy(o, cls)
			o = o[h:]
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

// pooledBack writes to dhidden (B·T×h, cleared first) the gradient at the hidden
// states given dpool, the gradient at pooled's output for b.
func pooledBack(dhidden, dpool []float32, b *Batch, h int, p Pooling) {
	w := p.Width(h)
	clear(dhidden)
	for s := range b.B {
		dp := dpool[s*w : (s+1)*w]
		switch p {
		case PoolCLS:
			copy(dhidden[s*b.T*h:], dp)
			continue
		case PoolBoth:
			// The [CLS] half goes to [CLS] alone; the mean half, below, to every
			// real token, [CLS] included, on top of it.
			copy(dhidden[s*b.T*h:], dp[:h])
			dp = dp[h:]
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
				row[d] += dp[d] / float32(n)
			}
		}
	}
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Predict returns the outcome probability of each sequence of b.
func (c *Classifier) Predict(b *Batch) []float64 {
	h := c.Encoder.cfg.Hidden
	w := c.Pooling.Width(h)
	hidden := c.Encoder.Forward(b, false, nil)
	pool := make([]float32, b.B*w)
	pooled(pool, hidden, b, h, c.Pooling)
	out := make([]float64, b.B)
	for s := range out {
		out[s] = sigmoid(c.logit(pool[s*w : (s+1)*w]))
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

func (c *Classifier) logit(x []float32) float64 { return linearLogit(c.W, c.B, x) }

// linearLogit is b + w·x, accumulated in float64.
func linearLogit(w []float32, b float32, x []float32) float64 {
	z := float64(b)
	for i, v := range x {
		z += float64(w[i]) * float64(v)
	}
	return z
}

// PooledFeatures returns the frozen encoder enc's pooled features of seqs
// (len(seqs)×p.Width(Hidden), row-major, in seqs' order), as the linear probe sees them. An
// evaluation with many tasks over the same examples computes them once and fits
// every task's probe on them with FitProbe, instead of one forward pass per task.
func PooledFeatures(ctx context.Context, enc *Model, seqs []Sequence, batch int, p Pooling) ([]float32, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("pooled features: %w", err)
	}
	if batch <= 0 {
		return nil, fmt.Errorf("pooled features: batch %d must be positive", batch)
	}
	if err := CheckSequences(seqs, enc.cfg); err != nil {
		return nil, fmt.Errorf("pooled features: %w", err)
	}
	return poolAll(ctx, enc, seqs, batch, p)
}

// FitProbe fits the linear probe of hc (hc.Frozen's head) on pooled features that
// PooledFeatures computed under enc with hc.Pooling: xTrain holds len(yTrain) rows
// and xValid len(yValid), each hc.Pooling.Width(Hidden) wide. The classifier it returns predicts
// from sequences through enc, like FineTune's, and from features through
// PredictFeatures; FineTune with hc.Frozen gives the same classifier.
func FitProbe(ctx context.Context, enc *Model, xTrain []float32, yTrain []bool, xValid []float32, yValid []bool, hc HeadConfig) (*Classifier, error) {
	if err := hc.Pooling.Validate(); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	h := hc.Pooling.Width(enc.cfg.Hidden)
	if len(xTrain) != len(yTrain)*h || len(xValid) != len(yValid)*h {
		return nil, fmt.Errorf("probe: %d and %d feature values for %d and %d examples of width %d", len(xTrain), len(xValid), len(yTrain), len(yValid), h)
	}
	if len(yTrain) == 0 || len(yValid) == 0 {
		return nil, fmt.Errorf("probe: %d training and %d validation examples, need some of each", len(yTrain), len(yValid))
	}
	return fitProbeClassifier(ctx, enc, xTrain, yTrain, xValid, yValid, hc)
}

// fitProbeClassifier is the probe of FineTune and FitProbe: enc is kept as the
// classifier's encoder, not copied, since a probe never changes it.
func fitProbeClassifier(ctx context.Context, enc *Model, xTrain []float32, yTrain []bool, xValid []float32, yValid []bool, hc HeadConfig) (*Classifier, error) {
	score := hc.Score
	if score == nil {
		score = NegLogLoss
	}
	lambdas := hc.Lambdas
	if lambdas == nil {
		lambdas = ProbeLambdas()
	}
	fit, err := fitProbe(ctx, xTrain, yTrain, xValid, yValid, hc.Pooling.Width(enc.cfg.Hidden), lambdas, hc.ClassWeight, score)
	if err != nil {
		return nil, fmt.Errorf("fine-tune: %w", err)
	}
	return &Classifier{Encoder: enc, Pooling: hc.Pooling, W: fit.w, B: fit.b, Lambda: fit.lambda,
		Mean: fit.std.mean, Scale: fit.std.scale,
		ValidScore: fit.score, ValidLogLoss: fit.logLoss}, nil
}

// PredictFeatures returns the outcome probability of each row of x, pooled
// features as PooledFeatures computes them under c.Encoder with c.Pooling.
func (c *Classifier) PredictFeatures(x []float32) []float64 {
	h := len(c.W)
	out := make([]float64, len(x)/h)
	for i := range out {
		out[i] = sigmoid(c.logit(x[i*h : (i+1)*h]))
	}
	return out
}

// poolAll returns the pooled features of seqs under m (len(seqs)×p.Width(Hidden),
// row-major, in seqs' order), computed in length-sorted batches of batch sequences
// as PredictAll does.
func poolAll(ctx context.Context, m *Model, seqs []Sequence, batch int, p Pooling) ([]float32, error) {
	h := m.cfg.Hidden
	w := p.Width(h)
	feats := make([]float32, len(seqs)*w)
	var pool []float32
	var err error
	forBatches(seqs, batch, func(idx []int, b *Batch) {
		if err != nil {
			return
		}
		if err = ctx.Err(); err != nil {
			return
		}
		hidden := m.Forward(b, false, nil)
		pool = grow(pool, b.B*w)
		pooled(pool, hidden, b, h, p)
		for i, j := range idx {
			copy(feats[j*w:(j+1)*w], pool[i*w:(i+1)*w])
		}
	})
	return feats, err
}

// FineTune trains a binary head for one task on enc (which it copies and leaves
// unchanged) on train, choosing on valid: with hc.Frozen the linear probe (λ
// chosen on the validation score), otherwise fine-tuning of encoder and head with
// early stopping on the validation score. See HeadConfig.
func FineTune(ctx context.Context, enc *Model, train, valid []Example, hc HeadConfig) (*Classifier, error) {
	if len(train) == 0 || len(valid) == 0 {
		return nil, fmt.Errorf("fine-tune: %d training and %d validation examples, need some of each", len(train), len(valid))
	}
	if err := hc.Pooling.Validate(); err != nil {
		return nil, fmt.Errorf("fine-tune: %w", err)
	}
	if hc.Batch <= 0 {
		return nil, fmt.Errorf("fine-tune: batch %d must be positive", hc.Batch)
	}
	if !hc.Frozen && hc.Epochs <= 0 {
		return nil, fmt.Errorf("fine-tune: epochs %d must be positive", hc.Epochs)
	}
	score := hc.Score
	if score == nil {
		score = NegLogLoss
	}
	cfg := enc.cfg
	// h is the encoder's width, w the head's (the pooled features').
	h := cfg.Hidden
	w := hc.Pooling.Width(h)
	m, err := New(cfg, 0)
	if err != nil {
		return nil, err
	}
	copy(m.params, enc.params)
	m.pool = enc.pool
	c := &Classifier{Encoder: m, Pooling: hc.Pooling, W: make([]float32, w)}

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

	if hc.Frozen {
		xTrain, err := poolAll(ctx, m, trainSeqs, hc.Batch, hc.Pooling)
		if err != nil {
			return nil, err
		}
		xValid, err := poolAll(ctx, m, validSeqs, hc.Batch, hc.Pooling)
		if err != nil {
			return nil, err
		}
		return fitProbeClassifier(ctx, m, xTrain, labels, xValid, validLabels, hc)
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
	headOpt := newAdamW(make([]bool, w+1))
	head := make([]float32, w+1) // W then B, for the optimiser
	headGrad := make([]float32, w+1)
	encOpt := NewAdamW(cfg)
	rng := rand.New(rand.NewPCG(hc.Seed, 0x68656164))

	best := math.Inf(-1)
	var bestParams []float32
	bestHead := make([]float32, w+1)
	sinceBest := 0
	pool := make([]float32, hc.Batch*w)
	dpool := make([]float32, hc.Batch*w)
	var dhidden []float32
	for epoch := 1; epoch <= hc.Epochs; epoch++ {
		order := rng.Perm(len(train))
		for i := 0; i < len(order); i += hc.Batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			idx := order[i:min(i+hc.Batch, len(order))]
			b := Pad(trainSeqs, idx)
			hidden := m.Forward(b, true, rng)
			pooled(pool, hidden, b, h, hc.Pooling)
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
				x := pool[k*w : (k+1)*w]
				p := sigmoid(c.logit(x))
				y, wt := float32(0), float32(1)
				if labels[j] {
					y, wt = 1, posWeight
				}
				dz := wt * (float32(p) - y) / wsum
				for d := range w {
					headGrad[d] += dz * x[d]
					dpool[k*w+d] = dz * c.W[d]
				}
				headGrad[w] += dz
			}
			m.ZeroGrad()
			dhidden = grow(dhidden, b.B*b.T*h)
			pooledBack(dhidden, dpool, b, h, hc.Pooling)
			m.Backward(b, dhidden)
			encOpt.Update(m.params, m.grads, tc)
			copy(head, c.W)
			head[w] = c.B
			headOpt.Update(head, headGrad, tc)
			copy(c.W, head[:w])
			c.B = head[w]
		}
		p := c.PredictAll(validSeqs, hc.Batch)
		s := score(validLabels, p)
		c.EpochScores = append(c.EpochScores, s)
		if s > best {
			best, sinceBest = s, 0
			c.ValidScore, c.ValidLogLoss, c.BestEpoch = s, LogLoss(validLabels, p), epoch
			copy(bestHead, c.W)
			bestHead[w] = c.B
			bestParams = append(bestParams[:0], m.params...)
		} else if sinceBest++; sinceBest >= hc.Patience {
			break
		}
	}
	if bestParams == nil {
		return nil, fmt.Errorf("fine-tune: no epoch gave a validation score (%v)", c.EpochScores)
	}
	copy(c.W, bestHead[:w])
	c.B = bestHead[w]
	copy(m.params, bestParams)
	return c, nil
}
