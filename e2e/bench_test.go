package e2e

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/site"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// BenchmarkAggregation compares what one round adds to local training, for the 2m
// preset at the study vocabulary with three sites and t = 2, with and without secure
// aggregation, in the same run:
//
//   - plaintext: the aggregator sums the three weighted updates, divides by the
//     total weight and applies the mean (FedAvg).
//   - secure: every site encrypts its update into wire chunks; the aggregator decodes
//     and adds each chunk, seals the sum; two sites make decryption shares; the
//     aggregator combines them, decodes the mean and applies it.
//
// Both report ns per round and wire bytes per site; run with
// go test -tags openblas -run '^$' -bench Aggregation ./e2e
func BenchmarkAggregation(b *testing.B) {
	mc, err := model.Preset("2m", model.StudyVocab)
	if err != nil {
		b.Fatal(err)
	}
	n := mc.Params()
	rng := rand.New(rand.NewPCG(1, 2))
	updates := make([][]float32, 3)
	for i := range updates {
		updates[i] = make([]float32, n)
		for j := range updates[i] {
			updates[i][j] = float32(rng.NormFloat64() * 1e-3)
		}
	}
	benchAggregation(b, updates, []float64{2100, 1350, 1050}, func() {})
}

const benchWeightCap = 4096

// benchAggregation runs b's plaintext and secure sub-benchmarks over the updates
// that train returns (train runs inside the timed loop of both, so that a whole
// round can be timed).
func benchAggregation(b *testing.B, updates [][]float32, counts []float64, train func()) {
	ctx := context.Background()
	n := len(updates[0])
	global := make([]float32, n)
	const weightCap = benchWeightCap

	b.Run("plaintext", func(b *testing.B) {
		sum := make([]float64, n)
		b.SetBytes(int64(4 * n))
		for b.Loop() {
			train()
			clear(sum)
			var wsum float64
			for i, u := range updates {
				w := secureagg.Weight(counts[i], weightCap)
				for j, v := range u {
					sum[j] += w * float64(v)
				}
				wsum += w
			}
			for j := range global {
				global[j] += float32(sum[j] / wsum)
			}
		}
		b.ReportMetric(float64(4*n), "upload_bytes/site")
	})

	b.Run("secure", func(b *testing.B) {
		params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
		if err != nil {
			b.Fatal(err)
		}
		cfg := secureagg.Config{Params: params, Federation: "bench", Sites: []secureagg.SiteID{0, 1, 2}, Threshold: 2, WeightCap: weightCap}
		parties, err := secureagg.SetupLocal(cfg)
		if err != nil {
			b.Fatal(err)
		}
		set := []secureagg.SiteID{0, 1}
		var wire int
		round := uint64(0)
		for b.Loop() {
			train()
			round++
			agg, err := secureagg.NewAggregate(cfg, round, n)
			if err != nil {
				b.Fatal(err)
			}
			wire = 0
			for i, p := range parties {
				chunks, err := p.Encrypt(ctx, round, updates[i], counts[i])
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range chunks {
					msg, err := c.MarshalBinary()
					if err != nil {
						b.Fatal(err)
					}
					if i == 0 {
						wire += len(msg)
					}
					if err := agg.AddBinary(msg); err != nil {
						b.Fatal(err)
					}
				}
			}
			sums := agg.Seal()
			dec, err := secureagg.NewDecryption(agg, set)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range parties[:2] {
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
			res, err := dec.Result(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for j := range global {
				global[j] += res.Mean[j]
			}
		}
		b.SetBytes(int64(4 * n))
		b.ReportMetric(float64(wire), "upload_bytes/site")
	})
}

// BenchmarkRound times whole rounds of the demo's shape, plaintext and secure, in
// the same run: three synthetic sites (a general hospital, a cancer centre, a
// clinic) each train the 2m preset for 15 local steps of 16 sequences of at most 128
// tokens from the same global model, one after the other, then the updates are
// aggregated in plaintext or under threshold CKKS. Run with
// go test -tags openblas -run '^$' -bench 'Round$' -benchtime 2x ./e2e
func BenchmarkRound(b *testing.B) {
	ctx := context.Background()
	g, err := synth.New(synth.Config{Hospitals: 3, Patients: 600, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	counter := tokenizer.NewCounter()
	var all [3][]*claims.Patient
	for h := range 3 {
		r := g.Reader(h)
		for {
			p, err := r.Next(ctx)
			if err != nil {
				break
			}
			// A site counts and trains on its training split only.
			if !tasks.InPretraining(p.ID, tasks.DefaultSalt) {
				continue
			}
			counter.Add(p)
			all[h] = append(all[h], p)
		}
		r.Close()
	}
	table, err := counter.Table(10)
	if err != nil {
		b.Fatal(err)
	}
	vocab, err := tokenizer.New(table, 10)
	if err != nil {
		b.Fatal(err)
	}
	mc, err := model.Preset("2m", vocab.Len())
	if err != nil {
		b.Fatal(err)
	}
	global, err := model.New(mc, 1)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := tokenizer.NewEncoder(vocab, 128)
	if err != nil {
		b.Fatal(err)
	}
	var seqs [3][]model.Sequence
	var e tokenizer.Encoding
	for h := range 3 {
		for _, p := range all[h] {
			enc.EncodeTo(&e, p, math.MaxInt64)
			if s := model.FromEncoding(&e); len(s.Tokens) > 2 {
				seqs[h] = append(seqs[h], s)
			}
		}
	}
	updates := make([][]float32, 3)
	counts := make([]float64, 3)
	train := func() {
		for h := range 3 {
			res, err := site.Train(ctx, global, seqs[h], site.LocalTraining{Steps: 15, Batch: 16, LR: 5e-4, Seed: uint64(h)})
			if err != nil {
				b.Fatal(err)
			}
			secureagg.Clip(res.Delta, 1)
			updates[h], counts[h] = res.Delta, float64(res.Samples)
		}
	}
	train() // sizes the updates
	b.Logf("2m preset at %d tokens: %d parameters; sites of %d, %d and %d sequences", vocab.Len(), mc.Params(), len(seqs[0]), len(seqs[1]), len(seqs[2]))
	benchAggregation(b, updates, counts, train)
}
