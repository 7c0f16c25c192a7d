package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims/synth"
)

const evalTasksYAML = `version: 1
tasks:
  - name: t2d
    kind: disease
    prefixes: [ICD10//E11]
    horizon_days: 730
    lookback_days: 365
  - name: statins
    kind: medication
    prefixes: [ATC//C10AA]
    horizon_days: 365
    lookback_days: 365
`

// readReport decodes out/report.json into rep and returns its bytes.
func readReport(t *testing.T, out string, rep any) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, rep); err != nil {
		t.Fatal(err)
	}
	return raw
}

func synthSite(t *testing.T, patients int) string {
	t.Helper()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: patients, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := g.WriteHospital(context.Background(), dir, 0); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, g.Hospitals()[0].ID)
}

func TestEvalCommand(t *testing.T) {
	data := synthSite(t, 3000)
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(taskFile, []byte(evalTasksYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"eval", "--data", data, "--tasks", taskFile, "--out", out,
		"--grid=false", "--bootstrap", "100", "--iterations", "50", "--log-level", "warn"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		Tasks []struct {
			Name          string                    `json:"name"`
			Kind          string                    `json:"kind"`
			Prevalence    float64                   `json:"prevalence"`
			NTest         int                       `json:"n_test"`
			PositivesTest *int                      `json:"positives_test"`
			Models        map[string]map[string]any `json:"models"`
			Comparison    map[string]any            `json:"comparison"`
			Verdict       string                    `json:"verdict"`
		} `json:"tasks"`
	}
	readReport(t, out, &rep)
	if len(rep.Tasks) != 2 || rep.Tasks[0].Name != "t2d" || rep.Tasks[1].Kind != "medication" {
		t.Fatalf("report tasks %+v", rep.Tasks)
	}
	for _, task := range rep.Tasks {
		if task.NTest == 0 || task.Prevalence <= 0 {
			t.Errorf("task %s: n_test %d prevalence %v", task.Name, task.NTest, task.Prevalence)
		}
		if _, ok := task.Models["encoder"]; ok {
			t.Errorf("task %s: encoder metrics without a model", task.Name)
		}
		if task.PositivesTest == nil {
			t.Fatalf("task %s: no positives_test", task.Name)
		}
		m := task.Models["baseline"]
		for _, k := range []string{"auprc", "auroc", "brier", "calibration_slope", "calibration_intercept"} {
			if _, ok := m[k]; !ok {
				t.Errorf("task %s: baseline lacks %s", task.Name, k)
			}
		}
		// Intervals only from at least 10 test positives.
		for _, k := range []string{"auprc_ci", "auroc_ci"} {
			if _, ok := m[k]; ok != (*task.PositivesTest >= 10) {
				t.Errorf("task %s: %d test positives, %s present %v", task.Name, *task.PositivesTest, k, ok)
			}
		}
		if task.Comparison != nil || task.Verdict != "baseline only" {
			t.Errorf("task %s: comparison %v, verdict %q without an encoder", task.Name, task.Comparison, task.Verdict)
		}
		for _, plot := range []string{"pr_", "calibration_"} {
			f, err := os.Open(filepath.Join(out, plot+task.Name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := png.Decode(f); err != nil {
				t.Errorf("%s%s.png: %v", plot, task.Name, err)
			}
			f.Close()
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "| t2d |") || !strings.Contains(stdout.String(), "statins") {
		t.Errorf("report.md or printed table lacks the tasks:\n%s\n%s", md, stdout.String())
	}
}

// TestEvalUndecidableTasks: a task that cannot be decided (its code system absent
// from the data, no positive anywhere) is a row of the report with the reason, and
// the command succeeds; an ICD10 task matches ICD10CM data.
func TestEvalUndecidableTasks(t *testing.T) {
	data := synthSite(t, 2000)
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "tasks.yaml")
	body := evalTasksYAML + `  - name: icd9_diabetes
    kind: disease
    prefixes: [ICD9CM//250]
  - name: never
    kind: disease
    prefixes: [ICD10//U99]
  - name: t2d_cm
    kind: disease
    prefixes: [ICD10CM//E11]
`
	if err := os.WriteFile(taskFile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"eval", "--data", data, "--tasks", taskFile, "--out", out,
		"--grid=false", "--bootstrap", "20", "--iterations", "20", "--log-level", "error"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		Tasks []struct {
			Name          string                     `json:"name"`
			NTest         int                        `json:"n_test"`
			PositivesTest int                        `json:"positives_test"`
			Undecided     string                     `json:"undecided"`
			Models        map[string]json.RawMessage `json:"models"`
		} `json:"tasks"`
	}
	raw := readReport(t, out, &rep)
	want := map[string]string{"icd9_diabetes": "ICD9CM", "never": "no positive"}
	if len(rep.Tasks) != 5 {
		t.Fatalf("%d report rows, want all 5 tasks: %s", len(rep.Tasks), raw)
	}
	for _, task := range rep.Tasks {
		reason, undecidable := want[task.Name]
		switch {
		case undecidable && !strings.Contains(task.Undecided, reason):
			t.Errorf("task %s: reason %q, want one containing %q", task.Name, task.Undecided, reason)
		case !undecidable && task.Models["baseline"] == nil:
			t.Errorf("task %s was not evaluated: %q", task.Name, task.Undecided)
		}
	}
	// ICD10//E11 and ICD10CM//E11 label the same patients.
	if t2d, cm := rep.Tasks[0], rep.Tasks[4]; t2d.NTest != cm.NTest || t2d.PositivesTest != cm.PositivesTest || t2d.PositivesTest == 0 {
		t.Errorf("t2d: %d test rows, %d positives; t2d_cm: %d, %d; want the same, some positive", t2d.NTest, t2d.PositivesTest, cm.NTest, cm.PositivesTest)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "icd9_diabetes") {
		t.Errorf("report.md does not list the undecidable task:\n%s", md)
	}
}

// TestEvalNothingDecidable: when no task can be decided, eval still succeeds and
// writes a report that says why for each task.
func TestEvalNothingDecidable(t *testing.T) {
	data := synthSite(t, 300)
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(taskFile, []byte("version: 1\ntasks:\n  - {name: icd9_diabetes, kind: disease, prefixes: [ICD9CM//250]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"eval", "--data", data, "--tasks", taskFile, "--out", out,
		"--grid=false", "--bootstrap", "20", "--log-level", "error"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		Tasks []struct {
			Name      string `json:"name"`
			Undecided string `json:"undecided"`
			Verdict   string `json:"verdict"`
		} `json:"tasks"`
	}
	readReport(t, out, &rep)
	if len(rep.Tasks) != 1 || !strings.Contains(rep.Tasks[0].Undecided, "ICD9CM") || !strings.HasPrefix(rep.Tasks[0].Verdict, "undecided") {
		t.Errorf("report %+v, want the one task undecided with the missing code system", rep.Tasks)
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Error(err)
	}
}

func TestEvalBadInput(t *testing.T) {
	data := synthSite(t, 600)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	never := write("never.yaml", strings.ReplaceAll(evalTasksYAML, "ICD10//E11", "ICD10//U99"))
	bad := write("bad.yaml", strings.ReplaceAll(evalTasksYAML, "prefixes: [ICD10//E11]", "prefixes: [ICD10//E11]\n    exclude_prefixes: [ATC//A10]"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not a dataset", []string{"--data", dir, "--tasks", never}, "neither a MEDS dataset"},
		{"several sites", []string{"--data", filepath.Dir(data), "--tasks", never}, "holds 1 site datasets, not one"},
		{"bad features", []string{"--data", data, "--features", "dense"}, "flag --features"},
		{"bad pooling", []string{"--data", data, "--pooling", "max"}, "flag --pooling"},
		{"bad end", []string{"--data", data, "--end", "yesterday"}, "flag --end"},
		{"bad exclusion", []string{"--data", data, "--tasks", bad}, "bad.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "-"))
			var stdout, stderr bytes.Buffer
			args := append([]string{"eval", "--out", out, "--grid=false", "--bootstrap", "20", "--log-level", "error"}, tt.args...)
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("output directory created despite the error")
			}
		})
	}
}
