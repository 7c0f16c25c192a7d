package claims

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// metadata/dataset.json names a MEDS dataset and the ETL that made it, and its
// subject split says who may be trained on. A report that scores a model must be
// able to say which dataset, at which MEDS version, it scored; and a dataset that
// fedclaims writes must say that fedclaims made it and carry the split fedclaims
// used, so that other tools keep to it.

// DatasetMetadataFile is where a MEDS dataset keeps its dataset metadata.
const DatasetMetadataFile = "metadata/dataset.json"

// ETLName is the etl_name fedclaims writes into dataset.json when the caller names
// no other.
const ETLName = "fedclaims"

// withDefaults fills what the writer always states: the MEDS version, and fedclaims
// as the ETL ("dev" as its version unless the caller gives the build's).
func (m DatasetMetadata) withDefaults() DatasetMetadata {
	if m.MEDSVer == "" {
		m.MEDSVer = MEDSVersion
	}
	if m.ETLName == "" {
		m.ETLName = ETLName
	}
	if m.ETLVersion == "" {
		m.ETLVersion = "dev"
	}
	return m
}

// String names the dataset for reports: "h01 (MEDS 0.4, fedclaims synth dev)".
func (m DatasetMetadata) String() string {
	s := m.Name
	if s == "" {
		s = "unnamed dataset"
	}
	if m.Version != "" {
		s += " " + m.Version
	}
	detail := "MEDS " + m.MEDSVer
	if m.MEDSVer == "" {
		detail = "MEDS version not stated"
	}
	if m.ETLName != "" {
		detail += ", " + m.ETLName
		if m.ETLVersion != "" {
			detail += " " + m.ETLVersion
		}
	}
	return s + " (" + detail + ")"
}

// ReadDatasetMetadata reads metadata/dataset.json of the MEDS dataset at dir; nil,
// nil when it has none. A file that is not a JSON object of the MEDS dataset
// metadata schema is an error naming it.
func ReadDatasetMetadata(dir string) (*DatasetMetadata, error) {
	path := filepath.Join(dir, filepath.FromSlash(DatasetMetadataFile))
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dataset metadata: %w", err)
	}
	var m DatasetMetadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("dataset metadata %s: %w", path, err)
	}
	return &m, nil
}

// Metadata reads the dataset's metadata/dataset.json, nil when it has none.
func (r *MEDSReader) Metadata() (*DatasetMetadata, error) { return ReadDatasetMetadata(r.dir) }

// SubjectSplits makes the writer record the split name split(id) of every
// patient it writes and write them to metadata/subject_splits.parquet; a patient
// whose split is "" is left out of it.
func SubjectSplits(split func(id int64) string) WriterOption {
	return func(w *MEDSWriter) { w.splitOf = split }
}

// recordSplit notes p's split when SubjectSplits asked for them and p leaves rows.
func (w *MEDSWriter) recordSplit(p *Patient) {
	if w.splitOf == nil || (p.Sex == SexUnknown && !p.HasBirth && !p.HasObservationEnd && len(p.Events) == 0) {
		return
	}
	name := w.splitOf(p.ID)
	if name == "" {
		return // in no split
	}
	if w.splits == nil {
		w.splits = make(map[int64]string)
	}
	w.splits[p.ID] = name
}

// writeSplits writes metadata/subject_splits.parquet into the temporary dataset.
func (w *MEDSWriter) writeSplits() error {
	if w.splitOf == nil {
		return nil
	}
	if err := WriteSubjectSplits(filepath.Join(w.tmp, filepath.FromSlash(SubjectSplitsFile)), w.splits); err != nil {
		return fmt.Errorf("meds writer: %w", err)
	}
	return nil
}
