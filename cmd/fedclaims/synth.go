package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
)

// newSynthCmd writes synthetic hospitals as MEDS datasets.
func newSynthCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "synth (--out DIR | --report [--json]) [--hospitals N] [--patients P] [--seed S] [--temporal-strength T]",
		Short: "Generate synthetic hospitals, one MEDS dataset per hospital under DIR/<hospital-id>/",
		Long: `Generates N synthetic hospitals (a general hospital, a cancer centre and a clinic,
in turn) holding N*P patients between them, and writes each as a MEDS dataset under
DIR/<hospital-id>/ (h01, h02, ...) with metadata/codes.parquet. The same seed gives
byte-identical files. Prints one JSON line per hospital.

--temporal-strength scales every order- and recency-dependent rule of the generator
between 1 (as written) and 0 (risks and drug starts depend only on what a patient
has, not on when or in what order; prodromal symptoms fall on random visits): a
control for how much of a sequence model's gain comes from order and timing.

--report writes nothing: it generates the hospitals in memory and prints a table
(--json: one JSON line per row) of their shape: visits per patient-year, codes per
visit, gaps between visits and the Zipf slope of code counts, for each hospital and
all together. "fedclaims data describe PATH" prints the same for a dataset on disk.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, report := a.v.GetString("out"), a.v.GetBool("report")
			switch {
			case report && out != "":
				return errors.New("flags --report and --out: --report writes nothing; drop one")
			case !report && out == "":
				return errors.New("flag --out: a directory is required")
			case !report && a.v.GetBool("json"):
				return errors.New("flag --json: only with --report (synth always prints JSON lines)")
			}
			ts := a.v.GetFloat64("temporal-strength")
			if !(ts >= 0 && ts <= 1) {
				return fmt.Errorf("flag --temporal-strength: %g must lie in [0, 1]", ts)
			}
			cfg := synth.Config{
				Hospitals:        a.v.GetInt("hospitals"),
				Patients:         a.v.GetInt("patients"),
				Seed:             a.v.GetUint64("seed"),
				TemporalStrength: &ts,
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
			if report {
				return synthReport(cmd.Context(), a, g)
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
	f.Float64("temporal-strength", 1, "strength of the order- and recency-dependent rules, from 0 (none) to 1 (as written)")
	f.Bool("report", false, "print the generated hospitals' statistics instead of writing them")
	f.Bool("json", false, "with --report: one JSON line per row instead of a table")
	return cmd
}

// describedRow is one row of a statistics table: a dataset's name and figures.
type describedRow struct {
	Dataset string `json:"dataset"`
	claims.Description
}

// synthReport describes each of g's hospitals and all of them together.
func synthReport(ctx context.Context, a *app, g *synth.Generator) error {
	all := claims.NewDescriber()
	var rows []describedRow
	for i, h := range g.Hospitals() {
		one := claims.NewDescriber()
		for k := range h.Patients {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := g.Patient(i, k)
			one.Add(p)
			all.Add(p)
		}
		rows = append(rows, describedRow{Dataset: h.ID + " " + h.Archetype.String(), Description: one.Description()})
	}
	rows = append(rows, describedRow{Dataset: "all", Description: all.Description()})
	return printDescribed(a, rows)
}

// printDescribed prints rows as a table, or as JSON lines under --json.
func printDescribed(a *app, rows []describedRow) error {
	if a.v.GetBool("json") {
		for _, r := range rows {
			if err := a.printJSONLine(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dataset\tpatients\tvisits\tvisits/patient-year\tcodes/visit mean\tmedian\tgap days q1\tmedian\tq3\tgaps <30d\t>365d\tZipf slope\tover ranks\t")
	for _, r := range rows {
		d := r.Description
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%g\t%g\t%g\t%g\t%.3f\t%.3f\t%.3f\t%d-%d\t\n",
			r.Dataset, d.Patients, d.Visits, d.VisitsPerPatientYear, d.CodesPerVisitMean, d.CodesPerVisitMedian,
			d.GapDaysQ1, d.GapDaysMedian, d.GapDaysQ3, d.GapsUnder30, d.GapsOver365, d.ZipfSlope, d.ZipfRankFirst, d.ZipfRankLast)
	}
	return tw.Flush()
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
