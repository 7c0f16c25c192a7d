package model

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

func TestAveragePrecision(t *testing.T) {
	cases := []struct {
		labels []bool
		scores []float64
		want   float64
	}{
		{[]bool{true, false, true, false}, []float64{0.9, 0.8, 0.7, 0.1}, (1 + 2.0/3) / 2},
		{[]bool{true, true, false}, []float64{0.9, 0.8, 0.1}, 1},
		{[]bool{false, true}, []float64{0.9, 0.1}, 0.5},
		{[]bool{true, false}, []float64{0.5, 0.5}, 0.5}, // a tie ranks together
		{[]bool{false, false}, []float64{0.5, 0.1}, 0},
	}
	for _, c := range cases {
		if got := AveragePrecision(c.labels, c.scores); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("AveragePrecision(%v, %v) = %g, want %g", c.labels, c.scores, got, c.want)
		}
	}
}

// headExamples labels a sequence positive when it holds the code `marker`
// (about a quarter of them).
func headExamples(rng *rand.Rand, cfg Config, n int) []Example {
	const marker = FirstCode
	ex := make([]Example, n)
	for i := range ex {
		l := 6 + rng.IntN(8)
		s := Sequence{Tokens: make([]int32, l), Segments: make([]int32, l), Positions: make([]int32, l), Ages: make([]float32, l)}
		s.Tokens[0] = CLS
		for j := 1; j < l; j++ {
			s.Tokens[j] = int32(FirstCode + 1 + rng.IntN(cfg.Vocab-FirstCode-1))
			s.Positions[j] = int32(j)
			s.Ages[j] = 60
		}
		if rng.IntN(4) == 0 {
			s.Tokens[1+rng.IntN(l-1)] = marker
			ex[i].Label = true
		}
		ex[i].Seq = s
	}
	return ex
}

func TestDefaultHeadConfig(t *testing.T) {
	hc := DefaultHeadConfig()
	if !hc.Frozen || hc.ClassWeight || hc.Score != nil || hc.Lambdas != nil {
		t.Errorf("default head: frozen %v, class weighting %v, score set %v, lambdas %v; want the unweighted probe on validation log-loss over ProbeLambdas",
			hc.Frozen, hc.ClassWeight, hc.Score != nil, hc.Lambdas)
	}
	grid := ProbeLambdas()
	if len(grid) < 7 || len(grid) > 13 || math.Abs(grid[0]-1e-4) > 1e-18 || math.Abs(grid[len(grid)-1]-1e2) > 1e-12 {
		t.Errorf("ProbeLambdas %v: want 7-13 values from 1e-4 to 1e2", grid)
	}
	for i := 1; i < len(grid); i++ {
		if r := grid[i] / grid[i-1]; math.Abs(r-math.Sqrt(10)) > 1e-9 {
			t.Errorf("ProbeLambdas %v: ratio %g between %d and %d, want half a decade", grid, r, i-1, i)
		}
	}
}

func TestLogLoss(t *testing.T) {
	for _, c := range []struct {
		labels []bool
		p      []float64
		want   float64
	}{
		{[]bool{true, false}, []float64{0.5, 0.5}, math.Ln2},
		{[]bool{true, false}, []float64{0.8, 0.1}, -(math.Log(0.8) + math.Log(0.9)) / 2},
		{[]bool{true}, []float64{0}, -math.Log(1e-15)}, // clipped, not infinite
		{[]bool{false}, []float64{1}, -math.Log1p(-(1 - 1e-15))},
	} {
		if got := LogLoss(c.labels, c.p); math.Abs(got-c.want) > 1e-12*(1+c.want) {
			t.Errorf("LogLoss(%v, %v) = %g, want %g", c.labels, c.p, got, c.want)
		}
		if got := NegLogLoss(c.labels, c.p); got != -LogLoss(c.labels, c.p) {
			t.Errorf("NegLogLoss(%v, %v) = %g, want -LogLoss", c.labels, c.p, got)
		}
	}
}

func TestFineTune(t *testing.T) {
	cfg := Config{Vocab: 40, Hidden: 16, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}
	enc, _ := New(cfg, 1)
	rng := rand.New(rand.NewPCG(2, 3))
	train, valid := headExamples(rng, cfg, 300), headExamples(rng, cfg, 150)
	prev := 0.0
	for _, e := range valid {
		if e.Label {
			prev++
		}
	}
	prev /= float64(len(valid))
	before := append([]float32(nil), enc.params...)
	for _, c := range []struct {
		name    string
		frozen  bool
		pooling Pooling
		// A frozen random encoder blurs the marker, so its probe is only asked
		// to beat the prevalence clearly; fine-tuning must find the marker.
		min float64
	}{
		{"fine-tuned, cls", false, PoolCLS, 0.9},
		{"fine-tuned, mean", false, PoolMean, 0.9},
		{"probe, mean", true, PoolMean, prev + 0.15},
		{"probe, cls", true, PoolCLS, prev + 0.15},
		{"fine-tuned, both", false, PoolBoth, 0.9},
		{"probe, both", true, PoolBoth, prev + 0.15},
	} {
		hc := DefaultHeadConfig()
		hc.Frozen, hc.Pooling = c.frozen, c.pooling
		if !c.frozen {
			hc.Train.LR, hc.Epochs, hc.Patience, hc.Train.Warmup = 3e-3, 12, 12, 5
		}
		cl, err := FineTune(context.Background(), enc, train, valid, hc)
		if err != nil {
			t.Fatal(err)
		}
		p := cl.PredictAll(seqsOf(valid), 32)
		ap := AveragePrecision(labelsOf(valid), p)
		t.Logf("%s: validation AUPRC %.3f (prevalence %.3f), log-loss %.4f, best epoch %d, lambda %g",
			c.name, ap, prev, cl.ValidLogLoss, cl.BestEpoch, cl.Lambda)
		// The recorded validation numbers are those of the classifier returned
		// (to float32 rounding: PredictAll pads batches otherwise than training's
		// validation pass, and SIMD sums round by length).
		if ll := LogLoss(labelsOf(valid), p); !sameScore(ll, cl.ValidLogLoss) || !sameScore(-ll, cl.ValidScore) {
			t.Errorf("%s: log-loss of the returned classifier %g, recorded %g (score %g)", c.name, ll, cl.ValidLogLoss, cl.ValidScore)
		}
		if ap < c.min {
			t.Errorf("%s: validation AUPRC %.3f, want >= %.3f (prevalence %.3f)", c.name, ap, c.min, prev)
		}
		if c.frozen {
			if cl.BestEpoch != 0 || cl.EpochScores != nil || !(cl.Lambda > 0) {
				t.Errorf("%s: best epoch %d, epoch scores %v, lambda %g: want a probe's 0, none and a positive lambda",
					c.name, cl.BestEpoch, cl.EpochScores, cl.Lambda)
			}
			for i := range before {
				if cl.Encoder.params[i] != enc.params[i] {
					t.Fatalf("%s: the probe's encoder differs from the one given", c.name)
				}
			}
		}
	}
	for i := range before {
		if before[i] != enc.params[i] {
			t.Fatal("FineTune modified the encoder it was given")
		}
	}
}

// TestFineTuneEarlyStopping checks that fine-tuning keeps the epoch with the
// best validation score (the lowest log-loss by default), restores that
// epoch's encoder and head rather than the last's, and stops after Patience
// epochs without improvement.
func TestFineTuneEarlyStopping(t *testing.T) {
	cfg := Config{Vocab: 40, Hidden: 16, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}
	enc, _ := New(cfg, 1)
	rng := rand.New(rand.NewPCG(4, 5))
	// Few training examples, a sixth of their labels flipped, and a large learning
	// rate: the model learns the marker, then memorises the flipped labels, so the
	// validation log-loss turns up before the last epoch.
	train, valid := headExamples(rng, cfg, 80), headExamples(rng, cfg, 150)
	for i := range train {
		if rng.IntN(6) == 0 {
			train[i].Label = !train[i].Label
		}
	}
	const epochs = 15
	for _, c := range []struct {
		name     string
		score    func([]bool, []float64) float64
		patience int
		// notLast asks that the best epoch not be the last run, so that the
		// restoring of an earlier epoch is what the test checks.
		notLast bool
	}{
		{"log-loss, no early stop", nil, epochs, true},
		{"log-loss, patience 1", nil, 1, false},
		{"AUPRC score", AveragePrecision, epochs, false},
	} {
		hc := DefaultHeadConfig()
		hc.Frozen, hc.Pooling, hc.Epochs, hc.Patience, hc.Score = false, PoolMean, epochs, c.patience, c.score
		hc.Train.LR, hc.Train.Warmup, hc.Batch = 1e-2, 2, 8
		cl, err := FineTune(context.Background(), enc, train, valid, hc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: epoch scores %.4f, best epoch %d", c.name, cl.EpochScores, cl.BestEpoch)
		best := 0
		for i, s := range cl.EpochScores {
			if s > cl.EpochScores[best] {
				best = i
			}
		}
		if cl.BestEpoch != best+1 {
			t.Errorf("%s: best epoch %d, but epoch %d scored best (%v)", c.name, cl.BestEpoch, best+1, cl.EpochScores)
		}
		if c.notLast && cl.BestEpoch == len(cl.EpochScores) {
			t.Fatalf("%s: the last epoch was the best, so restoring is not tested; make the head overfit", c.name)
		}
		want := min(epochs, cl.BestEpoch+c.patience)
		if len(cl.EpochScores) != want {
			t.Errorf("%s: %d epochs run, want %d (best %d, patience %d)", c.name, len(cl.EpochScores), want, cl.BestEpoch, c.patience)
		}
		p := cl.PredictAll(seqsOf(valid), 32)
		score := c.score
		if score == nil {
			score = NegLogLoss
		}
		if s := score(labelsOf(valid), p); !sameScore(s, cl.EpochScores[cl.BestEpoch-1]) || !sameScore(s, cl.ValidScore) {
			t.Errorf("%s: the returned classifier scores %g, the best epoch %g (recorded %g)", c.name, s, cl.EpochScores[cl.BestEpoch-1], cl.ValidScore)
		}
		if ll := LogLoss(labelsOf(valid), p); !sameScore(ll, cl.ValidLogLoss) {
			t.Errorf("%s: the returned classifier's log-loss %g, recorded %g", c.name, ll, cl.ValidLogLoss)
		}
	}
}

// sameScore reports whether two validation scores of one classifier agree to
// the float32 rounding of its forward pass, which depends on how batches are
// padded (a sum of a longer row rounds otherwise on SIMD hardware); epochs that
// differ in substance differ far more.
func sameScore(a, b float64) bool {
	return math.Abs(a-b) <= 1e-5*max(1, math.Abs(b))
}

// TestHeadDeterminism trains each kind of head twice with the same seed and
// wants the same classifier, bit for bit.
func TestHeadDeterminism(t *testing.T) {
	cfg := Config{Vocab: 40, Hidden: 16, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}
	enc, _ := New(cfg, 1)
	rng := rand.New(rand.NewPCG(6, 7))
	train, valid := headExamples(rng, cfg, 120), headExamples(rng, cfg, 60)
	for _, frozen := range []bool{true, false} {
		hc := DefaultHeadConfig()
		hc.Frozen, hc.Epochs, hc.Train.LR = frozen, 2, 3e-3
		var cls [2]*Classifier
		for k := range cls {
			cl, err := FineTune(context.Background(), enc, train, valid, hc)
			if err != nil {
				t.Fatal(err)
			}
			cls[k] = cl
		}
		a, b := cls[0], cls[1]
		same := a.B == b.B && a.Lambda == b.Lambda && a.ValidScore == b.ValidScore && a.BestEpoch == b.BestEpoch
		for i := range a.W {
			same = same && a.W[i] == b.W[i]
		}
		for i := range a.Encoder.params {
			same = same && a.Encoder.params[i] == b.Encoder.params[i]
		}
		if !same {
			t.Errorf("frozen %v: two runs with seed %d differ", frozen, hc.Seed)
		}
	}
}

func labelsOf(ex []Example) []bool {
	l := make([]bool, len(ex))
	for i, e := range ex {
		l[i] = e.Label
	}
	return l
}

func seqsOf(ex []Example) []Sequence {
	s := make([]Sequence, len(ex))
	for i, e := range ex {
		s[i] = e.Seq
	}
	return s
}

// TestFitProbeOnFeatures: the probe fitted on PooledFeatures computed once is the
// probe FineTune fits from the sequences, and PredictFeatures predicts what
// PredictAll does.
func TestFitProbeOnFeatures(t *testing.T) {
	cfg := Config{Vocab: 40, Hidden: 16, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}
	enc, _ := New(cfg, 1)
	rng := rand.New(rand.NewPCG(8, 9))
	train, valid := headExamples(rng, cfg, 150), headExamples(rng, cfg, 60)
	seqsOf := func(ex []Example) []Sequence {
		s := make([]Sequence, len(ex))
		for i, e := range ex {
			s[i] = e.Seq
		}
		return s
	}
	ctx := context.Background()
	for _, pooling := range Poolings() {
		hc := DefaultHeadConfig()
		hc.Pooling = pooling
		want, err := FineTune(ctx, enc, train, valid, hc)
		if err != nil {
			t.Fatal(err)
		}
		xTrain, err := PooledFeatures(ctx, enc, seqsOf(train), hc.Batch, pooling)
		if err != nil {
			t.Fatal(err)
		}
		xValid, err := PooledFeatures(ctx, enc, seqsOf(valid), hc.Batch, pooling)
		if err != nil {
			t.Fatal(err)
		}
		if w := pooling.Width(cfg.Hidden); len(xTrain) != len(train)*w || len(want.W) != w {
			t.Fatalf("%s: %d features for %d examples and a head of %d weights, want width %d", pooling, len(xTrain), len(train), len(want.W), w)
		}
		got, err := FitProbe(ctx, enc, xTrain, labelsOf(train), xValid, labelsOf(valid), hc)
		if err != nil {
			t.Fatal(err)
		}
		same := got.B == want.B && got.Lambda == want.Lambda && got.ValidLogLoss == want.ValidLogLoss
		for i := range want.W {
			same = same && got.W[i] == want.W[i]
		}
		if !same {
			t.Errorf("%s: FitProbe on features gave lambda %g, b %g; FineTune lambda %g, b %g", pooling, got.Lambda, got.B, want.Lambda, want.B)
		}
		fromSeqs, fromFeats := got.PredictAll(seqsOf(valid), hc.Batch), got.PredictFeatures(xValid)
		for i := range fromSeqs {
			if math.Abs(fromSeqs[i]-fromFeats[i]) > 1e-12 {
				t.Fatalf("%s: row %d: PredictAll %g, PredictFeatures %g", pooling, i, fromSeqs[i], fromFeats[i])
			}
		}
	}
	if _, err := FitProbe(ctx, enc, make([]float32, 5), []bool{true}, nil, nil, DefaultHeadConfig()); err == nil {
		t.Error("FitProbe took 5 feature values for one example of width 16")
	}
}

// TestPooledGrad checks pooledBack against finite differences of r·pooled(hidden)
// for every pooling, with padding in the second sequence.
func TestPooledGrad(t *testing.T) {
	const h = 4
	rng := rand.New(rand.NewPCG(15, 16))
	b := tinyBatch(rng, tinyConfig(), 2, 5)
	hidden := randSlice(rng, b.B*b.T*h, 1)
	for _, p := range Poolings() {
		t.Run(string(p), func(t *testing.T) {
			w := p.Width(h)
			r := randSlice(rng, b.B*w, 1)
			out := make([]float32, b.B*w)
			loss := func() float64 {
				pooled(out, hidden, b, h, p)
				return dot64(out, r)
			}
			dhidden := randSlice(rng, len(hidden), 1) // stale values must be cleared
			pooledBack(dhidden, r, b, h, p)
			checkGrad(t, "pooled "+string(p), hidden, dhidden, loss)
		})
	}
}

// TestPoolBothIsCLSThenMean checks the layout of PoolBoth's features.
func TestPoolBothIsCLSThenMean(t *testing.T) {
	const h = 3
	rng := rand.New(rand.NewPCG(17, 18))
	b := tinyBatch(rng, tinyConfig(), 2, 4)
	hidden := randSlice(rng, b.B*b.T*h, 1)
	cls, mean, both := make([]float32, b.B*h), make([]float32, b.B*h), make([]float32, 2*b.B*h)
	pooled(cls, hidden, b, h, PoolCLS)
	pooled(mean, hidden, b, h, PoolMean)
	pooled(both, hidden, b, h, PoolBoth)
	for s := range b.B {
		for d := range h {
			if both[s*2*h+d] != cls[s*h+d] || both[s*2*h+h+d] != mean[s*h+d] {
				t.Fatalf("sequence %d: both %v, want cls %v then mean %v", s, both[s*2*h:(s+1)*2*h], cls[s*h:(s+1)*h], mean[s*h:(s+1)*h])
			}
		}
	}
}

func TestPoolingValidate(t *testing.T) {
	for _, c := range []struct {
		p     Pooling
		ok    bool
		width int
	}{
		{PoolCLS, true, 8}, {PoolMean, true, 8}, {PoolBoth, true, 16}, {"", false, 8}, {"max", false, 8},
	} {
		if err := c.p.Validate(); (err == nil) != c.ok {
			t.Errorf("Pooling(%q).Validate() = %v, want ok %v", c.p, err, c.ok)
		}
		if w := c.p.Width(8); w != c.width {
			t.Errorf("Pooling(%q).Width(8) = %d, want %d", c.p, w, c.width)
		}
	}
}
