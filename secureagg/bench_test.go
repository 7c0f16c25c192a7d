package secureagg

import (
	"context"
	"testing"
)

// benchChunks is the model size of the benchmarks: 64 chunks, enough to keep
// every core busy, small enough to run in seconds.
const benchChunks = 64

func benchSetup(b *testing.B) (Config, []*Party, []float32) {
	b.Helper()
	cfg, parties := federation(b, 8, 5)
	return cfg, parties, randomUpdate(1, benchChunks*cfg.Params.Slots())
}

func BenchmarkEncrypt(b *testing.B) {
	_, parties, u := benchSetup(b)
	ctx := context.Background()
	b.SetBytes(int64(4 * len(u)))
	for b.Loop() {
		if _, err := parties[0].Encrypt(ctx, 1, u, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(u))*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}

func BenchmarkAggregateAdd(b *testing.B) {
	cfg, parties, u := benchSetup(b)
	ctx := context.Background()
	chunks, err := parties[0].Encrypt(ctx, 1, u, 1)
	if err != nil {
		b.Fatal(err)
	}
	wire, err := marshalAll(ctx, chunks)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * len(u)))
	for b.Loop() {
		agg, err := NewAggregate(cfg, 1, len(u))
		if err != nil {
			b.Fatal(err)
		}
		for _, w := range wire {
			if err := agg.AddBinary(w); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(u))*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}

func BenchmarkDecryptShare(b *testing.B) {
	cfg, parties, u := benchSetup(b)
	ctx := context.Background()
	chunks, err := parties[0].Encrypt(ctx, 1, u, 1)
	if err != nil {
		b.Fatal(err)
	}
	agg, err := NewAggregate(cfg, 1, len(u))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range chunks {
		if err := agg.Add(c); err != nil {
			b.Fatal(err)
		}
	}
	sums := agg.Seal()
	set := cfg.Sites[:cfg.Threshold]
	b.SetBytes(int64(4 * len(u)))
	round := uint64(0)
	for b.Loop() {
		round++
		for _, s := range sums {
			s.Round = round
		}
		if _, err := parties[0].DecryptShare(ctx, set, sums); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(u))*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}

func BenchmarkCombineResult(b *testing.B) {
	cfg, parties, u := benchSetup(b)
	ctx := context.Background()
	chunks, err := parties[0].Encrypt(ctx, 1, u, 1)
	if err != nil {
		b.Fatal(err)
	}
	agg, err := NewAggregate(cfg, 1, len(u))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range chunks {
		if err := agg.Add(c); err != nil {
			b.Fatal(err)
		}
	}
	sums := agg.Seal()
	set := cfg.Sites[:cfg.Threshold]
	dec, err := NewDecryption(agg, set)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range parties[:cfg.Threshold] {
		shares, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range shares {
			if err := dec.Add(s); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(4 * len(u)))
	for b.Loop() {
		if _, err := dec.Result(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(u))*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}
