package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// MEDSVersion is the MEDS schema version the writer produces.
const MEDSVersion = "0.4"

// CodeInfo describes one code for metadata/codes.parquet.
type CodeInfo struct {
	Code        string
	Description string
	// Parents are the codes one level up, prefixed like Code.
	Parents []string
}

// DatasetMetadata is metadata/dataset.json. Leave CreatedAt empty when output must be
// byte-identical across runs.
type DatasetMetadata struct {
	Name       string `json:"dataset_name"`
	Version    string `json:"dataset_version,omitempty"`
	ETLName    string `json:"etl_name,omitempty"`
	ETLVersion string `json:"etl_version,omitempty"`
	MEDSVer    string `json:"meds_version"`
	CreatedAt  string `json:"created_at,omitempty"`
}

// medsRow is one row of a MEDS data shard. Time and Value are pointers because both
// columns are nullable; they point into the writer's batch arrays, not the heap.
//
// The time column is a timestamp not adjusted to UTC, which Arrow reads as the
// timezone-less timestamp[us] the MEDS schema declares; the values are UTC.
type medsRow struct {
	SubjectID int64    `parquet:"subject_id"`
	Time      *int64   `parquet:"time,optional,timestamp(microsecond:local)"`
	Code      string   `parquet:"code,dict"`
	Value     *float32 `parquet:"numeric_value,optional"`
}

// codeRow is one row of metadata/codes.parquet.
type codeRow struct {
	Code        string   `parquet:"code"`
	Description string   `parquet:"description,optional"`
	ParentCodes []string `parquet:"parent_codes,list"`
}

const (
	defaultShardRows = 4 << 20
	rowGroupRows     = 1 << 17
	writeBatchRows   = 4096
)

// WriterOption configures a MEDSWriter.
type WriterOption func(*MEDSWriter)

// ShardRows sets how many rows a data shard holds before the writer starts the next
// one; a patient is never split across shards, so a shard may run over by one patient.
func ShardRows(n int) WriterOption {
	return func(w *MEDSWriter) {
		if n > 0 {
			w.shardRows = n
		}
	}
}

// Metadata sets metadata/dataset.json; by default it names the dataset after its
// directory.
func Metadata(m DatasetMetadata) WriterOption {
	return func(w *MEDSWriter) { w.meta = m }
}

// Codes sets the rows of metadata/codes.parquet; without it that file is not written.
func Codes(codes []CodeInfo) WriterOption {
	return func(w *MEDSWriter) { w.codes = codes }
}

// SetCodes sets the rows of metadata/codes.parquet as the Codes option does, for
// a writer whose codes are known only once its patients are written (a
// converter's, from its reader's CodeDescriber). It must come before Close.
func (w *MEDSWriter) SetCodes(codes []CodeInfo) { w.codes = codes }

// MEDSWriter writes a MEDS dataset directory one patient at a time: data/NNNN.parquet
// shards sorted by subject then time, metadata/codes.parquet and
// metadata/dataset.json. Everything goes to a temporary directory next to the target,
// which Close renames into place, so a failed or abandoned write leaves nothing
// half-written at the target.
//
// Patients must be written in increasing ID order, as MEDS readers expect.
type MEDSWriter struct {
	dir, tmp  string
	shardRows int
	meta      DatasetMetadata
	codes     []CodeInfo
	splitOf   func(id int64) string // SubjectSplits; nil writes no subject_splits.parquet
	splits    map[int64]string

	shard     int
	shardRowN int
	f         *os.File
	pw        *parquet.GenericWriter[medsRow]

	rows   []medsRow
	times  []int64
	values []float32

	lastID  int64
	started bool
	closed  bool
}

// NewMEDSWriter starts writing a MEDS dataset that Close will place at dir, replacing
// what is there.
func NewMEDSWriter(dir string, opts ...WriterOption) (*MEDSWriter, error) {
	dir = filepath.Clean(dir)
	w := &MEDSWriter{dir: dir, shardRows: defaultShardRows}
	w.meta = DatasetMetadata{Name: filepath.Base(dir)}
	for _, o := range opts {
		o(w)
	}
	w.meta = w.meta.withDefaults()
	if err := replaceable(dir); err != nil {
		return nil, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("meds writer: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("meds writer: %w", err)
	}
	w.tmp = tmp
	if err := os.MkdirAll(filepath.Join(tmp, "data"), 0o755); err != nil {
		w.Abort()
		return nil, fmt.Errorf("meds writer: %w", err)
	}
	w.rows = make([]medsRow, 0, writeBatchRows)
	w.times = make([]int64, writeBatchRows)
	w.values = make([]float32, writeBatchRows)
	return w, nil
}

// Write appends one patient: a GENDER//<sex> row and a MEDS_BIRTH row when known,
// then its events in time order, with a MEDS_OBSERVATION_END row (CodeObservationEnd)
// in its time's place among them when the observation end is known (after the
// events of the same time). A patient with none of these leaves no rows, so MEDS has
// no trace of it.
func (w *MEDSWriter) Write(p *Patient) error {
	if w.closed {
		return errors.New("meds writer: write after close")
	}
	if w.started && p.ID <= w.lastID {
		return fmt.Errorf("meds writer: subject %d written after subject %d: patients must come in increasing id order", p.ID, w.lastID)
	}
	for i := range p.Events {
		if i > 0 && p.Events[i].Time < p.Events[i-1].Time {
			return fmt.Errorf("meds writer: subject %d: event %d (%s) is earlier than the one before it", p.ID, i, p.Events[i].Code)
		}
		if c := p.Events[i].Code; c == "" || !utf8.ValidString(c) {
			return fmt.Errorf("meds writer: subject %d: event %d: code %q is empty or not UTF-8", p.ID, i, c)
		}
	}
	w.started, w.lastID = true, p.ID
	w.recordSplit(p)
	if w.pw == nil {
		if err := w.openShard(); err != nil {
			return err
		}
	}
	if p.Sex != SexUnknown {
		if err := w.add(p.ID, nil, SystemGender+Separator+p.Sex.String(), float32(math.NaN())); err != nil {
			return err
		}
	}
	if p.HasBirth {
		b := p.Birth
		if err := w.add(p.ID, &b, CodeBirth, float32(math.NaN())); err != nil {
			return err
		}
	}
	obsEnd := p.HasObservationEnd
	for i := range p.Events {
		e := &p.Events[i]
		if obsEnd && e.Time > p.ObservationEnd {
			if err := w.addObservationEnd(p); err != nil {
				return err
			}
			obsEnd = false
		}
		t := e.Time
		if err := w.add(p.ID, &t, e.Code, e.Value); err != nil {
			return err
		}
	}
	if obsEnd {
		if err := w.addObservationEnd(p); err != nil {
			return err
		}
	}
	if w.shardRowN >= w.shardRows {
		return w.closeShard()
	}
	return nil
}

func (w *MEDSWriter) addObservationEnd(p *Patient) error {
	t := p.ObservationEnd
	return w.add(p.ID, &t, CodeObservationEnd, float32(math.NaN()))
}

// add buffers one row. A nil t is a static fact (null time).
func (w *MEDSWriter) add(id int64, t *int64, code string, v float32) error {
	i := len(w.rows)
	r := medsRow{SubjectID: id, Code: code}
	if t != nil {
		w.times[i] = *t
		r.Time = &w.times[i]
	}
	if !math.IsNaN(float64(v)) {
		w.values[i] = v
		r.Value = &w.values[i]
	}
	w.rows = append(w.rows, r)
	w.shardRowN++
	if len(w.rows) == cap(w.rows) {
		return w.flushRows()
	}
	return nil
}

func (w *MEDSWriter) flushRows() error {
	if len(w.rows) == 0 {
		return nil
	}
	if _, err := w.pw.Write(w.rows); err != nil {
		return fmt.Errorf("meds writer: %s: %w", w.f.Name(), err)
	}
	w.rows = w.rows[:0]
	return nil
}

func (w *MEDSWriter) openShard() error {
	name := filepath.Join(w.tmp, "data", fmt.Sprintf("%04d.parquet", w.shard))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("meds writer: %w", err)
	}
	w.f = f
	w.pw = parquet.NewGenericWriter[medsRow](f,
		parquet.Compression(&parquet.Snappy),
		parquet.MaxRowsPerRowGroup(rowGroupRows),
		parquet.CreatedBy("fedclaims", "", ""),
	)
	w.shardRowN = 0
	return nil
}

func (w *MEDSWriter) closeShard() error {
	if w.pw == nil {
		return nil
	}
	err := w.flushRows()
	if err == nil {
		if err = w.pw.Close(); err != nil {
			err = fmt.Errorf("meds writer: %s: %w", w.f.Name(), err)
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("meds writer: %w", cerr)
	}
	w.pw, w.f = nil, nil
	w.shard++
	return err
}

// Close finishes the last shard, writes the metadata and moves the dataset into
// place. After an error the target is untouched and the temporary files are removed.
func (w *MEDSWriter) Close() error {
	if w.closed {
		return nil
	}
	err := w.finish()
	w.closed = true
	if err != nil {
		os.RemoveAll(w.tmp)
	}
	return err
}

func (w *MEDSWriter) finish() error {
	if err := w.closeShard(); err != nil {
		return err
	}
	if w.shard == 0 {
		// An empty dataset still has one (empty) shard, so that readers see its schema.
		if err := w.openShard(); err != nil {
			return err
		}
		if err := w.closeShard(); err != nil {
			return err
		}
	}
	meta := filepath.Join(w.tmp, "metadata")
	if err := os.MkdirAll(meta, 0o755); err != nil {
		return fmt.Errorf("meds writer: %w", err)
	}
	b, err := json.MarshalIndent(w.meta, "", "  ")
	if err != nil {
		return fmt.Errorf("meds writer: dataset.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(meta, "dataset.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("meds writer: %w", err)
	}
	if w.codes != nil {
		if err := writeCodes(filepath.Join(meta, "codes.parquet"), w.codes); err != nil {
			return err
		}
	}
	if err := w.writeSplits(); err != nil {
		return err
	}
	return replaceDir(w.tmp, w.dir)
}

// Abort abandons the write and removes the temporary files; the target is untouched.
func (w *MEDSWriter) Abort() {
	if w.f != nil {
		w.f.Close()
	}
	w.pw, w.f = nil, nil
	w.closed = true
	os.RemoveAll(w.tmp)
}

// replaceable refuses a target that exists and is neither empty nor a MEDS dataset,
// so that a mistyped --out never deletes unrelated files.
func replaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("meds writer: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		switch e.Name() {
		case "data", "metadata":
		default:
			return fmt.Errorf("meds writer: %s exists and holds %s, so it is no MEDS dataset: refusing to replace it", dir, e.Name())
		}
	}
	return nil
}

// replaceDir moves src to dst, replacing any existing dst. The old dst is first moved
// aside so that dst is never a mixture of the two.
func replaceDir(src, dst string) error {
	if err := replaceable(dst); err != nil {
		return err
	}
	old := ""
	if _, err := os.Stat(dst); err == nil {
		old = src + ".old"
		if err := os.Rename(dst, old); err != nil {
			return fmt.Errorf("meds writer: replacing %s: %w", dst, err)
		}
	}
	if err := os.Rename(src, dst); err != nil {
		if old != "" {
			os.Rename(old, dst)
		}
		return fmt.Errorf("meds writer: %w", err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("meds writer: removing the previous %s: %w", dst, err)
		}
	}
	return nil
}

func writeCodes(path string, codes []CodeInfo) error {
	rows := make([]codeRow, len(codes))
	for i, c := range codes {
		if c.Code == "" || !utf8.ValidString(c.Code) || !utf8.ValidString(c.Description) {
			return fmt.Errorf("meds writer: codes.parquet: code %d (%q) is empty or not UTF-8", i, c.Code)
		}
		rows[i] = codeRow{Code: c.Code, Description: c.Description, ParentCodes: c.Parents}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("meds writer: %w", err)
	}
	pw := parquet.NewGenericWriter[codeRow](f, parquet.Compression(&parquet.Snappy), parquet.CreatedBy("fedclaims", "", ""))
	if _, err = pw.Write(rows); err == nil {
		err = pw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("meds writer: %s: %w", path, err)
	}
	return nil
}

// WriteMEDS writes the patients of r to a MEDS dataset at dir (see MEDSWriter).
// r's patients must come in increasing ID order, which every reader in this package
// guarantees within a shard.
func WriteMEDS(ctx context.Context, dir string, r Reader, opts ...WriterOption) error {
	w, err := NewMEDSWriter(dir, opts...)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return err
		}
		p, err := r.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			w.Abort()
			return err
		}
		if err := w.Write(p); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
