package site

import (
	"context"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
)

// BenchmarkLocalRound times a site's part of one round of the 2m preset: local
// training (plaintext), and the same followed by encryption and encoding of the update
// (secure), so the two compare in one run. It reports the upload a round costs.
//
//	go test -tags openblas ./site -run '^$' -bench LocalRound -benchtime 3x
func BenchmarkLocalRound(b *testing.B) {
	v, seqs := hospital(b, 200, 1)
	cfg, err := model.Preset("2m", v.Len())
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxLen = 32
	global, err := model.New(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		b.Fatal(err)
	}
	parties, err := secureagg.SetupLocal(secureagg.Config{Params: params, Federation: "bench", Sites: rosterIDs(b, []string{"a", "b", "c"}), Threshold: 2})
	if err != nil {
		b.Fatal(err)
	}
	lt := LocalTraining{Steps: 5, Batch: 16, LR: 5e-4, Seed: 1}
	round := func(b *testing.B, secure bool) {
		var upload int
		var train, encrypt time.Duration
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			res, err := Train(context.Background(), global, seqs, lt)
			train += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := protect(res.Delta, 1, 0, 3, 1); err != nil {
				b.Fatal(err)
			}
			if !secure {
				upload = 4 * len(res.Delta)
				continue
			}
			t1 := time.Now()
			chunks, err := parties[0].Encrypt(context.Background(), uint64(i+1), res.Delta, float64(res.Samples))
			if err != nil {
				b.Fatal(err)
			}
			upload = 0
			for _, c := range chunks {
				m, err := c.MarshalBinary()
				if err != nil {
					b.Fatal(err)
				}
				upload += len(m)
			}
			encrypt += time.Since(t1)
		}
		// Within one run, so that the machine's load weighs on both alike.
		b.ReportMetric(train.Seconds()/float64(b.N), "train-s/op")
		if secure {
			b.ReportMetric(encrypt.Seconds()/float64(b.N), "encrypt-s/op")
		}
		b.ReportMetric(float64(upload), "upload-bytes/round")
		b.ReportMetric(float64(cfg.Params()), "params")
	}
	b.Run("plaintext", func(b *testing.B) { round(b, false) })
	b.Run("secure", func(b *testing.B) { round(b, true) })
}
