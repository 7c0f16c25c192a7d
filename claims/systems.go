package claims

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// The systems are listed in one place so that data inspect can tell a dataset
// whose codes fedclaims understands from one whose codes it only carries along:
// a dataset in an unknown convention reads without error, and only the share of
// its events outside every known system shows that the model will learn little.

// SystemMEDS is the events_by_system name of MEDS's own codes (MEDS_DEATH, ...).
const SystemMEDS = "MEDS"

// SystemUnrecognised is the events_by_system name of the events whose code is in
// no known system.
const SystemUnrecognised = "unrecognised"

// KnownSystem reports whether sys is a code system fedclaims knows.
func KnownSystem(sys string) bool {
	switch sys {
	case SystemICD10, SystemICD10CM, SystemICD9CM, SystemATC, SystemNDC, SystemRxNorm,
		SystemProc, SystemICD10PCS, SystemCPT4, SystemICD9Proc, SystemHCPCS, SystemVisit,
		SystemGender, SystemDrug, SystemLab, SystemSNOMED, SystemLOINC:
		return true
	}
	return false
}

// SystemOf names the system of code as data inspect counts it: its prefix when
// that is a known system, SystemMEDS for MEDS's own codes, else
// SystemUnrecognised.
func SystemOf(code string) string {
	if strings.HasPrefix(code, "MEDS_") {
		return SystemMEDS
	}
	if sys := System(code); sys != "" && KnownSystem(sys) {
		return sys
	}
	return SystemUnrecognised
}

// maxPrefixLen bounds a reported prefix, so that a free-text code without a
// separator does not fill the log.
const maxPrefixLen = 40

// CodePrefix is what a person would call the prefix of an unrecognised code: its
// first "//"- or "/"-separated segment ("HOSPITAL_ADMISSION" for
// "HOSPITAL_ADMISSION//EW EMER.", "Race" for "Race/5"), at most 40 bytes.
func CodePrefix(code string) string {
	p := code
	if i := strings.IndexByte(code, '/'); i >= 0 {
		p = code[:i]
	}
	if len(p) > maxPrefixLen {
		p = p[:maxPrefixLen]
		for len(p) > 0 && !utf8.ValidString(p) { // do not cut a character in two
			p = p[:len(p)-1]
		}
	}
	return p
}

// PrefixCount is an unrecognised prefix and the events that carry it.
type PrefixCount struct {
	Prefix string `json:"prefix"`
	Events int64  `json:"events"`
}

// TopPrefixes returns the n prefixes of counts with the most events, ties by prefix.
func TopPrefixes(counts map[string]int64, n int) []PrefixCount {
	out := make([]PrefixCount, 0, len(counts))
	for _, p := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, PrefixCount{p, counts[p]})
	}
	slices.SortStableFunc(out, func(a, b PrefixCount) int { return cmp.Compare(b.Events, a.Events) })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// UnrecognisedShare is the fraction of s's events whose code is in no known
// system (0 without events).
func (s Summary) UnrecognisedShare() float64 {
	if s.Events == 0 {
		return 0
	}
	return float64(s.EventsBySystem[SystemUnrecognised]) / float64(s.Events)
}
