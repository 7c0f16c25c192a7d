package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	scores, labels, groups := synthetic(300, 5)
	worse := make([]float64, len(scores))
	for i, s := range scores {
		worse[i] = s / 2
		if i%4 == 0 {
			worse[i] = -s
		}
	}
	p := Predictions{Name: "t2d", Kind: KindDisease, Labels: labels, Patient: groups,
		Scores: map[string][]float64{ModelEncoder: scores, ModelBaseline: worse}}
	res, err := Evaluate(p, Bootstrap{Resamples: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	base := Predictions{Name: "statins", Kind: KindMedication, Labels: labels, Patient: groups,
		Scores: map[string][]float64{ModelBaseline: worse}}
	res2, err := Evaluate(base, Bootstrap{Resamples: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{Tasks: []TaskResult{res, res2}}
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The shape outside checks rely on.
	var shape struct {
		Tasks []struct {
			Name       string  `json:"name"`
			Kind       string  `json:"kind"`
			Prevalence float64 `json:"prevalence"`
			NTest      int     `json:"n_test"`
			Models     map[string]struct {
				AUPRC   float64    `json:"auprc"`
				AUPRCCI [2]float64 `json:"auprc_ci"`
				AUROC   float64    `json:"auroc"`
				AUROCCI [2]float64 `json:"auroc_ci"`
			} `json:"models"`
		} `json:"tasks"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(shape.Tasks) != 2 || shape.Tasks[0].NTest != 300 || len(shape.Tasks[0].Models) != 2 {
		t.Fatalf("report.json tasks %+v", shape.Tasks)
	}
	if _, ok := shape.Tasks[1].Models[ModelEncoder]; ok {
		t.Error("baseline-only task carries an encoder entry")
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| t2d | disease |", "| statins | medication |", "encoder AUPRC", "difference"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	png1 := filepath.Join(dir, "t2d.png")
	if err := PlotPR(png1, p); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(png1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("plot is not a PNG: %v", err)
	}
}

func TestEvaluateNoPositives(t *testing.T) {
	p := Predictions{Name: "ckd", Kind: KindDisease, Labels: []bool{false, false}, Patient: []int64{1, 2},
		Scores: map[string][]float64{ModelBaseline: {0.1, 0.2}}}
	_, err := Evaluate(p, DefaultBootstrap(1))
	if !errors.Is(err, ErrNoPositives) || !strings.Contains(err.Error(), "task ckd") {
		t.Errorf("error %v, want ErrNoPositives naming task ckd", err)
	}
}
