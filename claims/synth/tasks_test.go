package synth

import (
	"strings"

	"github.com/fedclaims/fedclaims/claims"
)

// target is one default task: codes under any of its prefixes mark an event.
type target struct {
	name     string
	prefixes []string
	horizon  int64 // days
}

// defaultTargets mirrors the agreed default task file, so this package can check
// its own prevalence without depending on package tasks.
var defaultTargets = []target{
	{"t2d", []string{"ICD10//E11"}, 730},
	{"heart_failure", []string{"ICD10//I50"}, 730},
	{"ckd", []string{"ICD10//N18"}, 730},
	{"ischaemic_stroke", []string{"ICD10//I63"}, 730},
	{"dementia", []string{"ICD10//F00", "ICD10//F01", "ICD10//F02", "ICD10//F03", "ICD10//G30"}, 730},
	{"osteoporosis", []string{"ICD10//M80", "ICD10//M81"}, 730},
	{"statins", []string{"ATC//C10AA"}, 365},
	{"dpp4_inhibitors", []string{"ATC//A10BH"}, 365},
	{"ppi", []string{"ATC//A02BC"}, 365},
	{"doac", []string{"ATC//B01AF"}, 365},
}

func (t target) matches(code string) bool {
	for _, p := range t.prefixes {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// label is a first-onset label with the index date one year after the first event:
// eligible when the record runs the whole horizon past the index (censored
// patients are excluded) and no target code occurs on or before the index.
func (t target) label(p *claims.Patient) (eligible, positive bool) {
	if len(p.Events) == 0 {
		return false, false
	}
	const day = int64(86400) * 1_000_000
	index := p.Events[0].Time + 365*day
	last := p.Events[len(p.Events)-1].Time
	if last < index+t.horizon*day && p.Events[len(p.Events)-1].Code != claims.CodeDeath {
		return false, false
	}
	for _, e := range p.Events {
		if e.Time > index+t.horizon*day {
			break
		}
		if !t.matches(e.Code) {
			continue
		}
		if e.Time <= index {
			return false, false
		}
		return true, true
	}
	return true, false
}
