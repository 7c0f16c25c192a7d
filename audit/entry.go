// Package audit is fedclaims' append-only, hash-chained audit log: one JSON object
// per line, each carrying the SHA-256 of the entry before it, so that an altered,
// removed or reordered entry breaks the chain at that entry.
//
// An entry records who did what to which federation, round and site, and the SHA-256
// of any payload involved; never the payload itself, keys or patient data. Fields are
// short strings (at most MaxFieldLen bytes) so that a blob cannot slip in by mistake.
//
// Each line is the canonical encoding of its entry: encoding/json's output for Entry,
// which fixes the key order and escaping. An entry's hash is the SHA-256 of that
// encoding with the hash and signature left out, and the verifier requires every line
// to re-encode to exactly its own bytes, so the bytes hashed are the bytes on disk.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Entry is one line of the log.
type Entry struct {
	Seq   uint64 `json:"seq"`  // 1 for the first entry, then consecutive
	Time  string `json:"time"` // RFC 3339 with nanoseconds, UTC; never decreasing
	Actor string `json:"actor"`
	Type  string `json:"type"`
	// Federation, Round and Site say what the event concerns; Round 0 means none.
	Federation string            `json:"federation,omitempty"`
	Round      uint64            `json:"round,omitempty"`
	Site       string            `json:"site,omitempty"`
	Fields     map[string]string `json:"fields,omitempty"`
	Prev       string            `json:"prev"` // the previous entry's Hash; Genesis for the first
	Hash       string            `json:"hash"` // hex SHA-256 of the entry without Hash and Sig
	Sig        string            `json:"sig,omitempty"`
}

// Event types. Callers may use others of the same shape (lower case, digits, '_', '.').
const (
	Enrol           = "enrol"
	KeySetup        = "key_setup"
	Vocabulary      = "vocabulary"
	RoundStart      = "round_start"
	Upload          = "upload"
	DecryptionShare = "decryption_share"
	RoundEnd        = "round_end"
	ModelPublished  = "model_published"
	ConfigChange    = "config_change"
	Refusal         = "refusal"
	// Repaired is written by Open when it cut off a torn last line.
	Repaired = "log_repaired"
)

// Genesis is the Prev of the first entry.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Limits that keep entries small and free of payloads.
const (
	MaxFieldLen  = 1024
	MaxFields    = 32
	MaxActorLen  = 128
	maxLineBytes = 64 << 10
)

var (
	typePattern  = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,63}$`)
	fieldPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	hexPattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Why an entry fails verification; Verify's *Error wraps one of these.
var (
	ErrMalformed    = errors.New("malformed entry")
	ErrNotCanonical = errors.New("entry is not in canonical form")
	ErrHash         = errors.New("hash mismatch")
	ErrSeq          = errors.New("sequence gap")
	ErrChain        = errors.New("broken link to the previous entry")
	ErrTime         = errors.New("time goes backwards")
	ErrSignature    = errors.New("bad signature")
	ErrTorn         = errors.New("last line is incomplete")
	ErrHead         = errors.New("head does not match")
)

// SHA256 returns the hex SHA-256 of b, the form in which payloads appear in the log.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkContent validates what the caller of Append supplies.
func (e *Entry) checkContent() error {
	if e.Actor == "" || len(e.Actor) > MaxActorLen {
		return fmt.Errorf("%w: actor must be 1 to %d bytes", ErrMalformed, MaxActorLen)
	}
	if !typePattern.MatchString(e.Type) {
		return fmt.Errorf("%w: type %q", ErrMalformed, e.Type)
	}
	if len(e.Federation) > MaxFieldLen || len(e.Site) > MaxFieldLen {
		return fmt.Errorf("%w: federation or site longer than %d bytes", ErrMalformed, MaxFieldLen)
	}
	if len(e.Fields) > MaxFields {
		return fmt.Errorf("%w: %d fields, at most %d", ErrMalformed, len(e.Fields), MaxFields)
	}
	for k, v := range e.Fields {
		if !fieldPattern.MatchString(k) {
			return fmt.Errorf("%w: field name %q", ErrMalformed, k)
		}
		if len(v) > MaxFieldLen {
			return fmt.Errorf("%w: field %s is %d bytes, at most %d (log a hash, not a payload)", ErrMalformed, k, len(v), MaxFieldLen)
		}
	}
	return nil
}

// digest returns the SHA-256 of e's canonical encoding without Hash and Sig.
func (e *Entry) digest() ([]byte, error) {
	c := *e
	c.Hash, c.Sig = "", ""
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(b)
	return s[:], nil
}

// ParseLine decodes one line (without its newline) and checks everything that does
// not depend on the neighbouring entries: the JSON, the canonical form, the field
// shapes and the hash. Chain, sequence, time order and signatures are Verify's.
// When the JSON decodes but a later check fails, the entry is returned with the error
// so that the caller can name its seq.
func ParseLine(line []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return Entry{}, fmt.Errorf("%w: data after the entry", ErrMalformed)
	}
	canon, err := json.Marshal(&e)
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !bytes.Equal(canon, line) {
		return e, ErrNotCanonical
	}
	if e.Seq == 0 {
		return e, fmt.Errorf("%w: seq 0", ErrMalformed)
	}
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339Nano) != e.Time {
		return e, fmt.Errorf("%w: time %q is not RFC 3339 UTC", ErrMalformed, e.Time)
	}
	if err := e.checkContent(); err != nil {
		return e, err
	}
	if !hexPattern.MatchString(e.Prev) || !hexPattern.MatchString(e.Hash) {
		return e, fmt.Errorf("%w: prev and hash must be 64 lower-case hex digits", ErrMalformed)
	}
	d, err := e.digest()
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if hex.EncodeToString(d) != e.Hash {
		return e, ErrHash
	}
	return e, nil
}
