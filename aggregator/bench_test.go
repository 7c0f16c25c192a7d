package aggregator

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
)

// BenchmarkRoundAggregation measures the aggregator's own work in one round of the
// 2m preset (study vocabulary) with three sites and t = 2, against a plaintext round
// of the same updates: secure decodes each site's ciphertext chunks as they would
// arrive and adds them into the sum, seals it, adds the two decryption shares and
// decodes the mean; plaintext decodes each site's float32 update and takes the
// weighted mean. The sites' encryption and decryption shares are made before the
// timer. upload_MB/site is what one site sends per round on each path.
func BenchmarkRoundAggregation(b *testing.B) {
	ctx := context.Background()
	mc, err := model.Preset("2m", model.StudyVocab)
	if err != nil {
		b.Fatal(err)
	}
	n := mc.Params()
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		b.Fatal(err)
	}
	cfg := secureagg.Config{Params: params, Federation: "bench", Sites: []secureagg.SiteID{0, 1, 2}, Threshold: 2}
	parties, err := secureagg.SetupLocal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	counts := []float64{1000, 3000, 500}
	updates := make([][]float32, 3)
	wire := make([][][]byte, 3)
	plain := make([][]byte, 3)
	var secureBytes int
	for i, p := range parties {
		updates[i] = randomDelta(string(rune('a'+i)), 0, n)
		chunks, err := p.Encrypt(ctx, 1, updates[i], counts[i])
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range chunks {
			m, err := c.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			wire[i] = append(wire[i], m)
			if i == 0 {
				secureBytes += len(m)
			}
		}
		plain[i] = make([]byte, 4*n)
		for j, v := range updates[i] {
			binary.LittleEndian.PutUint32(plain[i][4*j:], math.Float32bits(v))
		}
	}
	// The shares depend only on the sum, the same in every iteration.
	agg := sum(b, cfg, n, wire)
	set := []secureagg.SiteID{0, 1}
	var shares [][]byte
	for _, p := range parties[:2] {
		sh, err := p.DecryptShare(ctx, set, agg.Seal())
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range sh {
			m, err := s.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			shares = append(shares, m)
		}
	}

	b.Run("secure", func(b *testing.B) {
		for b.Loop() {
			agg := sum(b, cfg, n, wire)
			sums := agg.Seal()
			for _, s := range sums {
				if _, err := s.MarshalBinary(); err != nil {
					b.Fatal(err)
				}
			}
			dec, err := secureagg.NewDecryption(agg, set)
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range shares {
				var sh secureagg.ShareChunk
				if err := sh.UnmarshalBinary(m); err != nil {
					b.Fatal(err)
				}
				if err := dec.Add(&sh); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := dec.Result(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(secureBytes)/1e6, "upload_MB/site")
		b.ReportMetric(float64(n), "params")
	})
	b.Run("plaintext", func(b *testing.B) {
		for b.Loop() {
			acc := make([]float64, n)
			var total float64
			for i, p := range plain {
				w := secureagg.Weight(counts[i], secureagg.DefaultWeightCap)
				total += w
				for j := range n {
					acc[j] += w * float64(math.Float32frombits(binary.LittleEndian.Uint32(p[4*j:])))
				}
			}
			mean := make([]float32, n)
			for j, v := range acc {
				mean[j] = float32(v / total)
			}
		}
		b.ReportMetric(float64(4*n)/1e6, "upload_MB/site")
		b.ReportMetric(float64(n), "params")
	})
}

// sum adds the sites' chunks, decoded from the wire as Upload decodes them.
func sum(b *testing.B, cfg secureagg.Config, n int, wire [][][]byte) *secureagg.Aggregate {
	agg, err := secureagg.NewAggregate(cfg, 1, n)
	if err != nil {
		b.Fatal(err)
	}
	for _, site := range wire {
		for _, m := range site {
			var c secureagg.Chunk
			if err := c.UnmarshalBinary(m); err != nil {
				b.Fatal(err)
			}
			if err := agg.Add(&c); err != nil {
				b.Fatal(err)
			}
		}
	}
	return agg
}
