package claims

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkPatients asserts what every reader promises of the patients it returns.
func checkPatients(t *testing.T, ps []*Patient) {
	t.Helper()
	for i, p := range ps {
		if i > 0 && p.ID <= ps[i-1].ID {
			t.Fatalf("patient %d after %d", p.ID, ps[i-1].ID)
		}
		for k, e := range p.Events {
			if e.Code == "" || !utf8.ValidString(e.Code) {
				t.Fatalf("patient %d: code %q", p.ID, e.Code)
			}
			if k > 0 && e.Time < p.Events[k-1].Time {
				t.Fatalf("patient %d: events out of order", p.ID)
			}
		}
	}
}

func readUpTo(r Reader, limit int) ([]*Patient, error) {
	var ps []*Patient
	for len(ps) < limit {
		p, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return ps, nil
		}
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// FuzzMEDS feeds arbitrary bytes to the MEDS reader as a data shard: it must fail
// with an error naming the file, never panic, and what it returns must be sound.
func FuzzMEDS(f *testing.F) {
	f.Add([]byte("PAR1"))
	f.Fuzz(func(t *testing.T, shard []byte) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "data"), 0o755)
		name := filepath.Join(dir, "data", "0.parquet")
		if err := os.WriteFile(name, shard, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, skip := range []bool{false, true} {
			r, err := OpenMEDS(dir, SkipBadRows(skip))
			if err != nil {
				t.Fatal(err)
			}
			ps, err := readUpTo(r, 1000)
			r.Close()
			if err != nil {
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("error %q does not name the file", err)
				}
				continue
			}
			checkPatients(t, ps)
		}
	})
}

// FuzzOMOP feeds arbitrary CSV to the OMOP reader, as the person table and as every
// event table: it must never panic, errors must name the file and line, and under
// SkipBadRows only a fault in the header may stop it.
func FuzzOMOP(f *testing.F) {
	f.Add([]byte(okPerson), []byte("person_id,visit_start_date,condition_start_date,condition_source_value,drug_exposure_start_date,procedure_date,death_date\n2,2015-01-01,2015-01-01,E119,2015-01-01,2015-01-01,2020-01-01\n"))
	f.Fuzz(func(t *testing.T, person, events []byte) {
		for _, skip := range []bool{false, true} {
			r := &OMOPReader{o: options{skipBadRows: skip}, persons: make(map[int64]*Patient), intern: make(map[string]string)}
			var err error
			for _, tab := range omopTables() {
				in := events
				if tab.name == "person" {
					in = person
				}
				if err = r.readCSV(context.Background(), tab.name+".csv", bytes.NewReader(in), tab); err != nil {
					break
				}
			}
			if err != nil {
				var re *RowError
				if !errors.As(err, &re) || re.Line < 1 || !strings.HasSuffix(re.File, ".csv") {
					t.Fatalf("error %q names no file and line", err)
				}
				if skip && re.Line != 1 && !strings.Contains(err.Error(), ": header: ") {
					t.Fatalf("skipping bad rows, still failed on line %d: %v", re.Line, err)
				}
				continue
			}
			var ps []*Patient
			for _, p := range r.persons {
				sortEvents(p.Events)
				ps = append(ps, p)
			}
			for _, p := range ps {
				checkPatients(t, []*Patient{p})
			}
		}
	})
}
