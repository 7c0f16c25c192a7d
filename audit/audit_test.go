package audit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock returns a deterministic clock that advances 1.5ms per reading.
func clock() func() time.Time {
	t := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(1500 * time.Microsecond)
		return t
	}
}

var sample = []Entry{
	{Type: Enrol, Federation: "f1", Site: "a", Fields: map[string]string{"serial": "8f3a"}},
	{Type: KeySetup, Federation: "f1", Site: "a", Fields: map[string]string{"step": "public_key_share", "sha256": SHA256([]byte("pk"))}},
	{Type: RoundStart, Federation: "f1", Round: 1, Fields: map[string]string{"model_sha256": SHA256([]byte("m1"))}},
	{Type: Upload, Federation: "f1", Round: 1, Site: "a", Fields: map[string]string{"sha256": SHA256([]byte("ct")), "bytes": "1048576"}},
	{Type: Refusal, Actor: "aggregator", Federation: "f1", Round: 1, Site: "b", Fields: map[string]string{"reason": "round id 2 disagrees with current round 1 <&>"}},
	{Type: ModelPublished, Federation: "f1", Round: 1, Fields: map[string]string{"sha256": SHA256([]byte("m2"))}},
}

// writeSample writes the sample entries to a new log and returns its path and bytes.
func writeSample(t *testing.T, opts Options) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if opts.Actor == "" {
		opts.Actor = "site/a"
	}
	if opts.Now == nil {
		opts.Now = clock()
	}
	l, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range sample {
		if _, err := l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

// wantBad checks that err is an *Error at line for reason.
func wantBad(t *testing.T, err error, line int, reason error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an *Error at line %d (%v)", err, line, reason)
	}
	if e.Line != line || !errors.Is(err, reason) {
		t.Fatalf("got %v, want line %d: %v", err, line, reason)
	}
}

func TestAppendVerify(t *testing.T) {
	path, b := writeSample(t, Options{})
	s, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries != uint64(len(sample)) || s.Bytes != int64(len(b)) {
		t.Errorf("summary %+v, want %d entries, %d bytes", s, len(sample), len(b))
	}
	ls := lines(b)
	var first, last Entry
	json.Unmarshal(ls[0], &first)
	json.Unmarshal(ls[len(ls)-1], &last)
	if first.Seq != 1 || first.Prev != Genesis || first.Actor != "site/a" || last.Hash != s.Head {
		t.Errorf("first %+v last %+v summary %+v", first, last, s)
	}
	var refusal Entry
	json.Unmarshal(ls[4], &refusal)
	if refusal.Actor != "aggregator" || !strings.Contains(refusal.Fields["reason"], "<&>") {
		t.Errorf("refusal entry %+v", refusal)
	}
	if _, err := (Verifier{Head: s.Head}).Verify(bytes.NewReader(b)); err != nil {
		t.Errorf("with head anchor: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if s, err := Verify(strings.NewReader("")); err != nil || s.Entries != 0 || s.Head != Genesis {
		t.Errorf("empty log: %+v, %v", s, err)
	}
}

// TestEveryByte changes each byte of a log in turn: verification must fail, and at
// the entry holding that byte.
func TestEveryByte(t *testing.T) {
	_, b := writeSample(t, Options{})
	lineOf := make([]int, len(b))
	line := 1
	for i, c := range b {
		lineOf[i] = line
		if c == '\n' {
			line++
		}
	}
	for i := range b {
		// Alternate a low-bit flip (a neighbouring character) with a high-bit one
		// (invalid UTF-8).
		mask := byte(0x01)
		if i%2 == 1 {
			mask = 0x80
		}
		mod := bytes.Clone(b)
		mod[i] ^= mask
		_, err := Verify(bytes.NewReader(mod))
		var e *Error
		if !errors.As(err, &e) || e.Line != lineOf[i] {
			t.Fatalf("byte %d (%q) ^ %#x: got %v, want a failure at line %d", i, b[i], mask, err, lineOf[i])
		}
	}
}

// rewrite replaces line n (1-based) of a log with the encoding of e after edit,
// rehashing it when a forger would.
func rewrite(t *testing.T, b []byte, n int, rehash bool, edit func(*Entry)) []byte {
	t.Helper()
	ls := lines(b)
	var e Entry
	if err := json.Unmarshal(bytes.TrimSuffix(ls[n-1], []byte("\n")), &e); err != nil {
		t.Fatal(err)
	}
	edit(&e)
	if rehash {
		d, err := e.digest()
		if err != nil {
			t.Fatal(err)
		}
		e.Hash = hex.EncodeToString(d)
	}
	enc, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	ls[n-1] = append(enc, '\n')
	return bytes.Join(ls, nil)
}

func TestTamper(t *testing.T) {
	_, b := writeSample(t, Options{})
	tests := []struct {
		name   string
		rehash bool
		edit   func(*Entry)
		want   error
	}{
		{"actor", false, func(e *Entry) { e.Actor = "site/b" }, ErrHash},
		{"type", false, func(e *Entry) { e.Type = Upload }, ErrHash},
		{"federation", false, func(e *Entry) { e.Federation = "f2" }, ErrHash},
		{"round", false, func(e *Entry) { e.Round = 2 }, ErrHash},
		{"site", false, func(e *Entry) { e.Site = "c" }, ErrHash},
		{"field value", false, func(e *Entry) { e.Fields["model_sha256"] = SHA256([]byte("other")) }, ErrHash},
		{"field added", false, func(e *Entry) { e.Fields["note"] = "x" }, ErrHash},
		{"time", false, func(e *Entry) { e.Time = "2026-11-26T20:00:00.0046Z" }, ErrHash},
		{"seq", false, func(e *Entry) { e.Seq = 4 }, ErrHash},
		{"prev", false, func(e *Entry) { e.Prev = Genesis }, ErrHash},
		{"hash", false, func(e *Entry) { e.Hash = SHA256(nil) }, ErrHash},
		{"signature added", false, func(e *Entry) { e.Sig = "AAAA" }, nil},
		{"seq rehashed", true, func(e *Entry) { e.Seq = 4 }, ErrSeq},
		{"prev rehashed", true, func(e *Entry) { e.Prev = Genesis }, ErrChain},
		{"time backwards rehashed", true, func(e *Entry) { e.Time = "2026-11-26T19:00:00Z" }, ErrTime},
		{"time not UTC rehashed", true, func(e *Entry) { e.Time = "2026-11-26T21:00:00.0045+01:00" }, ErrMalformed},
		{"bad type rehashed", true, func(e *Entry) { e.Type = "Round Start" }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(rewrite(t, b, 3, tt.rehash, tt.edit)))
			if tt.want == nil {
				// Signatures are outside the hash; without a key to check them against,
				// an added one is only noise, and with a key it is caught below.
				_, err = Verifier{PublicKey: ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))}.Verify(bytes.NewReader(rewrite(t, b, 3, tt.rehash, tt.edit)))
				wantBad(t, err, 1, ErrSignature)
				return
			}
			wantBad(t, err, 3, tt.want)
		})
	}
}

func TestStructure(t *testing.T) {
	_, b := writeSample(t, Options{})
	ls := lines(b)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		log  []byte
		line int
		want error
	}{
		{"middle line deleted", join(ls[0], ls[1], ls[3], ls[4], ls[5]), 3, ErrSeq},
		{"first line deleted", join(ls[1:]...), 1, ErrSeq},
		{"lines swapped", join(ls[0], ls[2], ls[1], ls[3], ls[4], ls[5]), 2, ErrSeq},
		{"line duplicated", join(ls[0], ls[1], ls[1], ls[2]), 3, ErrSeq},
		{"truncated mid-line", b[:len(b)-len(ls[5])/2], 6, ErrTorn},
		{"no final newline", b[:len(b)-1], 6, ErrTorn},
		{"blank line", join(ls[0], []byte("\n"), ls[1]), 2, ErrMalformed},
		{"spaces added", join(ls[0], bytes.Replace(ls[1], []byte(`,"actor"`), []byte(`, "actor"`), 1)), 2, ErrNotCanonical},
		{"unknown key", join(ls[0], bytes.Replace(ls[1], []byte(`{"seq"`), []byte(`{"x":1,"seq"`), 1)), 2, ErrMalformed},
		{"two objects", join(ls[0], bytes.Replace(ls[1], []byte("\n"), []byte("{}\n"), 1)), 2, ErrMalformed},
		{"overlong line", join(ls[0], bytes.Repeat([]byte("x"), maxLineBytes+10)), 2, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tt.log))
			wantBad(t, err, tt.line, tt.want)
		})
	}
	// Entries cut off the end leave a valid chain; only an anchor kept elsewhere shows it.
	full, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	cut := join(ls[:5]...)
	if _, err := Verify(bytes.NewReader(cut)); err != nil {
		t.Fatalf("prefix: %v", err)
	}
	_, err = Verifier{Head: full.Head}.Verify(bytes.NewReader(cut))
	wantBad(t, err, 5, ErrHead)
}

func TestReopen(t *testing.T) {
	path, b := writeSample(t, Options{})
	l, err := Open(path, Options{Actor: "site/a", Now: clock()})
	if err != nil {
		t.Fatal(err)
	}
	seq, head := l.Head()
	if seq != uint64(len(sample)) {
		t.Fatalf("reopened at seq %d", seq)
	}
	// The fresh clock starts before the log's last entry; the log's time must not go back.
	e, err := l.Append(context.Background(), Entry{Type: ConfigChange, Fields: map[string]string{"key": "min_sites", "value": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != seq+1 || e.Prev != head {
		t.Errorf("appended %+v after seq %d head %s", e, seq, head)
	}
	l.Close()
	got, _ := os.ReadFile(path)
	if !bytes.HasPrefix(got, b) {
		t.Fatal("reopening rewrote earlier entries")
	}
	if s, err := Verify(bytes.NewReader(got)); err != nil || s.Entries != seq+1 {
		t.Fatalf("after reopen: %+v, %v", s, err)
	}

	// A damaged log is refused.
	bad := rewrite(t, got, 2, false, func(e *Entry) { e.Site = "z" })
	os.WriteFile(path, bad, 0o600)
	if _, err := Open(path, Options{Actor: "site/a"}); !errors.Is(err, ErrHash) {
		t.Fatalf("open damaged: %v", err)
	}

	// A torn last line is refused unless repair is asked for.
	torn := append(bytes.Clone(got), []byte(`{"seq":8,"ti`)...)
	os.WriteFile(path, torn, 0o600)
	if _, err := Open(path, Options{Actor: "site/a"}); !errors.Is(err, ErrTorn) {
		t.Fatalf("open torn: %v", err)
	}
	l, err = Open(path, Options{Actor: "site/a", RepairTorn: true})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	repaired, _ := os.ReadFile(path)
	s, err := Verify(bytes.NewReader(repaired))
	if err != nil || s.Entries != seq+2 {
		t.Fatalf("repaired: %+v, %v", s, err)
	}
	last := lines(repaired)[s.Entries-1]
	if !bytes.Contains(last, []byte(`"type":"log_repaired"`)) || !bytes.Contains(last, []byte(`"cut_bytes":"12"`)) {
		t.Errorf("repair entry %s", last)
	}
}

func TestConcurrentAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{Actor: "aggregator"})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := l.Append(context.Background(), Entry{Type: Upload, Round: uint64(i + 1), Site: fmt.Sprintf("s%d", w)})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	f, _ := os.Open(path)
	defer f.Close()
	s, err := Verify(f)
	if err != nil || s.Entries != workers*each {
		t.Fatalf("%+v, %v", s, err)
	}
}

func TestFailClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{Actor: "aggregator"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Append(ctx, Entry{Type: RoundStart, Round: 1}); err != nil {
		t.Fatal(err)
	}
	// The file goes away under the log, as on a failed disk.
	l.f.Close()
	if _, err := l.Append(ctx, Entry{Type: Upload, Round: 1}); err == nil {
		t.Fatal("append to a dead file succeeded")
	}
	if _, err := l.Append(ctx, Entry{Type: Upload, Round: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after a failure: %v", err)
	}
	l2, err := Open(path, Options{Actor: "aggregator"})
	if err != nil {
		t.Fatalf("the entries before the failure must still verify: %v", err)
	}
	l2.Close()

	if _, err := l2.Append(ctx, Entry{Type: Upload}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
}

func TestSecondWriterRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{Actor: "aggregator"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := Open(path, Options{Actor: "aggregator"}); err == nil {
		l2.Close()
		t.Fatal("a second writer opened the log")
	}
}

func TestAppendRejects(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Actor: "aggregator"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		e    Entry
	}{
		{"empty type", context.Background(), Entry{}},
		{"bad type", context.Background(), Entry{Type: "Upload!"}},
		{"bad field name", context.Background(), Entry{Type: Upload, Fields: map[string]string{"Bad Name": "x"}}},
		{"payload in a field", context.Background(), Entry{Type: Upload, Fields: map[string]string{"update": strings.Repeat("A", MaxFieldLen+1)}}},
		{"long actor", context.Background(), Entry{Type: Upload, Actor: strings.Repeat("a", MaxActorLen+1)}},
		{"canceled", canceled, Entry{Type: Upload}},
	}
	for _, tt := range tests {
		if _, err := l.Append(tt.ctx, tt.e); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if seq, _ := l.Head(); seq != 0 {
		t.Errorf("refused entries were written: seq %d", seq)
	}
}

func TestSignatures(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, signer := range map[string]crypto.Signer{"ecdsa": ec, "ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			path, b := writeSample(t, Options{Signer: signer})
			if _, err := (Verifier{PublicKey: signer.Public()}).Verify(bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(bytes.NewReader(b)); err != nil {
				t.Fatalf("chain alone: %v", err)
			}
			_, err := Verifier{PublicKey: other.Public()}.Verify(bytes.NewReader(b))
			wantBad(t, err, 1, ErrSignature)
			if _, err := Open(path, Options{Actor: "site/a", Signer: other}); !errors.Is(err, ErrSignature) {
				t.Fatalf("reopen with another key: %v", err)
			}
			stripped := rewrite(t, b, 2, false, func(e *Entry) { e.Sig = "" })
			_, err = Verifier{PublicKey: signer.Public()}.Verify(bytes.NewReader(stripped))
			wantBad(t, err, 2, ErrSignature)
		})
	}
}
