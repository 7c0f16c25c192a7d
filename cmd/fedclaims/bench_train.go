package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/model"
)

// newBenchTrainCmd measures MLM training throughput of a preset on synthetic
// batches, against a 1024³ sgemm through the same BLAS in the same run.
func newBenchTrainCmd(a *app) *cobra.Command {
	var (
		preset                   string
		vocab, seq, batch, steps int
		seed                     uint64
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Time MLM training steps of a preset; compare with a 1024^3 sgemm in the same run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := model.Preset(preset, vocab)
			if err != nil {
				return fmt.Errorf("flag --preset: %w", err)
			}
			if steps <= 0 {
				return fmt.Errorf("flag --steps: %d must be positive", steps)
			}
			// sgemm before and after the training steps, averaged, so that both
			// figures see the same machine when other work comes and goes.
			before, err := model.SgemmGFLOPS(ctx, 1024, 2*time.Second)
			if err != nil {
				return err
			}
			res, err := model.BenchTrain(ctx, cfg, batch, seq, steps, seed)
			if err != nil {
				return err
			}
			after, err := model.SgemmGFLOPS(ctx, 1024, 2*time.Second)
			if err != nil {
				return err
			}
			sg := model.Rate{Wall: (before.Wall + after.Wall) / 2, CPU: (before.CPU + after.CPU) / 2}
			return a.printJSONLine(map[string]any{
				"name":         "train",
				"preset":       preset,
				"params":       cfg.Params(),
				"seq":          seq,
				"batch":        batch,
				"steps":        res.Steps,
				"seconds":      res.Seconds,
				"tokens_per_s": res.TokensPerSec,
				"model_gflops": res.GFLOPS.Wall,
				"sgemm_gflops": sg.Wall,
				"ratio":        res.GFLOPS.Wall / sg.Wall,
				"sgemm_before": before.Wall,
				"sgemm_after":  after.Wall,
				// Per CPU-second of this process: the same comparison, immune to
				// other work on a shared machine.
				"model_gflops_cpu": res.GFLOPS.CPU,
				"sgemm_gflops_cpu": sg.CPU,
				"ratio_cpu":        res.GFLOPS.CPU / sg.CPU,
				"cpu_seconds":      res.CPUSeconds,
				"flops_per_token":  cfg.FLOPsPerToken(seq),
				"peak_rss_mb":      float64(model.PeakRSS()) / (1 << 20),
				"blas":             model.BLASName,
				"threads":          runtime.GOMAXPROCS(0),
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&preset, "preset", "11m", "model preset: "+fmt.Sprint(model.Presets()))
	f.IntVar(&vocab, "vocab-size", model.StudyVocab, "vocabulary size")
	f.IntVar(&seq, "seq", 256, "sequence length")
	f.IntVar(&batch, "batch", 16, "sequences per batch")
	f.IntVar(&steps, "steps", 3, "timed optimiser steps (after one warm-up step)")
	f.Uint64Var(&seed, "seed", 1, "seed of the synthetic batch and the model")
	return cmd
}
