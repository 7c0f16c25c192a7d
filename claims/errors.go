package claims

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that malformed input wraps, for errors.Is.
var (
	ErrMissingColumn = errors.New("missing column")
	ErrColumnType    = errors.New("wrong column type")
	ErrNull          = errors.New("null value in a required column")
	ErrNotUTF8       = errors.New("not valid UTF-8")
	ErrBadTime       = errors.New("unparsable date or time")
	ErrBadNumber     = errors.New("unparsable number")
	ErrUnsorted      = errors.New("rows not sorted by subject")
	ErrCorrupt       = errors.New("corrupt or truncated file")
)

// RowError is a problem with one row of one file. Row counts parquet rows from 1;
// Line counts CSV lines from 1, the header being line 1. One of the two is set.
type RowError struct {
	File   string
	Row    int64
	Line   int64
	Column string
	Err    error
}

func (e *RowError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, ": line %d", e.Line)
	case e.Row > 0:
		fmt.Fprintf(&b, ": row %d", e.Row)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ": column %s", e.Column)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *RowError) Unwrap() error { return e.Err }

// Option configures a reader.
type Option func(*options)

type options struct {
	skipBadRows bool
	icd10System string
	codes       *CodeMap // nil: the built-in recognisers alone
	err         error    // an option's own failure (CodesFile), returned by Open
}

// ICD10System names the code system of OMOP condition source values that look
// like ICD-10 when the export does not say which vocabulary they come from:
// SystemICD10CM (the default, as in US exports) or SystemICD10 (WHO ICD-10, as
// coded in Japanese claims). It has no effect on MEDS, whose codes carry their system.
func ICD10System(system string) Option {
	return func(o *options) { o.icd10System = system }
}

// SkipBadRows makes a reader count and skip malformed rows instead of failing on the
// first one; Stats reports the count and the first problem. File-level faults
// (a missing column, a truncated file) still fail.
func SkipBadRows(skip bool) Option {
	return func(o *options) { o.skipBadRows = skip }
}

func buildOptions(opts []Option) options {
	o := options{icd10System: SystemICD10CM}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Stats counts what a reader has read so far.
type Stats struct {
	// Rows is the number of input rows read, good or bad.
	Rows int64
	// BadRows counts rows skipped as malformed under SkipBadRows; FirstBad describes
	// the first of them.
	BadRows  int64
	FirstBad string
	// Skipped counts well-formed rows the reader chose not to turn into events, by
	// reason (for example OMOP condition rows whose source value is no ICD code).
	Skipped map[string]int64
}

func (s *Stats) skip(reason string) {
	if s.Skipped == nil {
		s.Skipped = make(map[string]int64)
	}
	s.Skipped[reason]++
}

// bad records a malformed row, returning it as an error unless rows are skipped.
func (s *Stats) bad(o options, err error) error {
	if !o.skipBadRows {
		return err
	}
	if s.BadRows == 0 {
		s.FirstBad = err.Error()
	}
	s.BadRows++
	return nil
}

func (s Stats) clone() Stats {
	if s.Skipped != nil {
		m := make(map[string]int64, len(s.Skipped))
		for k, v := range s.Skipped {
			m[k] = v
		}
		s.Skipped = m
	}
	return s
}
