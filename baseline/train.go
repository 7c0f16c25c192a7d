package baseline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/fedclaims/fedclaims/eval"
)

// Dataset is a feature matrix with binary labels.
type Dataset struct {
	X     *CSR
	Label []bool
}

func (d *Dataset) check(name string) error {
	if d == nil || d.X == nil {
		return fmt.Errorf("%s set: no matrix", name)
	}
	if d.X.Rows() != len(d.Label) {
		return fmt.Errorf("%s set: %d rows, %d labels", name, d.X.Rows(), len(d.Label))
	}
	if d.X.Rows() == 0 {
		return fmt.Errorf("%s set: no rows", name)
	}
	return nil
}

// ErrOneClass reports a training set whose labels are all one class.
var ErrOneClass = errors.New("labels hold a single class")

// binStat is one histogram bin: the sums of gradients and hessians.
type binStat struct{ g, h float64 }

// binned is the training matrix in the two layouts training needs: row-wise global
// bin ids, to build histograms over a leaf's rows, and column-wise, to partition a
// leaf on one feature. Entries falling into their feature's zero bin are not stored.
type binned struct {
	mappers []binMapper
	offset  []int32 // feature -> first global bin
	nBins   int

	rowPtr []int
	rowBin []uint32

	colPtr []int
	colRow []int32
	colBin []uint16
}

func newBinned(x *CSR, mappers []binMapper, threads int) *binned {
	b := &binned{mappers: mappers, offset: make([]int32, len(mappers))}
	for f := range mappers {
		b.offset[f] = int32(b.nBins)
		b.nBins += mappers[f].numBins()
	}
	n := x.Rows()
	// First pass: bin every entry (in parallel), counting what is kept.
	bins := make([]uint16, x.NNZ())
	keep := make([]int, n+1)
	parallelRange(n, threads, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			idx, val := x.Row(r)
			base := x.Indptr[r]
			k := 0
			for j, c := range idx {
				m := &mappers[c]
				bb := m.bin(float64(val[j]))
				bins[base+j] = uint16(bb)
				if bb != m.zeroBin && m.numBins() > 1 {
					k++
				}
			}
			keep[r+1] = k
		}
	})
	for r := 0; r < n; r++ {
		keep[r+1] += keep[r]
	}
	b.rowPtr = keep
	b.rowBin = make([]uint32, keep[n])
	colCount := make([]int, len(mappers)+1)
	parallelRange(n, threads, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			idx, _ := x.Row(r)
			base := x.Indptr[r]
			k := b.rowPtr[r]
			for j, c := range idx {
				m := &mappers[c]
				if bb := int(bins[base+j]); bb != m.zeroBin && m.numBins() > 1 {
					b.rowBin[k] = uint32(b.offset[c]) + uint32(bb)
					k++
				}
			}
		}
	})
	for r := 0; r < n; r++ {
		idx, _ := x.Row(r)
		base := x.Indptr[r]
		for j, c := range idx {
			if bb := int(bins[base+j]); bb != mappers[c].zeroBin && mappers[c].numBins() > 1 {
				colCount[c+1]++
			}
		}
	}
	for f := range mappers {
		colCount[f+1] += colCount[f]
	}
	b.colPtr = colCount
	b.colRow = make([]int32, colCount[len(mappers)])
	b.colBin = make([]uint16, colCount[len(mappers)])
	fill := slices.Clone(colCount[:len(mappers)])
	for r := 0; r < n; r++ {
		idx, _ := x.Row(r)
		base := x.Indptr[r]
		for j, c := range idx {
			if bb := int(bins[base+j]); bb != mappers[c].zeroBin && mappers[c].numBins() > 1 {
				b.colRow[fill[c]] = int32(r)
				b.colBin[fill[c]] = uint16(bb)
				fill[c]++
			}
		}
	}
	return b
}

// split is the best split found for a leaf.
type split struct {
	feature      int
	bin          int // rows with bin <= this go left
	gain         float64
	leftG, leftH float64
	ok           bool
}

// leafState is a leaf under construction: its rows are idx[start:end].
type leafState struct {
	start, end int
	g, h       float64
	depth      int
	hist       []binStat
	best       split
}

// trainer holds the buffers one training run reuses across trees.
type trainer struct {
	p       *Params
	b       *binned
	threads int
	gh      []binStat // per row
	idx     []int32   // row partition
	tmp     []int32
	mark    []uint16 // partition scratch: bin+1 of the split feature, 0 for zero
	pool    [][]binStat
	scratch [][]binStat // per-thread histograms
	used    []bool      // features this tree may split on
}

func (t *trainer) getHist() []binStat {
	if n := len(t.pool); n > 0 {
		h := t.pool[n-1]
		t.pool = t.pool[:n-1]
		return h
	}
	return make([]binStat, t.b.nBins)
}

func (t *trainer) putHist(h []binStat) {
	if h != nil {
		t.pool = append(t.pool, h)
	}
}

// accumulate adds the rows' gradients into dst (cleared first) and returns the sums.
func (t *trainer) accumulate(rows []int32, dst []binStat) (g, h float64) {
	clear(dst)
	rowPtr, rowBin, gh := t.b.rowPtr, t.b.rowBin, t.gh
	for _, r := range rows {
		s := gh[r]
		g += s.g
		h += s.h
		for _, bin := range rowBin[rowPtr[r]:rowPtr[r+1]] {
			d := &dst[bin]
			d.g += s.g
			d.h += s.h
		}
	}
	return g, h
}

// buildHist fills dst with the histogram of rows, splitting the rows between
// goroutines when there are enough of them to pay for the merge.
func (t *trainer) buildHist(rows []int32, dst []binStat) (g, h float64) {
	const minRowsPerThread = 4096
	nt := min(t.threads, len(rows)/minRowsPerThread)
	if nt <= 1 {
		return t.accumulate(rows, dst)
	}
	gs := make([]float64, nt)
	hs := make([]float64, nt)
	var wg sync.WaitGroup
	chunk := (len(rows) + nt - 1) / nt
	for k := range nt {
		lo, hi := k*chunk, min((k+1)*chunk, len(rows))
		buf := dst
		if k > 0 {
			buf = t.scratch[k-1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			gs[k], hs[k] = t.accumulate(rows[lo:hi], buf)
		}()
	}
	wg.Wait()
	// Merge the per-thread histograms in parallel over bin ranges.
	parallelRange(len(dst), t.threads, func(lo, hi int) {
		for k := 1; k < nt; k++ {
			src := t.scratch[k-1][lo:hi]
			d := dst[lo:hi]
			for i := range d {
				d[i].g += src[i].g
				d[i].h += src[i].h
			}
		}
	})
	for k := range nt {
		g += gs[k]
		h += hs[k]
	}
	return g, h
}

func thresholdL1(g, l1 float64) float64 {
	if l1 == 0 {
		return g
	}
	a := math.Abs(g) - l1
	if a <= 0 {
		return 0
	}
	return math.Copysign(a, g)
}

func (t *trainer) leafGain(g, h float64) float64 {
	sg := thresholdL1(g, t.p.LambdaL1)
	return sg * sg / (h + t.p.LambdaL2)
}

func (t *trainer) leafOutput(g, h float64) float64 {
	return -thresholdL1(g, t.p.LambdaL1) / (h + t.p.LambdaL2)
}

// bestSplit scans every usable feature's bins for the best threshold, the zero bin
// filled in from the leaf's totals. Counts are estimated from hessians as LightGBM
// does (count = hessian * rows / total hessian), so histograms carry two sums only.
func (t *trainer) bestSplit(l *leafState) split {
	if t.p.MaxDepth > 0 && l.depth >= t.p.MaxDepth {
		return split{}
	}
	n := l.end - l.start
	if n < 2*t.p.MinDataInLeaf || l.h < 2*t.p.MinSumHessianInLeaf {
		return split{}
	}
	cntFactor := float64(n) / l.h
	shift := t.leafGain(l.g, l.h) + t.p.MinGainToSplit
	nf := len(t.b.mappers)
	nt := t.threads
	if t.b.nBins < 1<<14 {
		nt = 1
	}
	var mu sync.Mutex
	var bests []split
	parallelRange(nf, nt, func(lo, hi int) {
		var best split
		for f := lo; f < hi; f++ {
			if !t.used[f] {
				continue
			}
			m := &t.b.mappers[f]
			nb := m.numBins()
			hist := l.hist[t.b.offset[f] : int(t.b.offset[f])+nb]
			zg, zh := l.g, l.h
			for b, s := range hist {
				if b != m.zeroBin {
					zg -= s.g
					zh -= s.h
				}
			}
			var lg, lh float64
			for b := 0; b < nb-1; b++ {
				if b == m.zeroBin {
					lg += zg
					lh += zh
				} else {
					lg += hist[b].g
					lh += hist[b].h
				}
				rh := l.h - lh
				if lh < t.p.MinSumHessianInLeaf || math.Round(lh*cntFactor) < float64(t.p.MinDataInLeaf) {
					continue
				}
				if rh < t.p.MinSumHessianInLeaf || math.Round(rh*cntFactor) < float64(t.p.MinDataInLeaf) {
					break
				}
				gain := t.leafGain(lg, lh) + t.leafGain(l.g-lg, rh)
				if gain > shift && (!best.ok || gain-shift > best.gain) {
					best = split{feature: f, bin: b, gain: gain - shift, leftG: lg, leftH: lh, ok: true}
				}
			}
		}
		mu.Lock()
		bests = append(bests, best)
		mu.Unlock()
	})
	var best split
	for _, s := range bests {
		if s.ok && (!best.ok || s.gain > best.gain || (s.gain == best.gain && s.feature < best.feature)) {
			best = s
		}
	}
	return best
}

// partition reorders idx[start:end] so that rows going left come first, keeping
// order within each side, and returns the boundary.
func (t *trainer) partition(l *leafState, s split) int {
	b := t.b
	f := s.feature
	for k := b.colPtr[f]; k < b.colPtr[f+1]; k++ {
		t.mark[b.colRow[k]] = b.colBin[k] + 1
	}
	zeroLeft := t.b.mappers[f].zeroBin <= s.bin
	rows := t.idx[l.start:l.end]
	nl, nr := 0, 0
	for _, r := range rows {
		left := zeroLeft
		if m := t.mark[r]; m != 0 {
			left = int(m-1) <= s.bin
		}
		if left {
			rows[nl] = r
			nl++
		} else {
			t.tmp[nr] = r
			nr++
		}
	}
	copy(rows[nl:], t.tmp[:nr])
	for k := b.colPtr[f]; k < b.colPtr[f+1]; k++ {
		t.mark[b.colRow[k]] = 0
	}
	return l.start + nl
}

// grow builds one tree leaf-wise on the rows in t.idx[:n], leaving each leaf's rows
// in its range of t.idx, and returns the tree and the leaves' ranges.
func (t *trainer) grow(n int) (Tree, []leafState) {
	root := leafState{start: 0, end: n, hist: t.getHist()}
	root.g, root.h = t.buildHist(t.idx[:n], root.hist)
	root.best = t.bestSplit(&root)
	leaves := []leafState{root}
	var tr Tree
	// leafParent[i] is the internal node whose child pointer holds leaf i, and
	// leafSide whether it is the right one.
	leafParent := []int{-1}
	leafSide := []bool{false}
	for len(leaves) < t.p.NumLeaves {
		bi := -1
		for i := range leaves {
			if leaves[i].best.ok && (bi < 0 || leaves[i].best.gain > leaves[bi].best.gain) {
				bi = i
			}
		}
		if bi < 0 {
			break
		}
		parent := &leaves[bi]
		s := parent.best
		mid := t.partition(parent, s)
		node := int32(len(tr.SplitFeature))
		m := &t.b.mappers[s.feature]
		tr.SplitFeature = append(tr.SplitFeature, int32(s.feature))
		tr.SplitGain = append(tr.SplitGain, s.gain)
		tr.Threshold = append(tr.Threshold, m.upper[s.bin])
		tr.Left = append(tr.Left, ^int32(bi))
		tr.Right = append(tr.Right, ^int32(len(leaves)))
		tr.InternalValue = append(tr.InternalValue, t.leafOutput(parent.g, parent.h))
		tr.InternalWeight = append(tr.InternalWeight, parent.h)
		tr.InternalCount = append(tr.InternalCount, parent.end-parent.start)
		if pp := leafParent[bi]; pp >= 0 {
			if leafSide[bi] {
				tr.Right[pp] = node
			} else {
				tr.Left[pp] = node
			}
		}
		right := leafState{start: mid, end: parent.end, g: parent.g - s.leftG, h: parent.h - s.leftH, depth: parent.depth + 1}
		left := leafState{start: parent.start, end: mid, g: s.leftG, h: s.leftH, depth: parent.depth + 1}
		// Build the smaller child; the larger is the parent less the smaller.
		small, large := &left, &right
		if right.end-right.start < left.end-left.start {
			small, large = &right, &left
		}
		large.hist = parent.hist
		small.hist = t.getHist()
		small.g, small.h = t.buildHist(t.idx[small.start:small.end], small.hist)
		for i := range large.hist {
			large.hist[i].g -= small.hist[i].g
			large.hist[i].h -= small.hist[i].h
		}
		large.g, large.h = parent.g-small.g, parent.h-small.h
		left.best = t.bestSplit(&left)
		right.best = t.bestSplit(&right)
		leaves[bi] = left
		leafParent[bi], leafSide[bi] = int(node), false
		leaves = append(leaves, right)
		leafParent = append(leafParent, int(node))
		leafSide = append(leafSide, true)
		for _, l := range []*leafState{&leaves[bi], &leaves[len(leaves)-1]} {
			if !l.best.ok {
				t.putHist(l.hist)
				l.hist = nil
			}
		}
	}
	for i := range leaves {
		t.putHist(leaves[i].hist)
		leaves[i].hist = nil
		tr.LeafValue = append(tr.LeafValue, t.leafOutput(leaves[i].g, leaves[i].h))
		tr.LeafWeight = append(tr.LeafWeight, leaves[i].h)
		tr.LeafCount = append(tr.LeafCount, leaves[i].end-leaves[i].start)
	}
	return tr, leaves
}

// Train fits a binary classifier on train, stopping early on valid when
// early_stopping_round is set (valid may be nil otherwise). log may be nil.
func Train(ctx context.Context, train, valid *Dataset, p Params, log *slog.Logger) (*Model, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := train.check("training"); err != nil {
		return nil, err
	}
	if valid != nil {
		if err := valid.check("validation"); err != nil {
			return nil, err
		}
	} else if p.EarlyStoppingRound > 0 {
		return nil, fmt.Errorf("parameter early_stopping_round=%d needs a validation set", p.EarlyStoppingRound)
	}
	n := train.X.Rows()
	var npos int
	for _, y := range train.Label {
		if y {
			npos++
		}
	}
	if npos == 0 || npos == n {
		return nil, fmt.Errorf("training set of %d rows, %d positive: %w", n, npos, ErrOneClass)
	}
	threads := p.threads()
	mappers := buildBinMappers(train.X, &p)
	b := newBinned(train.X, mappers, threads)
	t := &trainer{
		p: &p, b: b, threads: threads,
		gh:   make([]binStat, n),
		idx:  make([]int32, n),
		tmp:  make([]int32, n),
		mark: make([]uint16, n),
		used: make([]bool, len(mappers)),
	}
	for range threads - 1 {
		t.scratch = append(t.scratch, make([]binStat, b.nBins))
	}
	var usable []int
	for f := range mappers {
		if mappers[f].numBins() > 1 {
			usable = append(usable, f)
		}
	}

	// LightGBM's label weights: is_unbalance weighs the minority class up.
	wPos, wNeg := 1.0, 1.0
	if p.IsUnbalance {
		if nneg := n - npos; npos > nneg {
			wNeg = float64(npos) / float64(nneg)
		} else {
			wPos = float64(nneg) / float64(npos)
		}
	}
	wPos *= p.ScalePosWeight

	init := 0.0
	if p.BoostFromAverage {
		pavg := min(max(float64(npos)/float64(n), 1e-15), 1-1e-15)
		init = math.Log(pavg / (1 - pavg))
	}
	score := make([]float64, n)
	for i := range score {
		score[i] = init
	}
	var vscore []float64
	if valid != nil {
		vscore = make([]float64, valid.X.Rows())
		for i := range vscore {
			vscore[i] = init
		}
	}

	m := &Model{NumFeatures: train.X.NumCols, Params: p, bins: mappers}
	bagRng := rand.New(rand.NewPCG(p.Seed, 0x62616767))
	featRng := rand.New(rand.NewPCG(p.Seed, 0x66656174))
	inBag := make([]bool, n)
	bagN := n
	for i := range n {
		t.idx[i] = int32(i)
		inBag[i] = true
	}
	bagging := p.BaggingFreq > 0 && p.BaggingFraction < 1
	bestMetric, bestIter := math.Inf(-1), 0
	for iter := 0; iter < p.NumIterations; iter++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("training stopped at iteration %d: %w", iter, err)
		}
		parallelRange(n, threads, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				pr := sigmoid(score[i])
				if train.Label[i] {
					t.gh[i] = binStat{(pr - 1) * wPos, pr * (1 - pr) * wPos}
				} else {
					t.gh[i] = binStat{pr * wNeg, pr * (1 - pr) * wNeg}
				}
			}
		})
		if bagging && iter%p.BaggingFreq == 0 {
			bagN = 0
			for i := range n {
				inBag[i] = bagRng.Float64() < p.BaggingFraction
				if inBag[i] {
					t.idx[bagN] = int32(i)
					bagN++
				}
			}
		} else {
			// The partition reordered idx; put the bag back in row order, as a fresh
			// bag would be, so that each tree sees the same row order.
			k := 0
			for i := range n {
				if inBag[i] {
					t.idx[k] = int32(i)
					k++
				}
			}
		}
		clear(t.used)
		if p.FeatureFraction < 1 {
			k := max(1, int(p.FeatureFraction*float64(len(usable))+0.5))
			for _, j := range featRng.Perm(len(usable))[:k] {
				t.used[usable[j]] = true
			}
		} else {
			for _, f := range usable {
				t.used[f] = true
			}
		}

		tree, leaves := t.grow(bagN)
		if tree.NumLeaves() <= 1 && iter > 0 {
			if log != nil {
				log.Info("no further splits meet the requirements; stopping", "iteration", iter)
			}
			break
		}
		tree.Shrinkage = p.LearningRate
		for i := range tree.LeafValue {
			tree.LeafValue[i] *= p.LearningRate
		}
		for i := range tree.InternalValue {
			tree.InternalValue[i] *= p.LearningRate
		}
		// Bagged rows sit in their leaves' ranges; the rest go down the tree.
		for li, l := range leaves {
			v := tree.LeafValue[li]
			for _, r := range t.idx[l.start:l.end] {
				score[r] += v
			}
		}
		if bagN < n {
			parallelRange(n, threads, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					if !inBag[i] {
						idx, val := train.X.Row(i)
						score[i] += tree.LeafValue[tree.leaf(idx, val)]
					}
				}
			})
		}
		if iter == 0 && init != 0 {
			// LightGBM folds the initial score into the first tree.
			for i := range tree.LeafValue {
				tree.LeafValue[i] += init
			}
			for i := range tree.InternalValue {
				tree.InternalValue[i] += init
			}
		}
		m.Trees = append(m.Trees, tree)

		if valid != nil {
			parallelRange(len(vscore), threads, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					idx, val := valid.X.Row(i)
					v := tree.leaf(idx, val)
					if iter == 0 {
						vscore[i] += tree.LeafValue[v] - init
					} else {
						vscore[i] += tree.LeafValue[v]
					}
				}
			})
			if p.EarlyStoppingRound > 0 {
				metric, err := validMetric(p.Metric, vscore, valid.Label)
				if err != nil {
					return nil, fmt.Errorf("validation metric %s at iteration %d: %w", p.Metric, iter+1, err)
				}
				if metric > bestMetric {
					bestMetric, bestIter = metric, iter+1
				} else if iter+1-bestIter >= p.EarlyStoppingRound {
					if log != nil {
						log.Info("early stopping", "best_iteration", bestIter, p.Metric, higherIsBetter(p.Metric, bestMetric))
					}
					break
				}
			}
		}
	}
	if p.EarlyStoppingRound > 0 && bestIter > 0 {
		m.Trees = m.Trees[:bestIter]
		m.BestIteration = bestIter
	}
	return m, nil
}

// validMetric returns the metric oriented so that higher is better.
func validMetric(name string, raw []float64, label []bool) (float64, error) {
	switch name {
	case "average_precision":
		return eval.AveragePrecision(raw, label)
	case "auc":
		return eval.AUROC(raw, label)
	}
	var loss float64
	for i, s := range raw {
		// log(1+exp(-s)) for positives, log(1+exp(s)) for negatives, stably.
		z := s
		if label[i] {
			z = -s
		}
		loss += max(z, 0) + math.Log1p(math.Exp(-math.Abs(z)))
	}
	return -loss / float64(len(raw)), nil
}

// higherIsBetter undoes validMetric's orientation for logging.
func higherIsBetter(name string, v float64) float64 {
	if name == "binary_logloss" {
		return -v
	}
	return v
}
