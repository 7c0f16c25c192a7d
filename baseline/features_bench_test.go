package baseline

import (
	"slices"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
)

// BenchmarkFeatures builds each feature set for synthetic patients at the midpoint
// of their records and reports the matrix's bytes per row, from which the size of
// 100k patients follows (bytes/row x 100,000).
func BenchmarkFeatures(b *testing.B) {
	for _, fs := range []FeatureSet{FeaturesTime, FeaturesCounts} {
		b.Run(string(fs), func(b *testing.B) { benchmarkFeatures(b, fs) })
	}
}

func benchmarkFeatures(b *testing.B, fs FeatureSet) {
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 2000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var samples []Sample
	codes := map[string]bool{}
	for i := range g.Hospitals()[0].Patients {
		p := g.Patient(0, i)
		if len(p.Events) == 0 {
			continue
		}
		for _, e := range p.Events {
			for c, ok := e.Code, true; ok; c, ok = claims.Parent(c) {
				if claims.System(c) != "" {
					codes[c] = true
				}
			}
		}
		mid := p.Events[len(p.Events)/2].Time
		samples = append(samples, Sample{Patient: p, Index: mid})
	}
	vocab := make([]string, 0, len(codes))
	for c := range codes {
		vocab = append(vocab, c)
	}
	slices.Sort(vocab)
	f, err := NewFeaturizer(vocab, fs, 365)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Fit(samples); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var x *CSR
	for range b.N {
		if x, err = f.Build(samples); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(x.NNZ())/float64(x.Rows()), "nnz/row")
	b.ReportMetric(float64(x.Bytes())/float64(x.Rows()), "B/row")
	b.ReportMetric(float64(x.NumCols), "cols")
}
