package site

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/secureagg"
)

// The state directory's files.
const (
	seqFile        = "assignment.json"  // the last assignment handled
	federationFile = "federation.json"  // the FederationConfig from enrolment
	transportFile  = "transport.key"    // the secureagg transport key (secret)
	partyFile      = "party.bin"        // the secureagg party (secret)
	partySitesFile = "party_sites.json" // the site names the party was made for
	releasedFile   = "released.json"    // rounds a decryption share was released for
	sharesFile     = "shares.bin"       // the decryption share released for the latest round
	countsFile     = "counts.json"      // the count table uploaded (k-floored)
	vocabFile      = "vocab.json"       // the federated vocabulary
	globalDir      = "global"           // the latest global model, a checkpoint
	finalDir       = "final"            // the final published model, a checkpoint
)

// ErrReleased reports a second decryption share asked for one round.
var ErrReleased = errors.New("a decryption share was already released for this round")

// state is the agent's state directory. Every write goes through a temporary file in
// the directory, fsynced and renamed, so that a crash leaves the old or the new file.
type state struct {
	dir string
}

func openState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	return &state{dir: dir}, nil
}

func (s *state) path(name string) string { return filepath.Join(s.dir, name) }

// read returns a file's contents, or nil without error when it does not exist.
func (s *state) read(name string) ([]byte, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return b, nil
}

func (s *state) write(name string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(s.path(name), data, perm)
}

type seqRecord struct {
	Federation string `json:"federation"`
	Seq        uint64 `json:"seq"`
	// AuditHead is the site's audit log head when the record was written; a restart
	// refuses a log that no longer reaches it (entries cut off its end).
	AuditHead audit.Head `json:"audit_head"`
}

// lastSeq returns the last assignment handled in federation, 0 for none.
func (s *state) lastSeq(federation string) (uint64, error) {
	b, err := s.read(seqFile)
	if err != nil || b == nil {
		return 0, err
	}
	var r seqRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("state %s: %w", s.path(seqFile), err)
	}
	if r.Federation != federation {
		return 0, nil
	}
	return r.Seq, nil
}

func (s *state) setLastSeq(federation string, seq uint64, head audit.Head) error {
	b, _ := json.Marshal(seqRecord{Federation: federation, Seq: seq, AuditHead: head})
	return s.write(seqFile, b, 0o600)
}

type releasedRecord struct {
	Federation string     `json:"federation"`
	Rounds     []uint64   `json:"rounds"`
	AuditHead  audit.Head `json:"audit_head"`
}

func (s *state) releasedRounds(federation string) ([]uint64, error) {
	b, err := s.read(releasedFile)
	if err != nil || b == nil {
		return nil, err
	}
	var r releasedRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.path(releasedFile), err)
	}
	if r.Federation != federation {
		return nil, fmt.Errorf("state %s: records federation %q, not %q", s.path(releasedFile), r.Federation, federation)
	}
	return r.Rounds, nil
}

// release records, durably, that the site is about to release its decryption share
// for round, and refuses with ErrReleased if it already did: a site releases at most
// one share per round, across restarts. The record is written before the share
// leaves, so a crash in between costs the round this site's share, never a second
// one.
func (s *state) release(federation string, round uint64, head audit.Head) error {
	rounds, err := s.releasedRounds(federation)
	if err != nil {
		return err
	}
	if slices.Contains(rounds, round) {
		return fmt.Errorf("round %d: %w", round, ErrReleased)
	}
	rounds = append(rounds, round)
	slices.Sort(rounds)
	b, _ := json.Marshal(releasedRecord{Federation: federation, Rounds: rounds, AuditHead: head})
	return s.write(releasedFile, b, 0o600)
}

// releasedShares is the decryption share a site released for a round, kept so that
// an upload broken mid-stream can be sent again, byte for byte, instead of a second
// share: the same aggregate and decrypting set get the same bytes, anything else is
// refused (checkResend).
type releasedShares struct {
	Federation string
	Round      uint64
	Aggregate  [sha256.Size]byte  // SHA-256 of the aggregate blob the shares decrypt
	Set        []secureagg.SiteID // the decrypting set, sorted
	Msgs       [][]byte           // the share chunks' wire encodings, in upload order
}

const sharesMagic = "fcshare1"

// saveShares writes the shares released for a round, atomically, replacing those of
// the round before: only the latest round's are kept.
func (s *state) saveShares(r *releasedShares) error {
	return atomicfile.Write(s.path(sharesFile), 0o600, func(w io.Writer) error {
		h := sha256.New()
		bw := bufio.NewWriter(io.MultiWriter(w, h))
		var b []byte
		b = append(b, sharesMagic...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Federation)))
		b = append(b, r.Federation...)
		b = binary.LittleEndian.AppendUint64(b, r.Round)
		b = append(b, r.Aggregate[:]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Set)))
		for _, id := range r.Set {
			b = binary.LittleEndian.AppendUint32(b, uint32(id))
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Msgs)))
		if _, err := bw.Write(b); err != nil {
			return err
		}
		for _, m := range r.Msgs {
			if _, err := bw.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(m)))); err != nil {
				return err
			}
			if _, err := bw.Write(m); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := w.Write(h.Sum(nil))
		return err
	})
}

// loadShares returns the shares kept for round of federation, nil when none are
// (none kept, or those of another round).
func (s *state) loadShares(federation string, round uint64) (*releasedShares, error) {
	b, err := s.read(sharesFile)
	if err != nil || b == nil {
		return nil, err
	}
	r, err := decodeShares(b)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", s.path(sharesFile), err)
	}
	if r.Federation != federation || r.Round != round {
		return nil, nil
	}
	return r, nil
}

func decodeShares(b []byte) (*releasedShares, error) {
	if len(b) < len(sharesMagic)+sha256.Size || string(b[:len(sharesMagic)]) != sharesMagic {
		return nil, errors.New("not a kept decryption share")
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("kept decryption share: checksum mismatch")
	}
	p := body[len(sharesMagic):]
	var r releasedShares
	u32 := func(field string) (uint32, error) {
		if len(p) < 4 {
			return 0, fmt.Errorf("kept decryption share: field %s truncated", field)
		}
		v := binary.LittleEndian.Uint32(p)
		p = p[4:]
		return v, nil
	}
	take := func(field string, n uint32) ([]byte, error) {
		if uint64(len(p)) < uint64(n) {
			return nil, fmt.Errorf("kept decryption share: field %s truncated", field)
		}
		v := p[:n]
		p = p[n:]
		return v, nil
	}
	n, err := u32("federation")
	if err != nil {
		return nil, err
	}
	fed, err := take("federation", n)
	if err != nil {
		return nil, err
	}
	r.Federation = string(fed)
	rb, err := take("round", 8)
	if err != nil {
		return nil, err
	}
	r.Round = binary.LittleEndian.Uint64(rb)
	ab, err := take("aggregate", sha256.Size)
	if err != nil {
		return nil, err
	}
	copy(r.Aggregate[:], ab)
	if n, err = u32("set"); err != nil {
		return nil, err
	}
	if uint64(n) > uint64(len(p))/4 {
		return nil, errors.New("kept decryption share: field set truncated")
	}
	for range n {
		id, _ := u32("set")
		r.Set = append(r.Set, secureagg.SiteID(id))
	}
	if n, err = u32("msgs"); err != nil {
		return nil, err
	}
	if uint64(n) > uint64(len(p))/4 {
		return nil, errors.New("kept decryption share: field msgs truncated")
	}
	r.Msgs = make([][]byte, 0, n)
	for range n {
		l, err := u32("msgs")
		if err != nil {
			return nil, err
		}
		m, err := take("msgs", l)
		if err != nil {
			return nil, err
		}
		r.Msgs = append(r.Msgs, m)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("kept decryption share: %d trailing bytes", len(p))
	}
	return &r, nil
}

// auditHeads returns the audit heads the state files recorded, whatever federation
// they name: the log must reach each of them (audit.Options.Expect).
func (s *state) auditHeads() ([]audit.Head, error) {
	var heads []audit.Head
	for _, name := range []string{seqFile, releasedFile} {
		b, err := s.read(name)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		var r struct {
			AuditHead audit.Head `json:"audit_head"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("state %s: %w", s.path(name), err)
		}
		heads = append(heads, r.AuditHead)
	}
	return heads, nil
}
