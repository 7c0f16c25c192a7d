package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// field is one key of a struct: its YAML name and type.
type field struct {
	name string
	typ  reflect.Type
}

// fields lists t's keys, embedded structs' keys in place (as `yaml:",inline"` and
// mapstructure's squash both read them); a field tagged "-" is no key.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if sf.Anonymous && name == "" && deref(sf.Type).Kind() == reflect.Struct {
			out = append(out, fields(deref(sf.Type))...)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{name, sf.Type})
	}
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var durationType = reflect.TypeFor[time.Duration]()

// isSection reports whether t is a struct of keys rather than one value.
func isSection(t reflect.Type) bool {
	t = deref(t)
	return t.Kind() == reflect.Struct && t != durationType && !reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]())
}

// Keys lists the dotted keys of a struct type's values (a list is one value), in
// order: those an environment variable can set.
func Keys(t reflect.Type) []string {
	var out []string
	for _, f := range leaves(t) {
		out = append(out, f.name)
	}
	return out
}

// leaves are t's keys with their types, the name dotted from the top.
func leaves(t reflect.Type) []field {
	var out []field
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for _, f := range fields(deref(t)) {
			if isSection(f.typ) {
				walk(prefix+f.name+".", f.typ)
				continue
			}
			out = append(out, field{prefix + f.name, f.typ})
		}
	}
	walk("", t)
	return out
}

// CheckKeys refuses the first key of the YAML document data (read from file) that
// t has no field for, naming the file, the line and the nearest known key, so that
// a misspelt key stops the command instead of leaving a default in place. Values
// are left to the decoder; a document that is not YAML is too.
func CheckKeys(file string, data []byte, t reflect.Type) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		// A file named on purpose that sets nothing is a mistake (the wrong file,
		// or one truncated), not a request for every default.
		return fmt.Errorf("%s: empty: the file sets no keys", file)
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: want keys and values, not a %s", file, root.Line, kindName(root.Kind))
	}
	return checkNode(file, "", doc.Content[0], t)
}

func checkNode(file, path string, n *yaml.Node, t reflect.Type) error {
	t = deref(t)
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case isSection(t):
		if n.Kind != yaml.MappingNode {
			return nil
		}
		known := fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a YAML merge key: its mapping's keys are checked as this one's
				if err := checkNode(file, path, val, t); err != nil {
					return err
				}
				continue
			}
			j := slices.IndexFunc(known, func(f field) bool { return f.name == k.Value })
			if j < 0 {
				return unknownKey(file, path, k, known)
			}
			if err := checkNode(file, path+k.Value+".", val, known[j].typ); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			if err := checkNode(file, fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i), item, t.Elem()); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkNode(file, path+n.Content[i].Value+".", n.Content[i+1], t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

func unknownKey(file, path string, k *yaml.Node, known []field) error {
	names := make([]string, len(known))
	for i, f := range known {
		names[i] = f.name
	}
	msg := fmt.Sprintf("%s:%d: unknown key %s%s", file, k.Line, path, k.Value)
	if near := Nearest(k.Value, names); near != "" {
		msg += fmt.Sprintf(" (did you mean %s%s?)", path, near)
	} else {
		msg += fmt.Sprintf(" (known here: %s)", strings.Join(names, ", "))
	}
	return fmt.Errorf("%s", msg)
}

// Nearest returns the candidate closest to s in edit distance, when it is close
// enough to be a likely misspelling (at most a third of s's length), else "".
func Nearest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}
