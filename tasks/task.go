// Package tasks defines the prediction tasks and labels patients for them: disease
// incidence and medication initiation, as first onset of any code under a task's
// prefixes within a horizon after an index date, among patients who have none of
// those codes, nor any of the task's excluded codes, on or before it.
//
// Tasks are written in YAML (see Parse and default.yaml). A Labeler draws index
// dates per patient among its visit days, shared by all its tasks, and labels the
// patient for each, with follow-up through every horizon (see Labeler for the
// rules); History is the only view of a patient that the encoder and the baseline
// may see: the events strictly before the index date.
package tasks

import (
	_ "embed"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/fedclaims/fedclaims/claims"
)

// Kind is what a task predicts.
type Kind string

const (
	// Disease is the first diagnosis of a condition.
	Disease Kind = "disease"
	// Medication is the first prescription of a drug class.
	Medication Kind = "medication"
)

// Default horizons and look-back, in days, for tasks that do not set their own.
const (
	DefaultDiseaseHorizonDays    = 730
	DefaultMedicationHorizonDays = 365
	DefaultLookbackDays          = 365
	// maxDays bounds horizons and look-backs to a century.
	maxDays = 36_500
)

// fileVersion is the task file format this package reads.
const fileVersion = 1

// Task is one binary prediction target.
type Task struct {
	// Name identifies the task in reports: lower case, digits and underscores.
	Name string
	Kind Kind
	// Description is free text for reports.
	Description string
	// Prefixes are prefixed codes ("ICD10//E11", "ATC//C10AA"); an event whose code
	// starts with any of them is an occurrence of the target (see Matches).
	Prefixes []string
	// ExcludePrefixes are prior history that disqualifies a first onset: a patient
	// with any code under them on or before the index date is excluded, as one with
	// the target is (ischaemic stroke excludes the sequelae of an earlier one). They
	// match as Prefixes do (see Excludes).
	ExcludePrefixes []string
	// ExactSystem makes prefixes match their own code system only. By default an
	// ICD10 prefix also matches ICD10CM codes and an ICD10CM prefix ICD10 codes:
	// WHO ICD-10 and ICD-10-CM share their categories, and data converted from OMOP
	// carries ICD-10-CM.
	ExactSystem bool
	// HorizonDays is the length of the prediction window after the index date.
	HorizonDays int
	// LookbackDays is the history a patient must have before the index date.
	LookbackDays int
}

// Matches reports whether code is an occurrence of t's target: whether it starts
// with one of t.Prefixes. Unless t.ExactSystem, the systems ICD10 and ICD10CM are
// one (a prefix "ICD10//E11" matches "ICD10CM//E11.9" and "ICD10CM//E11" matches
// "ICD10//E11.9"). In ICD systems (ICD10, ICD10CM, ICD9CM) dots are ignored on both
// sides, since data write codes with and without them: "ICD10//I11.0" matches
// "ICD10//I110" and "ICD10//I110" matches "ICD10//I11.0".
func (t *Task) Matches(code string) bool { return matchAny(t.Prefixes, code, t.ExactSystem) }

// Excludes reports whether code is prior history that disqualifies a first onset of
// t: whether it starts with one of t.ExcludePrefixes, matched as Matches does.
func (t *Task) Excludes(code string) bool {
	return matchAny(t.ExcludePrefixes, code, t.ExactSystem)
}

// Systems returns the code systems whose codes can match t's target (not its
// exclusions), sorted and unique: the systems of t.Prefixes, with ICD10 and ICD10CM
// standing for each other unless t.ExactSystem. A task none of whose systems occurs
// in a dataset cannot have a positive there.
func (t *Task) Systems() []string {
	var out []string
	for _, p := range t.Prefixes {
		sys := claims.System(p)
		out = append(out, sys)
		if alt, ok := twinSystem(sys); ok && !t.ExactSystem {
			out = append(out, alt)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// twinSystem returns the system that shares sys's codes: ICD10 for ICD10CM and
// ICD10CM for ICD10.
func twinSystem(sys string) (string, bool) {
	switch sys {
	case claims.SystemICD10:
		return claims.SystemICD10CM, true
	case claims.SystemICD10CM:
		return claims.SystemICD10, true
	}
	return "", false
}

// matchAny reports whether code starts with one of prefixes (see Task.Matches).
func matchAny(prefixes []string, code string, exact bool) bool {
	csys, cval, ok := strings.Cut(code, claims.Separator)
	if !ok {
		return false
	}
	for _, p := range prefixes {
		psys, pval, ok := strings.Cut(p, claims.Separator)
		if !ok {
			continue
		}
		if psys != csys {
			if alt, twin := twinSystem(psys); exact || !twin || alt != csys {
				continue
			}
		}
		if isICD(psys) {
			if undottedPrefix(cval, pval) {
				return true
			}
		} else if strings.HasPrefix(cval, pval) {
			return true
		}
	}
	return false
}

func isICD(sys string) bool {
	return sys == claims.SystemICD10 || sys == claims.SystemICD10CM || sys == claims.SystemICD9CM
}

// undottedPrefix reports whether s starts with prefix when the dots of both are
// ignored. It does not allocate: it is called for every event and task.
func undottedPrefix(s, prefix string) bool {
	i := 0
	for j := 0; j < len(prefix); j++ {
		if prefix[j] == '.' {
			continue
		}
		for i < len(s) && s[i] == '.' {
			i++
		}
		if i == len(s) || s[i] != prefix[j] {
			return false
		}
		i++
	}
	return true
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the default task file.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the default tasks: six diseases and four medication classes.
func Default() []Task {
	ts, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("tasks: the embedded default task file is invalid: " + err.Error())
	}
	return ts
}

// ReadFile reads a task file.
func ReadFile(path string) ([]Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("task file: %w", err)
	}
	return Parse(path, data)
}

// Parse reads the task file data; name is the file's name for error messages, which
// give name:line and the field at fault. The format is
//
//	version: 1
//	tasks:
//	  - name: t2d                 # required: [a-z][a-z0-9_]*, unique
//	    kind: disease             # required: disease or medication
//	    description: type 2 diabetes
//	    prefixes: [ICD10//E11]    # required: diagnosis codes for a disease,
//	                              # medication codes for a medication
//	    exclude_prefixes: [ICD10//E10, ICD10//E13, ICD10//E14]
//	                              # optional: prior history, of the same kind as
//	                              # prefixes, that disqualifies a first onset
//	    exact_system: false       # default false: an ICD10 prefix also matches
//	                              # ICD10CM codes and vice versa (see Task.Matches)
//	    horizon_days: 730         # default 730 for a disease, 365 for a medication
//	    lookback_days: 365        # default 365
//
// Unknown fields are errors, so that a misspelt field is not silently ignored.
func Parse(name string, data []byte) ([]Task, error) {
	if !utf8.Valid(data) {
		line := 1 + strings.Count(string(data[:invalidUTF8At(data)]), "\n")
		return nil, fmt.Errorf("%s:%d: not valid UTF-8", name, line)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := parser{file: name}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty task file", name)
	}
	var (
		version = -1
		tasks   []Task
	)
	err := p.mapping(doc.Content[0], "top level", func(key string, v *yaml.Node) error {
		switch key {
		case "version":
			n, err := p.integer(v, key)
			version = n
			return err
		case "tasks":
			if v.Kind != yaml.SequenceNode {
				return p.errorf(v, key, "want a list of tasks")
			}
			names := make(map[string]int)
			for i, item := range v.Content {
				at := fmt.Sprintf("tasks[%d]", i)
				t, err := p.task(item, at)
				if err != nil {
					return err
				}
				if line, dup := names[t.Name]; dup {
					return p.errorf(item, at+".name", "%q is already the name of the task at line %d", t.Name, line)
				}
				names[t.Name] = item.Line
				tasks = append(tasks, t)
			}
			return nil
		}
		return p.errorf(v, key, "unknown field (want version or tasks)")
	})
	if err != nil {
		return nil, err
	}
	switch {
	case version == -1:
		return nil, fmt.Errorf("%s: field version: missing (want version: %d)", name, fileVersion)
	case version != fileVersion:
		return nil, fmt.Errorf("%s: field version: unsupported version %d (this build reads %d)", name, version, fileVersion)
	case len(tasks) == 0:
		return nil, fmt.Errorf("%s: field tasks: no tasks", name)
	}
	return tasks, nil
}

// parser turns YAML nodes into tasks, with file:line errors.
type parser struct{ file string }

func (p parser) errorf(n *yaml.Node, field, format string, args ...any) error {
	return fmt.Errorf("%s:%d: field %s: %s", p.file, n.Line, field, fmt.Sprintf(format, args...))
}

// mapping calls f for each key of the mapping n, rejecting duplicate keys.
func (p parser) mapping(n *yaml.Node, field string, f func(key string, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return p.errorf(n, field, "want a mapping of field names to values")
	}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return p.errorf(k, field, "keys must be plain field names")
		}
		if seen[k.Value] {
			return p.errorf(k, k.Value, "appears twice")
		}
		seen[k.Value] = true
		if err := f(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func (p parser) scalar(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.errorf(n, field, "want a single value")
	}
	return n.Value, nil
}

func (p parser) integer(n *yaml.Node, field string) (int, error) {
	s, err := p.scalar(n, field)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s:%d: field %s: %q is not a whole number: %w", p.file, n.Line, field, s, err)
	}
	return v, nil
}

// prefixes reads a list of prefixed codes.
func (p parser) prefixes(v *yaml.Node, field string) ([]string, []*yaml.Node, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, nil, p.errorf(v, field, "want a list of prefixed codes")
	}
	var out []string
	var nodes []*yaml.Node
	for i, item := range v.Content {
		at := fmt.Sprintf("%s[%d]", field, i)
		s, err := p.scalar(item, at)
		if err != nil {
			return nil, nil, err
		}
		// In an ICD system dots are ignored (see Task.Matches), so a value of dots
		// alone would match every code.
		val := claims.Value(s)
		if isICD(claims.System(s)) {
			val = strings.ReplaceAll(val, ".", "")
		}
		if claims.System(s) == "" || val == "" || strings.ContainsFunc(s, isSpace) {
			return nil, nil, p.errorf(item, at, "%q: want a code system, // and a code prefix, as in ICD10//E11", s)
		}
		out = append(out, s)
		nodes = append(nodes, item)
	}
	return out, nodes, nil
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func (p parser) task(n *yaml.Node, at string) (Task, error) {
	var t Task
	var prefixNodes, excludeNodes []*yaml.Node
	horizon, lookback := -1, -1
	err := p.mapping(n, at, func(key string, v *yaml.Node) error {
		field := at + "." + key
		var err error
		switch key {
		case "name":
			t.Name, err = p.scalar(v, field)
			if err == nil && !namePattern.MatchString(t.Name) {
				err = p.errorf(v, field, "%q: want a lower-case letter, then up to 63 lower-case letters, digits or underscores", t.Name)
			}
		case "kind":
			var s string
			s, err = p.scalar(v, field)
			t.Kind = Kind(s)
			if err == nil && t.Kind != Disease && t.Kind != Medication {
				err = p.errorf(v, field, "%q: want disease or medication", s)
			}
		case "description":
			t.Description, err = p.scalar(v, field)
		case "prefixes":
			t.Prefixes, prefixNodes, err = p.prefixes(v, field)
		case "exclude_prefixes":
			t.ExcludePrefixes, excludeNodes, err = p.prefixes(v, field)
		case "exact_system":
			var s string
			s, err = p.scalar(v, field)
			switch s {
			case "true":
				t.ExactSystem = true
			case "false":
				t.ExactSystem = false
			default:
				if err == nil {
					err = p.errorf(v, field, "%q: want true or false", s)
				}
			}
		case "horizon_days":
			horizon, err = p.integer(v, field)
			if err == nil && (horizon < 1 || horizon > maxDays) {
				err = p.errorf(v, field, "%d: want 1 to %d days", horizon, maxDays)
			}
		case "lookback_days":
			lookback, err = p.integer(v, field)
			if err == nil && (lookback < 0 || lookback > maxDays) {
				err = p.errorf(v, field, "%d: want 0 to %d days", lookback, maxDays)
			}
		default:
			err = p.errorf(v, field, "unknown field (want name, kind, description, prefixes, exclude_prefixes, exact_system, horizon_days or lookback_days)")
		}
		return err
	})
	if err != nil {
		return Task{}, err
	}
	switch {
	case t.Name == "":
		return Task{}, p.errorf(n, at+".name", "missing")
	case t.Kind == "":
		return Task{}, p.errorf(n, at+".kind", "missing")
	case len(t.Prefixes) == 0:
		return Task{}, p.errorf(n, at+".prefixes", "missing or empty")
	}
	// A disease is found among diagnoses and a drug among medications; a prefix of
	// another kind would label on codes the task does not mean.
	want := claims.KindDiagnosis
	if t.Kind == Medication {
		want = claims.KindMedication
	}
	for i, pre := range t.Prefixes {
		if k := claims.KindOf(pre); k != want {
			return Task{}, p.errorf(prefixNodes[i], fmt.Sprintf("%s.prefixes[%d]", at, i), "%q is a %s code, but a %s task needs %s codes", pre, k, t.Kind, want)
		}
	}
	for i, pre := range t.ExcludePrefixes {
		if k := claims.KindOf(pre); k != want {
			return Task{}, p.errorf(excludeNodes[i], fmt.Sprintf("%s.exclude_prefixes[%d]", at, i), "%q is a %s code, but a %s task needs %s codes", pre, k, t.Kind, want)
		}
	}
	t.HorizonDays = horizon
	if horizon < 0 {
		t.HorizonDays = DefaultDiseaseHorizonDays
		if t.Kind == Medication {
			t.HorizonDays = DefaultMedicationHorizonDays
		}
	}
	t.LookbackDays = lookback
	if lookback < 0 {
		t.LookbackDays = DefaultLookbackDays
	}
	return t, nil
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// invalidUTF8At returns the offset of the first invalid UTF-8 sequence in data.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}
