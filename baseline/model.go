package baseline

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// Tree is one regression tree in LightGBM's layout: internal nodes are numbered in
// the order they were split; a child index c >= 0 is an internal node and c < 0 is
// the leaf ^c. A row goes left when its value is <= Threshold, a missing value
// counting as zero.
type Tree struct {
	SplitFeature   []int32
	SplitGain      []float64
	Threshold      []float64
	Left, Right    []int32
	InternalValue  []float64
	InternalWeight []float64
	InternalCount  []int
	LeafValue      []float64
	LeafWeight     []float64
	LeafCount      []int
	Shrinkage      float64
}

// NumLeaves returns the number of leaves.
func (t *Tree) NumLeaves() int { return len(t.LeafValue) }

// leaf returns the leaf that the row (idx, val), sorted by column, falls into.
func (t *Tree) leaf(idx []int32, val []float32) int {
	if len(t.SplitFeature) == 0 {
		return 0
	}
	node := int32(0)
	for node >= 0 {
		f := t.SplitFeature[node]
		v := 0.0
		// Rows are short and sorted: a binary search beats a map.
		lo, hi := 0, len(idx)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if idx[mid] < f {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo < len(idx) && idx[lo] == f {
			v = float64(val[lo])
			if math.IsNaN(v) {
				v = 0
			}
		}
		if v <= t.Threshold[node] {
			node = t.Left[node]
		} else {
			node = t.Right[node]
		}
	}
	return int(^node)
}

// Model is a trained binary classifier: raw score is the sum of its trees' outputs,
// probability the logistic of it. The first tree carries the initial score.
type Model struct {
	Trees       []Tree
	NumFeatures int
	// FeatureNames name the columns in the model file; Column_i when empty.
	FeatureNames []string
	Params       Params
	// BestIteration is the iteration early stopping kept (1-based); 0 without it.
	BestIteration int
	// bins give the model file's feature_infos; absent for a model read back.
	bins []binMapper
}

// PredictRawRow returns the raw score of one sorted sparse row.
func (m *Model) PredictRawRow(idx []int32, val []float32) float64 {
	s := 0.0
	for i := range m.Trees {
		t := &m.Trees[i]
		s += t.LeafValue[t.leaf(idx, val)]
	}
	return s
}

// PredictRaw returns the raw scores (log-odds) of every row of x, using nThreads
// goroutines (0 for one).
func (m *Model) PredictRaw(x *CSR, nThreads int) []float64 {
	out := make([]float64, x.Rows())
	parallelRange(x.Rows(), max(1, nThreads), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			idx, val := x.Row(i)
			out[i] = m.PredictRawRow(idx, val)
		}
	})
	return out
}

// Predict returns the probabilities of the positive class.
func (m *Model) Predict(x *CSR, nThreads int) []float64 {
	out := m.PredictRaw(x, nThreads)
	for i, s := range out {
		out[i] = sigmoid(s)
	}
	return out
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// parallelRange splits [0, n) into up to threads contiguous chunks.
func parallelRange(n, threads int, f func(lo, hi int)) {
	if threads <= 1 || n < 2*threads {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + threads - 1) / threads
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', 17, 64) }

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmtFloat(x)
	}
	return strings.Join(s, " ")
}

func joinInts[T int | int32](v []T) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, " ")
}

// text renders a tree block as LightGBM's GBDT::SaveModelToString does, with its
// "Tree=i" header and trailing blank line.
func (t *Tree) text(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Tree=%d\n", i)
	fmt.Fprintf(&b, "num_leaves=%d\n", t.NumLeaves())
	b.WriteString("num_cat=0\n")
	fmt.Fprintf(&b, "split_feature=%s\n", joinInts(t.SplitFeature))
	fmt.Fprintf(&b, "split_gain=%s\n", joinFloats(t.SplitGain))
	fmt.Fprintf(&b, "threshold=%s\n", joinFloats(t.Threshold))
	// decision_type 2: numerical, default left, missing type None (NaN reads as zero).
	dt := make([]int, len(t.SplitFeature))
	for i := range dt {
		dt[i] = 2
	}
	fmt.Fprintf(&b, "decision_type=%s\n", joinInts(dt))
	fmt.Fprintf(&b, "left_child=%s\n", joinInts(t.Left))
	fmt.Fprintf(&b, "right_child=%s\n", joinInts(t.Right))
	fmt.Fprintf(&b, "leaf_value=%s\n", joinFloats(t.LeafValue))
	fmt.Fprintf(&b, "leaf_weight=%s\n", joinFloats(t.LeafWeight))
	fmt.Fprintf(&b, "leaf_count=%s\n", joinInts(t.LeafCount))
	fmt.Fprintf(&b, "internal_value=%s\n", joinFloats(t.InternalValue))
	fmt.Fprintf(&b, "internal_weight=%s\n", joinFloats(t.InternalWeight))
	fmt.Fprintf(&b, "internal_count=%s\n", joinInts(t.InternalCount))
	b.WriteString("is_linear=0\n")
	fmt.Fprintf(&b, "shrinkage=%s\n", fmtFloat(t.Shrinkage))
	b.WriteString("\n\n")
	return b.String()
}

// WriteText writes m in LightGBM's text model format (version v4, as LightGBM 4
// writes it; readers of v2 and v3 read the same fields).
func (m *Model) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	trees := make([]string, len(m.Trees))
	sizes := make([]int, len(m.Trees))
	for i := range m.Trees {
		trees[i] = m.Trees[i].text(i)
		sizes[i] = len(trees[i])
	}
	names := make([]string, m.NumFeatures)
	infos := make([]string, m.NumFeatures)
	for i := range names {
		names[i] = "Column_" + strconv.Itoa(i)
		if i < len(m.FeatureNames) && m.FeatureNames[i] != "" {
			names[i] = sanitizeName(m.FeatureNames[i])
		}
		infos[i] = "none"
		if i < len(m.bins) && m.bins[i].numBins() > 1 {
			infos[i] = fmt.Sprintf("[%s:%s]", fmtFloat(m.bins[i].min), fmtFloat(m.bins[i].max))
		}
	}
	fmt.Fprintf(bw, "tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n")
	fmt.Fprintf(bw, "max_feature_idx=%d\nobjective=binary sigmoid:1\n", m.NumFeatures-1)
	fmt.Fprintf(bw, "feature_names=%s\nfeature_infos=%s\ntree_sizes=%s\n\n",
		strings.Join(names, " "), strings.Join(infos, " "), joinInts(sizes))
	for _, t := range trees {
		bw.WriteString(t)
	}
	bw.WriteString("end of trees\n\nfeature_importances:\n")
	imp := make([]int, m.NumFeatures)
	for i := range m.Trees {
		for _, f := range m.Trees[i].SplitFeature {
			imp[f]++
		}
	}
	for f, n := range imp {
		if n > 0 {
			fmt.Fprintf(bw, "%s=%d\n", names[f], n)
		}
	}
	bw.WriteString("\nparameters:\n")
	for _, l := range m.Params.lines() {
		bw.WriteString(l + "\n")
	}
	bw.WriteString("end of parameters\n\npandas_categorical:null\n")
	return bw.Flush()
}

// sanitizeName makes a code usable as a LightGBM feature name, which may not hold
// spaces, '=' or the JSON specials LightGBM rejects.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '=', ',', ':', '"', '[', ']', '{', '}':
			return '_'
		}
		return r
	}, s)
}

// Save writes m to path in LightGBM's format, through a temporary file in the same
// directory renamed into place, so that a failure leaves no half-written model.
func (m *Model) Save(path string) error {
	return atomicfile.Write(path, 0o644, m.WriteText)
}
