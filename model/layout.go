package model

import "fmt"

// tensorSpec names one parameter tensor and where it sits in the flat vector.
type tensorSpec struct {
	name  string
	shape []int
	decay bool // weight decay applies (matrices), not biases, gains or embeddings
	off   int
}

func (t tensorSpec) size() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// layout lists every parameter tensor in the fixed order of the flat vector that
// Flatten returns and federated rounds average. Names are the safetensors names.
// Matrices are stored input-major ([in, out], y = x·W), so that a PyTorch
// nn.Linear loads the transpose.
//
//	embeddings.token.weight      [V, H]   also the MLM decoder (tied)
//	embeddings.position.weight   [P, H]
//	embeddings.segment.weight    [S, H]
//	embeddings.age.weight        [H]      age embedding = age/100 * weight + bias
//	embeddings.age.bias          [H]
//	embeddings.time.weight       [TB, H]  time before the cutoff, by TimeBucket; only when TimeBuckets > 0
//	embeddings.gap.weight        [TB, H]  gap since the previous visit, by TimeBucket; likewise
//	layers.{i}.ln1.weight|bias   [H]
//	layers.{i}.attn.qkv.weight   [H, 3H]  columns: queries, keys, values; heads contiguous
//	layers.{i}.attn.qkv.bias     [3H]
//	layers.{i}.attn.out.weight   [H, H]
//	layers.{i}.attn.out.bias     [H]
//	layers.{i}.ln2.weight|bias   [H]
//	layers.{i}.mlp.fc1.weight    [H, 4H]
//	layers.{i}.mlp.fc1.bias      [4H]
//	layers.{i}.mlp.fc2.weight    [4H, H]
//	layers.{i}.mlp.fc2.bias      [H]
//	final_ln.weight|bias         [H]
//	mlm.bias                     [V]
func (c Config) layout() []tensorSpec {
	h, f := c.Hidden, c.Hidden*MLPRatio
	var ts []tensorSpec
	add := func(name string, decay bool, shape ...int) {
		ts = append(ts, tensorSpec{name: name, shape: shape, decay: decay})
	}
	add("embeddings.token.weight", false, c.Vocab, h)
	add("embeddings.position.weight", false, c.MaxLen, h)
	add("embeddings.segment.weight", false, c.Segments, h)
	add("embeddings.age.weight", false, h)
	add("embeddings.age.bias", false, h)
	if c.TimeBuckets > 0 {
		add("embeddings.time.weight", false, c.TimeBuckets, h)
		add("embeddings.gap.weight", false, c.TimeBuckets, h)
	}
	for i := range c.Layers {
		p := fmt.Sprintf("layers.%d.", i)
		add(p+"ln1.weight", false, h)
		add(p+"ln1.bias", false, h)
		add(p+"attn.qkv.weight", true, h, 3*h)
		add(p+"attn.qkv.bias", false, 3*h)
		add(p+"attn.out.weight", true, h, h)
		add(p+"attn.out.bias", false, h)
		add(p+"ln2.weight", false, h)
		add(p+"ln2.bias", false, h)
		add(p+"mlp.fc1.weight", true, h, f)
		add(p+"mlp.fc1.bias", false, f)
		add(p+"mlp.fc2.weight", true, f, h)
		add(p+"mlp.fc2.bias", false, h)
	}
	add("final_ln.weight", false, h)
	add("final_ln.bias", false, h)
	add("mlm.bias", false, c.Vocab)
	off := 0
	for i := range ts {
		ts[i].off = off
		off += ts[i].size()
	}
	return ts
}

// weights holds views into one flat vector (the parameters or their gradients).
type weights struct {
	tok, pos, seg, ageW, ageB []float32
	time, gap                 []float32 // nil without time embeddings
	layers                    []layerWeights
	lnfG, lnfB, mlmB          []float32
}

type layerWeights struct {
	ln1G, ln1B, wqkv, bqkv, wo, bo, ln2G, ln2B, w1, b1, w2, b2 []float32
}

// view slices flat according to c.layout().
func (c Config) view(flat []float32) weights {
	ts := c.layout()
	i := 0
	next := func() []float32 {
		t := ts[i]
		i++
		return flat[t.off : t.off+t.size() : t.off+t.size()]
	}
	var w weights
	w.tok, w.pos, w.seg, w.ageW, w.ageB = next(), next(), next(), next(), next()
	if c.TimeBuckets > 0 {
		w.time, w.gap = next(), next()
	}
	w.layers = make([]layerWeights, c.Layers)
	for l := range w.layers {
		lw := &w.layers[l]
		lw.ln1G, lw.ln1B, lw.wqkv, lw.bqkv, lw.wo, lw.bo = next(), next(), next(), next(), next(), next()
		lw.ln2G, lw.ln2B, lw.w1, lw.b1, lw.w2, lw.b2 = next(), next(), next(), next(), next(), next()
	}
	w.lnfG, w.lnfB, w.mlmB = next(), next(), next()
	return w
}
