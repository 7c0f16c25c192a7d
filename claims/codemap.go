package claims

import (
	"fmt"
	"regexp"
	"strings"
)

// CodeMap turns codes as a dataset writes them into fedclaims' "SYSTEM//value"
// form. It sits between the readers and the event model because community MEDS
// datasets do not use fedclaims' prefixes: the MIMIC-IV MEDS ETL writes
// DIAGNOSIS//ICD//10//E039 and the OMOP->MEDS ETL ICD10CM/E11.9, and without a
// mapping every such event reads as "other" and never becomes a diagnosis token.
//
// A code goes through the user's rules first, in order, the first match winning
// (CodeRules); then the built-in recognisers (Recognise); a code nothing
// recognises is kept verbatim, as its own token of kind other. The zero of
// *CodeMap (nil) applies the built-in recognisers alone. A CodeMap is immutable
// and safe for concurrent use.
type CodeMap struct {
	rules []compiledRule
}

// compiledRule is a CodeRule with its pattern compiled.
type compiledRule struct {
	re     *regexp.Regexp
	system string
	code   string
	drop   bool
}

// NewCodeMap compiles rules, which come before the built-in recognisers. The
// error names the first bad rule by its position (from 1) and field.
func NewCodeMap(rules CodeRules) (*CodeMap, error) {
	m := &CodeMap{rules: make([]compiledRule, 0, len(rules))}
	for i, r := range rules {
		c, err := r.compile()
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		m.rules = append(m.rules, c)
	}
	return m, nil
}

// Map returns code in fedclaims' form, and false when a user rule drops it.
func (m *CodeMap) Map(code string) (string, bool) {
	if m != nil {
		for i := range m.rules {
			if out, drop, ok := m.rules[i].apply(code); ok {
				return out, !drop
			}
		}
	}
	return Recognise(code), true
}

// apply reports whether r matches code and, when it does, r's result. A rule
// whose code template expands to nothing (or only spaces) does not match, so
// that the next rule, or the built-ins, get the code.
func (r *compiledRule) apply(code string) (out string, drop, ok bool) {
	idx := r.re.FindStringSubmatchIndex(code)
	if idx == nil {
		return "", false, false
	}
	if r.drop {
		return "", true, true
	}
	v := strings.TrimSpace(string(r.re.ExpandString(nil, r.code, code, idx)))
	if v == "" {
		return "", false, false
	}
	return canonicalCode(r.system, v), false, true
}

// CodeMapping makes a reader map every code it reads through m (nil: the built-in
// recognisers alone, as without the option). Dropped codes are counted in
// Stats.Skipped.
func CodeMapping(m *CodeMap) Option {
	return func(o *options) { o.codes = m }
}

// CodesFile is CodeMapping with the rules read from the YAML file at path
// (ReadCodeRules); "" means the built-in recognisers alone. A bad file makes
// Open fail with the error, which names the file, the rule and the field.
func CodesFile(path string) Option {
	return func(o *options) {
		if path == "" {
			o.codes = nil
			return
		}
		m, err := LoadCodeMap(path)
		if err != nil {
			o.err = err
			return
		}
		o.codes = m
	}
}

// LoadCodeMap reads the rules file at path and compiles it; "" gives nil, the
// built-in recognisers alone.
func LoadCodeMap(path string) (*CodeMap, error) {
	if path == "" {
		return nil, nil
	}
	rules, err := ReadCodeRules(path)
	if err != nil {
		return nil, err
	}
	return rules.codeMap(path)
}

// skippedDropped is the Stats.Skipped reason of codes a rule drops.
const skippedDropped = "code dropped by a codes rule"
