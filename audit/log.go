package audit

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// Options configure Open.
type Options struct {
	// Actor is the party writing the log ("aggregator", "site/a"); Append uses it for
	// entries that name no actor of their own.
	Actor string
	// Signer, when set, signs every entry's hash; use the party's certificate key so
	// that `fedclaims audit verify --cert` can check who wrote the log. Open then
	// requires the existing entries to carry valid signatures from the same key.
	Signer crypto.Signer
	// RepairTorn lets Open cut off an incomplete last line, left by a crash in the
	// middle of a write, and record the cut in a log_repaired entry. Without it such
	// a log is refused, like any other damage.
	RepairTorn bool
	// Expect are the heads (Log.Anchor) that the party recorded in its state files:
	// Open refuses the log, with an *Error wrapping ErrCut or ErrRewritten, when it
	// ends before one of them or holds another entry at its seq. Entries after them
	// are fine: they were written after the state file. A torn last line is still
	// repaired with RepairTorn, but only when the entries before it reach every
	// expected head. Zero heads (from state files written before heads were kept)
	// are ignored.
	Expect []Head
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Log is an open audit log. Append is safe for concurrent use.
type Log struct {
	path string
	opts Options

	mu    sync.Mutex
	f     *os.File
	size  int64
	seq   uint64
	head  string
	last  time.Time
	fatal error // set once the file may hold a partial entry; every Append then fails
}

// ErrClosed is returned by Append after Close or after a failed write.
var ErrClosed = errors.New("audit log closed")

// Open opens the log at path for appending, creating it (0600) if needed. An
// existing log is verified in full first and its chain continued; a damaged log, or
// one that does not reach opts.Expect, is refused with the *Error that Verify reports,
// after the file's name. The file is locked against a second writer.
func Open(path string, opts Options) (*Log, error) {
	if opts.Actor == "" {
		return nil, fmt.Errorf("audit %s: no actor", path)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	v := Verifier{Expect: opts.Expect}
	if opts.Signer != nil {
		v.PublicKey = opts.Signer.Public()
	}
	s, torn, err := v.verify(f)
	if err != nil && !(torn && opts.RepairTorn) {
		f.Close()
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	// A new file's directory entry must be durable too, or the first entries could
	// vanish with it on a crash.
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	l := &Log{path: path, opts: opts, f: f, size: s.Bytes, seq: s.Entries, head: s.Head, last: s.Last}
	if torn {
		if err := l.repair(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// repair cuts the torn tail after the verified prefix and records what was cut.
func (l *Log) repair() error {
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit %s: %w", l.path, err)
	}
	tail := make([]byte, st.Size()-l.size)
	if _, err := l.f.ReadAt(tail, l.size); err != nil && err != io.EOF {
		return fmt.Errorf("audit %s: reading torn tail: %w", l.path, err)
	}
	if err := l.f.Truncate(l.size); err != nil {
		return fmt.Errorf("audit %s: cutting torn tail: %w", l.path, err)
	}
	_, err = l.Append(context.Background(), Entry{Type: Repaired, Fields: map[string]string{
		"cut_bytes":  strconv.Itoa(len(tail)),
		"cut_sha256": SHA256(tail),
	}})
	return err
}

// Append completes e (seq, time, prev, hash, signature and, if empty, actor), writes
// it as one line and fsyncs before returning. The returned entry is what was written.
//
// An action must not go ahead when its Append fails: that is what makes the log
// fail closed. After a failed write or sync the log refuses every further Append,
// since the file may end in a partial line; reopening verifies and, with RepairTorn,
// repairs it.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("audit %s: %s: %w", l.path, e.Type, err)
	}
	if e.Actor == "" {
		e.Actor = l.opts.Actor
	}
	if err := e.checkContent(); err != nil {
		return Entry{}, fmt.Errorf("audit %s: %s: %w", l.path, e.Type, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal != nil {
		return Entry{}, fmt.Errorf("audit %s: %s refused: %w", l.path, e.Type, l.fatal)
	}
	// Wall clocks step backwards; the log's time never does.
	t := l.opts.Now().UTC()
	if t.Before(l.last) {
		t = l.last
	}
	e.Seq, e.Time, e.Prev, e.Hash, e.Sig = l.seq+1, t.Format(time.RFC3339Nano), l.head, "", ""
	d, err := e.digest()
	if err != nil {
		return Entry{}, fmt.Errorf("audit %s: %s: %w", l.path, e.Type, err)
	}
	e.Hash = hex.EncodeToString(d)
	if l.opts.Signer != nil {
		if e.Sig, err = sign(l.opts.Signer, e.Hash); err != nil {
			return Entry{}, fmt.Errorf("audit %s: signing %s: %w", l.path, e.Type, err)
		}
	}
	line, err := json.Marshal(&e)
	if err != nil {
		return Entry{}, fmt.Errorf("audit %s: %s: %w", l.path, e.Type, err)
	}
	line = append(line, '\n')
	if _, err := l.f.Write(line); err != nil {
		return Entry{}, l.fail(e.Type, err)
	}
	if err := l.f.Sync(); err != nil {
		return Entry{}, l.fail(e.Type, err)
	}
	l.size += int64(len(line))
	l.seq, l.head, l.last = e.Seq, e.Hash, t
	return e, nil
}

// fail poisons the log after a failed write: whatever reached the disk is unknown.
func (l *Log) fail(typ string, err error) error {
	l.fatal = fmt.Errorf("%w: write failed: %w", ErrClosed, err)
	return fmt.Errorf("audit %s: writing %s: %w", l.path, typ, err)
}

// Head returns the last entry's seq and hash: an anchor to keep elsewhere (in a
// checkpoint) and pass to Verifier.Head later.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

// Path returns the log's file name.
func (l *Log) Path() string { return l.path }

// Close closes the file; later Appends fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if l.fatal == nil {
		l.fatal = ErrClosed
	}
	if err != nil {
		return fmt.Errorf("audit %s: %w", l.path, err)
	}
	return nil
}
