package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/inference"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
)

// readPatients reads a whole dataset.
func readPatients(t *testing.T, dir string) []*claims.Patient {
	t.Helper()
	src, err := claims.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ps []*claims.Patient
	for {
		p, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return ps
		}
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
}

// lastCareDay is the midnight after p's last event other than birth, death and
// observation end, and whether p died; ok false without such an event.
func lastCareDay(p *claims.Patient) (t int64, died, ok bool) {
	for _, e := range p.Events {
		switch e.Code {
		case claims.CodeDeath:
			died = true
		case claims.CodeBirth, claims.CodeObservationEnd:
		default:
			t, ok = max(t, (claims.Day(e.Time)+1)*claims.MicrosPerDay), true
		}
	}
	return t, died, ok
}

// evalWithHeads runs fedclaims eval with a tiny encoder on a synthetic site and
// returns the site, the checkpoint and eval's output directory.
func evalWithHeads(t *testing.T, patients int, extra ...string) (data, ckpt, out string) {
	t.Helper()
	data = synthSite(t, patients)
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(taskFile, []byte(evalTasksYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	ckpt = tinyCheckpoint(t, data, 0)
	out = filepath.Join(dir, "out")
	args := append([]string{"eval", "--data", data, "--tasks", taskFile, "--model", ckpt, "--seq", "16", "--out", out,
		"--grid=false", "--bootstrap", "20", "--iterations", "20", "--log-level", "warn"}, extra...)
	if _, err := runCmd(t, args...); err != nil {
		t.Fatal(err)
	}
	return data, ckpt, out
}

func TestEvalSavesHeadsAndPredictions(t *testing.T) {
	_, ckpt, out := evalWithHeads(t, 1500)
	var rep struct {
		Tasks []struct {
			Name  string `json:"name"`
			NTest int    `json:"n_test"`
		} `json:"tasks"`
	}
	readReport(t, out, &rep)
	rows, err := parquet.ReadFile[inference.EvalPredictionRow](filepath.Join(out, pipeline.PredictionsFile))
	if err != nil {
		t.Fatal(err)
	}
	perModel := map[string]map[string]int{}
	for _, r := range rows {
		if perModel[r.Task] == nil {
			perModel[r.Task] = map[string]int{}
		}
		perModel[r.Task][r.Model]++
		if !(r.Probability >= 0 && r.Probability <= 1) || r.PredictionTime%claims.MicrosPerDay != 0 {
			t.Fatalf("row %+v", r)
		}
	}
	m, err := model.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range rep.Tasks {
		if task.NTest == 0 {
			continue
		}
		if got := perModel[task.Name]; got["encoder"] != task.NTest || got["baseline"] != task.NTest {
			t.Errorf("task %s: %v prediction rows per model, report says %d test rows", task.Name, got, task.NTest)
		}
		h, err := inference.LoadHead(filepath.Join(out, pipeline.HeadsDir, task.Name))
		if err != nil {
			t.Fatal(err)
		}
		if h.Info.EncoderSHA256 != m.WeightsHash() || h.Info.Seq != 16 || h.Info.Pooling != "cls" || !h.Info.Frozen || h.Info.Task.Name != task.Name {
			t.Errorf("task %s: head %+v", task.Name, h.Info)
		}
	}
	if len(perModel) == 0 {
		t.Fatal("no predictions; the test checks nothing")
	}
}

func TestPredictAndEmbed(t *testing.T) {
	data, ckpt, out := evalWithHeads(t, 1500)
	head := filepath.Join(out, pipeline.HeadsDir, "t2d.json")
	dir := t.TempDir()
	pred := filepath.Join(dir, "pred", "t2d.parquet")
	if _, err := runCmd(t, "predict", "--model", ckpt, "--head", head, "--data", data, "--out", pred, "--log-level", "warn"); err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.ReadFile[inference.PredictionRow](pred)
	if err != nil {
		t.Fatal(err)
	}
	// Eligible by the rules predict documents: alive, a care event, a record at
	// least the look-back old, no E11 on record.
	t2d := tasks.Task{Name: "t2d", Prefixes: []string{"ICD10//E11"}, LookbackDays: 365}
	want := map[int64]int64{}
	ps := readPatients(t, data)
	for _, p := range ps {
		at, died, ok := lastCareDay(p)
		if !ok || died {
			continue
		}
		first, prior := p.Events[0].Time, false
		for _, e := range p.Events {
			first = min(first, e.Time)
			prior = prior || (e.Time <= at && t2d.Matches(e.Code))
		}
		if !prior && first+365*claims.MicrosPerDay <= at {
			want[p.ID] = at
		}
	}
	got := map[int64]int64{}
	for _, r := range rows {
		if _, dup := got[r.SubjectID]; dup {
			t.Fatalf("subject %d scored twice", r.SubjectID)
		}
		got[r.SubjectID] = r.PredictionTime
		if r.Task != "t2d" || !(r.Probability > 0 && r.Probability < 1) {
			t.Fatalf("row %+v", r)
		}
		if at, ok := want[r.SubjectID]; !ok || at != r.PredictionTime {
			t.Fatalf("row %+v: subject not eligible, or eligible at %d", r, at)
		}
	}
	if len(got) != len(want) || len(got) < len(ps)/4 {
		t.Fatalf("%d rows for %d eligible of %d patients", len(got), len(want), len(ps))
	}

	// At a fixed date every row has it.
	if _, err := runCmd(t, "predict", "--model", ckpt, "--head", strings.TrimSuffix(head, ".json"), "--data", data,
		"--at", "2015-06-01", "--out", pred, "--log-level", "warn"); err != nil {
		t.Fatal(err)
	}
	if rows, err = parquet.ReadFile[inference.PredictionRow](pred); err != nil {
		t.Fatal(err)
	}
	at, _ := parseDate("2015-06-01")
	for _, r := range rows {
		if r.PredictionTime != at {
			t.Fatalf("row %+v, want prediction time %d", r, at)
		}
	}

	for _, tc := range []struct {
		pooling string
		width   int
	}{{"cls", 16}, {"mean", 16}, {"both", 32}} {
		emb := filepath.Join(dir, "emb_"+tc.pooling+".parquet")
		if _, err := runCmd(t, "embed", "--model", ckpt, "--data", data, "--pooling", tc.pooling, "--seq", "16", "--out", emb, "--log-level", "warn"); err != nil {
			t.Fatal(err)
		}
		erows, err := parquet.ReadFile[inference.EmbeddingRow](emb)
		if err != nil {
			t.Fatal(err)
		}
		alive := 0
		for _, p := range ps {
			if _, died, ok := lastCareDay(p); ok && !died {
				alive++
			}
		}
		if len(erows) != alive {
			t.Errorf("pooling %s: %d embeddings for %d living patients with care", tc.pooling, len(erows), alive)
		}
		for _, r := range erows {
			if len(r.Embedding) != tc.width {
				t.Fatalf("pooling %s: subject %d has %d values, want %d", tc.pooling, r.SubjectID, len(r.Embedding), tc.width)
			}
		}
	}
}

func TestPredictRefusesAnotherEncoder(t *testing.T) {
	data, ckpt, out := evalWithHeads(t, 1500)
	m, err := model.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Flatten()
	v[0] += 0.5
	if err := m.Unflatten(v); err != nil {
		t.Fatal(err)
	}
	vocab, err := os.ReadFile(filepath.Join(ckpt, model.VocabFile))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := m.Save(other, vocab); err != nil {
		t.Fatal(err)
	}
	orig, err := model.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(out, pipeline.HeadsDir, "t2d.json")
	pred := filepath.Join(t.TempDir(), "p.parquet")
	_, err = runCmd(t, "predict", "--model", other, "--head", head, "--data", data, "--out", pred, "--log-level", "warn")
	if !errors.Is(err, inference.ErrEncoderMismatch) {
		t.Fatalf("predict on another encoder: %v, want the hash refusal", err)
	}
	for _, s := range []string{orig.WeightsHash(), m.WeightsHash(), head, filepath.Join(other, model.ModelFile), ckpt} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if _, err := os.Stat(pred); err == nil {
		t.Error("output written despite the refusal")
	}
}

func TestEvalSavesFineTunedEncoder(t *testing.T) {
	data, ckpt, out := evalWithHeads(t, 1200, "--frozen=false", "--epochs", "1")
	h, err := inference.LoadHead(filepath.Join(out, pipeline.HeadsDir, "t2d"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(out, pipeline.HeadsDir, "t2d.encoder")
	if h.Info.Frozen || h.EncoderDir() != enc {
		t.Fatalf("fine-tuned head: frozen %v, encoder %s", h.Info.Frozen, h.EncoderDir())
	}
	pred := filepath.Join(t.TempDir(), "p.parquet")
	_, err = runCmd(t, "predict", "--model", ckpt, "--head", filepath.Join(out, pipeline.HeadsDir, "t2d"), "--data", data, "--out", pred, "--log-level", "warn")
	if !errors.Is(err, inference.ErrEncoderMismatch) || !strings.Contains(err.Error(), "t2d.encoder") {
		t.Fatalf("fine-tuned head on its base encoder: %v, want a refusal naming t2d.encoder", err)
	}
	if _, err := runCmd(t, "predict", "--model", enc, "--head", filepath.Join(out, pipeline.HeadsDir, "t2d"), "--data", data, "--out", pred, "--log-level", "warn"); err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.ReadFile[inference.PredictionRow](pred)
	if err != nil || len(rows) == 0 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
}
