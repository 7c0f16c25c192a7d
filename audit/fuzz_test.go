package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// FuzzParseLine checks that the line parser never panics and that whatever it accepts
// is exactly the canonical encoding of an entry whose hash is right.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-11-26T20:00:00.0015Z","actor":"a","type":"enrol","prev":"` + Genesis + `","hash":"` + Genesis + `"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err != nil {
			return
		}
		enc, err := json.Marshal(&e)
		if err != nil || !bytes.Equal(enc, line) {
			t.Fatalf("accepted a non-canonical line %q", line)
		}
		d, _ := e.digest()
		if hex.EncodeToString(d) != e.Hash {
			t.Fatalf("accepted a wrong hash in %q", line)
		}
	})
}

// FuzzVerify checks that the verifier never panics and that a log it accepts is
// whole: every byte verified, one entry per line, seqs from 1.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, log []byte) {
		s, err := Verify(bytes.NewReader(log))
		if err != nil {
			return
		}
		if s.Bytes != int64(len(log)) || s.Entries != uint64(bytes.Count(log, []byte("\n"))) {
			t.Fatalf("accepted %q as %+v", log, s)
		}
	})
}
