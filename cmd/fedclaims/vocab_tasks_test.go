package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// synthHospitals writes three small synthetic hospitals and returns their directories.
func synthHospitals(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	g, err := synth.New(synth.Config{Hospitals: 3, Patients: 400, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Write(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, h := range g.Hospitals() {
		paths = append(paths, filepath.Join(dir, h.ID))
	}
	return paths
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), err
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		rows = append(rows, m)
	}
	return rows
}

func TestVocabCommands(t *testing.T) {
	paths := synthHospitals(t)
	dir := t.TempDir()
	built := filepath.Join(dir, "built.json")
	out, err := runCmd(t, "vocab", "build", "--data", strings.Join(paths, ","), "--min-count", "5", "--out", built)
	if err != nil {
		t.Fatal(err)
	}
	res := jsonLines(t, out)
	if len(res) != 1 || res[0]["sites"].(float64) != 3 || res[0]["min_count"].(float64) != 5 {
		t.Fatalf("vocab build printed %s", out)
	}
	v, err := tokenizer.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() < 100 || int(res[0]["tokens"].(float64)) != v.Len() {
		t.Errorf("vocabulary of %d tokens (printed %v) from 1200 synthetic patients", v.Len(), res[0]["tokens"])
	}

	// The federated route: each site counts alone, the coordinator merges, in any
	// order, and gets the same bytes as build.
	var counts []string
	for i, p := range paths {
		c := filepath.Join(dir, "counts", filepath.Base(p)+".json")
		os.MkdirAll(filepath.Dir(c), 0o755)
		if _, err := runCmd(t, "vocab", "count", "--data", p, "--min-count", "5", "--out", c); err != nil {
			t.Fatalf("site %d: %v", i, err)
		}
		tab, err := tokenizer.ReadCounts(c)
		if err != nil {
			t.Fatal(err)
		}
		for code, n := range tab.Counts {
			if n < 5 {
				t.Fatalf("site %d published %s with %d patients", i, code, n)
			}
		}
		counts = append(counts, c)
	}
	merged := filepath.Join(dir, "merged.json")
	reversed := []string{counts[2], counts[0], counts[1]}
	if _, err := runCmd(t, append([]string{"vocab", "merge", "--min-count", "5", "--out", merged}, reversed...)...); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(built)
	b, _ := os.ReadFile(merged)
	if !bytes.Equal(a, b) {
		t.Error("vocab merge of the sites' counts differs from vocab build")
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"vocab", "build", "--out", merged}, "flag --data"},
		{[]string{"vocab", "build", "--data", paths[0]}, "flag --out"},
		{[]string{"vocab", "build", "--data", paths[0], "--out", merged, "--min-count", "0"}, "flag --min-count"},
		{[]string{"vocab", "build", "--data", filepath.Join(dir, "nowhere"), "--out", merged}, "nowhere"},
		{[]string{"vocab", "count", "--data", paths[0] + "," + paths[1], "--out", merged}, "one dataset"},
		{[]string{"vocab", "merge", "--out", merged, built}, built},
	} {
		if _, err := runCmd(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tt.args, err, tt.want)
		}
	}
}

func TestTasksPrevalenceCommand(t *testing.T) {
	paths := synthHospitals(t)
	out, err := runCmd(t, "tasks", "prevalence", "--data", strings.Join(paths, ","), "--seed", "3")
	if err != nil {
		t.Fatal(err)
	}
	rows := jsonLines(t, out)
	names := tasks.Default()
	if len(rows) != len(paths)*len(names) {
		t.Fatalf("%d lines, want %d:\n%s", len(rows), len(paths)*len(names), out)
	}
	for i, r := range rows {
		if r["dataset"] != paths[i/len(names)] || r["task"] != names[i%len(names)].Name {
			t.Errorf("line %d is %v/%v, want %s/%s", i, r["dataset"], r["task"], paths[i/len(names)], names[i%len(names)].Name)
		}
		n, pos, prev := r["n"].(float64), r["positives"].(float64), r["prevalence"].(float64)
		if n <= 0 || pos > n || (n > 0 && prev != pos/n) || r["indexed"].(float64) > r["patients"].(float64) {
			t.Errorf("line %d: inconsistent counts %v", i, r)
		}
		// What the test split can decide: its positives, and the half-width they buy.
		testPos := r["positives_by_split"].(map[string]any)["test"].(float64)
		if r["test_positives"] != testPos || r["decidable"] != (testPos >= 10) {
			t.Errorf("line %d: test_positives %v, decidable %v for %v test positives", i, r["test_positives"], r["decidable"], testPos)
		}
		hw, ok := r["auprc_diff_halfwidth"].(float64)
		if ok != (testPos > 0) || (ok && math.Abs(hw-eval.HalfWidthConstant/math.Sqrt(testPos)) > 1e-12) {
			t.Errorf("line %d: auprc_diff_halfwidth %v for %v test positives", i, r["auprc_diff_halfwidth"], testPos)
		}
	}
	again, err := runCmd(t, "tasks", "prevalence", "--data", strings.Join(paths, ","), "--seed", "3")
	if err != nil || again != out {
		t.Errorf("a second run with the same seed printed something else (err %v)", err)
	}

	dir := t.TempDir()
	custom := filepath.Join(dir, "custom.yaml")
	os.WriteFile(custom, []byte("version: 1\ntasks:\n  - {name: any_statin, kind: medication, prefixes: [ATC//C10]}\n"), 0o644)
	out, err = runCmd(t, "tasks", "prevalence", "--data", paths[0], "--tasks", custom, "--end", "2022-12-31")
	if err != nil {
		t.Fatal(err)
	}
	if rows := jsonLines(t, out); len(rows) != 1 || rows[0]["task"] != "any_statin" || rows[0]["end"] != "2022-12-31T00:00:00Z" {
		t.Errorf("custom task printed %s", out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\ntasks:\n  - name: a\n    kind: disease\n    horizon_days: soon\n"), 0o644)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"tasks", "prevalence", "--data", paths[0], "--tasks", bad}, bad + ":5: field tasks[0].horizon_days"},
		{[]string{"tasks", "prevalence", "--data", paths[0], "--end", "last year"}, "flag --end"},
		{[]string{"tasks", "prevalence"}, "flag --data"},
	} {
		if _, err := runCmd(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tt.args, err, tt.want)
		}
	}

	out, err = runCmd(t, "tasks", "default")
	if err != nil || out != string(tasks.DefaultYAML()) {
		t.Errorf("tasks default printed %q, %v", out, err)
	}
}

// TestTasksPrevalenceDateShifted labels the MIMIC-IV demo, whose patients are each
// shifted into their own years (2110-2202): follow-up is each patient's own, so
// patients are indexed without --end, up to --max-index-per-patient each.
func TestTasksPrevalenceDateShifted(t *testing.T) {
	data := filepath.Join("..", "..", "claims", "testdata", "omop-mimic-iv-demo")
	rows := map[string][]map[string]any{}
	for _, k := range []string{"1", "3"} {
		out, err := runCmd(t, "tasks", "prevalence", "--data", data, "--max-index-per-patient", k)
		if err != nil {
			t.Fatal(err)
		}
		rows[k] = jsonLines(t, out)
		if len(rows[k]) != len(tasks.Default()) {
			t.Fatalf("%d lines, want one per default task", len(rows[k]))
		}
	}
	one, three := rows["1"][0], rows["3"][0]
	if _, ok := one["end"]; ok {
		t.Errorf("end printed without --end: %v", one)
	}
	if _, ok := one["excluded_censored"]; ok {
		t.Errorf("a censored column is printed: %v", one)
	}
	indexed, examples := one["indexed"].(float64), one["examples"].(float64)
	if indexed < 10 || examples != indexed || one["n"].(float64) < 10 {
		t.Errorf("one index per patient: %v, want at least 10 patients indexed once each", one)
	}
	if three["indexed"] != one["indexed"] || three["examples"].(float64) <= examples || three["examples"].(float64) > 3*indexed {
		t.Errorf("three per patient: %v, want the same %v patients with more examples, at most 3 each", three, indexed)
	}
	if _, err := runCmd(t, "tasks", "prevalence", "--data", data, "--max-index-per-patient", "0"); err == nil || !strings.Contains(err.Error(), "--max-index-per-patient") {
		t.Errorf("--max-index-per-patient 0: err = %v", err)
	}
}

// TestVocabOMOPDemo builds a vocabulary from the real MIMIC-IV demo OMOP export (ICD-9-CM
// and ICD-10-CM diagnoses, NDC drugs) and encodes its patients with it.
func TestVocabOMOPDemo(t *testing.T) {
	data := filepath.Join("..", "..", "claims", "testdata", "omop-mimic-iv-demo")
	out := filepath.Join(t.TempDir(), "vocab.json")
	if _, err := runCmd(t, "vocab", "build", "--data", data, "--min-count", "5", "--out", out); err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	systems := make(map[string]int)
	for id := int32(tokenizer.NumSpecial); id < int32(v.Len()); id++ {
		systems[claims.System(v.Token(id))]++
		if n := v.Count(id); n < 5 || n > 100 {
			t.Errorf("token %s counts %d of 100 patients", v.Token(id), n)
		}
	}
	for _, s := range []string{claims.SystemICD9CM, claims.SystemICD10CM, claims.SystemNDC} {
		if systems[s] < 20 {
			t.Errorf("%d %s tokens from the demo, want at least 20 (all: %v)", systems[s], s, systems)
		}
	}
	src, err := claims.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	enc, err := tokenizer.NewEncoder(v, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var tokens, unk int
	for {
		p, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range enc.Encode(p, tokenizer.NoCutoff).IDs {
			tokens++
			if id == tokenizer.UNK {
				unk++
			}
		}
	}
	// Codes seen in fewer than 5 of 100 patients are rare, but most events carry
	// common codes or fall back to a common category.
	if tokens == 0 || float64(unk)/float64(tokens) > 0.25 {
		t.Errorf("%d of %d tokens are [UNK]", unk, tokens)
	}
	t.Logf("%d tokens, %d [UNK], vocabulary by system %v", tokens, unk, systems)
}
