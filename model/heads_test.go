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
		lr      float64
		// A frozen random encoder blurs the marker, so its head is only asked
		// to beat the prevalence clearly; fine-tuning must find the marker.
		min float64
	}{
		{"fine-tuned, cls", false, PoolCLS, 3e-3, 0.9},
		{"fine-tuned, mean", false, PoolMean, 3e-3, 0.9},
		{"frozen, mean", true, PoolMean, 3e-2, prev + 0.15},
	} {
		hc := DefaultHeadConfig()
		hc.Frozen, hc.Pooling, hc.Train.LR, hc.Epochs, hc.Patience = c.frozen, c.pooling, c.lr, 12, 12
		hc.Train.Warmup = 5
		cl, err := FineTune(context.Background(), enc, train, valid, hc)
		if err != nil {
			t.Fatal(err)
		}
		ap := AveragePrecision(labelsOf(valid), cl.PredictAll(seqsOf(valid), 32))
		t.Logf("%s: validation AUPRC %.3f (prevalence %.3f), best epoch %d", c.name, ap, prev, cl.BestEpoch)
		if ap != cl.ValidScore {
			t.Errorf("%s: AUPRC of the returned classifier %g, recorded best %g", c.name, ap, cl.ValidScore)
		}
		if ap < c.min {
			t.Errorf("%s: validation AUPRC %.3f, want >= %.3f (prevalence %.3f)", c.name, ap, c.min, prev)
		}
	}
	for i := range before {
		if before[i] != enc.params[i] {
			t.Fatal("FineTune modified the encoder it was given")
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
