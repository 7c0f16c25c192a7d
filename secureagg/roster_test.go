package secureagg

import (
	"slices"
	"testing"
)

func TestRosterOrderIndependent(t *testing.T) {
	a, err := NewRoster([]string{"c", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRoster([]string{"b", "c", "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		ia, _ := a.ID(n)
		ib, _ := b.ID(n)
		if ia != ib {
			t.Errorf("site %s: party %d in one order, %d in another", n, ia, ib)
		}
	}
	if id, _ := a.ID("a"); id != 0 || a.Name(2) != "c" {
		t.Errorf("ids are not positions in the sorted list: a=%d, 2=%q", id, a.Name(2))
	}
	if _, ok := a.ID("d"); ok {
		t.Error("unknown site has an id")
	}
	ids, err := a.IDsOf([]string{"c", "a"})
	if err != nil || !slices.Equal(ids, []SiteID{0, 2}) {
		t.Errorf("IDsOf = %v, %v", ids, err)
	}
}

func TestRosterRefuses(t *testing.T) {
	many := make([]string, MaxSites+1)
	for i := range many {
		many[i] = string(rune('A'+i/26)) + string(rune('a'+i%26))
	}
	for name, names := range map[string][]string{
		"empty list": nil, "empty name": {"a", ""}, "repeated": {"a", "b", "a"}, "too many": many,
	} {
		if _, err := NewRoster(names); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, _ := NewRoster([]string{"a", "b"})
	if _, err := r.IDsOf([]string{"a", "a"}); err == nil {
		t.Error("IDsOf accepted a repeated name")
	}
	if _, err := r.IDsOf([]string{"x"}); err == nil {
		t.Error("IDsOf accepted an unknown name")
	}
}
