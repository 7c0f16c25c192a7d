package claims

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OMOPReader reads an OMOP CDM v5.3/v5.4 CSV export (as OHDSI tools write it) and
// yields its persons in increasing person_id order.
//
// OMOP tables are not sorted by person, so the reader loads every table into
// per-person buckets on the first call to Next and then hands the persons out one by
// one, freeing each as it goes: memory grows with the whole export, which for the
// CSV exports this reader is meant for (a site's extract, tables of some millions of
// rows) is acceptable. Convert large exports to MEDS once and read that.
//
// Files are found by table name, case-insensitively, with a .csv, .tsv or .txt
// extension, optionally gzip-compressed (.csv.gz); the delimiter (comma or tab) is
// sniffed from the header line, and header names are matched case-insensitively.
// Only person is required.
//
// Column mapping (columns not listed are ignored):
//
//	person                person_id; gender_concept_id 8507 -> male, 8532 -> female,
//	                      other -> unknown; birth from birth_datetime, else
//	                      year_of_birth, month_of_birth (default 1), day_of_birth
//	                      (default 1)
//	visit_occurrence      VISIT//<visit_concept_id>, or VISIT//<visit_source_value>
//	                      when the concept id is 0 or empty, at visit_start_datetime
//	                      (else visit_start_date)
//	condition_occurrence  condition_source_value, trimmed, as ICD10CM//, ICD10// or
//	                      ICD9CM// with the dot put back (after the 3rd character; after
//	                      the 4th for ICD-9 E-codes), at condition_start_datetime (else
//	                      condition_start_date). The code system comes from the
//	                      vocabulary_id of condition_source_concept_id in concept.csv
//	                      when the export ships it; else ids 44819000-44837999 (the
//	                      ICD9CM block of the OHDSI vocabularies) mean ICD-9-CM; else
//	                      the shape decides: digits, V+digits and E9xx are ICD-9-CM,
//	                      a letter, a digit and 1-5 more characters ICD-10-CM (or
//	                      WHO ICD-10 under the ICD10System option). Source
//	                      values that are no ICD code (chart values) are skipped and
//	                      counted.
//	drug_exposure         NDC//<drug_source_value> when it is an NDC (11 digits, or
//	                      dashed and padded to 5-4-2), ATC//<drug_source_value> when it is an ATC level-5
//	                      code, else RXNORM//<drug_concept_id> when non-zero, else
//	                      skipped and counted; at drug_exposure_start_datetime (else
//	                      drug_exposure_start_date)
//	procedure_occurrence  procedure_source_value by shape: 7 ICD-10-PCS characters ->
//	                      ICD10PCS//, 3-4 digits -> ICD9PROC// (dot after the 2nd),
//	                      5 digits or 4 digits and a letter -> CPT4//, a letter and 4
//	                      digits -> HCPCS//, anything else -> PROC//<value>; an empty
//	                      source value -> PROC//<procedure_concept_id>; at
//	                      procedure_datetime (else procedure_date)
//	death                 MEDS_DEATH at death_datetime (else death_date)
//	observation_period    not events: Patient.ObservationEnd is the latest period end
//	                      of the person, the midnight after the day of
//	                      observation_period_end_datetime (else
//	                      observation_period_end_date); either column will do
//
// Rows of persons missing from the person table are skipped and counted. Times
// without a zone are taken as UTC; dates are midnight UTC.
type OMOPReader struct {
	dir   string
	o     options
	stats Stats

	loaded   bool
	err      error // sticky
	persons  map[int64]*Patient
	order    []int64
	next     int
	icdVocab map[int64]string // condition source concept id -> code system
	intern   map[string]string
	// conceptOf is the concept id each emitted code was first read with, for
	// CodeDescriptions; nil when the export ships no concept table.
	conceptOf map[string]int64
}

// OpenOMOP opens the OMOP CDM CSV export in dir. It checks that person exists;
// the tables are read on the first call to Next.
func OpenOMOP(dir string, opts ...Option) (*OMOPReader, error) {
	if _, err := findTable(dir, "person"); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	if o.err != nil {
		return nil, fmt.Errorf("omop %s: %w", dir, o.err)
	}
	if o.icd10System != SystemICD10CM && o.icd10System != SystemICD10 {
		return nil, fmt.Errorf("omop %s: ICD-10 code system %q, want %s or %s", dir, o.icd10System, SystemICD10CM, SystemICD10)
	}
	return &OMOPReader{dir: dir, o: o}, nil
}

// Format returns "omop".
func (r *OMOPReader) Format() string { return "omop" }

// Stats reports what has been read so far.
func (r *OMOPReader) Stats() Stats { return r.stats.clone() }

// Close releases the loaded persons.
func (r *OMOPReader) Close() error {
	r.persons, r.order = nil, nil
	return nil
}

// Next returns the next person, or io.EOF after the last. After an error other than
// the context's, every later call returns the same error.
func (r *OMOPReader) Next(ctx context.Context) (*Patient, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	if !r.loaded {
		if err := r.load(ctx); err != nil {
			if ctx.Err() == nil {
				r.err = err // a half-loaded export must not pass for a whole one
			}
			return nil, err
		}
		r.loaded = true
	}
	if r.next >= len(r.order) {
		return nil, io.EOF
	}
	id := r.order[r.next]
	r.next++
	p := r.persons[id]
	delete(r.persons, id)
	sortEvents(p.Events)
	return p, nil
}

// findTable returns the path of table's file in dir, matching case-insensitively.
func findTable(dir, table string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("omop %s: %w", dir, err)
	}
	for _, ext := range []string{".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz"} {
		for _, e := range entries {
			if !e.IsDir() && strings.EqualFold(e.Name(), table+ext) {
				return filepath.Join(dir, e.Name()), nil
			}
		}
	}
	return "", fmt.Errorf("omop %s: no %s.csv: %w", dir, table, os.ErrNotExist)
}

func (r *OMOPReader) load(ctx context.Context) error {
	r.persons = make(map[int64]*Patient)
	r.intern = make(map[string]string)
	r.stats = Stats{}
	if path, err := findTable(r.dir, "concept"); err == nil {
		if err := r.loadConcepts(ctx, path); err != nil {
			return err
		}
		r.conceptOf = make(map[string]int64)
	}
	for _, t := range omopTables() {
		path, err := findTable(r.dir, t.name)
		if err != nil {
			if t.name == "person" {
				return err
			}
			continue
		}
		if err := r.readTable(ctx, path, t); err != nil {
			return err
		}
	}
	r.order = make([]int64, 0, len(r.persons))
	for id := range r.persons {
		r.order = append(r.order, id)
	}
	slices.Sort(r.order)
	r.intern = nil
	return nil
}

// omopTable says how the rows of one table become events.
type omopTable struct {
	name     string
	required []string
	// oneOf lists columns of which the header must hold at least one.
	oneOf []string
	row   func(r *OMOPReader, c *csvRow) error
}

// omopTables are read in this order; person comes first so that the other tables
// can tell unknown persons.
func omopTables() []omopTable {
	return []omopTable{
		{name: "person", required: []string{"person_id", "gender_concept_id", "year_of_birth"}, row: (*OMOPReader).personRow},
		{name: "observation_period", required: []string{"person_id"}, oneOf: []string{"observation_period_end_date", "observation_period_end_datetime"}, row: (*OMOPReader).observationPeriodRow},
		{name: "visit_occurrence", required: []string{"person_id", "visit_start_date"}, row: (*OMOPReader).visitRow},
		{name: "condition_occurrence", required: []string{"person_id", "condition_start_date", "condition_source_value"}, row: (*OMOPReader).conditionRow},
		{name: "drug_exposure", required: []string{"person_id", "drug_exposure_start_date"}, row: (*OMOPReader).drugRow},
		{name: "procedure_occurrence", required: []string{"person_id", "procedure_date"}, row: (*OMOPReader).procedureRow},
		{name: "death", required: []string{"person_id", "death_date"}, row: (*OMOPReader).deathRow},
	}
}

// csvRow is the record being read, with its file's header.
type csvRow struct {
	file string
	line int64
	cols map[string]int
	rec  []string
}

func (c *csvRow) get(name string) string {
	i, ok := c.cols[name]
	if !ok || i >= len(c.rec) {
		return ""
	}
	return strings.TrimSpace(c.rec[i])
}

func (c *csvRow) fail(col string, err error) error {
	return &RowError{File: c.file, Line: c.line, Column: col, Err: err}
}

func (c *csvRow) int64(col string) (int64, error) {
	s := c.get(col)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if s == "" {
			return 0, c.fail(col, fmt.Errorf("%w: empty", ErrBadNumber))
		}
		return 0, c.fail(col, fmt.Errorf("%w: %q", ErrBadNumber, s))
	}
	return v, nil
}

// optInt64 parses an optional integer column, 0 when empty or absent.
func (c *csvRow) optInt64(col string) (int64, error) {
	if c.get(col) == "" {
		return 0, nil
	}
	return c.int64(col)
}

// describingConcept is the concept id in col when it holds one, else 0. It only
// names a code's description (CodeDescriptions), so a malformed value loses the
// description rather than failing an export the reader otherwise accepts.
func (c *csvRow) describingConcept(col string) int64 {
	v, err := c.optInt64(col)
	if err != nil {
		return 0
	}
	return v
}

// when returns the time in the datetime column, else the date column.
func (c *csvRow) when(datetimeCol, dateCol string) (int64, error) {
	if s := c.get(datetimeCol); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return 0, c.fail(datetimeCol, err)
		}
		return t, nil
	}
	s := c.get(dateCol)
	t, err := parseTime(s)
	if err != nil {
		return 0, c.fail(dateCol, err)
	}
	return t, nil
}

// person returns the patient for the row's person_id, nil when the person table
// does not list it.
func (r *OMOPReader) person(c *csvRow) (*Patient, error) {
	id, err := c.int64("person_id")
	if err != nil {
		return nil, err
	}
	p := r.persons[id]
	if p == nil {
		r.stats.skip("person not in the person table")
	}
	return p, nil
}

// add appends code at t to p's events, through the code map; concept is the
// OMOP concept id the code was read with (0: none), for CodeDescriptions.
func (r *OMOPReader) add(p *Patient, t int64, code string, concept int64) {
	if s, ok := r.intern[code]; ok {
		code = s
	} else {
		// Mapped once per distinct code (CodeMap); "" when a rule drops it.
		mapped, keep := r.o.codes.Map(code)
		if !keep {
			mapped = ""
		}
		r.intern[code] = mapped
		code = mapped
	}
	if code == "" {
		r.stats.skip(skippedDropped)
		return
	}
	if concept != 0 && r.conceptOf != nil {
		if _, seen := r.conceptOf[code]; !seen {
			r.conceptOf[code] = concept
		}
	}
	p.Events = append(p.Events, Event{Time: t, Code: code, Value: float32(math.NaN())})
}

func (r *OMOPReader) personRow(c *csvRow) error {
	id, err := c.int64("person_id")
	if err != nil {
		return err
	}
	if r.persons[id] != nil {
		return c.fail("person_id", fmt.Errorf("person %d listed twice", id))
	}
	p := &Patient{ID: id}
	switch c.get("gender_concept_id") {
	case "8507":
		p.Sex = SexMale
	case "8532":
		p.Sex = SexFemale
	}
	if s := c.get("birth_datetime"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return c.fail("birth_datetime", err)
		}
		p.Birth, p.HasBirth = t, true
	} else if c.get("year_of_birth") != "" {
		y, err := c.int64("year_of_birth")
		if err != nil {
			return err
		}
		m, err := c.optInt64("month_of_birth")
		if err != nil {
			return err
		}
		d, err := c.optInt64("day_of_birth")
		if err != nil {
			return err
		}
		m, d = max(m, 1), max(d, 1)
		if y < 1 || y > 9999 || m > 12 || d > int64(daysIn(int(y), int(m))) {
			return c.fail("year_of_birth", fmt.Errorf("%w: %d-%d-%d is no date", ErrBadTime, y, m, d))
		}
		p.Birth, p.HasBirth = civilMicros(int(y), int(m), int(d), 0, 0, 0, 0), true
	}
	r.persons[id] = p
	return nil
}

func (r *OMOPReader) visitRow(c *csvRow) error {
	p, err := r.person(c)
	if p == nil || err != nil {
		return err
	}
	t, err := c.when("visit_start_datetime", "visit_start_date")
	if err != nil {
		return err
	}
	v := c.get("visit_concept_id")
	var concept int64
	if v == "" || v == "0" {
		v = c.get("visit_source_value")
		concept = c.describingConcept("visit_source_concept_id")
	} else if concept, err = c.int64("visit_concept_id"); err != nil {
		return err
	}
	if v == "" {
		r.stats.skip("visit without concept id or source value")
		return nil
	}
	r.add(p, t, SystemVisit+Separator+v, concept)
	return nil
}

func (r *OMOPReader) conditionRow(c *csvRow) error {
	p, err := r.person(c)
	if p == nil || err != nil {
		return err
	}
	t, err := c.when("condition_start_datetime", "condition_start_date")
	if err != nil {
		return err
	}
	hint := ""
	id, err := c.optInt64("condition_source_concept_id")
	if err != nil {
		return err
	}
	if id != 0 {
		hint = r.icdVocab[id]
		if hint == "" && id >= 44819000 && id <= 44837999 {
			hint = SystemICD9CM
		}
	}
	code, ok := icdCode(c.get("condition_source_value"), hint, r.o.icd10System)
	if !ok {
		r.stats.skip("condition source value is no ICD code")
		return nil
	}
	r.add(p, t, code, id)
	return nil
}

func (r *OMOPReader) drugRow(c *csvRow) error {
	p, err := r.person(c)
	if p == nil || err != nil {
		return err
	}
	t, err := c.when("drug_exposure_start_datetime", "drug_exposure_start_date")
	if err != nil {
		return err
	}
	src := c.get("drug_source_value")
	srcConcept := c.describingConcept("drug_source_concept_id")
	if ndc, ok := ndc11(src); ok {
		r.add(p, t, SystemNDC+Separator+ndc, srcConcept)
		return nil
	}
	if atc := strings.ToUpper(src); isATC5(atc) {
		r.add(p, t, SystemATC+Separator+atc, srcConcept)
		return nil
	}
	id, err := c.optInt64("drug_concept_id")
	if err != nil {
		return err
	}
	if id == 0 {
		r.stats.skip("drug without NDC source value or concept id")
		return nil
	}
	r.add(p, t, SystemRxNorm+Separator+strconv.FormatInt(id, 10), id)
	return nil
}

func (r *OMOPReader) procedureRow(c *csvRow) error {
	p, err := r.person(c)
	if p == nil || err != nil {
		return err
	}
	t, err := c.when("procedure_datetime", "procedure_date")
	if err != nil {
		return err
	}
	code := procedureCode(c.get("procedure_source_value"))
	concept := c.describingConcept("procedure_source_concept_id")
	if code == "" {
		id, err := c.optInt64("procedure_concept_id")
		if err != nil {
			return err
		}
		if id == 0 {
			r.stats.skip("procedure without source value or concept id")
			return nil
		}
		code, concept = SystemProc+Separator+strconv.FormatInt(id, 10), id
	}
	r.add(p, t, code, concept)
	return nil
}

// observationPeriodRow extends the person's observation end to the midnight after
// the period's end day.
func (r *OMOPReader) observationPeriodRow(c *csvRow) error {
	p, err := r.person(c)
	if p == nil || err != nil {
		return err
	}
	t, err := c.when("observation_period_end_datetime", "observation_period_end_date")
	if err != nil {
		return err
	}
	end := (Day(t) + 1) * MicrosPerDay
	if !p.HasObservationEnd || end > p.ObservationEnd {
		p.ObservationEnd, p.HasObservationEnd = end, true
	}
	return nil
}

func (r *OMOPReader) deathRow(c *csvRow) error {
	p, err := r.person(c)
	if p == nil || err != nil {
		return err
	}
	t, err := c.when("death_datetime", "death_date")
	if err != nil {
		return err
	}
	r.add(p, t, CodeDeath, 0)
	return nil
}

// loadConcepts keeps the ICD vocabularies of concept.csv, to tell ICD-9 from ICD-10
// source values.
func (r *OMOPReader) loadConcepts(ctx context.Context, path string) error {
	r.icdVocab = make(map[int64]string)
	t := omopTable{name: "concept", required: []string{"concept_id", "vocabulary_id"}, row: func(r *OMOPReader, c *csvRow) error {
		var sys string
		switch strings.ToUpper(c.get("vocabulary_id")) {
		case "ICD9CM":
			sys = SystemICD9CM
		case "ICD10CM":
			sys = SystemICD10CM
		case "ICD10":
			sys = SystemICD10
		default:
			return nil
		}
		id, err := c.int64("concept_id")
		if err != nil {
			return err
		}
		r.icdVocab[id] = sys
		return nil
	}}
	return r.readTable(ctx, path, t)
}

// readTable streams one CSV table through t.row.
func (r *OMOPReader) readTable(ctx context.Context, path string, t omopTable) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("omop: %w", err)
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
		if err != nil {
			return fmt.Errorf("omop %s: %w: %w", path, ErrCorrupt, err)
		}
		defer zr.Close()
		in = zr
	}
	if err := r.readCSV(ctx, path, in, t); err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("omop %s: %w: %w", path, ErrCorrupt, err)
		}
		return err
	}
	return nil
}

func (r *OMOPReader) readCSV(ctx context.Context, path string, in io.Reader, t omopTable) error {
	br := bufio.NewReaderSize(in, 1<<16)
	head, _ := br.Peek(4096)
	head = bytes.TrimPrefix(head, []byte("\ufeff"))
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	if bytes.Count(head, []byte{'\t'}) > bytes.Count(head, []byte{','}) {
		cr.Comma = '\t'
	}
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return &RowError{File: path, Line: 1, Err: errors.New("empty file, want a header line")}
		}
		err = csvError(path, err)
		if re := (*RowError)(nil); errors.As(err, &re) {
			re.Err = fmt.Errorf("header: %w", re.Err)
		}
		return err
	}
	header = slices.Clone(header) // the reader reuses its record
	c := &csvRow{file: path, cols: make(map[string]int, len(header))}
	for i, h := range header {
		if !utf8.ValidString(h) {
			return &RowError{File: path, Line: 1, Column: strconv.Itoa(i + 1), Err: fmt.Errorf("header: %w", ErrNotUTF8)}
		}
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := c.cols[h]; !dup {
			c.cols[h] = i
		}
	}
	for _, need := range t.required {
		if _, ok := c.cols[need]; !ok {
			return &RowError{File: path, Line: 1, Column: need, Err: ErrMissingColumn}
		}
	}
	if len(t.oneOf) > 0 && !slices.ContainsFunc(t.oneOf, func(col string) bool { _, ok := c.cols[col]; return ok }) {
		return &RowError{File: path, Line: 1, Column: strings.Join(t.oneOf, " or "), Err: ErrMissingColumn}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		r.stats.Rows++
		if r.stats.Rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err != nil {
			if pe := (*csv.ParseError)(nil); !errors.As(err, &pe) {
				return fmt.Errorf("omop %s: %w", path, err) // the input failed, not a row
			}
			if berr := r.stats.bad(r.o, csvError(path, err)); berr != nil {
				return berr
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		c.line, c.rec = int64(line), rec
		if err = checkUTF8(c, header); err == nil {
			err = t.row(r, c)
		}
		if err != nil {
			if berr := r.stats.bad(r.o, err); berr != nil {
				return berr
			}
		}
	}
}

func checkUTF8(c *csvRow, header []string) error {
	for i, f := range c.rec {
		if !utf8.ValidString(f) {
			name := strconv.Itoa(i + 1)
			if i < len(header) {
				name = strings.ToLower(strings.TrimSpace(header[i]))
			}
			return c.fail(name, ErrNotUTF8)
		}
	}
	return nil
}

// csvError turns an encoding/csv error into a RowError naming the line. The csv
// package reports the byte position of a quoting fault, not its field.
func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if pe.Err == csv.ErrFieldCount {
			return &RowError{File: path, Line: int64(pe.Line), Err: pe.Err}
		}
		return &RowError{File: path, Line: int64(pe.Line), Err: fmt.Errorf("byte %d: %w", pe.Column, pe.Err)}
	}
	return fmt.Errorf("omop %s: %w", path, err)
}

// icdCode turns an OMOP source value into a prefixed, dotted ICD code, using the
// code system hint (from the source concept) when it fits the value's shape, and
// icd10 as the system of ICD-10-shaped values otherwise. It reports false when the
// value is no ICD code.
func icdCode(v, hint, icd10 string) (string, bool) {
	v = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(v), ".", ""))
	is9, is10 := isICD9(v), isICD10(v)
	var sys string
	switch {
	case hint == SystemICD9CM && is9:
		sys = SystemICD9CM
	case (hint == SystemICD10CM || hint == SystemICD10) && is10:
		sys = hint
	case is10 && !(is9 && (v[0] == 'V' || strings.HasPrefix(v, "E9"))):
		sys = icd10
	case is9:
		sys = SystemICD9CM
	default:
		return "", false
	}
	cut := 3
	if sys == SystemICD9CM && v[0] == 'E' {
		cut = 4
	}
	if len(v) > cut {
		v = v[:cut] + "." + v[cut:]
	}
	return sys + Separator + v, true
}

// isICD9 matches ICD-9-CM diagnosis codes without their dot: 3-5 digits, V and 2-4
// digits, E and 3-4 digits.
func isICD9(v string) bool {
	switch {
	case len(v) >= 3 && len(v) <= 5 && allDigits(v):
		return true
	case len(v) >= 3 && len(v) <= 5 && v[0] == 'V' && allDigits(v[1:]):
		return true
	case len(v) >= 4 && len(v) <= 5 && v[0] == 'E' && allDigits(v[1:]):
		return true
	}
	return false
}

// isICD10 matches ICD-10 and ICD-10-CM codes without their dot: a letter, a digit,
// a digit or letter (C4A, M1A), then up to four digits or letters.
func isICD10(v string) bool {
	if len(v) < 3 || len(v) > 7 || !isUpper(v[0]) || !isDigit(v[1]) {
		return false
	}
	for i := 2; i < len(v); i++ {
		if !isDigit(v[i]) && !isUpper(v[i]) {
			return false
		}
	}
	return true
}

// procedureCode maps a procedure source value to a prefixed code by its shape, ""
// when the value is empty.
func procedureCode(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	u := strings.ToUpper(v)
	switch {
	case len(u) == 7 && isPCS(u):
		return SystemICD10PCS + Separator + u
	case (len(u) == 3 || len(u) == 4) && allDigits(u):
		return SystemICD9Proc + Separator + u[:2] + "." + u[2:]
	case len(u) == 5 && (allDigits(u) || (allDigits(u[:4]) && isUpper(u[4]))):
		return SystemCPT4 + Separator + u
	case len(u) == 5 && isUpper(u[0]) && allDigits(u[1:]):
		return SystemHCPCS + Separator + u
	}
	return SystemProc + Separator + v
}

// isPCS matches the ICD-10-PCS alphabet: digits and letters other than I and O,
// with at least one letter (seven digits is more likely a local item id).
func isPCS(v string) bool {
	letter := false
	for i := 0; i < len(v); i++ {
		b := v[i]
		switch {
		case isDigit(b):
		case isUpper(b) && b != 'I' && b != 'O':
			letter = true
		default:
			return false
		}
	}
	return letter
}

// ndc11 returns an NDC in its 11-digit form: 11 digits as they are, or a dashed
// 10-digit NDC (4-4-2, 5-3-2, 5-4-1) with its short segment zero-padded to 5-4-2.
func ndc11(v string) (string, bool) {
	if len(v) == 11 && allDigits(v) {
		return v, true
	}
	parts := strings.Split(v, "-")
	if len(parts) != 3 || len(v)-2 < 10 {
		return "", false
	}
	var b strings.Builder
	for i, width := range [3]int{5, 4, 2} {
		p := parts[i]
		if !allDigits(p) || len(p) > width {
			return "", false
		}
		b.WriteString(strings.Repeat("0", width-len(p)))
		b.WriteString(p)
	}
	return b.String(), true
}

// isATC5 matches an ATC chemical substance (level 5) code such as C10AA05.
func isATC5(v string) bool {
	return len(v) == 7 && isUpper(v[0]) && isDigit(v[1]) && isDigit(v[2]) &&
		isUpper(v[3]) && isUpper(v[4]) && isDigit(v[5]) && isDigit(v[6])
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
func isUpper(b byte) bool { return b >= 'A' && b <= 'Z' }
