package claims

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRecognise checks what every code read promises: the built-ins never fail,
// keep a code valid UTF-8 and non-empty, and are idempotent, so a dataset that
// fedclaims wrote reads back with the codes it wrote.
func FuzzRecognise(f *testing.F) {
	for _, s := range []string{
		"DIAGNOSIS//ICD//10//E039", "DIAGNOSIS//ICD//9//E8497", "PROCEDURE//ICD//9//3893",
		"MEDICATION//START// a  b ", "MEDICATION//x//administered", "ICD10CM/e119", "NDC/1-2-3",
		"Gender/f", "LAB//1//mg/dL", "/", "a/", "ICD9Proc/38.9.3", "ICD10CM/ ", "é/ü", "MEDS_",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		if code == "" || !utf8.ValidString(code) {
			return
		}
		got := Recognise(code)
		if got == "" || !utf8.ValidString(got) {
			t.Fatalf("Recognise(%q) = %q", code, got)
		}
		if again := Recognise(got); again != got {
			t.Fatalf("Recognise(%q) = %q, but Recognise(%q) = %q", code, got, got, again)
		}
	})
}

// FuzzParseCodeRules checks that no codes file makes the parser or the compiled
// rules panic, and that a file the parser accepts compiles and maps codes.
func FuzzParseCodeRules(f *testing.F) {
	for _, s := range []string{
		"- pattern: 'A//(.*)'\n  system: ATC\n  code: '$1'\n",
		"- pattern: 'B.*'\n  drop: true\n",
		"- pattern: '(?P<x>.)'\n  system: LAB\n  code: '${x}$$'\n",
		"rules: []\n",
		"- pattern: [\n",
		"[]\n",
		"- {pattern: a, system: A, code: ${}}\n",
	} {
		f.Add(s, "A//x")
	}
	f.Fuzz(func(t *testing.T, data, code string) {
		rules, err := ParseCodeRules("f.yaml", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "codes file f.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		m, err := NewCodeMap(rules)
		if err != nil {
			t.Fatalf("parsed rules do not compile: %v", err)
		}
		if !utf8.ValidString(code) || code == "" {
			return
		}
		if got, keep := m.Map(code); keep && (got == "" || !utf8.ValidString(got)) {
			t.Fatalf("Map(%q) = %q", code, got)
		}
	})
}
