package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type testInner struct {
	Steps int           `yaml:"steps"`
	Wait  time.Duration `yaml:"wait"`
}

type testItem struct {
	Name   string `yaml:"name"`
	Hidden int    `yaml:"hidden"`
}

type testConfig struct {
	Federation string     `yaml:"federation"`
	Sites      []string   `yaml:"sites"`
	Local      testInner  `yaml:"local"`
	Presets    []testItem `yaml:"presets"`
	Margin     *float64   `yaml:"margin"`
	Internal   int        `yaml:"-"`
}

func defaults() testConfig {
	return testConfig{Federation: "default", Sites: []string{"x", "y", "z"}, Local: testInner{Steps: 20, Wait: time.Minute}}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadLayers(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Int("steps", 0, "")
	fs.String("fed", "", "")
	if err := fs.Parse([]string{"--steps", "7"}); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "federation: file\nsites: [a]\nlocal: {steps: 3, wait: 5s}\npresets: [{name: p, hidden: 8}]\nmargin: 0\n")
	c := defaults()
	err := Load(file, &c, Options{
		Flags:     map[string]*pflag.Flag{"local.steps": fs.Lookup("steps"), "federation": fs.Lookup("fed")},
		LookupEnv: env(map[string]string{"FEDCLAIMS_LOCAL_STEPS": "5", "FEDCLAIMS_FEDERATION": "env", "FEDCLAIMS_LOCAL_WAIT": "9s"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Flags over variables over the file over the defaults; a list replaces the
	// default's whole; an explicit zero is kept.
	if c.Local.Steps != 7 || c.Federation != "env" || c.Local.Wait != 9*time.Second ||
		len(c.Sites) != 1 || c.Sites[0] != "a" || len(c.Presets) != 1 || c.Presets[0].Hidden != 8 || c.Margin == nil || *c.Margin != 0 {
		t.Fatalf("loaded %+v", c)
	}
}

func TestLoadWithoutFileKeepsDefaults(t *testing.T) {
	c := defaults()
	if err := Load("", &c, Options{LookupEnv: env(map[string]string{"FEDCLAIMS_SITES": " a, b ,"})}); err != nil {
		t.Fatal(err)
	}
	if c.Federation != "default" || c.Local.Steps != 20 || strings.Join(c.Sites, "|") != "a|b" {
		t.Fatalf("loaded %+v", c)
	}
}

func TestLoadErrorsNameKeyAndSource(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		env        map[string]string
		want       []string
	}{
		{"unknown top key", "federation: f\nfederaton: g\n", nil, []string{"c.yaml:2: unknown key federaton", "did you mean federation"}},
		{"unknown nested key", "local:\n  steps: 1\n  stepz: 2\n", nil, []string{"c.yaml:3: unknown key local.stepz", "did you mean local.steps"}},
		{"unknown key in a list", "presets:\n  - name: a\n  - name: b\n    hiden: 3\n", nil, []string{"c.yaml:4: unknown key presets[1].hiden", "did you mean presets[1].hidden"}},
		{"far from any key", "zzzzzzzz: 1\n", nil, []string{"unknown key zzzzzzzz", "known here: federation, sites, local, presets, margin"}},
		{"a tagged-out field", "internal: 3\n", nil, []string{"unknown key internal"}},
		{"bad integer", "local: {steps: many}\n", nil, []string{"c.yaml: key local.steps: \"many\": want an integer"}},
		{"bad duration", "local: {wait: soon}\n", nil, []string{"key local.wait", "want a duration"}},
		{"value for a section", "local: 3\n", nil, []string{"key local", "want a section"}},
		{"bad variable", "federation: f\n", map[string]string{"FEDCLAIMS_LOCAL_STEPS": "x"}, []string{"environment variable FEDCLAIMS_LOCAL_STEPS (key local.steps)", "want an integer"}},
		{"empty file", "# nothing\n", nil, []string{"c.yaml: empty"}},
		{"a list, not keys", "- a\n- b\n", nil, []string{"c.yaml:1: want keys and values, not a list"}},
		{"not YAML", "federation: [\n", nil, []string{"c.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			err := Load(writeFile(t, tc.body), &c, Options{LookupEnv: env(tc.env)})
			if err == nil {
				t.Fatalf("accepted; loaded %+v", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
		})
	}
}

func TestApplyToFlags(t *testing.T) {
	newFlags := func() *pflag.FlagSet {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.Int("min-count", 5, "")
		fs.StringSlice("data", nil, "")
		fs.String("out", "", "")
		fs.String("config", "", "")
		return fs
	}
	fs := newFlags()
	if err := fs.Parse([]string{"--out", "cli"}); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "min_count: 9\ndata: [a, b]\nout: file\n")
	if err := ApplyToFlags(file, fs, FlagOptions{Skip: []string{"config"}, FileKeys: true, LookupEnv: env(map[string]string{"FEDCLAIMS_DATA": "e1,e2,e3"})}); err != nil {
		t.Fatal(err)
	}
	mc, _ := fs.GetInt("min-count")
	data, _ := fs.GetStringSlice("data")
	out, _ := fs.GetString("out")
	if mc != 9 || len(data) != 3 || out != "cli" {
		t.Fatalf("min-count %d data %v out %s", mc, data, out)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "min_cnt: 3\n", "c.yaml:1: unknown key min_cnt: the command has no flag --min-cnt (did you mean min-count?)"},
		{"bad value", "min-count: lots\n", "c.yaml: key min-count: invalid value lots"},
		{"config itself", "config: other.yaml\n", "unknown key config"},
		{"a section", "out: {a: 1}\n", "a section, but the flag takes one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ApplyToFlags(writeFile(t, tc.body), newFlags(), FlagOptions{Skip: []string{"config"}, FileKeys: true, LookupEnv: env(nil)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	err := ApplyToFlags("", newFlags(), FlagOptions{LookupEnv: env(map[string]string{"FEDCLAIMS_MIN_COUNT": "x"})})
	if err == nil || !strings.Contains(err.Error(), "environment variable FEDCLAIMS_MIN_COUNT (flag --min-count)") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{"PATH=/bin", "FEDCLAIMS_LOCAL_STEP=3", "FEDCLAIMS_SEED=1", "FEDCLAIMS_ZZZZZZZZZZ=1"},
		[]string{"FEDCLAIMS_LOCAL_STEPS", "FEDCLAIMS_SEED"})
	if len(got) != 2 || got[0] != [2]string{"FEDCLAIMS_LOCAL_STEP", "FEDCLAIMS_LOCAL_STEPS"} || got[1] != [2]string{"FEDCLAIMS_ZZZZZZZZZZ", ""} {
		t.Fatalf("UnknownEnv = %v", got)
	}
}

// FuzzDecode: arbitrary bytes decode or fail with one line naming the file, and
// never panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("federation: f\nlocal: {steps: 3}\npresets: [{name: a}]\n"))
	f.Add([]byte("local: [1, 2]\n"))
	f.Add([]byte("presets: {a: 1}\nmargin: x\n"))
	f.Add([]byte("a: &x {b: 1}\nc: *x\n<<: {federation: q}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaults()
		err := Decode("fuzz.yaml", data, &c)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.yaml") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}
