package claims

import (
	"context"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time this process has used, all threads together. Benchmarks
// report events per CPU second beside events per wall second because the machines
// they run on are shared, and wall time then measures the neighbours too.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRead reads the dataset that open opens b.N times and reports events/s.
func benchRead(b *testing.B, open func() (Reader, error)) {
	ctx := context.Background()
	var events, rows int64
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		r, err := open()
		if err != nil {
			b.Fatal(err)
		}
		for {
			p, err := r.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			events += int64(len(p.Events))
		}
		rows += r.(Source).Stats().Rows
		r.Close()
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
}

func BenchmarkReadMEDS(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "ds")
	writeAll(b, dir, randomPatients(42, 50000))
	benchRead(b, func() (Reader, error) { return OpenMEDS(dir) })
}

func BenchmarkReadOMOP(b *testing.B) {
	benchRead(b, func() (Reader, error) { return OpenOMOP(mimicDemo) })
}

func BenchmarkWriteMEDS(b *testing.B) {
	ps := randomPatients(42, 50000)
	var events int64
	for _, p := range ps {
		events += int64(len(p.Events))
	}
	base := b.TempDir()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		writeAll(b, filepath.Join(base, "ds"), ps)
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)*float64(b.N)/cpu.Seconds(), "events/cpu-s")
}
