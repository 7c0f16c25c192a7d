package audit

import (
	"errors"
	"fmt"
)

// Head names one entry of a log by its seq and hash. A party keeps its log's head in
// every state file it writes (a checkpoint, setup.json) and hands the heads back to
// Open on restart (Options.Expect): the chain alone cannot show entries cut off the
// end of the log, since what is left is still a valid chain, but a head recorded
// elsewhere can.
//
// The zero Head (seq 0) is the empty log's head, which every log reaches; a state
// file written before heads were kept decodes to it and checks nothing.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Why a log fails an expected Head; Verify's and Open's *Error wraps one of these.
var (
	// ErrCut: the log ends before an expected head, so entries were cut off its end.
	ErrCut = errors.New("entries cut off the end of the log")
	// ErrRewritten: the log's entry at an expected head's seq has another hash, so
	// the log was rewritten from that entry or earlier.
	ErrRewritten = errors.New("entry differs from the one recorded")
)

// IsZero reports whether h is the empty log's head, which expects nothing.
func (h Head) IsZero() bool { return h.Seq == 0 }

// String formats h for errors: "seq 7 (hash 3f2a9c01b4d2...)".
func (h Head) String() string {
	if h.Seq == 0 {
		return "seq 0 (empty log)"
	}
	return fmt.Sprintf("seq %d (hash %.12s...)", h.Seq, h.Hash)
}

// check reports a head that cannot have come from a log.
func (h Head) check() error {
	if h.Seq == 0 {
		if h.Hash != "" && h.Hash != Genesis {
			return fmt.Errorf("expected head seq 0 with hash %.12s..., want none or the genesis hash", h.Hash)
		}
		return nil
	}
	if !hexPattern.MatchString(h.Hash) {
		return fmt.Errorf("expected head seq %d: hash %q is not 64 lower-case hex digits", h.Seq, h.Hash)
	}
	return nil
}

// Anchor returns the head of the log as it stands: the last entry written, which is
// already on disk (Append fsyncs before it returns). Record it in a state file after
// the entries that describe the state, and pass it to Open's Options.Expect on
// restart.
func (l *Log) Anchor() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Head{Seq: l.seq, Hash: l.head}
}

// expectations indexes the expected heads by seq, refusing heads that contradict
// each other or could not come from a log.
type expectations struct {
	bySeq map[uint64]string
	last  Head // the expected head with the highest seq
}

func newExpectations(heads []Head) (expectations, error) {
	x := expectations{}
	for _, h := range heads {
		if err := h.check(); err != nil {
			return expectations{}, err
		}
		if h.Seq == 0 {
			continue
		}
		if x.bySeq == nil {
			x.bySeq = map[uint64]string{}
		}
		if prev, ok := x.bySeq[h.Seq]; ok && prev != h.Hash {
			return expectations{}, fmt.Errorf("%w: two expected heads at seq %d disagree (%.12s... and %.12s...)", ErrRewritten, h.Seq, prev, h.Hash)
		}
		x.bySeq[h.Seq] = h.Hash
		if h.Seq > x.last.Seq {
			x.last = h
		}
	}
	return x, nil
}

// entry checks one verified entry against the expected head at its seq, if any.
func (x expectations) entry(e *Entry) error {
	want, ok := x.bySeq[e.Seq]
	if !ok || want == e.Hash {
		return nil
	}
	return fmt.Errorf("%w: seq %d has hash %.12s..., but %.12s... was recorded", ErrRewritten, e.Seq, e.Hash, want)
}

// reached checks that a log whose verified entries end at seq reaches every expected
// head.
func (x expectations) reached(seq uint64) error {
	if x.last.Seq <= seq {
		return nil
	}
	return fmt.Errorf("%w: the log ends at seq %d, but a checkpoint recorded its head at %v", ErrCut, seq, x.last)
}
