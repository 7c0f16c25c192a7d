package baseline

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Synthetic returns a seeded sparse count matrix shaped like claims features, with
// a planted signal so that ranking metrics mean something. Column popularity
// follows a power law, as code frequencies do; values are small counts; the label
// is drawn from a logistic model on a few dozen columns, one pairwise interaction
// and their counts, tuned to roughly 10% prevalence.
func Synthetic(rows, cols int, density float64, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0x73796e74))
	cum := make([]float64, cols)
	total := 0.0
	for c := range cols {
		total += 1 / math.Pow(float64(c)+10, 0.8)
		cum[c] = total
	}
	perRow := density * float64(cols)
	// Signal columns come from the popular half so that they are seen often enough
	// to learn from; permute column ids so that popularity is not column order.
	perm := rng.Perm(cols)
	nSignal := min(40, cols/2)
	beta := make(map[int32]float64, nSignal)
	for range nSignal {
		c := perm[rng.IntN(max(1, cols/20))]
		beta[int32(c)] = rng.NormFloat64()
	}
	pairA, pairB := int32(perm[0]), int32(perm[1])
	x := &CSR{NumCols: cols, Indptr: make([]int, 1, rows+1)}
	x.Indices = make([]int32, 0, int(float64(rows)*perRow*1.05))
	x.Values = make([]float32, 0, cap(x.Indices))
	label := make([]bool, rows)
	var idx []int32
	seen := map[int32]bool{}
	for r := range rows {
		k := int(perRow/2 + rng.Float64()*perRow)
		clear(seen)
		idx = idx[:0]
		for range k {
			c := int32(perm[sort.SearchFloat64s(cum, rng.Float64()*total)])
			if !seen[c] {
				seen[c] = true
				idx = append(idx, c)
			}
		}
		slices.Sort(idx)
		logit := -2.6
		var hasA, hasB bool
		for _, c := range idx {
			v := float32(1)
			for v < 10 && rng.Float64() < 0.4 {
				v++
			}
			x.Indices = append(x.Indices, c)
			x.Values = append(x.Values, v)
			if b, ok := beta[c]; ok {
				logit += b * math.Min(float64(v), 3)
			}
			hasA = hasA || c == pairA
			hasB = hasB || c == pairB
		}
		if hasA && hasB {
			logit += 2
		}
		label[r] = rng.Float64() < 1/(1+math.Exp(-logit))
		x.Indptr = append(x.Indptr, len(x.Indices))
	}
	return &Dataset{X: x, Label: label}
}

// Split divides d into a first part of the given fraction of rows and the rest,
// choosing rows with a seeded shuffle.
func (d *Dataset) Split(frac float64, seed uint64) (*Dataset, *Dataset) {
	rng := rand.New(rand.NewPCG(seed, 0x73706c74))
	perm := rng.Perm(d.X.Rows())
	k := int(frac * float64(len(perm)))
	a, b := perm[:k], perm[k:]
	slices.Sort(a)
	slices.Sort(b)
	pick := func(rows []int) *Dataset {
		out := &Dataset{X: d.X.SelectRows(rows), Label: make([]bool, len(rows))}
		for i, r := range rows {
			out.Label[i] = d.Label[r]
		}
		return out
	}
	return pick(a), pick(b)
}
