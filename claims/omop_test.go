package claims

import (
	"path/filepath"
	"testing"
)

func TestOMOPDemoQuick(t *testing.T) {
	r, err := OpenOMOP(filepath.Join("testdata", "omop-mimic-iv-demo"))
	if err != nil {
		t.Fatal(err)
	}
	ps := readAll(t, r)
	counts := map[string]int{}
	for _, p := range ps {
		for _, e := range p.Events {
			counts[System(e.Code)]++
		}
	}
	t.Logf("%d persons, %v, stats %+v", len(ps), counts, r.Stats())
	t.Logf("%+v", ps[0].Events[:10])
}
