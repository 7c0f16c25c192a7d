package main

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims/synth"
)

// newSynthCmd writes synthetic hospitals as MEDS datasets.
func newSynthCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "synth --out DIR [--hospitals N] [--patients P] [--seed S]",
		Short: "Generate synthetic hospitals, one MEDS dataset per hospital under DIR/<hospital-id>/",
		Long: `Generates N synthetic hospitals (a general hospital, a cancer centre and a clinic,
in turn) holding N*P patients between them, and writes each as a MEDS dataset under
DIR/<hospital-id>/ (h01, h02, ...) with metadata/codes.parquet. The same seed gives
byte-identical files. Prints one JSON line per hospital.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := a.v.GetString("out")
			if out == "" {
				return errors.New("flag --out: a directory is required")
			}
			cfg := synth.Config{
				Hospitals: a.v.GetInt("hospitals"),
				Patients:  a.v.GetInt("patients"),
				Seed:      a.v.GetUint64("seed"),
			}
			if cfg.Hospitals < 1 {
				return fmt.Errorf("flag --hospitals: %d must be at least 1", cfg.Hospitals)
			}
			if cfg.Patients < 1 {
				return fmt.Errorf("flag --patients: %d must be at least 1", cfg.Patients)
			}
			g, err := synth.New(cfg)
			if err != nil {
				return err
			}
			for i, h := range g.Hospitals() {
				start := time.Now()
				events, err := g.WriteHospital(cmd.Context(), out, i)
				if err != nil {
					return err
				}
				a.log.Info("wrote hospital", "id", h.ID, "patients", h.Patients, "events", events, "elapsed", time.Since(start).Round(time.Millisecond))
				err = a.printJSONLine(map[string]any{
					"id":         h.ID,
					"archetype":  h.Archetype.String(),
					"patients":   h.Patients,
					"events":     events,
					"icd_digits": h.ICDDigits,
				})
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("out", "", "directory to write the hospitals' datasets under")
	f.Int("hospitals", 3, "number of hospitals")
	f.Int("patients", 1000, "patients per hospital on average (archetypes differ in size)")
	f.Uint64("seed", 1, "seed; the same seed gives the same bytes")
	return cmd
}

// newBenchSynthCmd measures generation on one goroutine, and generation plus MEDS
// writing, against the target of 500k events per second on one core.
func newBenchSynthCmd(a *app) *cobra.Command {
	const target = 500_000
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Measure synthetic generation in events per second on one core",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			patients := a.v.GetInt("patients")
			if patients < 3 {
				return fmt.Errorf("flag --patients: %d must be at least 3", patients)
			}
			g, err := synth.New(synth.Config{Hospitals: 3, Patients: patients / 3, Seed: a.v.GetUint64("seed")})
			if err != nil {
				return err
			}
			runtime.GC()
			start, cpu := time.Now(), processCPUSeconds()
			var events, n int64
			for h, hosp := range g.Hospitals() {
				for i := range hosp.Patients {
					if err := cmd.Context().Err(); err != nil {
						return err
					}
					events += int64(len(g.Patient(h, i).Events))
					n++
				}
			}
			sec, cpuSec := time.Since(start).Seconds(), processCPUSeconds()-cpu
			rate := float64(events) / sec
			res := map[string]any{
				"name": "synth_generate", "patients": n, "events": events, "seconds": sec,
				"events_per_sec": rate, "target_events_per_sec": target, "vs_target": rate / target,
			}
			if cpuSec > 0 {
				// On a shared machine the wall clock counts other processes' time;
				// CPU seconds (this process's, garbage collector included) do not.
				res["cpu_seconds"] = cpuSec
				res["events_per_cpu_sec"] = float64(events) / cpuSec
				res["cpu_vs_target"] = float64(events) / cpuSec / target
			}
			if err := a.printJSONLine(res); err != nil {
				return err
			}
			dir := a.v.GetString("dir")
			if dir == "" {
				return nil
			}
			wstart := time.Now()
			var written int64
			for h := range g.Hospitals() {
				e, err := g.WriteHospital(cmd.Context(), dir, h)
				if err != nil {
					return err
				}
				written += e
			}
			wsec := time.Since(wstart).Seconds()
			return a.printJSONLine(map[string]any{
				"name": "synth_write_meds", "patients": n, "events": written, "seconds": wsec,
				"events_per_sec": float64(written) / wsec, "vs_generate": (float64(written) / wsec) / rate,
			})
		},
	}
	f := cmd.Flags()
	f.Int("patients", 6000, "patients to generate, spread over a general hospital, a cancer centre and a clinic")
	f.Uint64("seed", 1, "seed")
	f.String("dir", "", "also write the patients as MEDS datasets under this directory and time it")
	return cmd
}
