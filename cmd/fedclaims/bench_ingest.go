package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"time"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/spf13/cobra"
)

// newBenchIngestCmd measures how fast a dataset is read into patients, on one core.
func newBenchIngestCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ingest PATH",
		Short: "Read a MEDS dataset or an OMOP CDM export on one core and report events per second",
		Long: `Reads the dataset at PATH --repeat times with GOMAXPROCS=1 and prints one JSON line:
events and input rows per wall-clock second, and per CPU second of the process (the
figure to quote on a shared machine, where wall time also measures the neighbours).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repeat := a.v.GetInt("repeat")
			if repeat < 1 {
				return fmt.Errorf("flag --repeat: %d, want at least 1", repeat)
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			var format string
			var events, rows, subjects int64
			cpu0, err := processCPU()
			if err != nil {
				return err
			}
			start := time.Now()
			for range repeat {
				src, err := claims.Open(args[0], codesOption(a))
				if err != nil {
					return err
				}
				format = src.Format()
				for {
					p, err := src.Next(cmd.Context())
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						src.Close()
						return err
					}
					subjects++
					events += int64(len(p.Events))
				}
				rows += src.Stats().Rows
				src.Close()
			}
			wall := time.Since(start).Seconds()
			cpu1, err := processCPU()
			if err != nil {
				return err
			}
			cpu := (cpu1 - cpu0).Seconds()
			return a.printJSONLine(map[string]any{
				"name": "ingest_" + format, "path": args[0], "repeat": repeat,
				"subjects": subjects / int64(repeat), "events": events / int64(repeat), "rows": rows / int64(repeat),
				"wall_s": wall, "cpu_s": cpu,
				"events_per_s": float64(events) / wall, "events_per_cpu_s": float64(events) / cpu,
				"rows_per_s": float64(rows) / wall, "rows_per_cpu_s": float64(rows) / cpu,
			})
		},
	}
	cmd.Flags().Int("repeat", 3, "how many times to read the dataset")
	addCodesFlag(cmd)
	return cmd
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
