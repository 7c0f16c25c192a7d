package config

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cast"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// FlagOptions say which of a command's flags the file and the environment may set.
type FlagOptions struct {
	// Skip are flags neither may set (--config itself, --help).
	Skip []string
	// FileKeys false means the file belongs to the command's own Config (Load reads
	// it); only the environment then sets the flags.
	FileKeys bool
	// LookupEnv reads the environment (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
}

// ApplyToFlags gives a command whose settings are its flags the same layers as a
// Config: each flag not given on the command line takes its FEDCLAIMS_* variable
// (EnvName of the flag's name), else the file's key of the same name (min-count or
// min_count for --min-count). A file key that names no flag of the command is an
// error naming the file, its line and the nearest flag; so is a value the flag
// refuses, naming its source. After it, a flag's value is the command's setting
// whichever layer set it.
func ApplyToFlags(file string, flags *pflag.FlagSet, opts FlagOptions) error {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	fileVals := map[string]any{}
	if file != "" && opts.FileKeys {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := checkFlagKeys(file, data, flags, opts.Skip); err != nil {
			return err
		}
		v := viper.New()
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("%s: %w", file, unwrapViper(err))
		}
		for k, val := range v.AllSettings() {
			fileVals[flagName(k)] = val
		}
	}
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || slices.Contains(opts.Skip, f.Name) {
			return
		}
		if val, ok := lookup(EnvName(f.Name)); ok {
			if e := flags.Set(f.Name, val); e != nil {
				err = fmt.Errorf("environment variable %s (flag --%s): invalid value %q: %v", EnvName(f.Name), f.Name, val, cause(e))
			}
			return
		}
		if val, ok := fileVals[f.Name]; ok {
			s, e := flagString(val)
			if e == nil {
				e = flags.Set(f.Name, s)
			}
			if e != nil {
				err = fmt.Errorf("%s: key %s: invalid value %v: %v", file, f.Name, val, cause(e))
			}
		}
	})
	return err
}

// flagName is the flag a file key names: dashes and underscores are one.
func flagName(key string) string { return strings.ReplaceAll(strings.ToLower(key), "_", "-") }

// cause drops pflag's `invalid argument "x" for "--f" flag:` prefix, which repeats
// what the caller's message already says.
func cause(err error) string {
	s := err.Error()
	if i := strings.Index(s, " flag: "); i >= 0 {
		return s[i+len(" flag: "):]
	}
	return s
}

// flagString writes a YAML value as a flag's text; a list as comma-separated
// values, as a slice flag parses them.
func flagString(val any) (string, error) {
	if list, ok := val.([]any); ok {
		parts := make([]string, len(list))
		for i, x := range list {
			s, err := cast.ToStringE(x)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	if _, ok := val.(map[string]any); ok {
		return "", fmt.Errorf("a section, but the flag takes one value")
	}
	return cast.ToStringE(val)
}

func checkFlagKeys(file string, data []byte, flags *pflag.FlagSet, skip []string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: want a mapping of flag names to values", file, root.Line)
	}
	var names []string
	flags.VisitAll(func(f *pflag.Flag) {
		if !slices.Contains(skip, f.Name) {
			names = append(names, f.Name)
		}
	})
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if name := flagName(k.Value); !slices.Contains(names, name) {
			msg := fmt.Sprintf("%s:%d: unknown key %s: the command has no flag --%s", file, k.Line, k.Value, name)
			if near := Nearest(name, names); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

// UnknownEnv returns the FEDCLAIMS_* variables of environ (os.Environ's form) that
// are none of known, sorted, each with the nearest known name or "".
func UnknownEnv(environ []string, known []string) [][2]string {
	var out [][2]string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || slices.Contains(known, name) {
			continue
		}
		trimmed := make([]string, len(known))
		for i, k := range known {
			trimmed[i] = strings.TrimPrefix(k, EnvPrefix)
		}
		near := Nearest(strings.TrimPrefix(name, EnvPrefix), trimmed)
		if near != "" {
			near = EnvPrefix + near
		}
		out = append(out, [2]string{name, near})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}
