package claims

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func writeParquet[T any](t *testing.T, path string, rows []T) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestReadCodesOtherTools(t *testing.T) {
	type codeOnly struct {
		Code  string `parquet:"code"`
		Other int64  `parquet:"other"`
	}
	type withDescription struct {
		Description *string `parquet:"description,optional"`
		Code        string  `parquet:"code"`
	}
	desc := "Essential hypertension"
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	writeParquet(t, a, []codeOnly{{"ICD10//I10", 1}, {"ATC//C10AA05", 2}})
	writeParquet(t, b, []withDescription{{&desc, "ICD10//I10"}, {nil, "ICD10//E11"}})
	tests := []struct {
		path string
		want []CodeInfo
	}{
		{a, []CodeInfo{{Code: "ICD10//I10"}, {Code: "ATC//C10AA05"}}},
		{b, []CodeInfo{{Code: "ICD10//I10", Description: desc}, {Code: "ICD10//E11"}}},
	}
	for _, tt := range tests {
		got, err := ReadCodes(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", filepath.Base(tt.path), got, tt.want)
		}
	}
}

func TestReadCodesMalformed(t *testing.T) {
	type noCode struct {
		Description string `parquet:"description"`
	}
	type intCode struct {
		Code int64 `parquet:"code"`
	}
	type badUTF8 struct {
		Code []byte `parquet:"code"`
	}
	dir := t.TempDir()
	paths := map[string]string{"no code": filepath.Join(dir, "1.parquet"), "int code": filepath.Join(dir, "2.parquet"), "utf8": filepath.Join(dir, "3.parquet"), "junk": filepath.Join(dir, "4.parquet")}
	writeParquet(t, paths["no code"], []noCode{{"x"}})
	writeParquet(t, paths["int code"], []intCode{{1}})
	writeParquet(t, paths["utf8"], []badUTF8{{[]byte("ok")}, {[]byte("\xff")}})
	os.WriteFile(paths["junk"], []byte("code,description\n"), 0o644)
	tests := []struct {
		name string
		is   error
		row  int64
	}{
		{"no code", ErrMissingColumn, 0},
		{"int code", ErrColumnType, 0},
		{"utf8", ErrNotUTF8, 2},
		{"junk", ErrCorrupt, 0},
	}
	for _, tt := range tests {
		_, err := ReadCodes(paths[tt.name])
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.is)
			continue
		}
		var re *RowError
		if tt.row > 0 && (!errors.As(err, &re) || re.Row != tt.row || re.Column != "code") {
			t.Errorf("%s: %v, want row %d column code", tt.name, err, tt.row)
		}
	}
}
