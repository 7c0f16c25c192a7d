package baseline

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// kZeroThreshold is LightGBM's band around zero that counts as zero.
const kZeroThreshold = 1e-35

// binMapper maps one feature's values to histogram bins. Bin b holds the values v
// with upper[b-1] < v <= upper[b]; zero has a bin of its own, zeroBin, so that the
// zeros of a sparse feature are never stored or iterated: their histogram entry is
// the leaf's total less the feature's other bins.
type binMapper struct {
	upper   []float64
	zeroBin int
	min     float64 // smallest and largest value seen, for the model file
	max     float64
}

func (m *binMapper) numBins() int { return len(m.upper) }

func (m *binMapper) bin(v float64) int {
	return sort.SearchFloat64s(m.upper, v)
}

// findBins cuts one side (all negative or all positive) of a feature's distinct
// sorted values, with their counts, into at most maxBins bins of about equal count,
// as LightGBM's GreedyFindBin does; a bin closes only once it holds minDataInBin
// values. It returns the upper bounds, the last one open (the caller closes it).
func findBins(vals []float64, counts []int, maxBins, minDataInBin int) []float64 {
	if len(vals) == 0 || maxBins <= 0 {
		return nil
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	var upper []float64
	if len(vals) <= maxBins {
		acc := 0
		for i := 0; i < len(vals)-1; i++ {
			acc += counts[i]
			if acc >= minDataInBin {
				upper = append(upper, (vals[i]+vals[i+1])/2)
				acc = 0
			}
		}
		return append(upper, math.Inf(1))
	}
	mean := float64(total) / float64(maxBins)
	acc, rest := 0, total
	for i := 0; i < len(vals)-1 && len(upper) < maxBins-1; i++ {
		acc += counts[i]
		rest -= counts[i]
		if acc >= minDataInBin && float64(acc) >= mean {
			upper = append(upper, (vals[i]+vals[i+1])/2)
			acc = 0
			// Re-spread what is left over the bins that are left, so that a few
			// heavy values do not use up the budget early.
			if left := maxBins - len(upper); left > 0 {
				mean = float64(rest) / float64(left)
			}
		}
	}
	return append(upper, math.Inf(1))
}

// newBinMapper builds the bins of one feature from its sampled nonzero values and
// the number of sampled rows in which it was zero.
func newBinMapper(nonzero []float64, zeros, maxBin, minDataInBin int) binMapper {
	slices.Sort(nonzero)
	var negV, posV []float64
	var negC, posC []int
	for i := 0; i < len(nonzero); {
		j := i
		for j < len(nonzero) && nonzero[j] == nonzero[i] {
			j++
		}
		if nonzero[i] < 0 {
			negV, negC = append(negV, nonzero[i]), append(negC, j-i)
		} else {
			posV, posC = append(posV, nonzero[i]), append(posC, j-i)
		}
		i = j
	}
	m := binMapper{}
	if len(nonzero) > 0 {
		m.min, m.max = nonzero[0], nonzero[len(nonzero)-1]
	}
	if zeros > 0 {
		m.min, m.max = min(m.min, 0), max(m.max, 0)
	}
	// Share the bins between the two sides in proportion to their distinct values,
	// keeping one for zero.
	budget := maxBin - 1
	negBins := 0
	if len(negV) > 0 {
		negBins = max(1, budget*len(negV)/(len(negV)+len(posV)))
		if len(posV) > 0 {
			negBins = min(negBins, budget-1)
		}
	}
	posBins := budget - negBins
	if len(negV) > 0 {
		up := findBins(negV, negC, negBins, minDataInBin)
		up[len(up)-1] = -kZeroThreshold
		m.upper = append(m.upper, up...)
	}
	m.zeroBin = len(m.upper)
	if len(posV) > 0 {
		m.upper = append(m.upper, kZeroThreshold)
		m.upper = append(m.upper, findBins(posV, posC, posBins, minDataInBin)...)
	} else {
		m.upper = append(m.upper, math.Inf(1))
	}
	return m
}

// sampleRows returns the sorted rows that bin construction looks at: all of them, or
// bin_construct_sample_cnt drawn without replacement.
func sampleRows(n, cnt int, seed uint64) []int {
	if n <= cnt {
		rows := make([]int, n)
		for i := range rows {
			rows[i] = i
		}
		return rows
	}
	rng := rand.New(rand.NewPCG(seed, 0x62696e73))
	rows := rng.Perm(n)[:cnt]
	slices.Sort(rows)
	return rows
}

// buildBinMappers bins every column of x from a row sample.
func buildBinMappers(x *CSR, p *Params) []binMapper {
	rows := sampleRows(x.Rows(), p.BinConstructSampleCnt, p.Seed)
	nnz := make([]int, x.NumCols)
	for _, r := range rows {
		idx, _ := x.Row(r)
		for _, c := range idx {
			nnz[c]++
		}
	}
	// One flat buffer, carved per column, keeps this to two passes and one allocation.
	start := make([]int, x.NumCols+1)
	for c, k := range nnz {
		start[c+1] = start[c] + k
	}
	buf := make([]float64, start[x.NumCols])
	fill := slices.Clone(start[:x.NumCols])
	for _, r := range rows {
		idx, val := x.Row(r)
		for k, c := range idx {
			buf[fill[c]] = float64(val[k])
			fill[c]++
		}
	}
	mappers := make([]binMapper, x.NumCols)
	for c := range mappers {
		vals := buf[start[c]:start[c+1]]
		mappers[c] = newBinMapper(vals, len(rows)-len(vals), p.MaxBin, p.MinDataInBin)
	}
	return mappers
}
