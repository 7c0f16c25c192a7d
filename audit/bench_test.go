package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAppend measures one durable entry. The baseline, raw, writes a line of the
// same length and fsyncs it with no chain or encoding, so the ratio is the log's own
// cost on top of the disk's.
func BenchmarkAppend(b *testing.B) {
	e := Entry{Type: Upload, Federation: "f1", Round: 7, Site: "a", Fields: map[string]string{"sha256": SHA256([]byte("x")), "bytes": "2211840"}}
	b.Run("log", func(b *testing.B) {
		l, err := Open(filepath.Join(b.TempDir(), "audit.jsonl"), Options{Actor: "aggregator"})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		for b.Loop() {
			if _, err := l.Append(context.Background(), e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		line, _ := json.Marshal(Entry{Seq: 1, Time: "2026-11-26T20:00:00.0015Z", Actor: "aggregator", Type: Upload, Federation: "f1", Round: 7, Site: "a", Fields: e.Fields, Prev: Genesis, Hash: Genesis})
		line = append(line, '\n')
		for b.Loop() {
			if _, err := f.Write(line); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerify measures verification of a 1000-entry log.
func BenchmarkVerify(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.jsonl"), Options{Actor: "aggregator", Now: clock()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := l.Append(context.Background(), sample[i%len(sample)]); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	data, err := os.ReadFile(l.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
