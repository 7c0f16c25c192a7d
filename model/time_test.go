package model

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTimeBucket(t *testing.T) {
	cases := []struct {
		days float64
		want int
	}{
		{math.NaN(), 1}, {-3, 1}, {0, 1}, {0.4, 1}, {0.6, 2}, {1, 2}, {2, 2}, {3, 3}, {6, 3},
		{7, 4}, {14, 4}, {30, 5}, {31, 6}, {365, 9}, {16382, 14}, {16383, 15}, {1e6, 15}, {math.Inf(1), 15},
	}
	for _, c := range cases {
		if got := TimeBucket(c.days, DefaultTimeBuckets); got != c.want {
			t.Errorf("TimeBucket(%g, %d) = %d, want %d", c.days, DefaultTimeBuckets, got, c.want)
		}
	}
	if got := TimeBucket(1000, 3); got != 2 {
		t.Errorf("TimeBucket(1000, 3) = %d, want the cap 2", got)
	}
}

// TestTimeBuckets checks the buckets derived from a batch laid out as the tokenizer
// lays it out: ages in years, [CLS] at the cutoff, [SEP] closing each visit.
func TestTimeBuckets(t *testing.T) {
	const y = 1 / daysPerYear // one day, in years
	cases := []struct {
		name     string
		tokens   []int32
		ages     []float32
		wantTime []int32
		wantGap  []int32
	}{
		{
			name:   "three visits then padding",
			tokens: []int32{CLS, 7, 8, SEP, 9, SEP, 7, SEP, PAD},
			// visits on days 0, 10 and 13; cutoff on day 20
			ages:     []float32{50 + 20*y, 50, 50, 50, 50 + 10*y, 50 + 10*y, 50 + 13*y, 50 + 13*y, 0},
			wantTime: []int32{0, 5, 5, 5, 4, 4, 4, 4, 0},
			wantGap:  []int32{0, 0, 0, 0, 4, 4, 3, 3, 0},
		},
		{
			name:     "no birth date",
			tokens:   []int32{CLS, 7, SEP, 8, SEP},
			ages:     []float32{-1, -1, -1, -1, -1},
			wantTime: []int32{0, 0, 0, 0, 0},
			wantGap:  []int32{0, 0, 0, 0, 0},
		},
		{
			name:   "whole history: the last visit is at the cutoff",
			tokens: []int32{CLS, 7, SEP, 8, 9, SEP},
			ages:   []float32{60, 60 - 400*y, 60 - 400*y, 60, 60, 60},
			// 400 days: 1+floor(log2 401) = 9
			wantTime: []int32{0, 9, 9, 1, 1, 1},
			wantGap:  []int32{0, 0, 0, 9, 9, 9},
		},
		{
			name:     "a cap at the last bucket",
			tokens:   []int32{CLS, 7, SEP, 8, SEP},
			ages:     []float32{90, 0, 0, 90, 90},
			wantTime: []int32{0, 15, 15, 1, 1},
			wantGap:  []int32{0, 0, 0, 15, 15},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.tokens)
			b := &Batch{B: 1, T: n, Tokens: c.tokens, Ages: c.ages}
			tb, gb := make([]int32, n), make([]int32, n)
			timeBuckets(b, DefaultTimeBuckets, tb, gb)
			if !slices.Equal(tb, c.wantTime) || !slices.Equal(gb, c.wantGap) {
				t.Errorf("time %v gap %v, want %v and %v", tb, gb, c.wantTime, c.wantGap)
			}
		})
	}
	// Rows are independent: two rows of a batch get what each gets alone.
	two := &Batch{B: 2, T: 5, Tokens: append(slices.Clone(cases[1].tokens), cases[3].tokens...),
		Ages: append(slices.Clone(cases[1].ages), cases[3].ages...)}
	tb, gb := make([]int32, 10), make([]int32, 10)
	timeBuckets(two, DefaultTimeBuckets, tb, gb)
	if !slices.Equal(tb, append(slices.Clone(cases[1].wantTime), cases[3].wantTime...)) ||
		!slices.Equal(gb, append(slices.Clone(cases[1].wantGap), cases[3].wantGap...)) {
		t.Errorf("two rows: time %v gap %v", tb, gb)
	}
}

// timeBatch is tinyBatch with visits: a [SEP] every third token and ages a few
// months to years apart, so that the time and gap tables see several rows each.
func timeBatch(rng *rand.Rand, cfg Config, b, t int) *Batch {
	bt := tinyBatch(rng, cfg, b, t)
	for s := range b {
		age := float32(30 + 10*s)
		for i := 1; i < t; i++ {
			k := s*t + i
			if bt.Tokens[k] == PAD {
				continue
			}
			if i%3 == 0 {
				bt.Tokens[k] = SEP
			}
			bt.Ages[k] = age
			if bt.Tokens[k] == SEP {
				age += float32(rng.IntN(2000)) / daysPerYear
			}
		}
		bt.Ages[s*t] = age + 3
	}
	return bt
}

// TestPreTimeCheckpoint loads a checkpoint written before the time embeddings
// existed (model/testdata/pretime, from commit 00b371c: tinyConfig, seed 21,
// parameters jittered by N(0, 0.3²) from PCG(5, 6)) and checks that it loads with
// TimeBuckets 0, the same tensors, and gives the hidden states it gave then (to float32 rounding)
// on tinyBatch(PCG(7, 8), 3, 7).
func TestPreTimeCheckpoint(t *testing.T) {
	dir := filepath.Join("testdata", "pretime")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config()
	if cfg != tinyConfig() {
		t.Fatalf("config %+v, want %+v", cfg, tinyConfig())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "hidden.f32"))
	if err != nil {
		t.Fatal(err)
	}
	out := m.Forward(tinyBatch(rand.New(rand.NewPCG(7, 8)), cfg, 3, 7), false, nil)
	if len(raw) != 4*len(out) {
		t.Fatalf("%d bytes of hidden states, want %d", len(raw), 4*len(out))
	}
	for i, v := range out {
		// To float32 rounding: the file was written on one CPU, and math's and
		// gonum's kernels round differently where the CPU has FMA.
		if want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); math.Abs(float64(v-want)) > 1e-5*max(1, math.Abs(float64(want))) {
			t.Fatalf("hidden[%d] = %g, want %g as before time embeddings", i, v, want)
		}
	}
}

// TestTimeEmbeddingsMatter checks that the time tables reach the output: moving
// one visit in time changes the hidden states with them and not without.
func TestTimeEmbeddingsMatter(t *testing.T) {
	for _, buckets := range []int{0, DefaultTimeBuckets} {
		cfg := tinyConfig()
		cfg.TimeBuckets = buckets
		m, err := New(cfg, 3)
		if err != nil {
			t.Fatal(err)
		}
		// Zero the age projection so that only the time tables can see the move.
		clear(m.w.ageW)
		b := timeBatch(rand.New(rand.NewPCG(1, 1)), cfg, 1, 7)
		before := slices.Clone(m.Forward(b, false, nil))
		for i := 1; i < 3; i++ { // the first visit, 5 years earlier
			b.Ages[i] -= 5
		}
		after := m.Forward(b, false, nil)
		if changed := !slices.Equal(before, after); changed != (buckets > 0) {
			t.Errorf("time buckets %d: hidden states changed %v", buckets, changed)
		}
	}
}

// TestSaveLoadTimeBuckets: a checkpoint with time embeddings records them in
// config.json and loads back as it was saved, its tables right after the age
// embedding.
func TestSaveLoadTimeBuckets(t *testing.T) {
	cfg := tinyConfig()
	cfg.TimeBuckets = 5
	m, err := New(cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir, []byte(`{"tokens":["[PAD]"]}`)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ParseConfig(raw); err != nil || c != cfg {
		t.Fatalf("config.json %s parses to %+v, %v; want %+v", raw, c, err, cfg)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config() != cfg || !slices.Equal(got.params, m.params) {
		t.Fatal("loaded model differs from the saved one")
	}
	names := cfg.TensorNames()
	if names[5] != "embeddings.time.weight" || names[6] != "embeddings.gap.weight" {
		t.Errorf("tensors %v: want the time and gap tables after embeddings.age.bias", names[:8])
	}
	// Initialised like the other embeddings: N(0, 0.02²), not zero.
	tab, _ := m.Tensor("embeddings.time.weight")
	if sh := tab.Shape(); sh[0] != 5 || sh[1] != cfg.Hidden || slices.Max(m.w.time) == 0 {
		t.Errorf("time table of shape %v, largest value %g", sh, slices.Max(m.w.time))
	}
	// Without time embeddings config.json is what it was before they existed.
	plain, _ := tinyConfig().marshal()
	if strings.Contains(string(plain), "time_buckets") {
		t.Errorf("config.json without time embeddings mentions them: %s", plain)
	}
}
