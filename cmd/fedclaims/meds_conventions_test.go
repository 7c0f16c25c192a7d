package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
)

const omopDemo = "../../claims/testdata/omop-mimic-iv-demo"

// TestConvertWritesMEDSMetadata: data convert of an OMOP export writes
// dataset.json with fedclaims as the ETL, subject_splits.parquet from fedclaims'
// split under --split-salt, and codes.parquet describing codes the data holds from
// concept.csv; converting that output again keeps its name, its split (now the
// dataset's own) and its descriptions.
func TestConvertWritesMEDSMetadata(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first")
	res, err := dataRun(t, "data", "convert", omopDemo, "--out", first, "--split-salt", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if res["split"] != "fedclaims hash" || res["described_codes"].(float64) == 0 {
		t.Errorf("printed %v", res)
	}
	meta, err := claims.ReadDatasetMetadata(first)
	if err != nil || meta == nil || meta.ETLName != "fedclaims" || meta.Name != "first" || meta.MEDSVer == "" {
		t.Fatalf("dataset.json %+v, %v", meta, err)
	}
	splits, err := claims.ReadSubjectSplits(filepath.Join(first, filepath.FromSlash(claims.SubjectSplitsFile)))
	if err != nil {
		t.Fatal(err)
	}
	patients := readPatients(t, first)
	if len(splits) != len(patients) || len(patients) != 100 {
		t.Fatalf("%d split rows for %d patients", len(splits), len(patients))
	}
	hash := tasks.HashSplits("s1")
	seen := map[string]bool{}
	for _, p := range patients {
		if splits[p.ID] != hash.Name(p.ID) {
			t.Fatalf("patient %d: split %q, want the hash's %q", p.ID, splits[p.ID], hash.Name(p.ID))
		}
		for _, e := range p.Events {
			seen[e.Code] = true
		}
	}
	codes, err := claims.ReadCodes(filepath.Join(first, "metadata", "codes.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != int(res["described_codes"].(float64)) {
		t.Errorf("%d rows in codes.parquet, printed %v", len(codes), res["described_codes"])
	}
	for _, c := range codes {
		if !seen[c.Code] || c.Description == "" {
			t.Errorf("codes.parquet row %+v: not a code of the data, or no description", c)
		}
	}

	second := filepath.Join(dir, "second")
	res, err = dataRun(t, "data", "convert", first, "--out", second, "--split-salt", "another")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res["split"].(string), "dataset's") {
		t.Errorf("second convert: split %v, want the dataset's own", res["split"])
	}
	meta2, err := claims.ReadDatasetMetadata(second)
	if err != nil || meta2 == nil || meta2.Name != "first" {
		t.Errorf("second dataset.json %+v, %v: want the source's name", meta2, err)
	}
	splits2, err := claims.ReadSubjectSplits(filepath.Join(second, filepath.FromSlash(claims.SubjectSplitsFile)))
	if err != nil || !reflect.DeepEqual(splits2, splits) {
		t.Errorf("second convert's split differs (%v)", err)
	}
	codes2, err := claims.ReadCodes(filepath.Join(second, "metadata", "codes.parquet"))
	if err != nil || !reflect.DeepEqual(codes2, codes) {
		t.Errorf("second convert's codes.parquet differs (%v)", err)
	}
}

// ownSplit gives the synthetic dataset at data a split of its own that disagrees
// with the hash: the hash's training patients are held out, its validation and
// test patients train, so that a command reading the hash instead is caught. It
// returns the count per MEDS split name.
func ownSplit(t *testing.T, data string) map[string]int {
	t.Helper()
	hash := tasks.HashSplits(tasks.DefaultSalt)
	subjects := map[int64]string{}
	n := map[string]int{}
	for _, p := range readPatients(t, data) {
		name := claims.SplitTrain
		switch sp, _ := hash.Of(p.ID); {
		case sp == tasks.Train && p.ID%2 == 0:
			name = claims.SplitHeldOut
		case sp == tasks.Train:
			name = claims.SplitTuning
		}
		subjects[p.ID] = name
		n[name]++
	}
	if err := claims.WriteSubjectSplits(filepath.Join(data, filepath.FromSlash(claims.SubjectSplitsFile)), subjects); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDatasetSplitHonoured: a dataset that declares its split is pretrained,
// counted and evaluated its way (its held-out patients never pretrained on), and
// every output says whose split it was.
func TestDatasetSplitHonoured(t *testing.T) {
	data := synthSite(t, 400)
	n := ownSplit(t, data)
	dir := t.TempDir()
	vocab := filepath.Join(dir, "vocab.json")
	out, err := runCmd(t, "vocab", "build", "--data", data, "--min-count", "2", "--out", vocab)
	if err != nil {
		t.Fatal(err)
	}
	if res := jsonLines(t, out); len(res) != 1 || int(res[0]["patients"].(float64)) != n[claims.SplitTrain] {
		t.Errorf("vocab build printed %v, want the dataset's %d training patients counted", res, n[claims.SplitTrain])
	}
	out, err = runCmd(t, "pretrain", "--data", data, "--vocab", vocab, "--preset", "2m", "--steps", "1", "--batch", "4",
		"--seq", "32", "--out", filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	res := jsonLines(t, out)
	if len(res) != 1 {
		t.Fatalf("pretrain printed %q", out)
	}
	seqs := int(res[0]["train_sequences"].(float64) + res[0]["valid_sequences"].(float64))
	left := int(res[0]["left_out_patients"].(float64))
	if left != n[claims.SplitTuning]+n[claims.SplitHeldOut] || seqs > n[claims.SplitTrain] || seqs == 0 {
		t.Errorf("pretrain left out %d and read %d; the dataset's split %v", left, seqs, n)
	}
	if s, _ := res[0]["split"].(string); !strings.Contains(s, "dataset's (metadata/subject_splits.parquet)") {
		t.Errorf("pretrain's split %q does not name the dataset's", s)
	}
	out, err = runCmd(t, "tasks", "prevalence", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range jsonLines(t, out) {
		if s, _ := line["split"].(string); !strings.HasPrefix(s, "dataset's") {
			t.Errorf("tasks prevalence line %v: split not the dataset's", line)
		}
	}
}

// TestTasksExportAndEvalLabels: the labels tasks export writes, fed back through
// eval --labels, are the very examples eval draws itself (same test rows, same
// positives, same baseline scores), and the report names the split.
func TestTasksExportAndEvalLabels(t *testing.T) {
	data := synthSite(t, 3000)
	dir := t.TempDir()
	taskFile := writeFile(t, filepath.Join(dir, "tasks.yaml"), evalTasksYAML)
	labels := filepath.Join(dir, "labels")
	out, err := runCmd(t, "tasks", "export", "--data", data, "--tasks", taskFile, "--out", labels)
	if err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(t, out)
	if len(lines) != 2 || lines[0]["task"] != "t2d" || lines[1]["task"] != "statins" {
		t.Fatalf("tasks export printed %v", lines)
	}
	sets, err := claims.ReadLabelDir(labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		rows := sets[l["task"].(string)]
		pos := 0
		for _, r := range rows {
			if r.Value {
				pos++
			}
		}
		if len(rows) != int(l["labels"].(float64)) || pos != int(l["positives"].(float64)) || pos == 0 {
			t.Errorf("task %v: read %d labels, %d positive", l, len(rows), pos)
		}
	}

	common := []string{"--data", data, "--grid=false", "--bootstrap", "50", "--iterations", "30", "--log-level", "warn"}
	type report struct {
		Split string `json:"split"`
		Tasks []struct {
			Name          string                    `json:"name"`
			NTest         int                       `json:"n_test"`
			PositivesTest *int                      `json:"positives_test"`
			Models        map[string]map[string]any `json:"models"`
		} `json:"tasks"`
	}
	var byTasks, byLabels report
	if _, err := runCmd(t, append([]string{"eval", "--tasks", taskFile, "--out", filepath.Join(dir, "a")}, common...)...); err != nil {
		t.Fatal(err)
	}
	readReport(t, filepath.Join(dir, "a"), &byTasks)
	if _, err := runCmd(t, append([]string{"eval", "--labels", labels, "--out", filepath.Join(dir, "b")}, common...)...); err != nil {
		t.Fatal(err)
	}
	readReport(t, filepath.Join(dir, "b"), &byLabels)
	if byLabels.Split != "fedclaims hash" || byTasks.Split != "fedclaims hash" {
		t.Errorf("reports' split %q and %q", byTasks.Split, byLabels.Split)
	}
	if len(byLabels.Tasks) != 2 {
		t.Fatalf("eval --labels: %d tasks", len(byLabels.Tasks))
	}
	for _, a := range byTasks.Tasks {
		found := false
		for _, b := range byLabels.Tasks {
			if b.Name != a.Name {
				continue
			}
			found = true
			if a.NTest != b.NTest || a.PositivesTest == nil || b.PositivesTest == nil || *a.PositivesTest != *b.PositivesTest {
				t.Errorf("task %s: n_test %d/%d, positives %v/%v from the task file and the labels", a.Name, a.NTest, b.NTest, a.PositivesTest, b.PositivesTest)
			}
			if x, y := a.Models["baseline"]["auprc"], b.Models["baseline"]["auprc"]; x != y {
				t.Errorf("task %s: baseline AUPRC %v from the task file, %v from the labels", a.Name, x, y)
			}
		}
		if !found {
			t.Errorf("task %s missing from eval --labels", a.Name)
		}
	}

	// A label file and a task file together are refused.
	if _, err := runCmd(t, append([]string{"eval", "--labels", labels, "--tasks", taskFile, "--out", filepath.Join(dir, "c")}, common...)...); err == nil ||
		!strings.Contains(err.Error(), "--labels and --tasks") {
		t.Errorf("--labels with --tasks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Error("refused eval left an output directory")
	}
}
