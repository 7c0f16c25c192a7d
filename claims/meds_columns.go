package claims

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parquet-go/parquet-go"
)

// The MEDS side files (subject splits, task labels) are small next to the data:
// one row per subject or per prediction. They are read whole, column by column,
// through the same page cursor as the data shards, so that a null in a required
// column, a wrong type or a truncated file is one error naming the file, the row
// and the column rather than a zero value passed on.

// colSpec asks readColumns for one column.
type colSpec struct {
	name     string
	optional bool // the file may lack the column; its values are then all null
	check    func(t parquet.Type) error
}

// readColumns reads the named columns of the parquet file at path whole. A column
// the file lacks and spec marks optional comes back nil.
func readColumns(path string, specs []colSpec) (cols [][]parquet.Value, types []parquet.Type, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	pf, err := openParquet(f, info.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w: %w", path, ErrCorrupt, err)
	}
	defer func() {
		if p := recover(); p != nil {
			cols, types, err = nil, nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, p)
		}
	}()
	leaf := make([]int, len(specs))
	types = make([]parquet.Type, len(specs))
	for i, s := range specs {
		c := pf.Root().Column(s.name)
		if c == nil {
			if s.optional {
				leaf[i] = -1
				continue
			}
			return nil, nil, &RowError{File: path, Column: s.name, Err: ErrMissingColumn}
		}
		if !c.Leaf() || c.Repeated() {
			return nil, nil, &RowError{File: path, Column: s.name, Err: fmt.Errorf("%w: a nested or repeated column", ErrColumnType)}
		}
		if err := s.check(c.Type()); err != nil {
			return nil, nil, &RowError{File: path, Column: s.name, Err: err}
		}
		leaf[i], types[i] = c.Index(), c.Type()
	}
	cols = make([][]parquet.Value, len(specs))
	for _, rg := range pf.RowGroups() {
		n := int(rg.NumRows())
		chunks := rg.ColumnChunks()
		for i := range specs {
			if leaf[i] < 0 {
				continue
			}
			buf := make([]parquet.Value, n+1)
			cur := colCursor{pages: chunks[leaf[i]].Pages()}
			k, rerr := cur.read(buf)
			cur.close()
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return nil, nil, fmt.Errorf("%s: column %s: %w: %w", path, specs[i].name, ErrCorrupt, rerr)
			}
			if k != n {
				return nil, nil, fmt.Errorf("%s: column %s: %w: %d values in a row group of %d rows", path, specs[i].name, ErrCorrupt, k, n)
			}
			for j := range buf[:k] {
				// Values may point into pages; byte arrays are copied by their users.
				buf[j] = buf[j].Clone()
			}
			cols[i] = append(cols[i], buf[:k]...)
		}
	}
	return cols, types, nil
}

// wantInt64 accepts int64 columns (and int32, which some writers use for ids).
func wantInt64(t parquet.Type) error {
	if k := t.Kind(); k != parquet.Int64 && k != parquet.Int32 {
		return fmt.Errorf("%w: %s, want int64", ErrColumnType, t)
	}
	return nil
}

// wantString accepts string (byte array) columns.
func wantString(t parquet.Type) error {
	if t.Kind() != parquet.ByteArray {
		return fmt.Errorf("%w: %s, want string", ErrColumnType, t)
	}
	return nil
}

// wantBool accepts boolean columns.
func wantBool(t parquet.Type) error {
	if t.Kind() != parquet.Boolean {
		return fmt.Errorf("%w: %s, want bool", ErrColumnType, t)
	}
	return nil
}

// wantTime accepts what the data shards' time column accepts (timestamps in ms, us
// or ns, dates).
func wantTime(t parquet.Type) error {
	_, err := timeConverter(t)
	return err
}

// int64Of reads an id value of a column of type t.
func int64Of(t parquet.Type, v parquet.Value) int64 {
	if t.Kind() == parquet.Int32 {
		return int64(v.Int32())
	}
	return v.Int64()
}

// timeConverter returns the function that turns a value of the time column type t
// into microseconds since the Unix epoch, as the data reader does.
func timeConverter(t parquet.Type) (func(parquet.Value) int64, error) {
	s := medsShard{timeMul: 1}
	if err := s.checkType(colTime, t); err != nil {
		return nil, err
	}
	return func(v parquet.Value) int64 {
		switch {
		case s.timeDate:
			return int64(v.Int32()) * int64(24*time.Hour/time.Microsecond)
		case s.timeDiv > 1:
			return FloorDiv(v.Int64(), s.timeDiv)
		}
		return v.Int64() * s.timeMul
	}, nil
}
