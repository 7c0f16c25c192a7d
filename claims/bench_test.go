package claims

import (
	"context"
	"io"
	"path/filepath"
	"testing"
)

// benchDataset writes a MEDS dataset of n random patients (about 20 events each)
// and returns its directory and event count.
func benchDataset(b *testing.B, n int) (string, int64) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "ds")
	ps := randomPatients(42, n)
	var events int64
	for _, p := range ps {
		events += int64(len(p.Events))
	}
	writeAll(b, dir, ps)
	return dir, events
}

func BenchmarkReadMEDS(b *testing.B) {
	dir, events := benchDataset(b, 50000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		r, err := OpenMEDS(dir)
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			p, err := r.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got += int64(len(p.Events))
		}
		r.Close()
		if got != events {
			b.Fatalf("read %d events, wrote %d", got, events)
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkWriteMEDS(b *testing.B) {
	ps := randomPatients(42, 50000)
	var events int64
	for _, p := range ps {
		events += int64(len(p.Events))
	}
	base := b.TempDir()
	b.ResetTimer()
	for b.Loop() {
		writeAll(b, filepath.Join(base, "ds"), ps)
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
