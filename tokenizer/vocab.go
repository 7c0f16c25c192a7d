// Package tokenizer turns patients into the integer sequences the encoder reads: a
// vocabulary of codes built from counts under a k-anonymity floor, with fallback up
// each code system's hierarchy, and an Encoder that emits token, segment (visit),
// age and position ids for the events before a cutoff time.
//
// The vocabulary is built federatedly: each site counts its patients with a Counter
// and publishes a CountTable from which every code seen in fewer than k patients has
// been removed, so no rare code leaves a site; the tables Merge into one, order
// independent, and New makes the Vocab from the merged table.
package tokenizer

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// Special token ids. They occupy the first ids of every vocabulary, in this order.
const (
	PAD  int32 = 0
	CLS  int32 = 1
	SEP  int32 = 2
	MASK int32 = 3
	UNK  int32 = 4
	// NumSpecial is the number of special tokens; code tokens start at this id.
	NumSpecial = 5
)

// DefaultMinCount is the default k of the k-anonymity floor: a code must be seen in at
// least this many patients at a site to be counted.
const DefaultMinCount = 10

// vocabFormat and vocabVersion identify the JSON written by Vocab.Save.
const (
	vocabFormat  = "fedclaims-vocab"
	vocabVersion = 1
)

// SpecialTokens returns the names of the special tokens, indexed by id.
func SpecialTokens() []string {
	return []string{"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"}
}

// Tokenized reports whether events with code become tokens. Codes of every kind
// do: diagnoses, medications, procedures and other clinical codes, such as labs
// and codes no recogniser knows, which the k-floor alone filters (a dataset in an
// unknown convention must not lose all its codes). What does not: visit markers
// (a visit is the day a [SEP] closes), sex (GENDER//, the patient's Sex) and
// MEDS's own codes (birth, the end of observation, and death, the outcome tasks
// predict).
func Tokenized(code string) bool {
	switch {
	case code == "", strings.HasPrefix(code, "MEDS_"):
		return false
	}
	switch claims.KindOf(code) {
	case claims.KindVisit, claims.KindDeath:
		return false
	}
	return claims.System(code) != claims.SystemGender
}

// Fallback returns the code that a code missing from the vocabulary falls back to,
// and false at the top of the fallback chain. The chain follows claims.Parent but stops
// at the level where the hierarchy still names a clinically specific group: the
// 3-character category for ICD codes and the chemical subgroup (level 4) for ATC.
// Codes without a syntactic hierarchy (NDC, RxNorm, procedures) have no fallback.
//
//	ICD10//E11.91 -> ICD10//E11.9 -> ICD10//E11
//	ATC//C10AA05 -> ATC//C10AA
func Fallback(code string) (string, bool) {
	p, ok := claims.Parent(code)
	if !ok {
		return "", false
	}
	if claims.System(p) == claims.SystemATC && len(claims.Value(p)) < 5 {
		return "", false
	}
	return p, true
}

// Vocab maps codes to token ids. It is immutable after construction and safe for
// concurrent use.
type Vocab struct {
	minCount int
	tokens   []string // by id; specials first
	counts   []int64  // by id; 0 for specials
	index    map[string]int32
}

// New builds the vocabulary of the codes in t with a count of at least minCount (t's
// own floor when minCount is smaller). Ids are given by decreasing count, ties by code,
// after the special tokens, so the result depends only on the table's contents.
func New(t *CountTable, minCount int) (*Vocab, error) { return NewTop(t, minCount, 0) }

// NewTop is New keeping at most maxCodes codes, the most frequent (0: no bound), so
// that no table can force a vocabulary, and a model, larger than the parties agreed.
func NewTop(t *CountTable, minCount, maxCodes int) (*Vocab, error) {
	if maxCodes < 0 {
		return nil, fmt.Errorf("tokenizer: max codes %d is negative", maxCodes)
	}
	if minCount < 1 {
		return nil, fmt.Errorf("tokenizer: min count %d: must be at least 1", minCount)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	minCount = max(minCount, t.MinCount)
	type entry struct {
		code  string
		count int64
	}
	var entries []entry
	for c, n := range t.Counts {
		if n >= int64(minCount) {
			entries = append(entries, entry{c, n})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return strings.Compare(a.code, b.code)
	})
	if maxCodes > 0 && len(entries) > maxCodes {
		entries = entries[:maxCodes]
	}
	tokens := append(make([]string, 0, NumSpecial+len(entries)), SpecialTokens()...)
	counts := make([]int64, NumSpecial, NumSpecial+len(entries))
	for _, e := range entries {
		tokens = append(tokens, e.code)
		counts = append(counts, e.count)
	}
	return newVocab(minCount, tokens, counts)
}

func newVocab(minCount int, tokens []string, counts []int64) (*Vocab, error) {
	v := &Vocab{minCount: minCount, tokens: tokens, counts: counts, index: make(map[string]int32, len(tokens))}
	for id, tok := range tokens {
		if _, dup := v.index[tok]; dup {
			return nil, fmt.Errorf("tokenizer: token %q appears twice (ids %d and %d)", tok, v.index[tok], id)
		}
		v.index[tok] = int32(id)
	}
	return v, nil
}

// Len returns the number of tokens, special tokens included.
func (v *Vocab) Len() int { return len(v.tokens) }

// MinCount returns the floor the vocabulary was built with.
func (v *Vocab) MinCount() int { return v.minCount }

// Token returns the code or special token name with id, and "" for an id out of range.
func (v *Vocab) Token(id int32) string {
	if id < 0 || int(id) >= len(v.tokens) {
		return ""
	}
	return v.tokens[id]
}

// Count returns the merged patient count behind token id (0 for special tokens).
func (v *Vocab) Count(id int32) int64 {
	if id < 0 || int(id) >= len(v.counts) {
		return 0
	}
	return v.counts[id]
}

// ID returns the token id of code, falling back up the code's hierarchy (see Fallback)
// to the first code in the vocabulary, and UNK when none is. Special token names are
// not codes: ID("[CLS]") is UNK.
func (v *Vocab) ID(code string) int32 {
	for c := code; ; {
		if id, ok := v.index[c]; ok && id >= NumSpecial {
			return id
		}
		p, ok := Fallback(c)
		if !ok {
			return UNK
		}
		c = p
	}
}

// vocabJSON is the saved form of a Vocab. Tokens and counts are parallel arrays so the
// file reads as a list in id order.
type vocabJSON struct {
	Format   string   `json:"format"`
	Version  int      `json:"version"`
	MinCount int      `json:"min_count"`
	Tokens   []string `json:"tokens"`
	Counts   []int64  `json:"counts"`
}

// Save writes v as JSON.
func (v *Vocab) Save(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(vocabJSON{Format: vocabFormat, Version: vocabVersion, MinCount: v.minCount, Tokens: v.tokens, Counts: v.counts})
}

// Load reads a vocabulary written by Save.
func Load(r io.Reader) (*Vocab, error) {
	var j vocabJSON
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	if j.Format != vocabFormat {
		return nil, fmt.Errorf("vocabulary: field format: got %q, want %q", j.Format, vocabFormat)
	}
	if j.Version != vocabVersion {
		return nil, fmt.Errorf("vocabulary: field version: unsupported version %d (this build reads %d)", j.Version, vocabVersion)
	}
	if j.MinCount < 1 {
		return nil, fmt.Errorf("vocabulary: field min_count: %d is not a positive count", j.MinCount)
	}
	if len(j.Tokens) != len(j.Counts) {
		return nil, fmt.Errorf("vocabulary: fields tokens and counts: %d tokens but %d counts", len(j.Tokens), len(j.Counts))
	}
	specials := SpecialTokens()
	if len(j.Tokens) < len(specials) {
		return nil, fmt.Errorf("vocabulary: field tokens: %d tokens, fewer than the %d special tokens", len(j.Tokens), len(specials))
	}
	for id, s := range specials {
		if j.Tokens[id] != s {
			return nil, fmt.Errorf("vocabulary: field tokens[%d]: got %q, want special token %q", id, j.Tokens[id], s)
		}
	}
	for id := NumSpecial; id < len(j.Tokens); id++ {
		if !Tokenized(j.Tokens[id]) {
			return nil, fmt.Errorf("vocabulary: field tokens[%d]: %q is not a diagnosis, medication, procedure or other clinical code", id, j.Tokens[id])
		}
		if j.Counts[id] < 0 {
			return nil, fmt.Errorf("vocabulary: field counts[%d]: negative count %d", id, j.Counts[id])
		}
	}
	v, err := newVocab(j.MinCount, j.Tokens, j.Counts)
	if err != nil {
		return nil, fmt.Errorf("vocabulary: field tokens: %w", err)
	}
	return v, nil
}

// WriteFile saves v to path atomically: a reader of path sees the old file or the whole
// new one, never a partial write.
func (v *Vocab) WriteFile(path string) error {
	return atomicfile.Write(path, 0o600, v.Save)
}

// ReadFile loads the vocabulary saved at path.
func ReadFile(path string) (*Vocab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
