package claims

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Source is a Reader over a dataset on disk that also names its format and counts
// what it has read.
type Source interface {
	Reader
	// Format is "meds" or "omop".
	Format() string
	Stats() Stats
}

// Open opens the dataset at path, telling the format from its layout: a directory
// with data/ holding parquet files is MEDS, one with person.csv is OMOP CDM.
func Open(path string, opts ...Option) (Source, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("open dataset %s: not a directory (want a MEDS dataset directory or an OMOP CDM export directory)", path)
	}
	if d, err := os.Stat(filepath.Join(path, "data")); err == nil && d.IsDir() {
		return OpenMEDS(path, opts...)
	}
	if _, err := findTable(path, "person"); err == nil {
		return OpenOMOP(path, opts...)
	}
	return nil, fmt.Errorf("open dataset %s: neither a MEDS dataset (data/*.parquet) nor an OMOP CDM export (person.csv)", path)
}

// Summary describes what a dataset holds.
type Summary struct {
	Format   string `json:"format"`
	Subjects int64  `json:"subjects"`
	// Events counts coded events; sex, birth and the observation end are not events.
	Events int64 `json:"events"`
	// Codes counts distinct event codes.
	Codes int `json:"codes"`
	// FirstTime and LastTime bound the event times, RFC 3339 in UTC; empty when
	// there are no events.
	FirstTime string `json:"first_time"`
	LastTime  string `json:"last_time"`

	EventsByKind map[string]int64 `json:"events_by_kind"`
	// EventsBySystem counts events by code system (SystemOf): known systems by
	// name, MEDS's own codes as MEDS, the rest as unrecognised.
	EventsBySystem map[string]int64 `json:"events_by_system"`
	// TopUnrecognised lists the prefixes (CodePrefix) with the most unrecognised
	// events, at most 5.
	TopUnrecognised []PrefixCount `json:"top_unrecognised_prefixes,omitempty"`
	Female          int64         `json:"female"`
	Male            int64         `json:"male"`
	WithBirth       int64         `json:"with_birth"`
	// WithObservationEnd counts the subjects whose observation end is recorded.
	WithObservationEnd int64            `json:"with_observation_end"`
	Rows               int64            `json:"rows"`
	BadRows            int64            `json:"bad_rows_skipped"`
	FirstBadRow        string           `json:"first_bad_row,omitempty"`
	Skipped            map[string]int64 `json:"rows_not_used,omitempty"`
}

// Inspect reads src to the end and summarises it.
func Inspect(ctx context.Context, src Source) (Summary, error) {
	s := Summary{Format: src.Format(), EventsByKind: make(map[string]int64), EventsBySystem: make(map[string]int64)}
	codes := make(map[string]struct{})
	unrecognised := make(map[string]int64) // by CodePrefix
	var first, last int64
	for {
		p, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Summary{}, err
		}
		s.Subjects++
		switch p.Sex {
		case SexFemale:
			s.Female++
		case SexMale:
			s.Male++
		}
		if p.HasBirth {
			s.WithBirth++
		}
		if p.HasObservationEnd {
			s.WithObservationEnd++
		}
		for _, e := range p.Events {
			if s.Events == 0 || e.Time < first {
				first = e.Time
			}
			if s.Events == 0 || e.Time > last {
				last = e.Time
			}
			s.Events++
			s.EventsByKind[e.Kind().String()]++
			sys := SystemOf(e.Code)
			s.EventsBySystem[sys]++
			if sys == SystemUnrecognised {
				unrecognised[CodePrefix(e.Code)]++
			}
			codes[e.Code] = struct{}{}
		}
	}
	s.Codes = len(codes)
	s.TopUnrecognised = TopPrefixes(unrecognised, 5)
	if s.Events > 0 {
		s.FirstTime = FormatTime(first)
		s.LastTime = FormatTime(last)
	}
	st := src.Stats()
	s.Rows, s.BadRows, s.FirstBadRow, s.Skipped = st.Rows, st.BadRows, st.FirstBad, st.Skipped
	return s, nil
}

// FormatTime writes an event time as RFC 3339 in UTC.
func FormatTime(t int64) string {
	return time.UnixMicro(t).UTC().Format(time.RFC3339)
}
