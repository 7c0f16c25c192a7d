package claims

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// A converted dataset should keep what its source knew of its codes: MEDS keeps
// a code's description and parents in metadata/codes.parquet, OMOP in its
// concept table. CodeDescriptions gives them for the codes a reader emitted, as
// the code map rewrote them, so that fedclaims data convert writes codes.parquet
// for the dataset it writes and not for the one it read.

// CodeDescriber is a Reader that can describe the codes it emitted.
type CodeDescriber interface {
	// CodeDescriptions returns a description of every code the reader has
	// emitted that its source describes, sorted by code; nil when the source
	// describes none. Call it after reading every patient.
	CodeDescriptions(ctx context.Context) ([]CodeInfo, error)
}

var (
	_ CodeDescriber = (*MEDSReader)(nil)
	_ CodeDescriber = (*OMOPReader)(nil)
)

// CodeDescriptions maps the dataset's metadata/codes.parquet through the code
// map: a row whose code a rule drops is left out, and when two source codes map
// to one code the first row (in code order) describes it. Parents are mapped the
// same way.
func (r *MEDSReader) CodeDescriptions(context.Context) ([]CodeInfo, error) {
	src, err := r.Codes()
	if err != nil || src == nil {
		return nil, err
	}
	seen := make(map[string]bool, len(src))
	var out []CodeInfo
	for _, c := range src {
		code, keep := r.o.codes.Map(c.Code)
		if !keep || seen[code] {
			continue
		}
		seen[code] = true
		info := CodeInfo{Code: code, Description: c.Description}
		for _, p := range c.Parents {
			if mp, keep := r.o.codes.Map(p); keep && mp != code && !slices.Contains(info.Parents, mp) {
				info.Parents = append(info.Parents, mp)
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b CodeInfo) int { return strings.Compare(a.Code, b.Code) })
	return out, nil
}

// CodeDescriptions describes each emitted code by the concept_name of the OMOP
// concept it was read with (a condition's, drug's or procedure's source concept,
// a visit's concept; RXNORM// and PROC// codes by the concept their id names),
// from the export's concept table, which is read a second time keeping only
// those concepts, so that a full vocabulary is never held in memory. Parents are
// not given: they would need concept_ancestor, which exports seldom ship. Nil
// when the export has no concept table.
func (r *OMOPReader) CodeDescriptions(ctx context.Context) ([]CodeInfo, error) {
	if !r.loaded {
		return nil, errors.New("omop: CodeDescriptions before the patients were read")
	}
	if r.conceptOf == nil {
		return nil, nil
	}
	path, err := findTable(r.dir, "concept")
	if err != nil {
		return nil, err
	}
	wanted := make(map[int64]string, len(r.conceptOf))
	for _, id := range r.conceptOf {
		wanted[id] = ""
	}
	t := omopTable{name: "concept", required: []string{"concept_id", "concept_name"}, row: func(_ *OMOPReader, c *csvRow) error {
		id, err := c.int64("concept_id")
		if err != nil {
			return err
		}
		if _, ok := wanted[id]; ok {
			wanted[id] = strings.TrimSpace(c.get("concept_name"))
		}
		return nil
	}}
	// The first pass counted the concept table's rows already.
	counted := r.stats.clone()
	err = r.readTable(ctx, path, t)
	r.stats = counted
	if err != nil {
		return nil, err
	}
	var out []CodeInfo
	for code, id := range r.conceptOf {
		if name := wanted[id]; name != "" {
			out = append(out, CodeInfo{Code: code, Description: name})
		}
	}
	slices.SortFunc(out, func(a, b CodeInfo) int { return strings.Compare(a.Code, b.Code) })
	return out, nil
}
