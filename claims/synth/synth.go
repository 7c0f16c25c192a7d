// Package synth generates synthetic hospitals: MEDS-shaped claims histories with the
// structure a foundation model is meant to find. Diagnoses are real ICD-10 codes
// (3 to 5 characters, "ICD10//E11.9"), drugs real ATC level-5 codes
// ("ATC//C10AA05"), procedures a short list of the package's own ("PROC//ECG").
//
// Patients live through disease trajectories month by month: the risk of each
// condition and the start of each drug depend on age, sex and which earlier
// conditions occurred, in what order and how recently (hypertension -> kidney
// disease -> heart failure; obesity -> diabetes -> retinopathy and its drugs; atrial
// fibrillation -> anticoagulants and stroke; NSAIDs or reflux -> proton-pump
// inhibitors; age -> dementia and osteoporosis). Conditions often announce
// themselves with symptoms and tests in the months before diagnosis. The records are
// the visits: several codes on one date, every visit recording some of the patient's
// known conditions and refills.
//
// Hospitals cycle through three archetypes (general hospital, cancer centre,
// clinic) that differ in age mix, size, case mix, prescribing and coding depth; one
// clinic in two records only 3-character ICD-10 categories.
//
// Generation is a pure function of the seed: patient i of hospital h is generated
// from its own random stream, so any patient can be made alone, in any order, and
// the same seed gives the same bytes.
package synth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
)

// Config says what to generate.
type Config struct {
	// Hospitals is the number of hospitals.
	Hospitals int
	// Patients is the mean number of patients per hospital: hospitals of different
	// archetypes differ in size, and together they hold Hospitals*Patients.
	Patients int
	// Seed determines everything generated.
	Seed uint64
	// TemporalStrength scales every order- and recency-dependent rule of the model
	// (see the package documentation's table) between 1, the rules as written, and
	// 0, where hazards and drug starts depend only on which conditions and drugs a
	// patient has, not on when or in what order they came. It is a control: a gain
	// of a sequence model over a count model that vanishes at 0 comes from order and
	// timing. Nil means 1, so that configurations written before it existed keep
	// their output byte for byte; it must lie in [0, 1].
	TemporalStrength *float64
}

// strength is cfg's temporal strength, 1 when unset.
func (cfg Config) strength() float64 {
	if cfg.TemporalStrength == nil {
		return 1
	}
	return *cfg.TemporalStrength
}

// Generator makes the patients of a set of synthetic hospitals.
type Generator struct {
	cfg       Config
	cat       *catalog
	hospitals []*Hospital
}

// New prepares the hospitals of cfg.
func New(cfg Config) (*Generator, error) {
	if cfg.Hospitals < 1 {
		return nil, fmt.Errorf("synth: hospitals = %d, want at least 1", cfg.Hospitals)
	}
	if cfg.Patients < 1 {
		return nil, fmt.Errorf("synth: patients = %d, want at least 1", cfg.Patients)
	}
	if cfg.Patients > 100_000_000 {
		return nil, fmt.Errorf("synth: patients = %d, want at most 100000000", cfg.Patients)
	}
	if ts := cfg.strength(); !(ts >= 0 && ts <= 1) {
		return nil, fmt.Errorf("synth: TemporalStrength = %g, want a value in [0, 1]", ts)
	}
	cat, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, cat: cat}
	for i := range cfg.Hospitals {
		h, err := newHospital(cat, cfg.Seed, i, cfg.Hospitals, cfg.Patients)
		if err != nil {
			return nil, fmt.Errorf("synth: hospital %d: %w", i+1, err)
		}
		h.strength = cfg.strength()
		g.hospitals = append(g.hospitals, h)
	}
	return g, nil
}

// Hospitals returns the hospitals in order. They are shared: do not modify them.
func (g *Generator) Hospitals() []*Hospital { return g.hospitals }

// Patient generates patient i (0-based) of hospital h (0-based). Subject ids are
// (h+1)*1e9 + i, so they increase within a hospital and never collide across them.
func (g *Generator) Patient(h, i int) *claims.Patient {
	return patient(g.hospitals[h], i)
}

// Reader streams the patients of hospital h in id order.
func (g *Generator) Reader(h int) claims.Reader {
	return &reader{h: g.hospitals[h]}
}

type reader struct {
	h    *Hospital
	next int
}

func (r *reader) Next(ctx context.Context) (*claims.Patient, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.next >= r.h.Patients {
		return nil, io.EOF
	}
	p := patient(r.h, r.next)
	r.next++
	return p, nil
}

func (r *reader) Close() error { return nil }

// Codes describes every code the generator can write, with its parents: the ICD-10
// and ATC hierarchies, the procedures, visits and the MEDS static codes. It is what
// Write puts in metadata/codes.parquet.
func (g *Generator) Codes() []claims.CodeInfo {
	var out []claims.CodeInfo
	add := func(code, desc string) {
		ci := claims.CodeInfo{Code: code, Description: desc}
		if p, ok := claims.Parent(code); ok {
			ci.Parents = []string{p}
		}
		out = append(out, ci)
	}
	for _, c := range g.cat.icd {
		add(c, g.cat.desc[c])
	}
	for _, c := range g.cat.atc {
		add(c, g.cat.desc[c])
	}
	for _, p := range procedureTable {
		add(claims.SystemProc+claims.Separator+p.code, p.desc)
	}
	add(codeInpatient, "Inpatient Visit")
	add(codeOutpatient, "Outpatient Visit")
	add(codeEmergency, "Emergency Room Visit")
	add(claims.SystemGender+claims.Separator+"F", "Female")
	add(claims.SystemGender+claims.Separator+"M", "Male")
	add(claims.CodeBirth, "Birth")
	add(claims.CodeDeath, "Death")
	slices.SortFunc(out, func(a, b claims.CodeInfo) int {
		switch {
		case a.Code < b.Code:
			return -1
		case a.Code > b.Code:
			return 1
		}
		return 0
	})
	return out
}

// Write writes each hospital as a MEDS dataset at dir/<hospital id>/, with
// metadata/codes.parquet and metadata/dataset.json. Each dataset appears whole or
// not at all.
func (g *Generator) Write(ctx context.Context, dir string) error {
	codes := g.Codes()
	for i := range g.hospitals {
		if _, err := g.writeHospital(ctx, dir, i, codes); err != nil {
			return err
		}
	}
	return nil
}

// WriteHospital writes hospital h alone, as Write does, and returns the number of
// events written.
func (g *Generator) WriteHospital(ctx context.Context, dir string, h int) (events int64, err error) {
	return g.writeHospital(ctx, dir, h, g.Codes())
}

func (g *Generator) writeHospital(ctx context.Context, dir string, i int, codes []claims.CodeInfo) (int64, error) {
	h := g.hospitals[i]
	meta := claims.DatasetMetadata{
		Name: h.ID,
		Version: fmt.Sprintf("%s; seed %d; %d hospitals of %d patients on average",
			h.Archetype, g.cfg.Seed, g.cfg.Hospitals, g.cfg.Patients),
		ETLName: "fedclaims synth",
	}
	// Only a strength other than 1 is named, so that strength 1 writes the bytes it
	// wrote before the knob existed.
	if ts := g.cfg.strength(); ts != 1 {
		meta.Version += fmt.Sprintf("; temporal strength %g", ts)
	}
	r := &countingReader{Reader: g.Reader(i)}
	err := claims.WriteMEDS(ctx, filepath.Join(dir, h.ID), r, claims.Codes(codes), claims.Metadata(meta))
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, err
		}
		return 0, fmt.Errorf("synth: writing hospital %s: %w", h.ID, err)
	}
	return r.events, nil
}

type countingReader struct {
	claims.Reader
	events int64
}

func (r *countingReader) Next(ctx context.Context) (*claims.Patient, error) {
	p, err := r.Reader.Next(ctx)
	if p != nil {
		r.events += int64(len(p.Events))
	}
	return p, err
}
