package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// The state directory's files.
const (
	seqFile        = "assignment.json"  // the last assignment handled
	federationFile = "federation.json"  // the FederationConfig from enrolment
	transportFile  = "transport.key"    // the secureagg transport key (secret)
	partyFile      = "party.bin"        // the secureagg party (secret)
	partySitesFile = "party_sites.json" // the site names the party was made for
	releasedFile   = "released.json"    // rounds a decryption share was released for
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

func (s *state) setLastSeq(federation string, seq uint64) error {
	b, _ := json.Marshal(seqRecord{Federation: federation, Seq: seq})
	return s.write(seqFile, b, 0o600)
}

type releasedRecord struct {
	Federation string   `json:"federation"`
	Rounds     []uint64 `json:"rounds"`
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
func (s *state) release(federation string, round uint64) error {
	rounds, err := s.releasedRounds(federation)
	if err != nil {
		return err
	}
	if slices.Contains(rounds, round) {
		return fmt.Errorf("round %d: %w", round, ErrReleased)
	}
	rounds = append(rounds, round)
	slices.Sort(rounds)
	b, _ := json.Marshal(releasedRecord{Federation: federation, Rounds: rounds})
	return s.write(releasedFile, b, 0o600)
}
