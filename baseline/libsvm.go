package baseline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// ReadLibSVM reads LibSVM text, the format LightGBM and xgboost read: one row per
// line, "label index:value index:value ...", indices zero-based as written (column
// j is index j), '#' starting a comment, "qid:" tokens ignored. The matrix has as
// many columns as the largest index plus one, or minCols if that is larger. name
// labels errors, which carry the line number.
func ReadLibSVM(r io.Reader, name string, minCols int) (*CSR, []float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<28)
	x := &CSR{Indptr: []int{0}}
	var labels []float64
	type entry struct {
		col int32
		val float32
	}
	var row []entry
	maxCol := int32(-1)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		label, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(label) || math.IsInf(label, 0) {
			return nil, nil, fmt.Errorf("%s:%d: label %q is not a finite number", name, line, fields[0])
		}
		row = row[:0]
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, ":")
			if !ok {
				return nil, nil, fmt.Errorf("%s:%d: token %q is not index:value", name, line, f)
			}
			if k == "qid" {
				continue
			}
			col, err := strconv.ParseInt(k, 10, 32)
			if err != nil || col < 0 || col == math.MaxInt32 {
				return nil, nil, fmt.Errorf("%s:%d: index %q is not a non-negative integer", name, line, k)
			}
			val, err := strconv.ParseFloat(v, 32)
			if err != nil || math.IsNaN(val) || math.IsInf(val, 0) {
				return nil, nil, fmt.Errorf("%s:%d: value %q of index %d is not a finite float32", name, line, v, col)
			}
			row = append(row, entry{int32(col), float32(val)})
		}
		slices.SortStableFunc(row, func(a, b entry) int { return int(a.col) - int(b.col) })
		for k, e := range row {
			if k > 0 && e.col == row[k-1].col {
				return nil, nil, fmt.Errorf("%s:%d: index %d appears twice", name, line, e.col)
			}
			maxCol = max(maxCol, e.col)
			if e.val != 0 {
				x.Indices = append(x.Indices, e.col)
				x.Values = append(x.Values, e.val)
			}
		}
		x.Indptr = append(x.Indptr, len(x.Indices))
		labels = append(labels, label)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, fmt.Errorf("%s:%d: line longer than 256 MiB: %w", name, len(labels)+1, err)
		}
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	x.NumCols = max(int(maxCol)+1, minCols)
	return x, labels, nil
}

// BinaryLabels turns LibSVM labels into classes: 1 is positive, 0 negative, and
// anything else an error naming the row (the row's ordinal among data lines).
func BinaryLabels(labels []float64, name string) ([]bool, error) {
	out := make([]bool, len(labels))
	for i, y := range labels {
		switch y {
		case 0:
		case 1:
			out[i] = true
		default:
			return nil, fmt.Errorf("%s: row %d: label %v is not 0 or 1", name, i+1, y)
		}
	}
	return out, nil
}

// WriteLibSVM writes x and its labels as LibSVM text, zero-based indices, values in
// the shortest form that reads back exactly.
func WriteLibSVM(w io.Writer, x *CSR, label []bool) error {
	if len(label) != x.Rows() {
		return fmt.Errorf("libsvm: %d labels for %d rows", len(label), x.Rows())
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var buf []byte
	for i := range x.Rows() {
		buf = buf[:0]
		if label[i] {
			buf = append(buf, '1')
		} else {
			buf = append(buf, '0')
		}
		idx, val := x.Row(i)
		for k, c := range idx {
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(c), 10)
			buf = append(buf, ':')
			buf = strconv.AppendFloat(buf, float64(val[k]), 'g', -1, 32)
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("libsvm: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("libsvm: %w", err)
	}
	return nil
}

// SaveLibSVM writes x to path through a temporary file renamed into place.
func SaveLibSVM(path string, x *CSR, label []bool) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return WriteLibSVM(w, x, label) })
}
