package baseline

import "testing"

func FuzzParamsSet(f *testing.F) {
	f.Add("num_leaves", "31")
	f.Add("eta", "0.1")
	f.Add("bagging_fraction", "1e-300")
	f.Add("seed", "-1")
	f.Fuzz(func(t *testing.T, name, value string) {
		p := DefaultParams()
		if err := p.Set(name, value); err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Set(%q, %q) accepted parameters that do not validate: %v", name, value, err)
		}
	})
}
