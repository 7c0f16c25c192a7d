package synth

import "testing"

// BenchmarkGenerate measures generation on one goroutine in events per second,
// across the three archetypes.
func BenchmarkGenerate(b *testing.B) {
	g := newGen(b, Config{Hospitals: 3, Patients: 1 << 20, Seed: 1})
	b.ReportAllocs()
	b.ResetTimer()
	var events int
	for i := range b.N {
		p := g.Patient(i%3, i/3)
		events += len(p.Events)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/patient")
}
