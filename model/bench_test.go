package model

import (
	"context"
	"testing"
)

// BenchmarkTrainStep2m times one MLM optimiser step of the 2m preset on a 16×256
// batch; `fedclaims bench train` reports the same figure against sgemm.
func BenchmarkTrainStep2m(b *testing.B) { benchStep(b, "2m") }

// BenchmarkTrainStep11m is the 11m preset at the same shape.
func BenchmarkTrainStep11m(b *testing.B) { benchStep(b, "11m") }

func benchStep(b *testing.B, preset string) {
	cfg, err := Preset(preset, StudyVocab)
	if err != nil {
		b.Fatal(err)
	}
	res, err := BenchTrain(context.Background(), cfg, 16, 256, b.N, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.TokensPerSec, "tokens/s")
	b.ReportMetric(res.GFLOPS.Wall, "GFLOP/s")
	b.ReportMetric(res.GFLOPS.CPU, "GFLOP/cpu-s")
}
