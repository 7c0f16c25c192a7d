package synth

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
)

// The code lists are embedded so that generation needs no files at run time and a
// given seed gives the same output wherever the binary runs. See data/README.md for
// their sources and licences.
//
//go:embed data/icd10.csv.gz data/atc.csv.gz
var dataFS embed.FS

// catalog holds the real code lists the generator draws from. It is built once per
// Generator and never changed afterwards, so hospitals share it freely.
type catalog struct {
	// desc maps a prefixed code ("ICD10//E11.9", "ATC//C10AA05") to its description.
	desc map[string]string
	// icd lists the ICD-10 codes (3 to 5 characters) in file order.
	icd []string
	// atc lists the ATC codes of every level in file order.
	atc []string
}

func loadCatalog() (*catalog, error) {
	c := &catalog{desc: make(map[string]string, 40000)}
	err := readGzipCSV("data/icd10.csv.gz", func(rec []string) error {
		v := rec[0]
		if len(v) < 3 || len(v) > 5 {
			return fmt.Errorf("code %q is not 3 to 5 characters", v)
		}
		code := icdCode(v)
		c.desc[code] = rec[1]
		c.icd = append(c.icd, code)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readGzipCSV("data/atc.csv.gz", func(rec []string) error {
		v := rec[0]
		switch len(v) {
		case 1, 3, 4, 5, 7:
		default:
			return nil // the source holds one malformed row; it names no drug
		}
		code := claims.SystemATC + claims.Separator + v
		if _, dup := c.desc[code]; dup {
			return nil // the source lists some codes twice with variant names
		}
		c.desc[code] = rec[1]
		c.atc = append(c.atc, code)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// icdCode turns an undotted ICD-10 code ("E119") into the generator's prefixed,
// dotted form ("ICD10//E11.9").
func icdCode(v string) string {
	if len(v) > 3 {
		v = v[:3] + "." + v[3:]
	}
	return claims.SystemICD10 + claims.Separator + v
}

func readGzipCSV(name string, row func([]string) error) error {
	b, err := dataFS.ReadFile(name)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("synth: %s: %w", name, err)
	}
	r := csv.NewReader(zr)
	r.FieldsPerRecord = 2
	if _, err := r.Read(); err != nil {
		return fmt.Errorf("synth: %s: header: %w", name, err)
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("synth: %s: %w", name, err)
		}
		if err := row(rec); err != nil {
			line, _ := r.FieldPos(0)
			return fmt.Errorf("synth: %s line %d: %w", name, line, err)
		}
	}
}

// has reports whether code is in the catalog.
func (c *catalog) has(code string) bool {
	_, ok := c.desc[code]
	return ok
}

// pool returns the catalog codes of one system that no excluded prefix covers,
// in catalog order.
func pool(codes []string, keep func(string) bool, exclude []string) []string {
	var out []string
	for _, code := range codes {
		if !keep(code) {
			continue
		}
		if slices.ContainsFunc(exclude, func(p string) bool { return strings.HasPrefix(code, p) }) {
			continue
		}
		out = append(out, code)
	}
	return out
}
