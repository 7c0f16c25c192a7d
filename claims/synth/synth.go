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
// # Order and timing
//
// Config.TemporalStrength s scales every rule below, the model's only dependences
// on order, recency or duration. At s = 1 each applies as written; at s = 0 each is
// replaced by its order-free value, so hazards and drug starts depend only on
// which conditions and drugs a patient has (and age, sex, calendar year); between,
// each value v becomes flat + s*(v - flat), which for a multiplier m relative to
// its flat value is 1 + s*(m - 1). The flat value of a recency rule is its mean
// over the first five years after the event (ten for the insulin rule, which
// starts at five), over a drug course's mean length (1/monthly stop chance) for a
// rule about how long a drug has been taken; of a duration rule, its value at 7.5
// years, the middle of its 0-15 year range; of an order or onset-age rule, the mean
// of its two branches.
//
//	rule (hazard ratio at s = 1)                          motivation                          flat
//	HF: HTN began before CKD x6, CKD before HTN x1.5      hypertensive nephropathy -> HF       x3.75
//	HF: AF within 12 months x4, later x2                  new AF, rate not yet controlled      x2.43
//	stroke: untreated AF within 12 months x6, later x4    early embolic risk                   x4.43
//	stroke: TIA within 3 months x15, 12 x4, later x2      stroke risk peaks right after TIA    x3.17
//	T2D: obesity from before 45 x4, from 45 on x2         duration of adiposity                x3
//	retinopathy: 0.015/yr x (years of T2D, <= 15)/3       microvascular damage accrues         7.5 yr
//	CKD: HTN x(1.5 + 0.1 x years, <= 15)                  as above                             x2.25
//	CKD: T2D x(1.8 + 0.1 x years, <= 15)                  diabetic nephropathy                 x2.55
//	depression: stroke within 24 months x2.5              post-stroke depression               x1.63
//	dementia: stroke within 36 months x3, later x1.8      post-stroke dementia                 x2.54
//	dementia: depression from 60 on x2.2, earlier x1.2    late-life depression as a prodrome   x1.7
//	osteoporosis: fracture within 6 months x8, later x2   a fragility fracture prompts work-up x2.7
//	osteoporosis: PPI taken for 12 months or more x1.3    long-term PPI and bone loss          x1.16
//	VTE: fracture within 3 months x10                     immobility                           x1.6
//	death: stroke this month or last x5                   early case fatality                  x1.13
//	drug starts (per visit): the first 3 months after a diagnosis give 0.3-0.7
//	  (statin, metformin, DPP-4, ARB, CCB, beta blocker, loop diuretic, DOAC,
//	  warfarin, antiplatelet, PPI, H2 blocker, NSAID, bisphosphonate,
//	  antidementia, antidepressant, inhaler; chemotherapy 6 months, DOAC after
//	  VTE 1, NSAID and opioid after a fracture 2 and 1), later 0-0.05   treatment follows diagnosis   5-year mean
//	drug starts: PPI in the 2-3 months after an NSAID, antithrombotic (65+) or
//	  steroid start 0.25/0.15/0.1; DPP-4 after 6 months of metformin 0.06;
//	  insulin after 5 years of T2D 0.01; opioid after a year of cancer 0.02      prescribing cascades          course or 5-year mean
//	prodromes: symptoms and tests of a brewing T2D, CKD, HF, dementia or
//	  osteoporosis, recorded in the months before onset                          conditions announce themselves  see below
//
// Prodromes are timing itself, so they are not scaled: below 1 the simulation runs
// as before, but each prodromal code stays on its visit with probability s and
// otherwise moves to a visit drawn uniformly from the patient's record. The same
// codes occur as often on the same simulated path, at s = 0 with no relation to
// when the condition begins. Two traces of timing remain at every strength: a
// brewing condition still makes visits more frequent in its months, and a
// condition is first recorded at a visit after its onset.
//
// Left as they are: calendar-year rules (SGLT2 inhibitors from 2014, DOACs
// displacing warfarin), drug states (on a statin, anticoagulated, on steroids: what
// the patient has now), and coding rules (tests and procedures at the diagnosis
// visit, rehabilitation in the months after a stroke or fracture, a stroke recoded
// as its sequelae after a month, osteoporosis coded with a fracture when one is
// recent, vascular dementia after a stroke), which say how a visit records the
// history rather than what happens in it.
//
// What s = 0 does to the marginals (seed 1, a general hospital of 4,200
// patients, share of patients with a code at s = 1 -> 0): conditions stay within
// 15% (hypertension 0.489 -> 0.485, T2D 0.373 -> 0.362, heart failure 0.131 ->
// 0.122, CKD 0.155 -> 0.134, retinopathy 0.134 -> 0.116) but for stroke (0.032 ->
// 0.038, the averaged TIA and AF windows); drugs are started less often and
// later, so refilled less (statin 0.51 -> 0.45, DOAC 0.062 -> 0.045, warfarin
// 0.021 -> 0.015), except chemotherapy (0.027 -> 0.041), whose averaged start
// chance lasts as long as the cancer; events per patient fall from 241 to 221.
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
