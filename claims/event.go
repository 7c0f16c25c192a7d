// Package claims is the event model of fedclaims: a patient is a subject id, a sex,
// a birth date and a time-ordered list of coded events. Readers turn MEDS parquet
// datasets and OMOP CDM CSV exports into patients, one subject at a time, and a
// writer turns patients back into MEDS.
//
// Codes always carry their code system as a prefix ("ICD10//E11.9",
// "ATC//C10AA05", "NDC//00002143380"): nothing downstream assumes a code system.
package claims

import (
	"math"
	"strings"
)

// Sex is a patient's recorded sex.
type Sex uint8

const (
	SexUnknown Sex = iota
	SexFemale
	SexMale
)

// String returns the MEDS code suffix for s ("F", "M" or "UNK").
func (s Sex) String() string {
	switch s {
	case SexFemale:
		return "F"
	case SexMale:
		return "M"
	}
	return "UNK"
}

// Kind says what an event is, derived from its code's prefix.
type Kind uint8

const (
	KindOther Kind = iota
	KindDiagnosis
	KindMedication
	KindProcedure
	KindVisit
	KindDeath
)

// String names k.
func (k Kind) String() string {
	switch k {
	case KindDiagnosis:
		return "diagnosis"
	case KindMedication:
		return "medication"
	case KindProcedure:
		return "procedure"
	case KindVisit:
		return "visit"
	case KindDeath:
		return "death"
	}
	return "other"
}

// Well-known MEDS codes.
const (
	CodeBirth = "MEDS_BIRTH"
	CodeDeath = "MEDS_DEATH"
	// CodeObservationEnd is the MEDS row that carries Patient.ObservationEnd. It is
	// fedclaims' own code, not one of MEDS's: MEDS defines no code for the end of
	// observation, so other MEDS tools see it as an ordinary event.
	CodeObservationEnd = "MEDS_OBSERVATION_END"
)

// Code-system prefixes, as they appear before the "//" separator.
const (
	SystemICD10    = "ICD10"
	SystemICD10CM  = "ICD10CM"
	SystemICD9CM   = "ICD9CM"
	SystemATC      = "ATC"
	SystemNDC      = "NDC"
	SystemRxNorm   = "RXNORM"
	SystemProc     = "PROC" // procedure codes (the generator's, and OMOP source values without a known system)
	SystemICD10PCS = "ICD10PCS"
	SystemCPT4     = "CPT4"
	SystemICD9Proc = "ICD9PROC"
	SystemHCPCS    = "HCPCS"
	SystemVisit    = "VISIT"
	SystemGender   = "GENDER"
	// Systems that community MEDS ETLs write (see CodeMap): drugs by name (the
	// MIMIC-IV ETL's MEDICATION//START//<name>), lab items, SNOMED CT and LOINC.
	SystemDrug   = "DRUG"
	SystemLab    = "LAB"
	SystemSNOMED = "SNOMED"
	SystemLOINC  = "LOINC"
)

// Separator splits a code's system from its value.
const Separator = "//"

// Event is one coded fact about a patient at one time.
type Event struct {
	// Time is microseconds since the Unix epoch, UTC.
	Time int64
	// Code is the prefixed code, e.g. "ICD10//E11.9".
	Code string
	// Value is the event's numeric_value, NaN when it has none.
	Value float32
}

// HasValue reports whether e carries a numeric value.
func (e Event) HasValue() bool { return !math.IsNaN(float64(e.Value)) }

// Kind derives the event's kind from its code.
func (e Event) Kind() Kind { return KindOf(e.Code) }

// Patient is one subject's history. Events are sorted by Time, ties by Code; static
// facts (sex, birth, the end of observation) live in the fields, not in Events.
type Patient struct {
	ID  int64
	Sex Sex
	// Birth is the birth time in microseconds since the Unix epoch; valid when HasBirth.
	Birth    int64
	HasBirth bool
	// ObservationEnd is the time until which the patient is known to be observed
	// (enrolled, in the source's catchment), in microseconds since the Unix epoch;
	// valid when HasObservationEnd. For an end date D it is the midnight (UTC) after
	// D. It may come before the last event (OMOP periods that are single hospital
	// stays) and does not end at death; see tasks.Labeler for how it is used.
	ObservationEnd    int64
	HasObservationEnd bool
	Events            []Event
}

// System returns the code system of code ("ICD10" for "ICD10//E11.9") and "" when
// code carries no prefix.
func System(code string) string {
	i := strings.Index(code, Separator)
	if i < 0 {
		return ""
	}
	return code[:i]
}

// Value returns the part of code after its system prefix.
func Value(code string) string {
	i := strings.Index(code, Separator)
	if i < 0 {
		return code
	}
	return code[i+len(Separator):]
}

// KindOf derives an event kind from a code's prefix.
func KindOf(code string) Kind {
	switch code {
	case CodeDeath:
		return KindDeath
	}
	switch System(code) {
	case SystemICD10, SystemICD10CM, SystemICD9CM:
		return KindDiagnosis
	case SystemATC, SystemNDC, SystemRxNorm, SystemDrug:
		return KindMedication
	case SystemProc, SystemICD10PCS, SystemCPT4, SystemICD9Proc, SystemHCPCS:
		return KindProcedure
	case SystemVisit:
		return KindVisit
	}
	return KindOther
}

// Parent returns the code one level up code's hierarchy, within the same code system,
// and false at the top or for systems without a syntactic hierarchy (NDC, RxNorm).
//
//	ICD10//E11.91 -> ICD10//E11.9 -> ICD10//E11
//	ICD9CM//250.01 -> ICD9CM//250.0 -> ICD9CM//250
//	ATC//C10AA05 -> ATC//C10AA -> ATC//C10A -> ATC//C10 -> ATC//C
func Parent(code string) (string, bool) {
	sys, val := System(code), Value(code)
	switch sys {
	case SystemICD10, SystemICD10CM, SystemICD9CM:
		dot := strings.IndexByte(val, '.')
		if dot < 0 {
			return "", false // a category (3 characters) is the top
		}
		if len(val)-dot-1 <= 1 {
			return sys + Separator + val[:dot], true
		}
		return sys + Separator + val[:len(val)-1], true
	case SystemATC:
		// ATC levels have 1, 3, 4, 5 and 7 characters.
		var up int
		switch len(val) {
		case 7:
			up = 5
		case 5:
			up = 4
		case 4:
			up = 3
		case 3:
			up = 1
		default:
			return "", false
		}
		return sys + Separator + val[:up], true
	}
	return "", false
}
