package claims

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// MEDSReader streams the patients of a MEDS dataset. Shards (data/**/*.parquet) are
// read in lexical order; within a shard rows must be sorted by subject_id, as MEDS
// requires, and a subject's rows must not span shards. Columns are read page by page,
// so memory holds one batch of rows and one patient, whatever the file size.
//
// Extra columns are ignored; numeric_value may be absent; time may be a timestamp in
// ms, us or ns, or a date. Static rows (null time) set the patient's sex from
// GENDER//F and GENDER//M; MEDS_BIRTH sets the birth time; other static rows are
// counted in Stats.Skipped and dropped, because the event model has no place for them.
// MEDS_OBSERVATION_END rows (CodeObservationEnd, fedclaims' own code) set the
// patient's observation end, the latest one winning, and are not events.
type MEDSReader struct {
	dir      string
	files    []string
	nextFile int
	o        options
	stats    Stats
	intern   map[string]interned
	recent   [internCache]internEntry
	events   []Event // the pending patient's events, reused across patients

	cur     *medsShard
	err     error // sticky
	pending *Patient
	lastID  int64
	haveID  bool
	// prevLast is the last subject of the previous shard, to catch a subject that
	// runs on into the next shard (only adjacent shards can be checked cheaply).
	prevLast     int64
	havePrevLast bool
}

const (
	colSubject = iota
	colTime
	colCode
	colValue
	numCols
)

func medsColumn(i int) string {
	return [numCols]string{"subject_id", "time", "code", "numeric_value"}[i]
}

const readBatchRows = 8192

// medsShard is the open data file and the batch of rows being consumed.
type medsShard struct {
	name string
	f    *os.File
	pf   *parquet.File

	leaf      [numCols]int // leaf column index, -1 when absent
	timeMul   int64        // multiply raw time by this to get microseconds
	timeDiv   int64        // or divide (floor) by this
	timeDate  bool         // time is a DATE (days)
	subject32 bool
	value64   bool

	rg      int
	cursors [numCols]colCursor
	bufs    [numCols][]parquet.Value
	n, i    int   // rows in the batch, position in it
	base    int64 // rows of the file before this batch
}

// OpenMEDS opens the MEDS dataset at dir (the directory that holds data/).
func OpenMEDS(dir string, opts ...Option) (*MEDSReader, error) {
	data := filepath.Join(dir, "data")
	var files []string
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") && !strings.HasPrefix(d.Name(), ".") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("meds %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("meds %s: no data/*.parquet files", dir)
	}
	sort.Strings(files)
	o := buildOptions(opts)
	if o.err != nil {
		return nil, fmt.Errorf("meds %s: %w", dir, o.err)
	}
	return &MEDSReader{dir: dir, files: files, o: o, intern: make(map[string]interned)}, nil
}

// Codes reads the dataset's metadata/codes.parquet, nil when it has none.
func (r *MEDSReader) Codes() ([]CodeInfo, error) {
	path := filepath.Join(r.dir, "metadata", "codes.parquet")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ReadCodes(path)
}

// Stats reports what has been read so far.
func (r *MEDSReader) Stats() Stats { return r.stats.clone() }

// Format returns "meds".
func (r *MEDSReader) Format() string { return "meds" }

// Close releases the open shard.
func (r *MEDSReader) Close() error {
	if r.cur != nil {
		err := r.cur.f.Close()
		r.cur = nil
		return err
	}
	return nil
}

// Next returns the next patient, or io.EOF after the last. After an error other
// than the context's, every later call returns the same error.
func (r *MEDSReader) Next(ctx context.Context) (*Patient, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := r.next(ctx)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return p, err
}

func (r *MEDSReader) next(ctx context.Context) (*Patient, error) {
	for {
		if r.cur == nil {
			if r.pending != nil {
				// Subjects do not span shards: the end of a shard ends its last patient.
				return r.finish(), nil
			}
			if r.nextFile == len(r.files) {
				return nil, io.EOF
			}
			s, err := openShard(r.files[r.nextFile])
			r.nextFile++
			if err != nil {
				return nil, err
			}
			if r.haveID {
				r.prevLast, r.havePrevLast = r.lastID, true
			}
			r.cur, r.haveID = s, false
		}
		s := r.cur
		if s.i == s.n {
			if err := s.fill(); err != nil {
				s.f.Close()
				r.cur = nil
				if errors.Is(err, io.EOF) {
					continue
				}
				return nil, err
			}
		}
		for ; s.i < s.n; s.i++ {
			row := s.base + int64(s.i) + 1
			sid := s.bufs[colSubject][s.i]
			if sid.IsNull() {
				r.stats.Rows++
				if err := r.stats.bad(r.o, &RowError{File: s.name, Row: row, Column: "subject_id", Err: ErrNull}); err != nil {
					return nil, err
				}
				continue
			}
			id := sid.Int64()
			if s.subject32 {
				id = int64(sid.Int32())
			}
			if r.haveID && id != r.lastID {
				if id < r.lastID {
					return nil, &RowError{File: s.name, Row: row, Column: "subject_id",
						Err: fmt.Errorf("%w: subject %d follows subject %d", ErrUnsorted, id, r.lastID)}
				}
				if r.pending != nil {
					r.lastID = id
					return r.finish(), nil
				}
			}
			if !r.haveID && r.havePrevLast && id == r.prevLast {
				return nil, &RowError{File: s.name, Row: row, Column: "subject_id",
					Err: fmt.Errorf("subject %d also ends the previous shard: MEDS keeps each subject in one shard", id)}
			}
			r.lastID, r.haveID = id, true
			r.stats.Rows++
			if err := r.addRow(s, id, row); err != nil {
				return nil, err
			}
		}
	}
}

// addRow turns the row at s.i into an event or a static fact of the pending patient.
func (r *MEDSReader) addRow(s *medsShard, id, row int64) error {
	cv := s.bufs[colCode][s.i]
	if cv.IsNull() {
		return r.stats.bad(r.o, &RowError{File: s.name, Row: row, Column: "code", Err: ErrNull})
	}
	b := cv.ByteArray()
	code, ok := r.lookup(b)
	if !ok {
		if len(b) == 0 || !utf8.Valid(b) {
			err := ErrNotUTF8
			if len(b) == 0 {
				err = errors.New("empty code")
			}
			return r.stats.bad(r.o, &RowError{File: s.name, Row: row, Column: "code", Err: err})
		}
		// The intern map holds each raw code's mapped form (CodeMap), "" when a
		// rule drops it, so a code is mapped once, not once a row.
		raw := string(b)
		code = r.mapCode(raw)
		r.intern[raw] = interned{raw, code}
		r.remember(b, raw, code)
	}
	value := float32(math.NaN())
	if s.leaf[colValue] >= 0 {
		if v := s.bufs[colValue][s.i]; !v.IsNull() {
			if s.value64 {
				value = float32(v.Double())
			} else {
				value = v.Float()
			}
		}
	}
	if r.pending == nil {
		r.pending = &Patient{ID: id}
	}
	if code == "" {
		r.stats.skip(skippedDropped)
		return nil
	}
	p := r.pending
	tv := s.bufs[colTime][s.i]
	if tv.IsNull() {
		switch code {
		case "GENDER//F":
			p.Sex = SexFemale
		case "GENDER//M":
			p.Sex = SexMale
		default:
			r.stats.skip("static code other than GENDER")
		}
		return nil
	}
	var t int64
	switch {
	case s.timeDate:
		t = int64(tv.Int32()) * int64(24*time.Hour/time.Microsecond)
	case s.timeDiv > 1:
		t = FloorDiv(tv.Int64(), s.timeDiv)
	default:
		t = tv.Int64() * s.timeMul
	}
	switch code {
	case CodeBirth:
		p.Birth, p.HasBirth = t, true
		return nil
	case CodeObservationEnd:
		if !p.HasObservationEnd || t > p.ObservationEnd {
			p.ObservationEnd, p.HasObservationEnd = t, true
		}
		return nil
	}
	r.events = append(r.events, Event{Time: t, Code: code, Value: value})
	return nil
}

// internCache is the size of the direct-mapped cache in front of the intern map.
// Dictionary-encoded code columns hand out the same bytes for every row that holds
// a code, so remembering the address of those bytes skips hashing them.
const internCache = 4096

type internEntry struct {
	addr      uintptr
	raw, code string // the code as read and as mapped
}

// interned is a code as read (raw, shared by every row that holds it) and as
// mapped (code).
type interned struct{ raw, code string }

// mapCode maps a code as read through the reader's CodeMap; "" when dropped.
func (r *MEDSReader) mapCode(raw string) string {
	code, keep := r.o.codes.Map(raw)
	if !keep {
		return ""
	}
	return code
}

func bytesAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func (r *MEDSReader) lookup(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false // "" is a dropped code's mapping, never a code read
	}
	a := bytesAddr(b)
	e := &r.recent[(a>>3)%internCache]
	// The address alone is not proof: freed page memory can be reused for other bytes.
	if e.addr == a && e.raw == string(b) {
		return e.code, true
	}
	in, ok := r.intern[string(b)]
	if ok {
		*e = internEntry{a, in.raw, in.code}
	}
	return in.code, ok
}

func (r *MEDSReader) remember(b []byte, raw, code string) {
	a := bytesAddr(b)
	r.recent[(a>>3)%internCache] = internEntry{a, raw, code}
}

// finish hands over the pending patient with its events in (time, code) order.
func (r *MEDSReader) finish() *Patient {
	p := r.pending
	r.pending = nil
	if len(r.events) > 0 {
		p.Events = slices.Clone(r.events)
		r.events = r.events[:0]
		sortEvents(p.Events)
	}
	return p
}

// sortEvents puts events in (time, code, value) order, absent values first. The
// order is total, so an unstable sort gives the same result for the same events
// in any input order.
func sortEvents(ev []Event) {
	if !slices.IsSortedFunc(ev, compareEvents) {
		slices.SortFunc(ev, compareEvents)
	}
}

func compareEvents(a, b Event) int {
	if a.Time != b.Time {
		if a.Time < b.Time {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a.Code, b.Code); c != 0 {
		return c
	}
	an, bn := !a.HasValue(), !b.HasValue()
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	return cmp.Compare(a.Value, b.Value)
}

func openShard(name string) (s *medsShard, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("meds: %w", err)
	}
	defer func() {
		// parquet-go panics on some malformed schemas (a MAP annotation on a leaf).
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("meds %s: %w: %v", name, ErrCorrupt, p)
		}
		if err != nil {
			f.Close()
		}
	}()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("meds: %w", err)
	}
	pf, err := openParquet(f, info.Size())
	if err != nil {
		return nil, fmt.Errorf("meds %s: %w: %w", name, ErrCorrupt, err)
	}
	s = &medsShard{name: name, f: f, pf: pf, timeMul: 1}
	root := pf.Root()
	for i := range numCols {
		cname := medsColumn(i)
		c := root.Column(cname)
		if c == nil {
			if i == colValue {
				s.leaf[i] = -1
				continue
			}
			return nil, &RowError{File: name, Column: cname, Err: ErrMissingColumn}
		}
		if !c.Leaf() || c.Repeated() {
			return nil, &RowError{File: name, Column: cname, Err: fmt.Errorf("%w: a nested or repeated column", ErrColumnType)}
		}
		s.leaf[i] = c.Index()
		if err := s.checkType(i, c.Type()); err != nil {
			return nil, &RowError{File: name, Column: cname, Err: err}
		}
	}
	for i := range s.bufs {
		s.bufs[i] = make([]parquet.Value, readBatchRows)
	}
	s.rg = -1
	return s, nil
}

// openParquet opens a parquet file, turning the panics that parquet-go can raise on
// corrupt input into errors.
func openParquet(r io.ReaderAt, size int64) (pf *parquet.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			pf, err = nil, fmt.Errorf("%v", p)
		}
	}()
	return parquet.OpenFile(r, size, parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true))
}

func (s *medsShard) checkType(col int, t parquet.Type) error {
	kind := t.Kind()
	switch col {
	case colSubject:
		switch kind {
		case parquet.Int64:
		case parquet.Int32:
			s.subject32 = true
		default:
			return fmt.Errorf("%w: %s, want int64", ErrColumnType, t)
		}
	case colCode:
		if kind != parquet.ByteArray {
			return fmt.Errorf("%w: %s, want string", ErrColumnType, t)
		}
	case colValue:
		switch kind {
		case parquet.Float:
		case parquet.Double:
			s.value64 = true
		default:
			return fmt.Errorf("%w: %s, want float32", ErrColumnType, t)
		}
	case colTime:
		lt := t.LogicalType()
		if lt != nil {
			switch v := lt.Value.(type) {
			case *format.TimestampType:
				if kind != parquet.Int64 || v.Unit.Value == nil {
					break
				}
				return s.setUnit(v.Unit.Value.Duration())
			case *format.DateType:
				if kind == parquet.Int32 {
					s.timeDate = true
					return nil
				}
			}
		}
		if ct := t.ConvertedType(); ct != nil && kind == parquet.Int64 {
			switch *ct {
			case deprecated.TimestampMillis:
				return s.setUnit(time.Millisecond)
			case deprecated.TimestampMicros:
				return s.setUnit(time.Microsecond)
			}
		}
		return fmt.Errorf("%w: %s, want timestamp[us]", ErrColumnType, t)
	}
	return nil
}

func (s *medsShard) setUnit(d time.Duration) error {
	switch d {
	case time.Nanosecond:
		s.timeDiv = 1000
	case time.Microsecond:
		s.timeMul = 1
	case time.Millisecond:
		s.timeMul = 1000
	default:
		return fmt.Errorf("%w: timestamp unit %s", ErrColumnType, d)
	}
	return nil
}

// fill reads the next batch of rows from every column, moving on to the next row
// group as needed; io.EOF at the end of the file.
func (s *medsShard) fill() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("meds %s: %w: %v", s.name, ErrCorrupt, p)
		}
	}()
	s.base += int64(s.n)
	s.n, s.i = 0, 0
	for {
		if s.rg < 0 || s.cursors[colSubject].pages == nil {
			s.rg++
			groups := s.pf.RowGroups()
			if s.rg >= len(groups) {
				return io.EOF
			}
			chunks := groups[s.rg].ColumnChunks()
			for i, leaf := range s.leaf {
				if leaf >= 0 {
					s.cursors[i] = colCursor{pages: chunks[leaf].Pages()}
				}
			}
		}
		n, err := s.cursors[colSubject].read(s.bufs[colSubject])
		if err == io.EOF {
			for i := range s.cursors {
				if s.leaf[i] < 0 {
					continue
				}
				if i != colSubject {
					if k, _ := s.cursors[i].read(s.bufs[i][:1]); k > 0 {
						return fmt.Errorf("meds %s: %w: column %s has more values than subject_id in row group %d", s.name, ErrCorrupt, medsColumn(i), s.rg)
					}
				}
				s.cursors[i].close()
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("meds %s: row %d: column subject_id: %w: %w", s.name, s.base+1, ErrCorrupt, err)
		}
		for i := colSubject + 1; i < numCols; i++ {
			if s.leaf[i] < 0 {
				continue
			}
			k, err := s.cursors[i].read(s.bufs[i][:n])
			if err != nil && err != io.EOF {
				return fmt.Errorf("meds %s: row %d: column %s: %w: %w", s.name, s.base+int64(k)+1, medsColumn(i), ErrCorrupt, err)
			}
			if k != n {
				return fmt.Errorf("meds %s: row %d: column %s: %w: %d values where subject_id has %d", s.name, s.base+int64(k)+1, medsColumn(i), ErrCorrupt, k, n)
			}
		}
		s.n = n
		return nil
	}
}

// colCursor reads one column chunk's values across its pages. Pages are not
// released to parquet-go's pool, because string values of a batch may point into a
// page that the batch has already read past.
type colCursor struct {
	pages parquet.Pages
	vr    parquet.ValueReader
}

func (c *colCursor) read(dst []parquet.Value) (int, error) {
	n := 0
	for n < len(dst) {
		if c.vr == nil {
			if c.pages == nil {
				break
			}
			p, err := c.pages.ReadPage()
			if err == io.EOF {
				break
			}
			if err != nil {
				return n, err
			}
			c.vr = p.Values()
		}
		k, err := c.vr.ReadValues(dst[n:])
		n += k
		if err == io.EOF {
			c.vr = nil
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.ErrNoProgress
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *colCursor) close() {
	if c.pages != nil {
		c.pages.Close()
	}
	*c = colCursor{}
}

// ReadCodes reads a MEDS metadata/codes.parquet file: code, and when present
// description and parent_codes. Extra columns are ignored.
func ReadCodes(path string) (codes []CodeInfo, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("meds codes: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("meds codes: %w", err)
	}
	pf, err := openParquet(f, info.Size())
	if err != nil {
		return nil, fmt.Errorf("meds codes %s: %w: %w", path, ErrCorrupt, err)
	}
	defer func() {
		if p := recover(); p != nil {
			codes, err = nil, fmt.Errorf("meds codes %s: %w: %v", path, ErrCorrupt, p)
		}
	}()
	root := pf.Root()
	code := root.Column("code")
	if code == nil {
		return nil, &RowError{File: path, Column: "code", Err: ErrMissingColumn}
	}
	if !code.Leaf() || code.Type().Kind() != parquet.ByteArray {
		return nil, &RowError{File: path, Column: "code", Err: fmt.Errorf("%w: %s, want string", ErrColumnType, code.Type())}
	}
	if d := root.Column("description"); d != nil && (!d.Leaf() || d.Type().Kind() != parquet.ByteArray) {
		return nil, &RowError{File: path, Column: "description", Err: fmt.Errorf("%w: %s, want string", ErrColumnType, d.Type())}
	}
	rd := parquet.NewGenericReader[codeRow](pf)
	defer rd.Close()
	buf := make([]codeRow, 1024)
	var row int64
	for {
		n, rerr := rd.Read(buf)
		for _, c := range buf[:n] {
			row++
			if c.Code == "" || !utf8.ValidString(c.Code) || !utf8.ValidString(c.Description) {
				return nil, &RowError{File: path, Row: row, Column: "code", Err: fmt.Errorf("%w or empty: %q", ErrNotUTF8, c.Code)}
			}
			ci := CodeInfo{Code: c.Code, Description: c.Description}
			if len(c.ParentCodes) > 0 {
				ci.Parents = slices.Clone(c.ParentCodes)
			}
			codes = append(codes, ci)
		}
		if rerr == io.EOF {
			return codes, nil
		}
		if rerr != nil {
			return nil, fmt.Errorf("meds codes %s: row %d: %w", path, row+1, rerr)
		}
	}
}
