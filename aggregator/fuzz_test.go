package aggregator

import (
	"bytes"
	"maps"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/internal/config"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// FuzzParseCountTable feeds arbitrary bytes where a site's count table goes: a table
// accepted has no count below the floor, and its canonical form reads back the same.
func FuzzParseCountTable(f *testing.F) {
	for _, ct := range []*fedclaimspb.CountTable{
		{KFloor: 10, Patients: 40, Counts: []*fedclaimspb.CodeCount{{Code: "ICD10//E11.9", Patients: 30}, {Code: "ATC//A10BA02", Patients: 10}}},
		{KFloor: 10, Patients: 5, Counts: []*fedclaimspb.CodeCount{{Code: "ICD10//I10", Patients: 9}}},
		{KFloor: 3, Patients: 40},
	} {
		b, err := proto.Marshal(ct)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		vc := DefaultConfig().Vocabulary
		tab, canon, err := parseCountTable(b, vc)
		if err != nil {
			return
		}
		if n := len(tab.Counts); n > vc.MaxCodesPerTable || int64(n) > tab.Patients*int64(vc.MaxCodesPerPatient) {
			t.Fatalf("%d codes from %d patients accepted", n, tab.Patients)
		}
		if tab.MinCount < 10 {
			t.Fatalf("floor %d accepted", tab.MinCount)
		}
		for code, n := range tab.Counts {
			if n < int64(tab.MinCount) || n > tab.Patients {
				t.Fatalf("code %q: count %d accepted with floor %d and %d patients", code, n, tab.MinCount, tab.Patients)
			}
		}
		back, err := tokenizer.LoadCounts(bytes.NewReader(canon))
		if err != nil {
			t.Fatalf("canonical form does not load: %v", err)
		}
		if back.MinCount != tab.MinCount || back.Patients != tab.Patients || !maps.Equal(back.Counts, tab.Counts) {
			t.Fatal("canonical form reads back differently")
		}
	})
}

// FuzzLoadConfig feeds arbitrary YAML to the configuration loader and Validate:
// neither panics, and a configuration that validates has usable rules and model.
func FuzzLoadConfig(f *testing.F) {
	f.Add(goodYAML)
	f.Add("federation: x\ncerts: c\nsites: [a]\nmin_sites: 1\nthreshold: 1\n")
	f.Add("model:\n  hidden: -1\n")
	f.Add("round_deadline: 5\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c := DefaultConfig()
		if err := config.Decode("fuzz.yaml", []byte(doc), &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		if err := c.Rules().validate(); err != nil {
			t.Fatalf("a validated configuration has rules that do not validate: %v", err)
		}
		if _, err := c.ModelConfig(100); err != nil {
			t.Fatalf("a validated configuration has a model that does not build: %v", err)
		}
	})
}
