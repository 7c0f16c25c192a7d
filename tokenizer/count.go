package tokenizer

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// countsFormat and countsVersion identify the JSON written by CountTable.Save.
const (
	countsFormat  = "fedclaims-code-counts"
	countsVersion = 1
)

// CountTable is what a site publishes towards the federated vocabulary: for each code,
// the number of the site's patients with that code or a code that falls back to it,
// with every code below the floor removed.
//
// Counts are of patients, not events: a code one patient carries a hundred times still
// counts once, so the floor is a k-anonymity floor on people.
type CountTable struct {
	// MinCount is the floor k: no count in Counts is below it.
	MinCount int `json:"min_count"`
	// Patients is the number of patients counted.
	Patients int64 `json:"patients"`
	// Counts maps codes to patient counts.
	Counts map[string]int64 `json:"counts"`
}

// Counter accumulates a site's code counts one patient at a time. It is not safe for
// concurrent use; count shards with one Counter each and Merge their tables only if the
// shards are themselves large enough to publish.
type Counter struct {
	counts   map[string]int64
	patients int64
	// seen is the set of codes of the patient being added, reused across patients.
	seen map[string]struct{}
	// chains caches each code's fallback chain, so counting does not rebuild the
	// parent strings for every event.
	chains map[string][]string
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	return &Counter{counts: make(map[string]int64), seen: make(map[string]struct{}), chains: make(map[string][]string)}
}

// Add counts p: once for each distinct tokenized code in its history and once for
// each code those fall back to. The roll-up to parents happens here, before any floor,
// so that rare codes still make their parent common enough to keep.
func (c *Counter) Add(p *claims.Patient) {
	clear(c.seen)
	for i := range p.Events {
		code := p.Events[i].Code
		if _, ok := c.seen[code]; ok {
			continue
		}
		chain, ok := c.chains[code]
		if !ok {
			if !Tokenized(code) {
				c.chains[code] = nil
				continue
			}
			chain = []string{code}
			for f, ok := Fallback(code); ok; f, ok = Fallback(f) {
				chain = append(chain, f)
			}
			c.chains[code] = chain
		}
		for _, k := range chain {
			c.seen[k] = struct{}{}
		}
	}
	for k := range c.seen {
		c.counts[k]++
	}
	c.patients++
}

// Patients returns the number of patients added.
func (c *Counter) Patients() int64 { return c.patients }

// Table returns the counts floored at minCount: every code seen in fewer than minCount
// patients is left out.
func (c *Counter) Table(minCount int) (*CountTable, error) {
	if minCount < 1 {
		return nil, fmt.Errorf("tokenizer: min count %d: must be at least 1", minCount)
	}
	t := &CountTable{MinCount: minCount, Patients: c.patients, Counts: make(map[string]int64)}
	for k, n := range c.counts {
		if n >= int64(minCount) {
			t.Counts[k] = n
		}
	}
	return t, nil
}

// Merge sums count tables into one. The result's floor is the largest of the tables'
// floors, and codes below it are left out. Merge is commutative: the order of tables
// does not change the result.
func Merge(tables ...*CountTable) (*CountTable, error) {
	if len(tables) == 0 {
		return nil, fmt.Errorf("tokenizer: merge of no count tables")
	}
	out := &CountTable{Counts: make(map[string]int64)}
	for i, t := range tables {
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("count table %d: %w", i, err)
		}
		out.MinCount = max(out.MinCount, t.MinCount)
		if t.Patients > math.MaxInt64-out.Patients {
			return nil, fmt.Errorf("count table %d: field patients: sum overflows", i)
		}
		out.Patients += t.Patients
		// Counts never exceed Patients (validate), so they cannot overflow either.
		for k, n := range t.Counts {
			out.Counts[k] += n
		}
	}
	for k, n := range out.Counts {
		if n < int64(out.MinCount) {
			delete(out.Counts, k)
		}
	}
	return out, nil
}

// validate checks the invariants a published table must hold, the floor above all.
func (t *CountTable) validate() error {
	if t.MinCount < 1 {
		return fmt.Errorf("field min_count: %d is not a positive count", t.MinCount)
	}
	if t.Patients < 0 {
		return fmt.Errorf("field patients: negative count %d", t.Patients)
	}
	// Sorted, so that a table with several faults always reports the same one.
	for _, k := range slices.Sorted(maps.Keys(t.Counts)) {
		n := t.Counts[k]
		if !Tokenized(k) {
			return fmt.Errorf("field counts: %q is not a diagnosis, medication, procedure or other clinical code", k)
		}
		if n < int64(t.MinCount) {
			return fmt.Errorf("field counts: code %q has count %d, below the floor min_count=%d", k, n, t.MinCount)
		}
		if n > t.Patients {
			return fmt.Errorf("field counts: code %q has count %d, more than the %d patients counted", k, n, t.Patients)
		}
	}
	return nil
}

type countsJSON struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	CountTable
}

// Save writes t as JSON; codes come out sorted, so equal tables give equal bytes.
func (t *CountTable) Save(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(countsJSON{Format: countsFormat, Version: countsVersion, CountTable: *t})
}

// WriteFile saves t to path atomically.
func (t *CountTable) WriteFile(path string) error {
	return atomicfile.Write(path, 0o600, t.Save)
}

// LoadCounts reads a count table written by CountTable.Save and checks its floor.
func LoadCounts(r io.Reader) (*CountTable, error) {
	var j countsJSON
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("count table: %w", err)
	}
	if j.Format != countsFormat {
		return nil, fmt.Errorf("count table: field format: got %q, want %q", j.Format, countsFormat)
	}
	if j.Version != countsVersion {
		return nil, fmt.Errorf("count table: field version: unsupported version %d (this build reads %d)", j.Version, countsVersion)
	}
	if j.Counts == nil {
		j.Counts = make(map[string]int64)
	}
	if err := j.validate(); err != nil {
		return nil, fmt.Errorf("count table: %w", err)
	}
	return &j.CountTable, nil
}

// ReadCounts loads the count table saved at path.
func ReadCounts(path string) (*CountTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := LoadCounts(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
