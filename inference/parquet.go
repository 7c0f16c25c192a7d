package inference

import (
	"fmt"
	"io"
	"sort"

	"github.com/parquet-go/parquet-go"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// The parquet files. prediction_time is a timestamp in microseconds not adjusted
// to UTC, which Arrow reads as the timezone-less timestamp[us] that MEDS label
// files use; the values are UTC.

// PredictionRow is one row of predict's parquet file.
type PredictionRow struct {
	SubjectID      int64   `parquet:"subject_id"`
	PredictionTime int64   `parquet:"prediction_time,timestamp(microsecond:local)"`
	Task           string  `parquet:"task,dict"`
	Probability    float64 `parquet:"probability"`
}

// EvalPredictionRow is one row of eval's OUT/predictions.parquet: a test-split
// prediction of one model (eval.ModelEncoder, eval.ModelBaseline, ...) with its
// label.
type EvalPredictionRow struct {
	SubjectID      int64   `parquet:"subject_id"`
	PredictionTime int64   `parquet:"prediction_time,timestamp(microsecond:local)"`
	Task           string  `parquet:"task,dict"`
	Model          string  `parquet:"model,dict"`
	Probability    float64 `parquet:"probability"`
	Label          bool    `parquet:"label"`
}

// EmbeddingRow is one row of embed's parquet file: the pooled embedding as a
// list<float> column, as wide as the pooling makes it.
type EmbeddingRow struct {
	SubjectID      int64     `parquet:"subject_id"`
	PredictionTime int64     `parquet:"prediction_time,timestamp(microsecond:local)"`
	Embedding      []float32 `parquet:"embedding,list"`
}

// writeParquet writes rows to path through a temporary file, with the
// key/value metadata meta.
func writeParquet[T any](path string, rows []T, meta map[string]string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		opts := []parquet.WriterOption{parquet.Compression(&parquet.Snappy), parquet.CreatedBy("fedclaims", "", "")}
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			opts = append(opts, parquet.KeyValueMetadata(k, meta[k]))
		}
		pw := parquet.NewGenericWriter[T](w, opts...)
		if _, err := pw.Write(rows); err != nil {
			return fmt.Errorf("parquet rows: %w", err)
		}
		if err := pw.Close(); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		return nil
	})
}

// WritePredictions writes predict's rows to path.
func WritePredictions(path string, preds []Prediction, meta map[string]string) error {
	rows := make([]PredictionRow, len(preds))
	for i, p := range preds {
		rows[i] = PredictionRow{SubjectID: p.SubjectID, PredictionTime: p.Time, Task: p.Task, Probability: p.Prob}
	}
	return writeParquet(path, rows, meta)
}

// WriteEvalPredictions writes eval's test predictions to path.
func WriteEvalPredictions(path string, rows []EvalPredictionRow) error {
	return writeParquet(path, rows, nil)
}

// WriteEmbeddings writes embed's rows to path.
func WriteEmbeddings(path string, embs []Embedding, meta map[string]string) error {
	rows := make([]EmbeddingRow, len(embs))
	for i, e := range embs {
		rows[i] = EmbeddingRow{SubjectID: e.SubjectID, PredictionTime: e.Time, Embedding: e.Vector}
	}
	return writeParquet(path, rows, meta)
}
