package baseline

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestBinMapper(t *testing.T) {
	tests := []struct {
		name    string
		nonzero []float64
		zeros   int
		maxBin  int
		bins    int
	}{
		{"counts", []float64{1, 1, 1, 2, 2, 2, 3, 3, 3}, 10, 255, 4},
		{"signed", []float64{-2, -2, -2, 1, 1, 1, 5, 5, 5}, 3, 255, 4},
		{"all zero", nil, 10, 255, 1},
		{"rare values merge", []float64{1, 2, 3, 4}, 5, 255, 3}, // min_data_in_bin 3: {1,2,3}, {4}
		{"capped", nil, 0, 16, 16},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		tests[4].nonzero = append(tests[4].nonzero, rng.Float64()*100)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newBinMapper(append([]float64(nil), tt.nonzero...), tt.zeros, tt.maxBin, 3)
			if m.numBins() != tt.bins {
				t.Errorf("%d bins %v, want %d", m.numBins(), m.upper, tt.bins)
			}
			if m.bin(0) != m.zeroBin {
				t.Errorf("zero maps to bin %d, zero bin is %d", m.bin(0), m.zeroBin)
			}
			for _, v := range tt.nonzero {
				if b := m.bin(v); b == m.zeroBin && m.numBins() > 1 {
					t.Errorf("nonzero %v shares the zero bin", v)
				}
			}
			for b := 1; b < m.numBins(); b++ {
				if !(m.upper[b] > m.upper[b-1]) {
					t.Errorf("bounds not increasing: %v", m.upper)
				}
			}
			if !math.IsInf(m.upper[m.numBins()-1], 1) {
				t.Errorf("last bound %v, want +Inf", m.upper[m.numBins()-1])
			}
		})
	}
}

// Every row a tree routes by raw value must land in the leaf whose row range the
// binned partition put it in; otherwise histograms and thresholds disagree.
func TestPartitionMatchesThresholds(t *testing.T) {
	d := Synthetic(3000, 150, 0.06, 21)
	p := DefaultParams()
	p.NumThreads = 2
	p.MinDataInLeaf = 5
	mappers := buildBinMappers(d.X, &p)
	b := newBinned(d.X, mappers, 2)
	n := d.X.Rows()
	tr := &trainer{p: &p, b: b, threads: 2, gh: make([]binStat, n), idx: make([]int32, n),
		tmp: make([]int32, n), mark: make([]uint16, n), used: make([]bool, len(mappers)),
		scratch: [][]binStat{make([]binStat, b.nBins)}}
	for i := range n {
		tr.idx[i] = int32(i)
		y := 0.0
		if d.Label[i] {
			y = 1
		}
		tr.gh[i] = binStat{0.5 - y, 0.25}
	}
	for f := range tr.used {
		tr.used[f] = true
	}
	tree, leaves := tr.grow(n)
	if tree.NumLeaves() < 10 {
		t.Fatalf("tree has %d leaves; too few to test", tree.NumLeaves())
	}
	total := 0
	for li, l := range leaves {
		total += l.end - l.start
		for _, r := range tr.idx[l.start:l.end] {
			idx, val := d.X.Row(int(r))
			if got := tree.leaf(idx, val); got != li {
				t.Fatalf("row %d: thresholds route it to leaf %d, partition to leaf %d", r, got, li)
			}
		}
	}
	if total != n {
		t.Errorf("leaves hold %d rows, want %d", total, n)
	}
}

func BenchmarkTrain(b *testing.B) {
	d := Synthetic(20000, 2000, 0.005, 1)
	p := DefaultParams()
	p.NumIterations = 20
	b.ResetTimer()
	for range b.N {
		if _, err := Train(b.Context(), d, nil, p, nil); err != nil {
			b.Fatal(err)
		}
	}
}
