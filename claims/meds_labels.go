package claims

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// MEDS task labels (subject_id, prediction_time, boolean_value) are how benchmark
// task sets are handed between tools: read here so that fedclaims can evaluate on
// a task someone else defined, written so that fedclaims' own tasks can be scored
// by someone else's model. Only binary labels (boolean_value) are read, since every
// fedclaims task is binary.

// MEDSLabel is one row of a MEDS label file.
type MEDSLabel struct {
	SubjectID int64
	// PredictionTime is microseconds since the Unix epoch (UTC). MEDS lets a model
	// use the subject's data up to and including it.
	PredictionTime int64
	// Value is boolean_value; Known is false where boolean_value is null.
	Value, Known bool
}

// labelRow is one row of a MEDS label file as fedclaims writes it. The time is not
// adjusted to UTC, which Arrow reads as MEDS' timezone-less timestamp[us]; the
// values are UTC, as in the data shards.
type labelRow struct {
	SubjectID      int64 `parquet:"subject_id"`
	PredictionTime int64 `parquet:"prediction_time,timestamp(microsecond:local)"`
	BooleanValue   *bool `parquet:"boolean_value,optional"`
}

// ReadMEDSLabels reads one MEDS label parquet file. A null subject_id or
// prediction_time is an error naming the row; a file without boolean_value holds
// no binary labels and is refused.
func ReadMEDSLabels(path string) ([]MEDSLabel, error) {
	cols, types, err := readColumns(path, []colSpec{
		{name: "subject_id", check: wantInt64},
		{name: "prediction_time", check: wantTime},
		{name: "boolean_value", check: wantBool},
	})
	if err != nil {
		if errors.Is(err, ErrMissingColumn) && strings.Contains(err.Error(), "boolean_value") {
			return nil, fmt.Errorf("meds labels: %w (fedclaims evaluates binary tasks only)", err)
		}
		return nil, fmt.Errorf("meds labels: %w", err)
	}
	conv, err := timeConverter(types[1])
	if err != nil {
		return nil, fmt.Errorf("meds labels: %w", &RowError{File: path, Column: "prediction_time", Err: err})
	}
	out := make([]MEDSLabel, len(cols[0]))
	for i := range out {
		row := int64(i + 1)
		s, t, b := cols[0][i], cols[1][i], cols[2][i]
		switch {
		case s.IsNull():
			return nil, fmt.Errorf("meds labels: %w", &RowError{File: path, Row: row, Column: "subject_id", Err: ErrNull})
		case t.IsNull():
			return nil, fmt.Errorf("meds labels: %w", &RowError{File: path, Row: row, Column: "prediction_time", Err: ErrNull})
		}
		out[i] = MEDSLabel{SubjectID: int64Of(types[0], s), PredictionTime: conv(t)}
		if !b.IsNull() {
			out[i].Value, out[i].Known = b.Boolean(), true
		}
	}
	return out, nil
}

// ReadLabelDir reads a MEDS task root: every top-level LABELS/<task>.parquet, and
// every LABELS/<task>/ directory, whose **/*.parquet shards are read in lexical
// order, is one task named by the file or directory. It returns the labels by
// task name, and an error when the directory holds no task.
func ReadLabelDir(dir string) (map[string][]MEDSLabel, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("meds labels: %w", err)
	}
	out := map[string][]MEDSLabel{}
	for _, e := range ents {
		name, path := e.Name(), filepath.Join(dir, e.Name())
		if strings.HasPrefix(name, ".") {
			continue
		}
		var files []string
		switch {
		case e.IsDir():
			err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") && !strings.HasPrefix(d.Name(), ".") {
					files = append(files, p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("meds labels: %w", err)
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("meds labels %s: task directory %s holds no .parquet shard", dir, name)
			}
		case strings.HasSuffix(name, ".parquet"):
			files, name = []string{path}, strings.TrimSuffix(name, ".parquet")
		default:
			continue
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("meds labels %s: task %s is both %s.parquet and %s/", dir, name, name, name)
		}
		slices.Sort(files)
		rows := []MEDSLabel{}
		for _, f := range files {
			r, err := ReadMEDSLabels(f)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r...)
		}
		out[name] = rows
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("meds labels %s: no task (want <task>.parquet files or <task>/ directories of MEDS label parquet)", dir)
	}
	return out, nil
}

// WriteMEDSLabels writes rows to path as a MEDS label file (subject_id int64,
// prediction_time timestamp[us], boolean_value bool), through a temporary file
// renamed into place. Rows are written in the order given.
func WriteMEDSLabels(path string, rows []MEDSLabel) error {
	out := make([]labelRow, len(rows))
	vals := make([]bool, len(rows))
	for i, r := range rows {
		out[i] = labelRow{SubjectID: r.SubjectID, PredictionTime: r.PredictionTime}
		if r.Known {
			vals[i] = r.Value
			out[i].BooleanValue = &vals[i]
		}
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		pw := parquet.NewGenericWriter[labelRow](w, parquet.Compression(&parquet.Snappy), parquet.CreatedBy("fedclaims", "", ""))
		if _, err := pw.Write(out); err != nil {
			return err
		}
		return pw.Close()
	})
}
