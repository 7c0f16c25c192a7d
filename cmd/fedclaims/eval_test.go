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
			Name       string                    `json:"name"`
			Kind       string                    `json:"kind"`
			Prevalence float64                   `json:"prevalence"`
			NTest      int                       `json:"n_test"`
			Models     map[string]map[string]any `json:"models"`
		} `json:"tasks"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
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
		m := task.Models["baseline"]
		for _, k := range []string{"auprc", "auprc_ci", "auroc", "auroc_ci"} {
			if _, ok := m[k]; !ok {
				t.Errorf("task %s: baseline lacks %s", task.Name, k)
			}
		}
		f, err := os.Open(filepath.Join(out, "pr_"+task.Name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("pr_%s.png: %v", task.Name, err)
		}
		f.Close()
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "| t2d |") || !strings.Contains(stdout.String(), "statins") {
		t.Errorf("report.md or printed table lacks the tasks:\n%s\n%s", md, stdout.String())
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
	cm := write("cm.yaml", strings.ReplaceAll(evalTasksYAML, "ICD10//E11", "ICD10CM//E11"))
	never := write("never.yaml", strings.ReplaceAll(evalTasksYAML, "ICD10//E11", "ICD10//U99"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown code system", []string{"--data", data, "--tasks", cm}, "task t2d: prefix \"ICD10CM//E11\": no event in the data has code system ICD10CM"},
		{"no positives", []string{"--data", data, "--tasks", never}, "task t2d: the train split has no positive examples"},
		{"not a dataset", []string{"--data", dir, "--tasks", never}, "neither a MEDS dataset"},
		{"several sites", []string{"--data", filepath.Dir(data), "--tasks", never}, "holds 1 site datasets, not one"},
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
