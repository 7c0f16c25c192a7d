package secureagg

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"syscall"
	"time"
)

// BenchConfig sizes a simulated round for Bench.
type BenchConfig struct {
	Params    int    // model parameters per update
	Sites     int    // contributing sites
	Threshold int    // decrypting sites, 1 to Sites-1
	Seed      uint64 // seed of the synthetic updates
	Preset    Preset // parameter preset; empty means PresetN12Q60
}

// BenchResult holds the figures of one simulated round. CPU seconds are
// getrusage(RUSAGE_SELF) user+system time over each phase, the phases run one
// after the other, each on all GOMAXPROCS cores; per-core rates divide the work
// by those CPU seconds.
type BenchResult struct {
	Name                     string  `json:"name"`
	Preset                   Preset  `json:"preset"`
	Params                   int     `json:"params"`
	Sites                    int     `json:"sites"`
	Threshold                int     `json:"threshold"`
	Chunks                   int     `json:"chunks"`
	CiphertextBytes          int64   `json:"ciphertext_bytes"`
	Expansion                float64 `json:"expansion"`
	EncryptParamsPerSPerCore float64 `json:"encrypt_params_per_s_per_core"`
	SumParamsPerSPerCore     float64 `json:"sum_params_per_s_per_core"`
	ShareParamsPerSPerCore   float64 `json:"share_params_per_s_per_core"`
	CombineParamsPerSPerCore float64 `json:"combine_params_per_s_per_core"`
	MaxAbsError              float64 `json:"max_abs_error"`
	PredictedErrorStd        float64 `json:"predicted_error_std"`
	SiteCPUSeconds           float64 `json:"site_cpu_seconds"`
	AggregatorCPUSeconds     float64 `json:"aggregator_cpu_seconds"`
	EncryptWallSeconds       float64 `json:"encrypt_wall_seconds"`
	SumWallSeconds           float64 `json:"sum_wall_seconds"`
	GOMAXPROCS               int     `json:"gomaxprocs"`
	CPUMeasure               string  `json:"cpu_measure"`
}

// cpuSeconds returns the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// Bench simulates one round on this machine: each
// site encrypts a synthetic update of values uniform in [-1, 1] (weight 1),
// the aggregator sums the chunks from their wire bytes (AddBinary), Threshold
// sites give decryption shares and the aggregator combines them. It reports
// sizes, per-core rates, CPU seconds per party and the largest error of the
// decrypted sum.
func Bench(ctx context.Context, bc BenchConfig) (*BenchResult, error) {
	if bc.Params <= 0 || bc.Sites <= 0 || bc.Sites > MaxSites || bc.Threshold <= 0 || bc.Threshold >= bc.Sites {
		return nil, fmt.Errorf("secureagg: bench: need params > 0, 1 <= threshold < sites <= %d (Config requires t <= N-1); got %+v", MaxSites, bc)
	}
	if bc.Preset == "" {
		bc.Preset = PresetN12Q60
	}
	params, err := NewParameters(bc.Preset)
	if err != nil {
		return nil, err
	}
	sites := make([]SiteID, bc.Sites)
	for i := range sites {
		sites[i] = SiteID(i + 1)
	}
	cfg := Config{Params: params, Federation: "bench", Sites: sites, Threshold: bc.Threshold, WeightCap: 1}
	parties, err := SetupLocal(cfg)
	if err != nil {
		return nil, err
	}
	agg, err := NewAggregate(cfg, 1, bc.Params)
	if err != nil {
		return nil, err
	}
	res := &BenchResult{
		Name: "secureagg", Preset: params.Preset(), Params: bc.Params, Sites: bc.Sites, Threshold: bc.Threshold,
		Chunks: params.Chunks(bc.Params), GOMAXPROCS: runtime.GOMAXPROCS(0),
		PredictedErrorStd: params.ErrorStdDev(bc.Sites),
		CPUMeasure:        "getrusage(RUSAGE_SELF) user+sys per phase, phases sequential, each on all GOMAXPROCS cores",
	}
	truth := make([]float64, bc.Params)
	update := make([]float32, bc.Params)
	var encCPU, siteEncCPU, sumCPU, encWall, sumWall float64
	for i, p := range parties {
		r := rand.New(rand.NewPCG(bc.Seed, uint64(i)))
		for j := range update {
			update[j] = float32(2*r.Float64() - 1)
			truth[j] += float64(update[j])
		}
		c0, w0 := cpuSeconds(), time.Now()
		chunks, err := p.Encrypt(ctx, 1, update, 1)
		if err != nil {
			return nil, err
		}
		c1 := cpuSeconds()
		encWall += time.Since(w0).Seconds()
		wire, err := marshalAll(ctx, chunks)
		if err != nil {
			return nil, err
		}
		c2 := cpuSeconds()
		encCPU += c1 - c0
		siteEncCPU += c2 - c0
		if i == 0 {
			for _, b := range wire {
				res.CiphertextBytes += int64(len(b))
			}
		}
		chunks = nil
		w1 := time.Now()
		if err := parallel(ctx, len(wire), func() func(int) error {
			return func(k int) error { return agg.AddBinary(wire[k]) }
		}); err != nil {
			return nil, err
		}
		sumCPU += cpuSeconds() - c2
		sumWall += time.Since(w1).Seconds()
	}
	c0 := cpuSeconds()
	sums := agg.Seal()
	sumWire, err := marshalAll(ctx, sums)
	if err != nil {
		return nil, err
	}
	dec, err := NewDecryption(agg, sites[:bc.Threshold])
	if err != nil {
		return nil, err
	}
	combineCPU := cpuSeconds() - c0
	var shareCPU, siteShareCPU float64
	for _, p := range parties[:bc.Threshold] {
		c0 := cpuSeconds()
		in := make([]*SumChunk, len(sumWire))
		if err := parallel(ctx, len(sumWire), func() func(int) error {
			return func(k int) error {
				in[k] = new(SumChunk)
				return in[k].UnmarshalBinary(sumWire[k])
			}
		}); err != nil {
			return nil, err
		}
		c1 := cpuSeconds()
		shares, err := p.DecryptShare(ctx, sites[:bc.Threshold], in)
		if err != nil {
			return nil, err
		}
		c2 := cpuSeconds()
		wire, err := marshalAll(ctx, shares)
		if err != nil {
			return nil, err
		}
		c3 := cpuSeconds()
		shareCPU += c2 - c1
		siteShareCPU += c3 - c0
		if err := parallel(ctx, len(wire), func() func(int) error {
			return func(k int) error { return dec.AddBinary(wire[k]) }
		}); err != nil {
			return nil, err
		}
		combineCPU += cpuSeconds() - c3
	}
	c0 = cpuSeconds()
	out, err := dec.Result(ctx)
	if err != nil {
		return nil, err
	}
	combineCPU += cpuSeconds() - c0
	for j, v := range truth {
		res.MaxAbsError = max(res.MaxAbsError, math.Abs(float64(out.Mean[j])*out.Weight-v))
	}
	n := float64(bc.Params)
	res.Expansion = float64(res.CiphertextBytes) / (4 * n)
	res.EncryptParamsPerSPerCore = n * float64(bc.Sites) / encCPU
	res.SumParamsPerSPerCore = n * float64(bc.Sites) / sumCPU
	res.ShareParamsPerSPerCore = n * float64(bc.Threshold) / shareCPU
	res.CombineParamsPerSPerCore = n / combineCPU
	res.SiteCPUSeconds = siteEncCPU/float64(bc.Sites) + siteShareCPU/float64(bc.Threshold)
	res.AggregatorCPUSeconds = sumCPU + combineCPU
	res.EncryptWallSeconds = encWall / float64(bc.Sites)
	res.SumWallSeconds = sumWall
	return res, nil
}

// marshalAll encodes messages in parallel.
func marshalAll[M interface{ MarshalBinary() ([]byte, error) }](ctx context.Context, msgs []M) ([][]byte, error) {
	out := make([][]byte, len(msgs))
	err := parallel(ctx, len(msgs), func() func(int) error {
		return func(k int) error {
			b, err := msgs[k].MarshalBinary()
			if err != nil {
				return err
			}
			out[k] = b
			return nil
		}
	})
	return out, err
}
