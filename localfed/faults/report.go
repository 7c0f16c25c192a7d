package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// columns of the table, in order.
var columns = []string{"fault", "injected", "rounds", "round ids", "contributors", "max |diff| vs no-fault", "noise bound", "audit logs verified", "nothing lost", "seconds"}

func (r *Result) cells() []string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "NO"
	}
	contrib := "same as no-fault"
	if !r.SameContributors {
		contrib = fmt.Sprintf("CHANGED: %v", r.Contributors)
	}
	diff := fmt.Sprintf("%.3g", r.MaxAbsDiff)
	if r.Scenario == None {
		diff = "(reference)"
	} else if !r.Within {
		diff += " (beyond)"
	}
	injected := fmt.Sprintf("%d/%d", r.Injected, len(r.Events))
	if len(r.Events) == 0 {
		injected = "-"
	}
	return []string{
		r.Scenario, injected,
		fmt.Sprintf("%d/%d", r.RoundsApplied, r.RoundsPlanned),
		fmt.Sprintf("%d", r.RoundIDs),
		contrib, diff, fmt.Sprintf("%.3g", r.NoiseBound),
		fmt.Sprintf("%d/%d", r.AuditVerified, r.AuditLogs),
		yes(r.NothingLost), fmt.Sprintf("%.0f", r.Seconds),
	}
}

// Table writes the report as an aligned text table, then each scenario's faults
// as planned and as they landed, and any problem found.
func Table(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	for _, r := range rep.Results {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nseed %d; %d parameters; decryption noise %.3g per value per round (secureagg ErrorStdDev(3)/3); %.0fs in all\n",
		rep.Seed, rep.Params, rep.NoiseStdDev, rep.Seconds)
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s: %s\n", r.Scenario, r.Fault)
		if r.Scenario != None {
			fmt.Fprintf(w, "  model: max |diff| %.3g, p99 %.3g, bound %.3g\n", r.MaxAbsDiff, r.P99AbsDiff, r.NoiseBound)
		}
		for _, l := range r.Landed {
			fmt.Fprintf(w, "  landed: %s\n", l)
		}
		for _, a := range r.Aborts {
			fmt.Fprintf(w, "  aborted: %s\n", a)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
	}
	verdict := "every scenario kept every round, the same contributors, a model within the noise bound, intact audit logs and one final model"
	if !rep.OK() {
		verdict = "SOME SCENARIOS FAILED: see PROBLEM lines"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// markdown is faults.md.
func markdown(rep *Report) string {
	var b strings.Builder
	b.WriteString("# Fault harness\n\n")
	fmt.Fprintf(&b, "`fedclaims faults --seed %d`: the aggregator and %d sites as processes, each site's link through its own toxiproxy proxy. Settings: %v.\n\n",
		rep.Seed, hospitals, rep.Settings)
	b.WriteString("| " + strings.Join(columns, " | ") + " |\n|")
	for range columns {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range rep.Results {
		b.WriteString("| " + strings.Join(r.cells(), " | ") + " |\n")
	}
	fmt.Fprintf(&b, "\n%d parameters; decryption noise %.3g per value per round; %.0f s in all.\n\n", rep.Params, rep.NoiseStdDev, rep.Seconds)
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "- **%s**: %s\n", r.Scenario, r.Fault)
		if r.Scenario != None {
			fmt.Fprintf(&b, "  - model: max |diff| %.3g, p99 %.3g, bound %.3g\n", r.MaxAbsDiff, r.P99AbsDiff, r.NoiseBound)
		}
		for _, l := range r.Landed {
			fmt.Fprintf(&b, "  - landed: %s\n", l)
		}
		for _, a := range r.Aborts {
			fmt.Fprintf(&b, "  - aborted: %s\n", a)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - PROBLEM: %s\n", p)
		}
	}
	return b.String()
}

// write saves faults.json and faults.md under out.
func write(out string, rep *Report) error {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "faults.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, "faults.md"), []byte(markdown(rep)), 0o644)
}
