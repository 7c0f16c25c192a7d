package claims

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
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
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
}

func BenchmarkReadMEDS(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "ds")
	writeAll(b, dir, randomPatients(42, 50000))
	benchRead(b, func() (Reader, error) { return OpenMEDS(dir) })
}

// BenchmarkReadMEDSBaseline decodes the same dataset's rows with parquet-go's own
// row reader into a struct, without building patients: the floor to compare
// BenchmarkReadMEDS against.
func BenchmarkReadMEDSBaseline(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "ds")
	writeAll(b, dir, randomPatients(42, 50000))
	files, err := filepath.Glob(filepath.Join(dir, "data", "*.parquet"))
	if err != nil || len(files) == 0 {
		b.Fatal(files, err)
	}
	buf := make([]medsRow, readBatchRows)
	var rows int64
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				b.Fatal(err)
			}
			rd := parquet.NewGenericReader[medsRow](f)
			for {
				n, err := rd.Read(buf)
				rows += int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			rd.Close()
			f.Close()
		}
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
}

// BenchmarkReadOMOPBaseline splits the same export's tables into fields with
// encoding/csv and nothing else: the floor to compare BenchmarkReadOMOP against.
func BenchmarkReadOMOPBaseline(b *testing.B) {
	tables := []string{"person", "visit_occurrence", "condition_occurrence", "drug_exposure", "procedure_occurrence", "death", "concept"}
	var rows int64
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		for _, t := range tables {
			f, err := os.Open(filepath.Join(mimicDemo, t+".csv"))
			if err != nil {
				b.Fatal(err)
			}
			cr := csv.NewReader(bufio.NewReaderSize(f, 1<<16))
			cr.ReuseRecord = true
			for {
				_, err := cr.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				rows++
			}
			f.Close()
		}
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
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
