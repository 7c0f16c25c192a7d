package e2e

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
)

// BenchmarkRound compares what one round adds to local training, for the 2m preset
// at the study vocabulary with three sites and t = 2, with and without secure
// aggregation, in the same run:
//
//   - plaintext: the aggregator sums the three weighted updates, divides by the
//     total weight and applies the mean (FedAvg).
//   - secure: every site encrypts its update into wire chunks; the aggregator decodes
//     and adds each chunk, seals the sum; two sites make decryption shares; the
//     aggregator combines them, decodes the mean and applies it.
//
// Both report ns per round and wire bytes per site; run with
// go test -tags openblas -run '^$' -bench Round ./e2e
func BenchmarkRound(b *testing.B) {
	ctx := context.Background()
	mc, err := model.Preset("2m", model.StudyVocab)
	if err != nil {
		b.Fatal(err)
	}
	n := mc.Params()
	rng := rand.New(rand.NewPCG(1, 2))
	updates := make([][]float32, 3)
	counts := []float64{2100, 1350, 1050}
	for i := range updates {
		updates[i] = make([]float32, n)
		for j := range updates[i] {
			updates[i][j] = float32(rng.NormFloat64() * 1e-3)
		}
	}
	global := make([]float32, n)
	const weightCap = 4096

	b.Run("plaintext", func(b *testing.B) {
		sum := make([]float64, n)
		b.SetBytes(int64(4 * n))
		for b.Loop() {
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
