package site

import (
	"context"
	"math"
	"slices"
	"testing"
)

func TestTrainDelta(t *testing.T) {
	v, seqs := hospital(t, 40, 1)
	global := tinyModel(t, v.Len(), 2)
	before := global.Flatten()
	lt := LocalTraining{Steps: 4, Batch: 8, LR: 1e-2, Seed: 3}
	res, err := Train(context.Background(), global, seqs, lt)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Delta) != global.Config().Params() {
		t.Fatalf("delta has %d values, the model %d parameters", len(res.Delta), global.Config().Params())
	}
	if !slices.Equal(global.Flatten(), before) {
		t.Fatal("training changed the global model")
	}
	if l2(res.Delta) == 0 {
		t.Fatal("delta is zero")
	}
	if res.Steps != 4 || res.Samples != len(seqs) || !(res.Loss > 0) || math.IsInf(res.Loss, 0) {
		t.Fatalf("result steps %d samples %d loss %g", res.Steps, res.Samples, res.Loss)
	}
	again, err := Train(context.Background(), global, seqs, lt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Delta, res.Delta) {
		t.Fatal("the same seed gave another delta")
	}
	lt.Seed++
	other, err := Train(context.Background(), global, seqs, lt)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other.Delta, res.Delta) {
		t.Fatal("another seed gave the same delta")
	}
}

func TestTrainEpochs(t *testing.T) {
	v, seqs := hospital(t, 20, 1)
	global := tinyModel(t, v.Len(), 2)
	res, err := Train(context.Background(), global, seqs, LocalTraining{Epochs: 1, Batch: 8, LR: 1e-3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(seqs) + 7) / 8; res.Steps != want {
		t.Fatalf("one epoch took %d steps, want %d", res.Steps, want)
	}
}

// TestFedProxPullsTowardGlobal trains the same rounds with and without the proximal
// term: with it, the local model stays nearer the global one.
func TestFedProxPullsTowardGlobal(t *testing.T) {
	v, seqs := hospital(t, 40, 1)
	global := tinyModel(t, v.Len(), 2)
	free, err := Train(context.Background(), global, seqs, LocalTraining{Steps: 20, Batch: 8, LR: 1e-2, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	prox, err := Train(context.Background(), global, seqs, LocalTraining{Steps: 20, Batch: 8, LR: 1e-2, Mu: 50, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	nf, np := l2(free.Delta), l2(prox.Delta)
	t.Logf("||delta|| without the proximal term %.4f, with mu=50 %.4f", nf, np)
	if !(np < 0.7*nf) {
		t.Fatalf("proximal term did not pull toward the global model: %.4f vs %.4f", np, nf)
	}
}

func TestProximalGradient(t *testing.T) {
	g := []float32{1, 0, -1}
	w := []float32{2, 1, 0}
	w0 := []float32{1, 1, 1}
	proximal(g, w, w0, 0.5)
	if want := []float32{1.5, 0, -1.5}; !slices.Equal(g, want) {
		t.Fatalf("got %v, want %v", g, want)
	}
}

func TestTrainRefuses(t *testing.T) {
	v, seqs := hospital(t, 10, 1)
	global := tinyModel(t, v.Len(), 2)
	tests := []struct {
		name string
		seqs int
		lt   LocalTraining
	}{
		{"no data", 0, LocalTraining{Steps: 1, Batch: 1, LR: 1}},
		{"no batch", 1, LocalTraining{Steps: 1, LR: 1}},
		{"no rate", 1, LocalTraining{Steps: 1, Batch: 1}},
		{"negative mu", 1, LocalTraining{Steps: 1, Batch: 1, LR: 1, Mu: -1}},
		{"no work", 1, LocalTraining{Batch: 1, LR: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Train(context.Background(), global, seqs[:tt.seqs], tt.lt); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestProtect(t *testing.T) {
	t.Run("clip", func(t *testing.T) {
		d := []float32{3, 4}
		norm, err := protect(d, 1, 0, 3, 1)
		if err != nil || norm != 5 || math.Abs(l2(d)-1) > 1e-6 {
			t.Fatalf("norm %g, clipped to %g, %v", norm, l2(d), err)
		}
	})
	t.Run("no clip", func(t *testing.T) {
		d := []float32{3, 4}
		if _, err := protect(d, 0, 0, 3, 1); err != nil || d[0] != 3 || d[1] != 4 {
			t.Fatalf("changed to %v, %v", d, err)
		}
	})
	t.Run("noise needs a clip", func(t *testing.T) {
		if _, err := protect([]float32{1}, 0, 0.1, 3, 1); err == nil {
			t.Fatal("noise without a clip norm")
		}
	})
	t.Run("noise share", func(t *testing.T) {
		// After Encrypt multiplies by the weight, the site's noise has the standard
		// deviation the aggregator asked for.
		const std, weight = 0.01, 0.5
		d := make([]float32, 100_000)
		if _, err := protect(d, 1, std, 3, weight); err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, v := range d {
			s += float64(v) * weight * float64(v) * weight
		}
		got := math.Sqrt(s / float64(len(d)))
		if math.Abs(got-std)/std > 0.02 {
			t.Fatalf("weighted noise std %g, want %g", got, std)
		}
		again := make([]float32, len(d))
		if _, err := protect(again, 1, std, 3, weight); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(again, d) {
			t.Fatal("two rounds drew the same noise: it is not secret")
		}
	})
}
