package tasks

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	want := []Task{
		{Name: "t2d", Kind: Disease, Prefixes: []string{"ICD10//E11"}, HorizonDays: 730},
		{Name: "heart_failure", Kind: Disease, Prefixes: []string{"ICD10//I50"}, HorizonDays: 730},
		{Name: "ckd", Kind: Disease, Prefixes: []string{"ICD10//N18"}, HorizonDays: 730},
		{Name: "ischaemic_stroke", Kind: Disease, Prefixes: []string{"ICD10//I63"}, HorizonDays: 730},
		{Name: "dementia", Kind: Disease, Prefixes: []string{"ICD10//F00", "ICD10//F01", "ICD10//F02", "ICD10//F03", "ICD10//G30"}, HorizonDays: 730},
		{Name: "osteoporosis", Kind: Disease, Prefixes: []string{"ICD10//M80", "ICD10//M81"}, HorizonDays: 730},
		{Name: "statins", Kind: Medication, Prefixes: []string{"ATC//C10AA"}, HorizonDays: 365},
		{Name: "dpp4_inhibitors", Kind: Medication, Prefixes: []string{"ATC//A10BH"}, HorizonDays: 365},
		{Name: "ppi", Kind: Medication, Prefixes: []string{"ATC//A02BC"}, HorizonDays: 365},
		{Name: "doac", Kind: Medication, Prefixes: []string{"ATC//B01AF"}, HorizonDays: 365},
	}
	excludes := map[string][]string{
		"t2d":              {"ICD10//E10", "ICD10//E13", "ICD10//E14"},
		"heart_failure":    {"ICD10//I11.0", "ICD10//I13.0", "ICD10//I13.2"},
		"ckd":              {"ICD10//N19", "ICD10//Z49", "ICD10//Z99.2", "ICD10//I12", "ICD10//I13"},
		"ischaemic_stroke": {"ICD10//I69"},
		"dementia":         {"ICD10//F05.1"},
		"osteoporosis":     {"ICD10//M82"},
		"statins":          {"ATC//C10BA", "ATC//C10BX"},
		"dpp4_inhibitors":  {"ATC//A10BD07", "ATC//A10BD08", "ATC//A10BD10", "ATC//A10BD11"},
		"ppi":              {"ATC//A02BD"},
		"doac":             {"ATC//B01AE07"},
	}
	got := Default()
	for _, g := range got {
		if !slices.Equal(g.ExcludePrefixes, excludes[g.Name]) || g.ExactSystem {
			t.Errorf("task %s excludes %q (exact system %v), want %q", g.Name, g.ExcludePrefixes, g.ExactSystem, excludes[g.Name])
		}
	}
	// The default tasks run on converted OMOP data, whose ICD-10 is ICD-10-CM, and
	// their exclusions match undotted spellings too.
	byName := map[string]*Task{}
	for i := range got {
		byName[got[i].Name] = &got[i]
	}
	for task, code := range map[string]string{"t2d": "ICD10CM//E11.9", "ischaemic_stroke": "ICD10CM//I63.50", "dementia": "ICD10CM//G30.9"} {
		if !byName[task].Matches(code) {
			t.Errorf("task %s does not match %s", task, code)
		}
	}
	for task, code := range map[string]string{"heart_failure": "ICD10//I110", "ckd": "ICD10CM//Z99.2", "dementia": "ICD10//F051", "ischaemic_stroke": "ICD10CM//I69.351"} {
		if !byName[task].Excludes(code) {
			t.Errorf("task %s does not exclude %s", task, code)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d default tasks, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || g.Kind != w.Kind || !slices.Equal(g.Prefixes, w.Prefixes) || g.HorizonDays != w.HorizonDays || g.LookbackDays != 365 || g.Description == "" {
			t.Errorf("task %d = %+v, want %+v with a 365-day look-back and a description", i, g, w)
		}
	}
	// DefaultYAML is a copy: changing it must not change Default.
	b := DefaultYAML()
	clear(b)
	if len(Default()) != len(want) {
		t.Error("DefaultYAML shares the embedded file")
	}
}

func TestMatches(t *testing.T) {
	task := Task{Prefixes: []string{"ICD10//F00", "ICD10//G30", "ICD10//I11.0", "ATC//C10AA"}, ExcludePrefixes: []string{"ICD10CM//I69"}}
	exact := task
	exact.ExactSystem = true
	tests := []struct {
		code         string
		want, wantEx bool // Matches without and with ExactSystem
	}{
		{"ICD10//F00.1", true, true},
		{"ICD10//G30", true, true},
		{"ICD10//G309", true, true},
		{"ICD10//F01.0", false, false},
		{"ICD10CM//G30.9", true, false}, // ICD-10-CM shares ICD-10's categories
		{"ICD10CM//F00", true, false},
		{"ICD9CM//G30", false, false}, // another code system is another task
		{"ICD10//I110", true, true},   // dots are ignored: I11.0 matches I110
		{"ICD10//I11.09", true, true}, // and its children
		{"ICD10CM//I11.0", true, false},
		{"ICD10//I11.9", false, false},
		{"ICD10//I11", false, false}, // the parent is not under the prefix
		{"ATC//C10AA05", true, true},
		{"ATC//C10.AA05", false, false}, // dots are ignored only in ICD systems
		{"ICD10//G3", false, false},
		{"G30", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := task.Matches(tt.code); got != tt.want {
			t.Errorf("Matches(%q) = %v, want %v", tt.code, got, tt.want)
		}
		if got := exact.Matches(tt.code); got != tt.wantEx {
			t.Errorf("with ExactSystem, Matches(%q) = %v, want %v", tt.code, got, tt.wantEx)
		}
	}
	for code, want := range map[string][2]bool{
		"ICD10CM//I69.3": {true, true},
		"ICD10//I693":    {true, false},
		"ICD10//I63":     {false, false}, // the target is not an exclusion
	} {
		if got := task.Excludes(code); got != want[0] {
			t.Errorf("Excludes(%q) = %v, want %v", code, got, want[0])
		}
		if got := exact.Excludes(code); got != want[1] {
			t.Errorf("with ExactSystem, Excludes(%q) = %v, want %v", code, got, want[1])
		}
	}
	// A prefix with the undotted spelling matches the dotted code too.
	undotted := Task{Prefixes: []string{"ICD10//I110"}}
	if !undotted.Matches("ICD10//I11.0") || !undotted.Matches("ICD10CM//I11.0") || undotted.Matches("ICD10//I11") {
		t.Error("an undotted prefix does not match dotted codes as it should")
	}
}

func TestSystems(t *testing.T) {
	tests := []struct {
		task Task
		want []string
	}{
		{Task{Prefixes: []string{"ICD10//E11"}}, []string{"ICD10", "ICD10CM"}},
		{Task{Prefixes: []string{"ICD10//E11"}, ExactSystem: true}, []string{"ICD10"}},
		{Task{Prefixes: []string{"ICD10CM//E11", "ICD9CM//250", "ICD10//E13"}}, []string{"ICD10", "ICD10CM", "ICD9CM"}},
		{Task{Prefixes: []string{"NDC//0000", "ATC//C10AA", "ATC//C10BA"}, ExcludePrefixes: []string{"RXNORM//1"}}, []string{"ATC", "NDC"}},
	}
	for _, tt := range tests {
		if got := tt.task.Systems(); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: Systems() = %q, want %q", tt.task, got, tt.want)
		}
	}
}

func TestParseNewFields(t *testing.T) {
	ts, err := Parse("t.yaml", []byte(`version: 1
tasks:
  - name: a
    kind: disease
    prefixes: [ICD10//I63]
    exclude_prefixes: [ICD10//I69, ICD10CM//Z86.73]
  - {name: b, kind: medication, prefixes: [ATC//C10AA], exclude_prefixes: [ATC//C10BA], exact_system: true}
  - {name: c, kind: disease, prefixes: [ICD10//E11], exclude_prefixes: [], exact_system: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ts[0].ExcludePrefixes, []string{"ICD10//I69", "ICD10CM//Z86.73"}) || ts[0].ExactSystem {
		t.Errorf("task a: %+v", ts[0])
	}
	if !slices.Equal(ts[1].ExcludePrefixes, []string{"ATC//C10BA"}) || !ts[1].ExactSystem {
		t.Errorf("task b: %+v", ts[1])
	}
	if len(ts[2].ExcludePrefixes) != 0 || ts[2].ExactSystem {
		t.Errorf("task c: %+v", ts[2])
	}
}

func TestParseDefaults(t *testing.T) {
	ts, err := Parse("t.yaml", []byte(`version: 1
tasks:
  - {name: a, kind: disease, prefixes: [ICD10//E11]}
  - {name: b, kind: medication, prefixes: [ATC//C10AA, NDC//0000], lookback_days: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].HorizonDays != 730 || ts[0].LookbackDays != 365 || ts[1].HorizonDays != 365 || ts[1].LookbackDays != 0 {
		t.Errorf("defaults: %+v", ts)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "version: 1\ntasks:\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"not yaml", "version: [1\n", "t.yaml: yaml: line 1"},
		{"empty", "", "t.yaml: empty task file"},
		{"top level list", "- 1\n", "t.yaml:1: field top level: want a mapping"},
		{"no version", "tasks:\n  - {name: a, kind: disease, prefixes: [ICD10//E11]}\n", "field version: missing"},
		{"version 2", "version: 2\ntasks:\n  - {name: a, kind: disease, prefixes: [ICD10//E11]}\n", "unsupported version 2"},
		{"version text", "version: one\n", `t.yaml:1: field version: "one" is not a whole number`},
		{"no tasks", "version: 1\n", "field tasks: no tasks"},
		{"tasks not a list", "version: 1\ntasks: 3\n", "t.yaml:2: field tasks: want a list"},
		{"unknown top field", "version: 1\ntask: []\n", "t.yaml:2: field task: unknown field"},
		{"unknown task field", head + "  - name: a\n    kind: disease\n    prefix: [ICD10//E11]\n", "t.yaml:5: field tasks[0].prefix: unknown field"},
		{"missing name", head + "  - kind: disease\n    prefixes: [ICD10//E11]\n", "t.yaml:3: field tasks[0].name: missing"},
		{"missing kind", head + "  - name: a\n    prefixes: [ICD10//E11]\n", "tasks[0].kind: missing"},
		{"missing prefixes", head + "  - name: a\n    kind: disease\n", "tasks[0].prefixes: missing"},
		{"empty prefixes", head + "  - name: a\n    kind: disease\n    prefixes: []\n", "tasks[0].prefixes: missing or empty"},
		{"bad name", head + "  - name: Type 2\n    kind: disease\n    prefixes: [ICD10//E11]\n", `t.yaml:3: field tasks[0].name: "Type 2"`},
		{"bad kind", head + "  - name: a\n    kind: lab\n    prefixes: [ICD10//E11]\n", `t.yaml:4: field tasks[0].kind: "lab": want disease or medication`},
		{"prefix without system", head + "  - name: a\n    kind: disease\n    prefixes: [E11]\n", `t.yaml:5: field tasks[0].prefixes[0]: "E11": want a code system`},
		{"prefix with space", head + "  - name: a\n    kind: disease\n    prefixes: [\"ICD10//E11 \"]\n", `tasks[0].prefixes[0]: "ICD10//E11 "`},
		{"drug for a disease", head + "  - name: a\n    kind: disease\n    prefixes:\n      - ICD10//E11\n      - ATC//A10\n", `t.yaml:7: field tasks[0].prefixes[1]: "ATC//A10" is a medication code, but a disease task needs diagnosis codes`},
		{"diagnosis for a drug", head + "  - name: a\n    kind: medication\n    prefixes: [ICD10//E11]\n", "but a medication task needs medication codes"},
		{"prefixes a string", head + "  - name: a\n    kind: disease\n    prefixes: ICD10//E11\n", "t.yaml:5: field tasks[0].prefixes: want a list"},
		{"horizon zero", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11], horizon_days: 0}\n", "t.yaml:3: field tasks[0].horizon_days: 0: want 1 to 36500 days"},
		{"horizon float", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11], horizon_days: 1.5}\n", `tasks[0].horizon_days: "1.5" is not a whole number`},
		{"horizon list", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11], horizon_days: [1]}\n", "tasks[0].horizon_days: want a single value"},
		{"lookback negative", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11], lookback_days: -1}\n", "tasks[0].lookback_days: -1: want 0 to 36500"},
		{"exclude a string", head + "  - name: a\n    kind: disease\n    prefixes: [ICD10//I63]\n    exclude_prefixes: ICD10//I69\n", "t.yaml:6: field tasks[0].exclude_prefixes: want a list"},
		{"exclude without system", head + "  - name: a\n    kind: disease\n    prefixes: [ICD10//I63]\n    exclude_prefixes:\n      - ICD10//I69\n      - I69\n", `t.yaml:8: field tasks[0].exclude_prefixes[1]: "I69": want a code system`},
		{"exclude of another kind", head + "  - name: a\n    kind: medication\n    prefixes: [ATC//C10AA]\n    exclude_prefixes: [ATC//C10BA, ICD10//E78]\n", `t.yaml:6: field tasks[0].exclude_prefixes[1]: "ICD10//E78" is a diagnosis code, but a medication task needs medication codes`},
		{"exclude a list of lists", head + "  - name: a\n    kind: disease\n    prefixes: [ICD10//I63]\n    exclude_prefixes: [[ICD10//I69]]\n", "t.yaml:6: field tasks[0].exclude_prefixes[0]: want a single value"},
		{"prefix of dots", head + "  - name: a\n    kind: disease\n    prefixes: [ICD10//..]\n", `t.yaml:5: field tasks[0].prefixes[0]: "ICD10//..": want a code system`},
		{"exact_system not a bool", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11], exact_system: yes}\n", `t.yaml:3: field tasks[0].exact_system: "yes": want true or false`},
		{"exact_system a list", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11], exact_system: [true]}\n", "tasks[0].exact_system: want a single value"},
		{"duplicate name", head + "  - {name: a, kind: disease, prefixes: [ICD10//E11]}\n  - {name: a, kind: disease, prefixes: [ICD10//I50]}\n", `t.yaml:4: field tasks[1].name: "a" is already the name of the task at line 3`},
		{"duplicate field", head + "  - name: a\n    name: b\n", "t.yaml:4: field name: appears twice"},
		{"task a string", head + "  - t2d\n", "t.yaml:3: field tasks[0]: want a mapping"},
		{"non-UTF-8", "version: 1\n# caf\xe9\n", "t.yaml:2: not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.yaml")
	if err := os.WriteFile(path, DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := ReadFile(path)
	if err != nil || len(ts) != 10 {
		t.Fatalf("ReadFile = %d tasks, %v", len(ts), err)
	}
	if _, err := ReadFile(path + ".missing"); err == nil || !strings.Contains(err.Error(), "tasks.yaml.missing") {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
	os.WriteFile(path, []byte("version: 1\ntasks:\n  - {name: a}\n"), 0o644)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path+":3:") {
		t.Errorf("ReadFile of a bad file: %v, want it to name %s:3", err, path)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// What parses is a usable task set.
		if _, err := NewLabeler(ts, Options{}); err != nil {
			t.Fatalf("parsed tasks rejected by NewLabeler: %v", err)
		}
		names := make(map[string]bool)
		for _, task := range ts {
			if names[task.Name] || task.Name == "" || len(task.Prefixes) == 0 {
				t.Fatalf("parsed an invalid task set: %+v", ts)
			}
			names[task.Name] = true
		}
	})
}
