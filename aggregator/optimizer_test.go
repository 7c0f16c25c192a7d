package aggregator

import (
	"math"
	"testing"
)

func TestFedAvg(t *testing.T) {
	for _, tc := range []struct {
		lr         float64
		global     []float32
		mean, want []float32
	}{
		{1, []float32{1, 2, 3}, []float32{0.5, -1, 0}, []float32{1.5, 1, 3}},
		{0.5, []float32{1, 2, 3}, []float32{0.5, -1, 0}, []float32{1.25, 1.5, 3}},
	} {
		o, err := NewOptimizer(ServerConfig{Optimizer: "fedavg", LearningRate: tc.lr})
		if err != nil {
			t.Fatal(err)
		}
		g := append([]float32(nil), tc.global...)
		if err := o.Apply(g, tc.mean); err != nil {
			t.Fatal(err)
		}
		for i := range g {
			if g[i] != tc.want[i] {
				t.Fatalf("lr %v: got %v, want %v", tc.lr, g, tc.want)
			}
		}
	}
	if err := (&FedAvg{LR: 1}).Apply(make([]float32, 2), make([]float32, 3)); err == nil {
		t.Fatal("length mismatch accepted")
	}
}

// TestFedAdam checks two steps against Adam worked by hand: with bias correction the
// first step moves every coordinate by LR * sign(mean) (up to Eps).
func TestFedAdam(t *testing.T) {
	cfg := ServerConfig{Optimizer: "fedadam", LearningRate: 0.1, Beta1: 0.9, Beta2: 0.99, Epsilon: 1e-8}
	o, err := NewOptimizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := []float32{0, 0}
	if err := o.Apply(g, []float32{2, -0.5}); err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(g[0])-0.1) > 1e-6 || math.Abs(float64(g[1])+0.1) > 1e-6 {
		t.Fatalf("first step: %v", g)
	}
	// Second step by hand for coordinate 0: grads -2 then -1.
	m := 0.9*(0.1*-2) + 0.1*-1
	v := 0.99*(0.01*4) + 0.01*1
	want := 0.1 - 0.1*(m/(1-0.81))/(math.Sqrt(v/(1-0.9801))+1e-8)
	state, _ := o.MarshalBinary()
	// The state survives a checkpoint: a restored optimizer takes the same step.
	r, _ := NewOptimizer(cfg)
	if err := r.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	g2 := append([]float32(nil), g...)
	if err := o.Apply(g, []float32{1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(g2, []float32{1, 1}); err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(g[0])-want) > 1e-6 {
		t.Fatalf("second step: %v, want %v", g[0], want)
	}
	if g[0] != g2[0] || g[1] != g2[1] {
		t.Fatalf("restored optimizer stepped to %v, original to %v", g2, g)
	}
	if err := r.UnmarshalBinary(state[:20]); err == nil {
		t.Fatal("truncated state accepted")
	}
}

func TestOptimizerConfig(t *testing.T) {
	for _, c := range []ServerConfig{
		{Optimizer: "sgd", LearningRate: 1},
		{Optimizer: "fedavg", LearningRate: 0},
		{Optimizer: "fedadam", LearningRate: 1, Beta1: 1, Beta2: 0.9, Epsilon: 1},
		{Optimizer: "fedadam", LearningRate: 1, Beta1: 0.9, Beta2: 0.9, Epsilon: 0},
	} {
		if _, err := NewOptimizer(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
