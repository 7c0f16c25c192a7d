package inference

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// sliceReader is a claims.Reader over patients.
type sliceReader struct{ ps []*claims.Patient }

func (r *sliceReader) Next(ctx context.Context) (*claims.Patient, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(r.ps) == 0 {
		return nil, io.EOF
	}
	p := r.ps[0]
	r.ps = r.ps[1:]
	return p, nil
}

func (r *sliceReader) Close() error { return nil }

func day(d int64) int64 { return d * claims.MicrosPerDay }

func ev(d int64, code string) claims.Event {
	return claims.Event{Time: day(d) + 9*3600e6, Code: code, Value: float32(math.NaN())}
}

// cohort is one patient per rule of predictionTime and eligible.
func cohort() []*claims.Patient {
	visit := func(d int64) []claims.Event {
		return []claims.Event{ev(d, "ICD10//I10"), ev(d, "ATC//A10BA02"), ev(d, "ICD10//J45")}
	}
	join := func(es ...[]claims.Event) []claims.Event {
		var out []claims.Event
		for _, e := range es {
			out = append(out, e...)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Time < out[j].Time })
		return out
	}
	birth := []claims.Event{{Time: day(-20000), Code: claims.CodeBirth, Value: float32(math.NaN())}}
	return []*claims.Patient{
		{ID: 1, Events: join(birth, visit(1000), visit(1500))},                                             // scored
		{ID: 2, Events: join(birth, visit(1000), visit(1400), []claims.Event{ev(1550, claims.CodeDeath)})}, // dies on day 1550
		{ID: 3, Events: birth},                          // no care event
		{ID: 4, Events: join(visit(1400), visit(1450))}, // no birth: history from day 1400
		{ID: 5, Events: join(birth, visit(1000), []claims.Event{ev(1200, "ICD10//E11.9")}, visit(1450))}, // the target already on record
		{ID: 6, Events: join(birth, visit(1000), visit(1490), []claims.Event{ev(1495, "ICD10//E11.9")})}, // the target on its last care day
	}
}

func vocabOf(t *testing.T, ps []*claims.Patient) *tokenizer.Vocab {
	t.Helper()
	c := tokenizer.NewCounter()
	for _, p := range ps {
		c.Add(p)
	}
	table, err := c.Table(1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.New(table, 1)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPredictEligibility(t *testing.T) {
	ps := cohort()
	vocab := vocabOf(t, ps)
	enc, err := model.New(model.Config{Vocab: vocab.Len(), Hidden: 8, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}, 3)
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float32, 8)
	for i := range w {
		w[i] = float32(i%3) - 1
	}
	ones := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	c := &model.Classifier{Encoder: enc, Pooling: model.PoolCLS, W: w, B: -1, Mean: make([]float64, 8), Scale: ones}
	task := tasks.Task{Name: "t2d", Kind: tasks.Disease, Prefixes: []string{"ICD10//E11"}, HorizonDays: 365, LookbackDays: 365}
	h, err := NewHead(c, task, 12, enc.WeightsHash(), "ckpt", "")
	if err != nil {
		t.Fatal(err)
	}
	bound, err := h.Bind(enc, enc.WeightsHash(), "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		at      int64
		scored  map[int64]int64 // subject -> prediction time
		skipped map[string]int
	}{
		{"each patient's last care day + 1", 0,
			map[int64]int64{1: day(1501)},
			map[string]int{SkipDead: 1, SkipNoHistory: 1, SkipLookback: 1, SkipPrior: 2}},
		{"a date before the death and the late diagnosis", day(1460),
			map[int64]int64{1: day(1460), 2: day(1460), 6: day(1460)},
			map[string]int{SkipNoHistory: 1, SkipLookback: 1, SkipPrior: 1}},
		{"a date after the death and a year after 4's first event", day(1800),
			map[int64]int64{1: day(1800), 4: day(1800)},
			map[string]int{SkipDead: 1, SkipNoHistory: 1, SkipPrior: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			preds, sum, err := Predict(context.Background(), &sliceReader{cohort()}, vocab, []Bound{{Head: h, Classifier: bound}}, Options{At: tc.at, Batch: 2})
			if err != nil {
				t.Fatal(err)
			}
			got := map[int64]int64{}
			for _, p := range preds {
				got[p.SubjectID] = p.Time
				if p.Task != "t2d" || !(p.Prob > 0 && p.Prob < 1) {
					t.Errorf("row %+v", p)
				}
			}
			if !reflect.DeepEqual(got, tc.scored) {
				t.Errorf("scored %v, want %v", got, tc.scored)
			}
			if !reflect.DeepEqual(sum.Skipped["t2d"], tc.skipped) || sum.Patients != 6 || sum.Scored["t2d"] != len(tc.scored) {
				t.Errorf("summary %+v, want skipped %v", sum, tc.skipped)
			}
			// The probabilities are the head's on the same histories.
			tok, _ := tokenizer.NewEncoder(vocab, 12)
			for _, p := range preds {
				var pat *claims.Patient
				for _, q := range ps {
					if q.ID == p.SubjectID {
						pat = q
					}
				}
				want := bound.PredictAll([]model.Sequence{model.FromEncoding(tok.Encode(pat, p.Time))}, 1)[0]
				if math.Abs(want-p.Prob) > 1e-6 {
					t.Errorf("subject %d: %v, head on its history %v", p.SubjectID, p.Prob, want)
				}
			}
		})
	}
}

func TestEmbedAndParquet(t *testing.T) {
	vocab := vocabOf(t, cohort())
	enc, err := model.New(model.Config{Vocab: vocab.Len(), Hidden: 8, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, LNEps: 1e-5}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, pool := range model.Poolings() {
		t.Run(string(pool), func(t *testing.T) {
			embs, sum, err := Embed(context.Background(), &sliceReader{cohort()}, enc, vocab, EmbedOptions{Pooling: pool, Seq: 10})
			if err != nil {
				t.Fatal(err)
			}
			// Alive with a care event: everyone but the dead (2) and the birth-only (3).
			var ids []int64
			for _, e := range embs {
				ids = append(ids, e.SubjectID)
			}
			if !reflect.DeepEqual(ids, []int64{1, 4, 5, 6}) || sum.Skipped[""][SkipDead] != 1 {
				t.Fatalf("embedded %v, skipped %v", ids, sum.Skipped)
			}
			path := filepath.Join(t.TempDir(), "emb.parquet")
			if err := WriteEmbeddings(path, embs, map[string]string{"fedclaims.pooling": string(pool)}); err != nil {
				t.Fatal(err)
			}
			rows, err := parquet.ReadFile[EmbeddingRow](path)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(embs) {
				t.Fatalf("%d rows, wrote %d", len(rows), len(embs))
			}
			for i, r := range rows {
				if r.SubjectID != embs[i].SubjectID || r.PredictionTime != embs[i].Time || !reflect.DeepEqual(r.Embedding, embs[i].Vector) || len(r.Embedding) != pool.Width(8) {
					t.Fatalf("row %d: %+v, wrote %+v", i, r, embs[i])
				}
			}
		})
	}
}

func mustOpen(t *testing.T, path string) (io.ReaderAt, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

func TestPredictionsParquetSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.parquet")
	in := []Prediction{{SubjectID: 7, Time: day(19000), Task: "t2d", Prob: 0.25}, {SubjectID: 9, Time: day(19001), Task: "statins", Prob: 0.5}}
	if err := WritePredictions(path, in, map[string]string{"fedclaims.encoder_sha256": "x"}); err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.ReadFile[PredictionRow](path)
	if err != nil {
		t.Fatal(err)
	}
	want := []PredictionRow{{7, day(19000), "t2d", 0.25}, {9, day(19001), "statins", 0.5}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	f, err := parquet.OpenFile(mustOpen(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := f.Lookup("fedclaims.encoder_sha256"); !ok || v != "x" {
		t.Errorf("metadata %q %v", v, ok)
	}
	col, _ := f.Schema().Lookup("prediction_time")
	lt := col.Node.Type().LogicalType()
	if ts, ok := lt.Value.(*format.TimestampType); !ok || ts.IsAdjustedToUTC || !strings.Contains(ts.Unit.String(), "MICROS") {
		t.Errorf("prediction_time logical type %+v, want a timestamp in microseconds not adjusted to UTC", lt)
	}
}
