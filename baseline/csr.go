// Package baseline is the study's comparison model: LightGBM's gradient-boosting
// algorithm written in Go, on sparse count features built from claims histories.
//
// The booster follows LightGBM's binary objective, parameter names and defaults:
// histogram binning from a row sample with zero as its own bin, leaf-wise growth,
// histogram subtraction, bagging and feature subsampling, early stopping on a
// validation set. Models are written in LightGBM's text format, so that LightGBM
// itself, and readers of its format such as github.com/dmitryikh/leaves, predict
// with them. Features travel as CSR matrices end to end; nothing is densified.
package baseline

import (
	"fmt"
	"slices"
)

// CSR is a sparse row-major matrix of float32 values. Row i holds the column indices
// Indices[Indptr[i]:Indptr[i+1]], strictly increasing, and their values; absent
// entries are zero.
type CSR struct {
	NumCols int
	Indptr  []int
	Indices []int32
	Values  []float32
}

// NewCSR returns an empty matrix with cols columns, ready for AppendRow.
func NewCSR(cols int) *CSR { return &CSR{NumCols: cols, Indptr: []int{0}} }

// Rows returns the number of rows.
func (m *CSR) Rows() int { return len(m.Indptr) - 1 }

// NNZ returns the number of stored entries.
func (m *CSR) NNZ() int { return len(m.Indices) }

// Row returns row i's column indices and values; the slices alias m.
func (m *CSR) Row(i int) ([]int32, []float32) {
	lo, hi := m.Indptr[i], m.Indptr[i+1]
	return m.Indices[lo:hi], m.Values[lo:hi]
}

// At returns the value at (i, j), zero when absent.
func (m *CSR) At(i, j int) float32 {
	idx, val := m.Row(i)
	if k, ok := slices.BinarySearch(idx, int32(j)); ok {
		return val[k]
	}
	return 0
}

// AppendRow adds a row. cols must be strictly increasing and within NumCols; zero
// values are dropped so that the matrix stays sparse.
func (m *CSR) AppendRow(cols []int32, vals []float32) error {
	if len(cols) != len(vals) {
		return fmt.Errorf("row %d: %d columns, %d values", m.Rows(), len(cols), len(vals))
	}
	for k, c := range cols {
		if c < 0 || int(c) >= m.NumCols {
			return fmt.Errorf("row %d: column %d outside [0, %d)", m.Rows(), c, m.NumCols)
		}
		if k > 0 && c <= cols[k-1] {
			return fmt.Errorf("row %d: column %d after %d, want strictly increasing", m.Rows(), c, cols[k-1])
		}
		if vals[k] == 0 {
			continue
		}
		m.Indices = append(m.Indices, c)
		m.Values = append(m.Values, vals[k])
	}
	m.Indptr = append(m.Indptr, len(m.Indices))
	return nil
}

// SelectRows returns a new matrix holding the given rows in the given order.
func (m *CSR) SelectRows(rows []int) *CSR {
	out := &CSR{NumCols: m.NumCols, Indptr: make([]int, 1, len(rows)+1)}
	for _, r := range rows {
		idx, val := m.Row(r)
		out.Indices = append(out.Indices, idx...)
		out.Values = append(out.Values, val...)
		out.Indptr = append(out.Indptr, len(out.Indices))
	}
	return out
}

// Bytes returns the memory the matrix's arrays hold.
func (m *CSR) Bytes() int {
	return 8*cap(m.Indptr) + 4*cap(m.Indices) + 4*cap(m.Values)
}
