package claims

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// A MEDS dataset may say which subjects are for training, tuning and final
// evaluation, and benchmarks built on it are only comparable when every tool keeps
// to that assignment: a held-out subject a model was pretrained on is no longer held
// out. MEDS says it in one of two ways, both read here: metadata/subject_splits.parquet
// (subject_id int64, split string), or data shards laid out in data/<split>/.

// The split names MEDS defines; datasets may use others.
const (
	SplitTrain   = "train"
	SplitTuning  = "tuning"
	SplitHeldOut = "held_out"
)

// SubjectSplitsFile is where a MEDS dataset keeps its subject split.
const SubjectSplitsFile = "metadata/subject_splits.parquet"

// DatasetSplits is a dataset's own assignment of subjects to named splits.
type DatasetSplits struct {
	// Source says where the assignment came from: SubjectSplitsFile, or
	// "data/train|tuning|held_out/" for the directory layout.
	Source string
	// Subjects maps subject id to split name.
	Subjects map[int64]string
}

// splitLayoutSource is DatasetSplits.Source for the data/<split>/ layout.
const splitLayoutSource = "data/train|tuning|held_out/"

// ReadDatasetSplits returns the split a MEDS dataset at dir declares:
// metadata/subject_splits.parquet when it has one, else the data/<split>/ layout
// when every shard lies in a subdirectory of data/ and one of those is train, tuning
// or held_out. It returns nil, nil when dir declares no split (an OMOP export
// never does).
func ReadDatasetSplits(dir string) (*DatasetSplits, error) {
	path := filepath.Join(dir, filepath.FromSlash(SubjectSplitsFile))
	if _, err := os.Stat(path); err == nil {
		m, err := ReadSubjectSplits(path)
		if err != nil {
			return nil, err
		}
		return &DatasetSplits{Source: SubjectSplitsFile, Subjects: m}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("subject splits: %w", err)
	}
	return readSplitLayout(dir)
}

// ReadSubjectSplits reads a subject_splits.parquet file. A null or duplicate
// subject, or an empty or non-UTF-8 split name, is an error naming the row.
func ReadSubjectSplits(path string) (map[int64]string, error) {
	cols, types, err := readColumns(path, []colSpec{
		{name: "subject_id", check: wantInt64},
		{name: "split", check: wantString},
	})
	if err != nil {
		return nil, fmt.Errorf("subject splits: %w", err)
	}
	out := make(map[int64]string, len(cols[0]))
	for i := range cols[0] {
		row := int64(i + 1)
		sv, nv := cols[0][i], cols[1][i]
		if sv.IsNull() {
			return nil, fmt.Errorf("subject splits: %w", &RowError{File: path, Row: row, Column: "subject_id", Err: ErrNull})
		}
		if nv.IsNull() {
			return nil, fmt.Errorf("subject splits: %w", &RowError{File: path, Row: row, Column: "split", Err: ErrNull})
		}
		id, name := int64Of(types[0], sv), string(nv.ByteArray())
		if name == "" || !utf8.ValidString(name) {
			return nil, fmt.Errorf("subject splits: %w", &RowError{File: path, Row: row, Column: "split", Err: fmt.Errorf("split name %q is empty or not UTF-8", name)})
		}
		if prev, ok := out[id]; ok {
			return nil, fmt.Errorf("subject splits: %w", &RowError{File: path, Row: row, Column: "subject_id",
				Err: fmt.Errorf("subject %d is listed twice (%s and %s): a subject is in one split", id, prev, name)})
		}
		out[id] = name
	}
	return out, nil
}

// readSplitLayout reads the split of the data/<split>/ layout from the subject_id
// column of each shard; nil when the shards are not laid out so.
func readSplitLayout(dir string) (*DatasetSplits, error) {
	data := filepath.Join(dir, "data")
	byShard := map[string]string{}
	named := false
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".parquet") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(data, path)
		if err != nil {
			return err
		}
		first, _, nested := strings.Cut(filepath.ToSlash(rel), "/")
		if !nested {
			first = ""
		}
		switch first {
		case SplitTrain, SplitTuning, SplitHeldOut:
			named = true
		}
		byShard[path] = first
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("subject splits: %w", err)
	}
	if !named || slices.Contains(slices.Collect(maps.Values(byShard)), "") {
		return nil, nil
	}
	shards := slices.Sorted(maps.Keys(byShard))
	out := map[int64]string{}
	for _, path := range shards {
		cols, types, err := readColumns(path, []colSpec{{name: "subject_id", check: wantInt64}})
		if err != nil {
			return nil, fmt.Errorf("subject splits from the data/<split>/ layout: %w", err)
		}
		name := byShard[path]
		for i, v := range cols[0] {
			if v.IsNull() {
				continue // the data reader reports it
			}
			id := int64Of(types[0], v)
			if prev, ok := out[id]; ok && prev != name {
				return nil, fmt.Errorf("subject splits from the data/<split>/ layout: %w", &RowError{File: path, Row: int64(i + 1), Column: "subject_id",
					Err: fmt.Errorf("subject %d is in data/%s/ and data/%s/: a subject is in one split", id, prev, name)})
			}
			out[id] = name
		}
	}
	return &DatasetSplits{Source: splitLayoutSource, Subjects: out}, nil
}

// subjectSplitRow is one row of subject_splits.parquet.
type subjectSplitRow struct {
	SubjectID int64  `parquet:"subject_id"`
	Split     string `parquet:"split,dict"`
}

// WriteSubjectSplits writes subjects (id -> split name) to path as
// subject_splits.parquet, sorted by subject id, through a temporary file renamed
// into place.
func WriteSubjectSplits(path string, subjects map[int64]string) error {
	ids := slices.Collect(maps.Keys(subjects))
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	rows := make([]subjectSplitRow, len(ids))
	for i, id := range ids {
		name := subjects[id]
		if name == "" || !utf8.ValidString(name) {
			return fmt.Errorf("subject splits %s: subject %d: split name %q is empty or not UTF-8", path, id, name)
		}
		rows[i] = subjectSplitRow{SubjectID: id, Split: name}
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		pw := parquet.NewGenericWriter[subjectSplitRow](w, parquet.Compression(&parquet.Snappy), parquet.CreatedBy("fedclaims", "", ""))
		if _, err := pw.Write(rows); err != nil {
			return err
		}
		return pw.Close()
	})
}
