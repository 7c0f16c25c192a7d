package audit

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// Error locates the first bad entry of a log.
type Error struct {
	Line int    // 1-based line number
	Seq  uint64 // the entry's seq when it could be read, else 0
	Err  error  // one of the Err* reasons, possibly wrapped with detail
}

func (e *Error) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d (seq %d): %v", e.Line, e.Seq, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Summary describes a log that verified.
type Summary struct {
	Entries uint64 // also the last seq
	Head    string // the last entry's hash; Genesis for an empty log
	Last    time.Time
	Bytes   int64 // length of the verified prefix
}

// Verifier checks a log. The zero Verifier checks the chain alone.
type Verifier struct {
	// PublicKey, when set, must have signed every entry (ECDSA or Ed25519).
	PublicKey crypto.PublicKey
	// Head, when set, is the hash the last entry must carry: an anchor kept elsewhere
	// (a checkpoint, a peer's log) that also catches entries cut off the end, which
	// the chain alone cannot.
	Head string
	// Expect are heads recorded elsewhere (in checkpoints) that the log must reach:
	// for each, the log must hold an entry at its seq (else ErrCut: entries were cut
	// off the end) carrying its hash (else ErrRewritten). Unlike Head, the log may go
	// on after them: entries written after the checkpoint are newer, not damage.
	// Zero heads are ignored.
	Expect []Head
}

// Verify checks the log in r with the zero Verifier.
func Verify(r io.Reader) (Summary, error) {
	return Verifier{}.Verify(r)
}

// Verify reads the whole log and returns its summary, or an *Error naming the first
// bad entry and why: malformed or non-canonical JSON, a hash mismatch, a sequence gap
// (an entry removed or reordered), a broken link to the previous entry, time going
// backwards, a bad signature or an incomplete last line, and when v expects heads,
// ErrCut or ErrRewritten. Read errors are returned as they are.
func (v Verifier) Verify(r io.Reader) (Summary, error) {
	s, _, err := v.verify(r)
	return s, err
}

// verify is Verify that also returns, on a torn last line, the summary of the good
// prefix before it, which Open needs to repair the file. A torn log whose good prefix
// does not reach the expected heads is reported as cut, not torn: repairing it would
// not bring the missing entries back.
func (v Verifier) verify(r io.Reader) (Summary, bool, error) {
	x, err := newExpectations(v.Expect)
	if err != nil {
		return Summary{}, false, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	s := Summary{Head: Genesis}
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err == io.EOF && len(b) == 0 {
			break
		}
		if err == io.EOF {
			if err := x.reached(s.Entries); err != nil {
				return s, false, &Error{Line: line, Err: fmt.Errorf("%w (and line %d is torn: %d bytes without a newline)", err, line, len(b))}
			}
			return s, true, &Error{Line: line, Err: fmt.Errorf("%w: %d bytes without a newline", ErrTorn, len(b))}
		}
		if err != nil {
			return s, false, &Error{Line: line, Err: err}
		}
		e, err := ParseLine(b[:len(b)-1])
		if err != nil {
			return s, false, &Error{Line: line, Seq: e.Seq, Err: err}
		}
		fail := func(err error) (Summary, bool, error) {
			return s, false, &Error{Line: line, Seq: e.Seq, Err: err}
		}
		if e.Seq != s.Entries+1 {
			return fail(fmt.Errorf("%w: seq %d follows seq %d", ErrSeq, e.Seq, s.Entries))
		}
		if e.Prev != s.Head {
			return fail(fmt.Errorf("%w: prev %.12s..., previous hash %.12s...", ErrChain, e.Prev, s.Head))
		}
		t, _ := time.Parse(time.RFC3339Nano, e.Time)
		if t.Before(s.Last) {
			return fail(fmt.Errorf("%w: %s after %s", ErrTime, e.Time, s.Last.Format(time.RFC3339Nano)))
		}
		if v.PublicKey != nil {
			if err := checkSig(v.PublicKey, e); err != nil {
				return fail(err)
			}
		}
		if err := x.entry(&e); err != nil {
			return fail(err)
		}
		s.Entries, s.Head, s.Last = e.Seq, e.Hash, t
		s.Bytes += int64(len(b))
	}
	if err := x.reached(s.Entries); err != nil {
		return s, false, &Error{Line: int(s.Entries), Seq: s.Entries, Err: err}
	}
	if v.Head != "" && v.Head != s.Head {
		return s, false, &Error{Line: int(s.Entries), Seq: s.Entries, Err: fmt.Errorf("%w: last hash %.12s..., want %.12s...", ErrHead, s.Head, v.Head)}
	}
	return s, false, nil
}

// readLine returns the next line with its newline, or what is left before EOF with
// io.EOF. Lines longer than any entry can be are refused rather than buffered.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > maxLineBytes {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLineBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return buf, err
	}
}

func checkSig(pub crypto.PublicKey, e Entry) error {
	if e.Sig == "" {
		return fmt.Errorf("%w: entry is unsigned", ErrSignature)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Sig)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	digest, _ := hex.DecodeString(e.Hash)
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, digest, sig)
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrSignature, pub)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

// sign signs an entry's hash with signer (ECDSA over the hash as a SHA-256 digest,
// or Ed25519 over the hash bytes).
func sign(signer crypto.Signer, hash string) (string, error) {
	digest, err := hex.DecodeString(hash)
	if err != nil {
		return "", err
	}
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := signer.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}
