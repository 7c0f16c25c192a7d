package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/viper"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/tasks"
)

func TestDemoRefusesBadFlags(t *testing.T) {
	checkRefusesFlags(t, "demo", []flagCase{
		{[]string{"demo", "--out", t.TempDir(), "--hospitals", "1"}, "--hospitals"},
		{[]string{"demo", "--out", t.TempDir(), "--patients", "10"}, "--patients"},
		{[]string{"demo", "--out", t.TempDir(), "--rounds", "0"}, "--rounds"},
		{[]string{"demo", "--out", t.TempDir(), "--bootstrap", "0"}, "--bootstrap"},
	})
}

func TestClaimDemoDirReplacesOnlyADemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	if err := claimDemoDir(dir); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "federation", "old.log")
	os.MkdirAll(filepath.Dir(old), 0o755)
	os.WriteFile(old, []byte("x"), 0o644)
	if err := claimDemoDir(dir); err != nil {
		t.Fatalf("replacing an earlier demo: %v", err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("the earlier demo's files survived")
	}
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
		t.Error(err)
	}
}

// demoEval scores the federated encoder, the site-alone encoder and the baseline
// on the same test split of one site.
func TestDemoEvalThreeModels(t *testing.T) {
	data := synthSite(t, 2000)
	state := t.TempDir()
	fed := tinyCheckpoint(t, data, 0)
	if err := os.Rename(fed, filepath.Join(state, "final")); err != nil {
		t.Fatal(err)
	}
	alone := tinyCheckpoint(t, data, 0)
	out := filepath.Join(t.TempDir(), "eval")
	a := &app{v: viper.New(), log: slog.New(slog.DiscardHandler), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	s := &localfed.Site{ID: "h01", Archetype: "general", Data: data, StateDir: state}
	rep, err := demoEval(context.Background(), a, s, alone, out, demoOptions{seed: 1, bootstrap: 30, seq: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tasks) != len(tasks.Default()) {
		t.Fatalf("%d report rows for %d default tasks", len(rep.Tasks), len(tasks.Default()))
	}
	evaluated := 0
	for _, tr := range rep.Tasks {
		if tr.Undecided != "" && len(tr.Models) == 0 {
			continue // listed with its reason
		}
		evaluated++
		for _, m := range []string{eval.ModelEncoder, modelSiteEncoder, eval.ModelBaseline} {
			if _, ok := tr.Models[m]; !ok {
				t.Errorf("task %s: no %s", tr.Name, m)
			}
		}
	}
	if evaluated == 0 {
		t.Fatal("no task evaluated")
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
		t.Error(err)
	}

	res := demoResult{Seconds: map[string]float64{"total": 12}, Rounds: []demoRound{{Round: 1, Contributors: []string{"h01"}, PerSite: map[string]uint64{"h01": 3 << 20}}}}
	for _, tr := range rep.Tasks {
		res.Rows = append(res.Rows, demoRow{Task: tr.Name, Kind: tr.Kind, Site: s.ID, Archetype: s.Archetype, NTest: tr.NTest,
			PositivesTest: tr.PositivesTest, Federated: tr.Models[eval.ModelEncoder], SiteAlone: tr.Models[modelSiteEncoder],
			Baseline: tr.Models[eval.ModelBaseline], Comparison: tr.Comparison, Verdict: tr.Verdict})
	}
	var buf bytes.Buffer
	if err := writeDemoTable(&buf, res); err != nil {
		t.Fatal(err)
	}
	table := buf.String()
	for _, want := range []string{"federated AUPRC [95% CI]", "site-alone AUPRC [95% CI]", "baseline AUPRC [95% CI]", "federated - baseline [95% CI], Holm p", "verdict", rep.Tasks[0].Name, "h01 (general)", "h01 3.0 MiB", "total 12s"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// The demo's table holds only the rows its data can decide; one line names the
// rest with their test positives.
func TestDemoTableDecidableRows(t *testing.T) {
	c := &eval.Comparison{Metric: eval.MetricAUPRC, Diff: -0.12, CI: [2]float64{-0.37, 0.08}, P: 0.9, PHolm: 1, PReverse: 0.2, PReverseHolm: 0.69}
	res := demoResult{Seconds: map[string]float64{"total": 1}, Rows: []demoRow{
		{Task: "dpp4_inhibitors", Site: "h01", Archetype: "general", PositivesTest: 13, Comparison: c, Verdict: eval.VerdictNoDifference},
		{Task: "ckd", Site: "h01", Archetype: "general", PositivesTest: 3, Verdict: "too few positives (3)"},
		{Task: "ckd", Site: "h02", Archetype: "cancer-centre", PositivesTest: 1, Verdict: "too few positives (1)"},
		{Task: "doac", Site: "h03", Archetype: "clinic", Verdict: "undecided: the test split has no positives"},
	}}
	var buf bytes.Buffer
	if err := writeDemoTable(&buf, res); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"-0.120 [-0.370, 0.080], p 1 / 0.69", "no significant difference",
		"Too small to read", "ckd (h01 3, h02 1); doac (h03 0)", "1 of 4 task-site rows could be tested"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "too few positives (3)") {
		t.Errorf("an undecidable row is in the table:\n%s", out)
	}
	var md bytes.Buffer
	writeDemoMarkdown(&md, res)
	if !strings.Contains(md.String(), "ckd (h01 3, h02 1)") || strings.Count(md.String(), "| dpp4_inhibitors |") != 1 {
		t.Errorf("demo.md:\n%s", md.String())
	}
}
