package claims

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fedclaims/fedclaims/internal/strictyaml"
)

// CodeRule is one user rule of a codes file (--codes FILE, a site's codes key):
// codes that match Pattern become System//Code, or are dropped with Drop. Rules
// exist because no built-in recogniser can know a site's local codes; they come
// before the built-ins, so a rule can also override one.
//
//	# codes.yaml
//	- pattern: 'LOCAL_DX//(.*)'   # matched against the whole code
//	  system: ICD10CM
//	  code: '$1'                  # a regexp template: $1, ${1}, ${name}
//	- pattern: 'TRANSFER_TO//.*'
//	  drop: true
type CodeRule struct {
	// Pattern is a Go regular expression (RE2) matched against the whole code, as
	// if written ^(?:Pattern)$.
	Pattern string `yaml:"pattern"`
	// System is the fedclaims code system of the result, such as ICD10CM, ATC or
	// LAB: upper-case letters, digits and underscores. ICD codes are dotted as
	// fedclaims stores them (E119 becomes E11.9), so that roll-up works.
	System string `yaml:"system"`
	// Code is the value's template, with Pattern's groups as $1, ${1} or ${name}
	// and $$ for a dollar sign.
	Code string `yaml:"code"`
	// Drop drops matching codes instead; a dropping rule has no System or Code.
	Drop bool `yaml:"drop"`
}

// CodeRules are a codes file's rules, in order: the first that matches wins.
type CodeRules []CodeRule

// Validate reports the first problem of r, naming the field.
func (r CodeRule) Validate() error {
	_, err := r.compile()
	return err
}

// Validate reports the first bad rule by its position (from 1) and field.
func (rs CodeRules) Validate() error {
	_, err := NewCodeMap(rs)
	return err
}

func (r CodeRule) compile() (compiledRule, error) {
	if r.Pattern == "" {
		return compiledRule{}, errors.New("field pattern: required")
	}
	re, err := regexp.Compile(`^(?:` + r.Pattern + `)$`)
	if err != nil {
		return compiledRule{}, fmt.Errorf("field pattern: %w", err)
	}
	if r.Drop {
		if r.System != "" || r.Code != "" {
			return compiledRule{}, errors.New("field drop: a rule that drops codes takes no system or code")
		}
		return compiledRule{re: re, drop: true}, nil
	}
	switch {
	case r.System == "":
		return compiledRule{}, errors.New("field system: required unless drop is true")
	case !isSystemName(r.System):
		return compiledRule{}, fmt.Errorf("field system: %q: want upper-case letters, digits and underscores, such as ICD10CM", r.System)
	case r.Code == "":
		return compiledRule{}, errors.New("field code: required unless drop is true (a template such as $1)")
	}
	if err := checkTemplate(r.Code, re); err != nil {
		return compiledRule{}, fmt.Errorf("field code: %q: %w", r.Code, err)
	}
	return compiledRule{re: re, system: r.System, code: r.Code}, nil
}

// checkTemplate refuses what regexp's Expand would silently turn into nothing: a
// group the pattern does not have, or a $ that starts no reference.
func checkTemplate(tmpl string, re *regexp.Regexp) error {
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' {
			continue
		}
		i++
		if i < len(tmpl) && tmpl[i] == '$' {
			continue
		}
		var name string
		switch {
		case i < len(tmpl) && tmpl[i] == '{':
			j := strings.IndexByte(tmpl[i:], '}')
			if j < 0 {
				return errors.New("${ without its }")
			}
			name, i = tmpl[i+1:i+j], i+j
		default:
			j := i
			for j < len(tmpl) && isNameByte(tmpl[j]) {
				j++
			}
			name, i = tmpl[i:j], j-1
		}
		if name == "" {
			return errors.New("a $ that names no group (write $$ for a dollar sign)")
		}
		if n, err := strconv.Atoi(name); err == nil {
			if n > re.NumSubexp() {
				return fmt.Errorf("$%s: the pattern has %d groups", name, re.NumSubexp())
			}
			continue
		}
		if re.SubexpIndex(name) < 0 {
			return fmt.Errorf("no group named %q in the pattern (write ${1}x, not $1x, for a group followed by letters)", name)
		}
	}
	return nil
}

// isSystemName matches a code system name: an upper-case letter, then upper-case
// letters, digits and underscores.
func isSystemName(s string) bool {
	if s == "" || !isUpper(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isUpper(s[i]) && !isDigit(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

func isNameByte(b byte) bool {
	return b == '_' || isDigit(b) || isUpper(b) || (b >= 'a' && b <= 'z')
}

// ParseCodeRules decodes and checks a codes file's contents: a YAML list of rules.
// Unknown keys are refused. The error names name, the rule (from 1) with its line,
// and the field.
func ParseCodeRules(name string, data []byte) (CodeRules, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("codes file %s: %w", name, err)
	}
	if len(root.Content) == 1 && root.Content[0].Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("codes file %s: line %d: want a list of rules (- pattern: ...), not a %s",
			name, root.Content[0].Line, nodeKind(root.Content[0].Kind))
	}
	var rules CodeRules
	if err := strictyaml.Decode("codes file "+name, "codes file", data, &rules); err != nil {
		return nil, err
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			line := ""
			if items := root.Content[0].Content; i < len(items) {
				line = fmt.Sprintf(" (line %d)", items[i].Line)
			}
			return nil, fmt.Errorf("codes file %s: rule %d%s: %w", name, i+1, line, err)
		}
	}
	return rules, nil
}

func nodeKind(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// ReadCodeRules reads and checks the codes file at path (ParseCodeRules).
func ReadCodeRules(path string) (CodeRules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codes file: %w", err)
	}
	return ParseCodeRules(path, data)
}

// codeMap compiles rules that ParseCodeRules has checked; name is for the error.
func (rs CodeRules) codeMap(name string) (*CodeMap, error) {
	m, err := NewCodeMap(rs)
	if err != nil {
		return nil, fmt.Errorf("codes file %s: %w", name, err)
	}
	return m, nil
}
