// Package tasks defines the prediction tasks and labels patients for them: disease
// incidence and medication initiation, as first onset of any code under a task's
// prefixes within a horizon after an index date, among patients who have none of
// those codes on or before it.
//
// Tasks are written in YAML (see Parse and default.yaml). A Labeler draws one index
// date per patient, shared by all its tasks, and labels the patient for each;
// History is the only view of a patient that the encoder and the baseline may see:
// the events strictly before the index date.
package tasks

import (
	_ "embed"
	"fmt"
	"os"
	"regexp"
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
	// starts with any of them is an occurrence of the target.
	Prefixes []string
	// HorizonDays is the length of the prediction window after the index date.
	HorizonDays int
	// LookbackDays is the history a patient must have before the index date.
	LookbackDays int
}

// Matches reports whether code is an occurrence of t's target.
func (t *Task) Matches(code string) bool {
	for _, p := range t.Prefixes {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
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

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func (p parser) task(n *yaml.Node, at string) (Task, error) {
	var t Task
	var prefixNodes []*yaml.Node
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
			if v.Kind != yaml.SequenceNode {
				return p.errorf(v, field, "want a list of prefixed codes")
			}
			for i, item := range v.Content {
				s, err := p.scalar(item, fmt.Sprintf("%s[%d]", field, i))
				if err != nil {
					return err
				}
				if claims.System(s) == "" || claims.Value(s) == "" || strings.ContainsFunc(s, isSpace) {
					return p.errorf(item, fmt.Sprintf("%s[%d]", field, i), "%q: want a code system, // and a code prefix, as in ICD10//E11", s)
				}
				t.Prefixes = append(t.Prefixes, s)
				prefixNodes = append(prefixNodes, item)
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
			err = p.errorf(v, field, "unknown field (want name, kind, description, prefixes, horizon_days or lookback_days)")
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
