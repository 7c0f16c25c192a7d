package claims

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const mimicDemo = "testdata/omop-mimic-iv-demo"

func findPatient(ps []*Patient, id int64) *Patient {
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func hasEvent(p *Patient, when, code string) bool {
	t := micros(when)
	for _, e := range p.Events {
		if e.Time == t && e.Code == code {
			return true
		}
	}
	return false
}

// TestOMOPDemo checks the reader against the real MIMIC-IV demo export and the
// counts its README gives.
func TestOMOPDemo(t *testing.T) {
	r, err := OpenOMOP(mimicDemo)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ps := readAll(t, r)
	if len(ps) != 100 {
		t.Fatalf("%d persons, want 100", len(ps))
	}
	var visits, deaths, icd int
	dotted := regexp.MustCompile(`^(ICD10CM//[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?|ICD9CM//([0-9]{3}|V[0-9]{2}|E[0-9]{3})(\.[0-9]{1,2})?)$`)
	for i, p := range ps {
		if i > 0 && p.ID <= ps[i-1].ID {
			t.Fatalf("person %d after %d: not in increasing id order", p.ID, ps[i-1].ID)
		}
		for k, e := range p.Events {
			if k > 0 && e.Time < p.Events[k-1].Time {
				t.Fatalf("person %d: events out of time order", p.ID)
			}
			switch {
			case e.Code == CodeDeath:
				deaths++
			case System(e.Code) == SystemVisit:
				visits++
			case e.Kind() == KindDiagnosis:
				icd++
				if !dotted.MatchString(e.Code) {
					t.Errorf("person %d: diagnosis code %q is not a dotted, prefixed ICD code", p.ID, e.Code)
				}
			}
		}
	}
	if visits != 852 || deaths != 15 {
		t.Errorf("%d visits and %d deaths, want 852 and 15", visits, deaths)
	}
	st := r.Stats()
	// 16,441 condition rows, of which those with chart values are skipped.
	if skipped := st.Skipped["condition source value is no ICD code"]; icd+int(skipped) != 16441 || skipped == 0 {
		t.Errorf("%d ICD diagnoses + %d skipped chart values, want 16441 condition rows", icd, skipped)
	}
	if st.BadRows != 0 {
		t.Errorf("%d bad rows in a clean export", st.BadRows)
	}

	tests := []struct {
		person     int64
		when, code string
	}{
		{1741351032930224901, "2179-07-24T18:21:00Z", "ICD9CM//787.91"}, // "78791  "
		{1741351032930224901, "2179-07-24T18:21:00Z", "ICD9CM//280.9"},  // "2809   "
		{4783904755296699562, "2112-12-04T00:00:00Z", "ICD9CM//E879.8"}, // E-code, dot after the 4th
		{-2067961723109232727, "2169-01-14T23:26:00Z", "ICD10CM//E78.5"},
		{-7437341330444582833, "2113-08-18T17:35:00Z", "ICD10PCS//0BB38ZX"},
		{-2312013739856114142, "2116-07-05T08:05:00Z", CodeDeath},
	}
	for _, tt := range tests {
		p := findPatient(ps, tt.person)
		if p == nil {
			t.Errorf("person %d missing", tt.person)
			continue
		}
		if !hasEvent(p, tt.when, tt.code) {
			t.Errorf("person %d has no %s at %s", tt.person, tt.code, tt.when)
		}
	}
	p := findPatient(ps, -2312013739856114142)
	if p.Sex != SexMale || !p.HasBirth || FormatTime(p.Birth) != "2030-01-01T00:00:00Z" {
		t.Errorf("person %d: sex %v, birth %s, want M and 2030-01-01", p.ID, p.Sex, FormatTime(p.Birth))
	}
}

func TestICDCode(t *testing.T) {
	tests := []struct {
		in, hint, want string
	}{
		{"78791  ", "", "ICD9CM//787.91"},
		{"2809", "", "ICD9CM//280.9"},
		{"311    ", "", "ICD9CM//311"},
		{"V6284", "", "ICD9CM//V62.84"},
		{"V08", "", "ICD9CM//V08"},
		{"E9352", "", "ICD9CM//E935.2"},
		{"E8798", SystemICD9CM, "ICD9CM//E879.8"},
		{"E8798", "", "ICD10CM//E87.98"}, // without a hint the shape cannot tell
		{"E785   ", "", "ICD10CM//E78.5"},
		{"E119", SystemICD10, "ICD10//E11.9"},
		{"e11.9", "", "ICD10CM//E11.9"},
		{"I10    ", "", "ICD10CM//I10"},
		{"V499XXA", "", "ICD10CM//V49.9XXA"},
		{"C4A9", "", "ICD10CM//C4A.9"},
		{"V6284", SystemICD10CM, "ICD10CM//V62.84"},
		{"2809", SystemICD10CM, "ICD9CM//280.9"}, // a hint that does not fit the shape is ignored
		{"SR (Sinus Rhythm)", "", ""},
		{"225085", "", ""},
		{"AV Paced", "", ""},
		{"", "", ""},
		{"12", "", ""},
	}
	for _, tt := range tests {
		got, ok := icdCode(tt.in, tt.hint, SystemICD10CM)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("icdCode(%q, %q) = %q, %v; want %q", tt.in, tt.hint, got, ok, tt.want)
		}
	}
}

func TestICDCodeWHO(t *testing.T) {
	if got, _ := icdCode("E119", "", SystemICD10); got != "ICD10//E11.9" {
		t.Errorf("icdCode(E119) with WHO ICD-10 as the default = %q", got)
	}
	if got, _ := icdCode("V6284", "", SystemICD10); got != "ICD9CM//V62.84" {
		t.Errorf("icdCode(V6284) with WHO ICD-10 as the default = %q", got)
	}
}

func TestOMOPJapaneseStyle(t *testing.T) {
	dir := writeOMOP(t, map[string]string{
		"person.csv":               okPerson,
		"condition_occurrence.csv": "person_id,condition_start_date,condition_source_value\n2,2015-01-01,E11.9\n",
		"drug_exposure.csv":        "person_id,drug_exposure_start_date,drug_source_value,drug_concept_id\n2,2015-01-02,c10aa05,0\n2,2015-01-03,0002-7510-01,0\n2,2015-01-04,aspirin,1112807\n",
	})
	r, err := OpenOMOP(dir, ICD10System(SystemICD10))
	if err != nil {
		t.Fatal(err)
	}
	ps := readAll(t, r)
	for _, e := range []struct{ when, code string }{
		{"2015-01-01T00:00:00Z", "ICD10//E11.9"},
		{"2015-01-02T00:00:00Z", "ATC//C10AA05"},
		{"2015-01-03T00:00:00Z", "NDC//00002751001"},
		{"2015-01-04T00:00:00Z", "RXNORM//1112807"},
	} {
		if !hasEvent(ps[1], e.when, e.code) {
			t.Errorf("no %s at %s in %+v", e.code, e.when, ps[1].Events)
		}
	}
	if _, err := OpenOMOP(dir, ICD10System("ICD11")); err == nil {
		t.Error("ICD10System(ICD11) accepted")
	}
}

func TestNDC11(t *testing.T) {
	tests := []struct{ in, want string }{
		{"00002751001", "00002751001"},
		{"0002-7510-01", "00002751001"},
		{"50090-347-0", ""}, // nine digits: no NDC
		{"12345-678-90", "12345067890"},
		{"12345-6789-1", "12345678901"},
		{"12345-6789-12", "12345678912"},
		{"123456-789-12", ""},
		{"1234567890", ""},
		{"aspirin", ""},
		{"1-2", ""},
	}
	for _, tt := range tests {
		got, ok := ndc11(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("ndc11(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestProcedureCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0BB38ZX", "ICD10PCS//0BB38ZX"},
		{"02HV33Z", "ICD10PCS//02HV33Z"},
		{"3E03317", "ICD10PCS//3E03317"},
		{"1234567", "PROC//1234567"},
		{"8872", "ICD9PROC//88.72"},
		{"19301", "CPT4//19301"},
		{"0042T", "CPT4//0042T"},
		{"C9600", "HCPCS//C9600"},
		{"221214", "PROC//221214"},
		{" 221214 ", "PROC//221214"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := procedureCode(tt.in); got != tt.want {
			t.Errorf("procedureCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2015-03-01", "2015-03-01T00:00:00Z"},
		{"20150301", "2015-03-01T00:00:00Z"},
		{"2015/03/01", "2015-03-01T00:00:00Z"},
		{"2015-03-01 10:20", "2015-03-01T10:20:00Z"},
		{"2015-03-01 10:20:30", "2015-03-01T10:20:30Z"},
		{"2015-03-01T10:20:30Z", "2015-03-01T10:20:30Z"},
		{"2015-03-01T10:20:30.5", "2015-03-01T10:20:30.5Z"},
		{"2015-03-01T10:20:30.123456789", "2015-03-01T10:20:30.123456Z"},
		{"2015-03-01T10:20:30+09:00", "2015-03-01T01:20:30Z"},
		{"2000-02-29", "2000-02-29T00:00:00Z"},
		{"1900-01-01", "1900-01-01T00:00:00Z"},
		{"2179-07-24 18:21:00", "2179-07-24T18:21:00Z"},
		{"0001-01-01", "0001-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in)
		if err != nil {
			t.Errorf("parseTime(%q): %v", tt.in, err)
			continue
		}
		want := micros(strings.Replace(tt.want, ".5Z", "Z", 1))
		switch {
		case strings.HasSuffix(tt.want, ".5Z"):
			want += 500000
		case strings.HasSuffix(tt.want, ".123456Z"):
			want = micros(strings.Replace(tt.want, ".123456Z", "Z", 1)) + 123456
		}
		if got != want {
			t.Errorf("parseTime(%q) = %s, want %s", tt.in, FormatTime(got), tt.want)
		}
	}
	for _, bad := range []string{"", "2015-13-01", "2015-02-29", "2015-03-01x", "2015-03-01 25:00", "01/03/2015", "2015-3-1", "yesterday", "2015-03-01 10:20:3", "2015-03-01T10:20:30."} {
		if _, err := parseTime(bad); !errors.Is(err, ErrBadTime) {
			t.Errorf("parseTime(%q): got %v, want ErrBadTime", bad, err)
		}
	}
}

// writeOMOP writes tables (name -> content) into a fresh directory.
func writeOMOP(t testing.TB, tables map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range tables {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const okPerson = "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime\n" +
	"-9223372036854775808,8532,1950,6,,\n" +
	"2,8507,1960,,,1960-04-05 00:00:00\n"

func TestOMOPTolerant(t *testing.T) {
	dir := writeOMOP(t, map[string]string{
		"PERSON.csv": okPerson,
		// Tab-separated, upper-case headers, a byte-order mark and CRLF line ends.
		"Condition_Occurrence.tsv": "\ufeffPERSON_ID\tCONDITION_START_DATE\tCondition_Source_Value\r\n" +
			"2\t2015-01-01\t  E119 \r\n" +
			"-9223372036854775808\t2016-01-01\t4019\r\n" +
			"77\t2016-01-01\t4019\r\n", // person 77 is not in the person table
		"death.csv": "person_id,death_date\n2,2020-02-02\n",
	})
	r, err := OpenOMOP(dir)
	if err != nil {
		t.Fatal(err)
	}
	ps := readAll(t, r)
	if len(ps) != 2 || ps[0].ID != -9223372036854775808 || ps[1].ID != 2 {
		t.Fatalf("got %d persons %v", len(ps), ps)
	}
	if !hasEvent(ps[0], "2016-01-01T00:00:00Z", "ICD9CM//401.9") || ps[0].Sex != SexFemale || FormatTime(ps[0].Birth) != "1950-06-01T00:00:00Z" {
		t.Errorf("person %d: %+v", ps[0].ID, ps[0])
	}
	if !hasEvent(ps[1], "2015-01-01T00:00:00Z", "ICD10CM//E11.9") || !hasEvent(ps[1], "2020-02-02T00:00:00Z", CodeDeath) || FormatTime(ps[1].Birth) != "1960-04-05T00:00:00Z" {
		t.Errorf("person 2: %+v", ps[1])
	}
	if n := r.Stats().Skipped["person not in the person table"]; n != 1 {
		t.Errorf("%d rows of unknown persons skipped, want 1", n)
	}
}

func TestOMOPMalformed(t *testing.T) {
	const condHeader = "person_id,condition_start_date,condition_start_datetime,condition_source_value\n"
	tests := []struct {
		name   string
		tables map[string]string
		file   string
		line   int64
		column string
		is     error
	}{
		{"missing column", map[string]string{
			"person.csv": "person_id,year_of_birth\n1,1950\n"},
			"person.csv", 1, "gender_concept_id", ErrMissingColumn},
		{"unparsable date", map[string]string{
			"person.csv":               okPerson,
			"condition_occurrence.csv": condHeader + "2,2015-01-01,,I10\n2,2015-02-30,,I10\n"},
			"condition_occurrence.csv", 3, "condition_start_date", ErrBadTime},
		{"unparsable datetime", map[string]string{
			"person.csv":               okPerson,
			"condition_occurrence.csv": condHeader + "2,2015-01-01,01/01/2015 10:00,I10\n"},
			"condition_occurrence.csv", 2, "condition_start_datetime", ErrBadTime},
		{"wrong type", map[string]string{
			"person.csv": "person_id,gender_concept_id,year_of_birth\n1,8507,1950\nabc,8507,1950\n"},
			"person.csv", 3, "person_id", ErrBadNumber},
		{"id out of int64 range", map[string]string{
			"person.csv": "person_id,gender_concept_id,year_of_birth\n9223372036854775808,8507,1950\n"},
			"person.csv", 2, "person_id", ErrBadNumber},
		{"not utf-8", map[string]string{
			"person.csv":               okPerson,
			"condition_occurrence.csv": condHeader + "2,2015-01-01,,I1\xff0\n"},
			"condition_occurrence.csv", 2, "condition_source_value", ErrNotUTF8},
		{"short row", map[string]string{
			"person.csv": "person_id,gender_concept_id,year_of_birth\n1,8507,1950\n2,8507\n"},
			"person.csv", 3, "", nil},
		{"bad quote", map[string]string{
			"person.csv": "person_id,gender_concept_id,year_of_birth\n1,8507,\"19\"50\n"},
			"person.csv", 2, "", nil},
		{"no such birth date", map[string]string{
			"person.csv": "person_id,gender_concept_id,year_of_birth,month_of_birth\n1,8507,1950,13\n"},
			"person.csv", 2, "year_of_birth", ErrBadTime},
		{"empty file", map[string]string{"person.csv": ""}, "person.csv", 1, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeOMOP(t, tt.tables)
			r, err := OpenOMOP(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Next(context.Background())
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a RowError", err)
			}
			if filepath.Base(re.File) != tt.file || re.Line != tt.line || re.Column != tt.column {
				t.Errorf("error %q names %s line %d column %q, want %s line %d column %q",
					err, filepath.Base(re.File), re.Line, re.Column, tt.file, tt.line, tt.column)
			}
			if _, again := r.Next(context.Background()); again != err {
				t.Errorf("next call after %q returned %v", err, again)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestOMOPSkipBadRows(t *testing.T) {
	dir := writeOMOP(t, map[string]string{
		"person.csv": okPerson,
		"condition_occurrence.csv": "person_id,condition_start_date,condition_source_value\n" +
			"2,2015-01-01,I10\n" +
			"2,not a date,I10\n" +
			"x,2015-01-01,I10\n" +
			"2,2015-01-02,I1\xff\n" +
			"2,2015-01-03,E119\n",
	})
	r, err := OpenOMOP(dir, SkipBadRows(true))
	if err != nil {
		t.Fatal(err)
	}
	ps := readAll(t, r)
	st := r.Stats()
	if st.BadRows != 3 || !strings.Contains(st.FirstBad, "line 3") {
		t.Fatalf("bad rows %d (first %q), want 3 starting at line 3", st.BadRows, st.FirstBad)
	}
	if len(ps) != 2 || len(ps[1].Events) != 2 {
		t.Fatalf("got %+v", ps)
	}
}

func TestOpenDetects(t *testing.T) {
	meds := filepath.Join(t.TempDir(), "m")
	writeAll(t, meds, samplePatients())
	tests := []struct {
		path, format string
	}{
		{meds, "meds"},
		{mimicDemo, "omop"},
		{t.TempDir(), ""},
		{filepath.Join(mimicDemo, "person.csv"), ""},
		{filepath.Join(t.TempDir(), "absent"), ""},
	}
	for _, tt := range tests {
		src, err := Open(tt.path)
		if tt.format == "" {
			if err == nil || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Open(%s): got %v, want an error naming the path", tt.path, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open(%s): %v", tt.path, err)
		}
		if src.Format() != tt.format {
			t.Errorf("Open(%s) format %s, want %s", tt.path, src.Format(), tt.format)
		}
		src.Close()
	}
}

func TestInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	writeAll(t, dir, samplePatients())
	src, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s, err := Inspect(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if s.Subjects != 4 || s.Events != 6 || s.Codes != 6 || s.Format != "meds" ||
		s.FirstTime != "1969-12-31T23:59:59Z" || s.LastTime != "2019-12-31T23:59:59Z" ||
		s.Female != 2 || s.Male != 1 || s.WithBirth != 2 || s.WithObservationEnd != 0 {
		t.Fatalf("summary %+v", s)
	}
	if _, err := src.Next(context.Background()); err != io.EOF {
		t.Fatalf("after Inspect: %v, want EOF", err)
	}
}

func TestOMOPGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("person_id,death_date\n2,2020-02-02\n"))
	zw.Close()
	whole := buf.Bytes()
	dir := writeOMOP(t, map[string]string{"person.csv": okPerson, "DEATH.csv.gz": string(whole)})
	r, err := OpenOMOP(dir)
	if err != nil {
		t.Fatal(err)
	}
	ps := readAll(t, r)
	if len(ps) != 2 || !hasEvent(ps[1], "2020-02-02T00:00:00Z", CodeDeath) {
		t.Fatalf("got %+v", ps)
	}
	for _, skip := range []bool{false, true} {
		dir = writeOMOP(t, map[string]string{"person.csv": okPerson, "death.csv.gz": string(whole[:len(whole)-6])})
		r, err = OpenOMOP(dir, SkipBadRows(skip))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(context.Background()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "death.csv.gz") {
			t.Fatalf("truncated gzip (skip %v): got %v, want ErrCorrupt naming the file", skip, err)
		}
	}
}

// TestOMOPObservationPeriodDemo reads the demo's observation_period: one period per
// person, ending (midnight after the end date) after the person's last event.
func TestOMOPObservationPeriodDemo(t *testing.T) {
	r, err := OpenOMOP(mimicDemo)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ps := readAll(t, r)
	for _, p := range ps {
		if !p.HasObservationEnd {
			t.Fatalf("person %d has no observation end", p.ID)
		}
		if n := len(p.Events); n > 0 && p.Events[n-1].Time >= p.ObservationEnd {
			t.Errorf("person %d: last event %s at or after the observation end %s", p.ID, FormatTime(p.Events[n-1].Time), FormatTime(p.ObservationEnd))
		}
		for _, e := range p.Events {
			if e.Code == CodeObservationEnd {
				t.Fatalf("person %d: the observation end is an event", p.ID)
			}
		}
	}
	// observation_period_end_date 2110-12-10.
	if p := findPatient(ps, -7391666713304457659); p == nil || FormatTime(p.ObservationEnd) != "2110-12-11T00:00:00Z" {
		t.Errorf("person -7391666713304457659: observation end %v, want 2110-12-11T00:00:00Z", p)
	}
}

func TestOMOPObservationPeriod(t *testing.T) {
	const person = "person_id,gender_concept_id,year_of_birth\n1,8507,1950\n2,8532,1960\n3,8532,1970\n4,8507,1980\n"
	tests := []struct {
		name, table string
		want        map[int64]string // person -> observation end; absent: none
		wantErr     string
	}{
		{"latest period wins", "observation_period_id,person_id,observation_period_start_date,observation_period_end_date\n" +
			"10,1,2010-01-01,2012-05-31\n11,1,2014-01-01,2016-12-31\n12,1,2013-01-01,2013-06-30\n13,2,2010-01-01,2010-01-01\n",
			map[int64]string{1: "2017-01-01T00:00:00Z", 2: "2010-01-02T00:00:00Z"}, ""},
		{"datetime preferred, its day observed whole", "person_id,observation_period_end_date,observation_period_end_datetime\n" +
			"1,2012-05-31,2012-06-02 13:45:00\n2,2012-05-31,\n",
			map[int64]string{1: "2012-06-03T00:00:00Z", 2: "2012-06-01T00:00:00Z"}, ""},
		{"datetime alone", "person_id,observation_period_end_datetime\n3,2001-02-03T04:05:06\n",
			map[int64]string{3: "2001-02-04T00:00:00Z"}, ""},
		{"unknown person skipped", "person_id,observation_period_end_date\n9,2001-02-03\n4,2005-01-01\n",
			map[int64]string{4: "2005-01-02T00:00:00Z"}, ""},
		{"no end column", "person_id,observation_period_start_date\n1,2001-02-03\n", nil, "observation_period_end_date or observation_period_end_datetime"},
		{"bad date", "person_id,observation_period_end_date\n1,2001-02-30\n", nil, "observation_period.csv: line 2: column observation_period_end_date"},
		{"empty date", "person_id,observation_period_end_date\n1,\n", nil, "observation_period.csv: line 2: column observation_period_end_date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeOMOP(t, map[string]string{
				"person.csv":             person,
				"observation_period.csv": tt.table,
				"visit_occurrence.csv":   "person_id,visit_concept_id,visit_start_date\n1,9202,2011-01-01\n",
			})
			r, err := OpenOMOP(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var ps []*Patient
			for {
				p, err := r.Next(context.Background())
				if err == io.EOF {
					break
				}
				if err != nil {
					if tt.wantErr == "" || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want %q", err, tt.wantErr)
					}
					return
				}
				ps = append(ps, p)
			}
			if tt.wantErr != "" {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, p := range ps {
				want, ok := tt.want[p.ID]
				if p.HasObservationEnd != ok || (ok && FormatTime(p.ObservationEnd) != want) {
					t.Errorf("person %d: observation end %v %s, want %v %s", p.ID, p.HasObservationEnd, FormatTime(p.ObservationEnd), ok, want)
				}
			}
			if p := findPatient(ps, 1); p == nil || len(p.Events) != 1 || p.Events[0].Code != "VISIT//9202" {
				t.Errorf("person 1: events %+v, want the one visit", p)
			}
		})
	}
}

// TestOMOPObservationEndToMEDS: converting OMOP to MEDS carries the observation end.
func TestOMOPObservationEndToMEDS(t *testing.T) {
	src, err := OpenOMOP(mimicDemo)
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, src)
	src.Close()
	src, _ = OpenOMOP(mimicDemo)
	defer src.Close()
	dir := filepath.Join(t.TempDir(), "meds")
	if err := WriteMEDS(context.Background(), dir, src); err != nil {
		t.Fatal(err)
	}
	r, err := OpenMEDS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	samePatients(t, readAll(t, r), want)
}
