package secureagg

import (
	"fmt"
	"slices"
)

// Roster maps a federation's site names to their secureagg ids. Both the
// aggregator and every site build it from the federation's site list, so the two
// sides agree on who is party i whatever order the list travelled in: ids are
// positions in the sorted list, never positions as received.
type Roster struct {
	names []string // sorted
}

// NewRoster returns the roster of a federation's sites. Names must be non-empty
// and distinct; there may be at most MaxSites.
func NewRoster(names []string) (Roster, error) {
	sorted := slices.Sorted(slices.Values(names))
	switch {
	case len(sorted) == 0:
		return Roster{}, fmt.Errorf("secureagg: %w: empty site list", ErrSetup)
	case len(sorted) > MaxSites:
		return Roster{}, fmt.Errorf("secureagg: %w: %d sites, at most %d", ErrSetup, len(sorted), MaxSites)
	}
	for i, n := range sorted {
		if n == "" {
			return Roster{}, fmt.Errorf("secureagg: %w: empty site name", ErrSetup)
		}
		if i > 0 && n == sorted[i-1] {
			return Roster{}, fmt.Errorf("secureagg: %w: site %q listed twice", ErrSetup, n)
		}
	}
	return Roster{names: sorted}, nil
}

// Len returns the number of sites.
func (r Roster) Len() int { return len(r.names) }

// Names returns the site names in party order.
func (r Roster) Names() []string { return slices.Clone(r.names) }

// IDs returns every party id, in order.
func (r Roster) IDs() []SiteID {
	ids := make([]SiteID, len(r.names))
	for i := range ids {
		ids[i] = SiteID(i)
	}
	return ids
}

// ID returns a site's party id.
func (r Roster) ID(name string) (SiteID, bool) {
	i, ok := slices.BinarySearch(r.names, name)
	return SiteID(i), ok
}

// Name returns the site name of a party id, or "" if there is none.
func (r Roster) Name(id SiteID) string {
	if int(id) >= len(r.names) {
		return ""
	}
	return r.names[id]
}

// IDsOf maps site names to party ids, sorted, refusing unknown or repeated names.
func (r Roster) IDsOf(names []string) ([]SiteID, error) {
	ids := make([]SiteID, 0, len(names))
	for _, n := range names {
		id, ok := r.ID(n)
		if !ok {
			return nil, fmt.Errorf("site %q is not in the federation's site list", n)
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("site %q listed twice", n)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// NamesOf maps party ids to site names.
func (r Roster) NamesOf(ids []SiteID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = r.Name(id)
	}
	return out
}
