// Package config is fedclaims' one configuration mechanism: a YAML file, FEDCLAIMS_*
// environment variables and command-line flags, layered by viper (flags over
// variables over the file over the defaults the caller's struct already holds) and
// decoded exactly into a domain package's plain Config struct, whose `yaml` tags
// name its keys.
//
// Every key a file sets must be a field of that struct: a misspelt key stops the
// command with one sentence naming the file, its line and the key (with the nearest
// known key), never a silently applied default. Values that do not parse name the
// key and where the value came from (the file or the variable). Validation stays
// with the domain package (its Config.Validate), as do defaults (DefaultConfig).
//
// Domain packages do not import viper; cmd/fedclaims, and localfed where it must
// read a site's file exactly as `fedclaims site` does, load through this package.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable fedclaims reads.
const EnvPrefix = "FEDCLAIMS_"

// Options are where Load looks besides the file.
type Options struct {
	// Flags maps configuration keys to the command-line flags that set them; a
	// flag counts only when it was given (pflag's Changed).
	Flags map[string]*pflag.Flag
	// LookupEnv reads the environment (os.LookupEnv when nil); tests inject theirs.
	LookupEnv func(string) (string, bool)
}

// EnvName is the environment variable of key: FEDCLAIMS_ and the key upper-cased,
// dots and dashes as underscores (local.steps: FEDCLAIMS_LOCAL_STEPS).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// Load decodes the file (none when file is ""), the environment and opts.Flags into
// dst, a pointer to a struct holding its defaults (DefaultConfig's); keys that
// nothing sets keep dst's values. Validating the result is the caller's: a domain
// Config may need its derived defaults filled first.
func Load(file string, dst any, opts Options) error {
	var data []byte
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return decode(file, data, dst, opts)
}

// Decode is Load of a file's bytes already read (name is the file, for errors),
// without environment or flags.
func Decode(name string, data []byte, dst any) error {
	return decode(name, data, dst, Options{LookupEnv: func(string) (string, bool) { return "", false }})
}

func decode(file string, data []byte, dst any, opts Options) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: decoding into %T, not a pointer to a struct", dst)
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	where := file
	if where == "" {
		where = "configuration"
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if file != "" {
		if err := CheckKeys(file, data, rv.Elem().Type()); err != nil {
			return err
		}
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("%s: %w", file, unwrapViper(err))
		}
	}
	envSet := map[string]string{}
	for _, f := range leaves(rv.Elem().Type()) {
		name := EnvName(f.name)
		val, ok := lookup(name)
		if !ok {
			continue
		}
		envSet[f.name] = name
		if deref(f.typ).Kind() == reflect.Slice {
			// A list in a variable is comma-separated: FEDCLAIMS_DATA=/a,/b.
			var list []string
			for _, x := range strings.Split(val, ",") {
				if x = strings.TrimSpace(x); x != "" {
					list = append(list, x)
				}
			}
			v.Set(f.name, list)
			continue
		}
		v.Set(f.name, val)
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Flags)) {
		f := opts.Flags[k]
		if f == nil || !f.Changed {
			continue
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v.Set(k, sv.GetSlice())
		} else {
			v.Set(k, f.Value.String())
		}
		delete(envSet, k)
	}
	err := v.UnmarshalExact(dst, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		dc.Squash = true
		dc.ZeroFields = true
	})
	if err != nil {
		return describeDecodeError(where, envSet, v, err)
	}
	return nil
}

// unwrapViper drops viper's own wrapping of a YAML error ("While parsing config:").
func unwrapViper(err error) error {
	var pe viper.ConfigParseError
	if errors.As(err, &pe) {
		if u := errors.Unwrap(pe); u != nil {
			return u
		}
	}
	return err
}

// decodeKey finds the key of a mapstructure error line: "'local.steps' cannot
// parse ..." or "'local' has invalid keys: stepz".
var decodeKey = regexp.MustCompile(`'([^']*)' (.*)`)

// describeDecodeError makes mapstructure's multi-line error one sentence that names
// the first key at fault and where its value came from.
func describeDecodeError(where string, envSet map[string]string, v *viper.Viper, err error) error {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l != "" && !strings.HasPrefix(l, "decoding failed due to") && !strings.Contains(l, "error(s) decoding") {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return fmt.Errorf("%s: %w", where, err)
	}
	m := decodeKey.FindStringSubmatch(lines[0])
	if m == nil {
		return fmt.Errorf("%s: %s", where, lines[0])
	}
	key, msg := m[1], m[2]
	if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
		full := keys
		if key != "" {
			full = key + "." + keys
		}
		return fmt.Errorf("%s: unknown key %s", where, full)
	}
	msg = plainDecodeMessage(msg)
	if val := v.Get(key); val != nil {
		if _, section := val.(map[string]any); !section {
			msg = fmt.Sprintf("%q: %s", fmt.Sprint(val), msg)
		}
	}
	if env, ok := envSet[key]; ok {
		return fmt.Errorf("environment variable %s (key %s): %s", env, key, msg)
	}
	return fmt.Errorf("%s: key %s: %s", where, key, msg)
}

// typeWord rewrites mapstructure's "cannot parse value as 'int': strconv...".
var typeWord = regexp.MustCompile(`cannot parse value as '([^']+)'.*`)

// plainDecodeMessage says what a value should have been, in words.
func plainDecodeMessage(msg string) string {
	if m := typeWord.FindStringSubmatch(msg); m != nil {
		want := m[1]
		switch want {
		case "int", "int64", "uint", "uint64", "int32", "uint32":
			want = "an integer"
		case "float64", "float32":
			want = "a number"
		case "bool":
			want = "true or false"
		}
		return "want " + want
	}
	if strings.HasPrefix(msg, "time: invalid duration") {
		return "want a duration such as 90s or 5m"
	}
	if strings.HasPrefix(msg, "expected a map or struct") {
		return "want a section of keys, not one value"
	}
	return msg
}
