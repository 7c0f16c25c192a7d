package study

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/sweep"
)

// TestNoTest checks that a row without a test names why, that only the split's
// size counts as "too small", and that any other failure is not dressed up as one.
func TestNoTest(t *testing.T) {
	for _, c := range []struct {
		err   error
		small bool
		want  string
	}{
		{fmt.Errorf("compare: 9 positive patients: %w", eval.ErrTooFewPositives), true, "fewer than 10 positive rows or positive patients"},
		{fmt.Errorf("compare: %w", eval.ErrNoNegatives), true, "no negative patients"},
		{errors.New("compare: score 3 is NaN"), false, "score 3 is NaN"},
	} {
		if got := isTooSmall(c.err); got != c.small {
			t.Errorf("isTooSmall(%v) = %v, want %v", c.err, got, c.small)
		}
		if got := noTest(c.err); !strings.HasPrefix(got, "no test: ") || !strings.Contains(got, c.want) {
			t.Errorf("noTest(%v) = %q, want it to name %q", c.err, got, c.want)
		}
	}
}

// TestFloorCentralNeedsAComparison: "federated within 0.01 of central" is reached
// only by tasks that have both encoders, never by a table without a central arm.
func TestFloorCentralNeedsAComparison(t *testing.T) {
	c := &Config{Central: "s2"}
	c.Mode, c.Alpha = sweep.ModeFederated, 0.05
	fed := Encoder{Name: "s2", Mode: sweep.ModeFederated, AUPRC: 0.30}
	cen := Encoder{Name: "s2-central", Mode: sweep.ModeCentral, AUPRC: 0.305}
	far := Encoder{Name: "s2-central", Mode: sweep.ModeCentral, AUPRC: 0.35}
	for _, tc := range []struct {
		name     string
		encoders []Encoder
		want     bool
	}{
		{"within 0.01", []Encoder{fed, cen}, true},
		{"0.05 behind", []Encoder{fed, far}, false},
		{"no central arm", []Encoder{fed}, false},
	} {
		r := &Result{Tasks: []Task{{Name: "t2d", Primary: true, Encoders: tc.encoders}}}
		var got *Floor
		for _, f := range floors(r, c) {
			if strings.HasPrefix(f.Name, "federated within 0.01") {
				got = &f
			}
		}
		if got == nil || got.Reached != tc.want {
			t.Errorf("%s: floor %+v, want reached %v", tc.name, got, tc.want)
		}
	}
}

// TestSmallestSite: a named site is found or refused by name; unnamed, the labelled
// site with the fewest training histories, pretraining-only sites never.
func TestSmallestSite(t *testing.T) {
	labelled := []string{"/d/h01", "/d/h02", "/d/h03"}
	// h02 has one history, the pretraining-only site (index 3) none of interest.
	a := &arms{main: &sweep.Workspace{TrainSite: []int{0, 0, 1, 2, 2, 3, 3, 3}}}
	if got, err := a.smallestSite("", labelled); err != nil || got != 1 {
		t.Errorf("unnamed: %d, %v; want 1 (h02)", got, err)
	}
	if got, err := a.smallestSite("h03", labelled); err != nil || got != 2 {
		t.Errorf("h03: %d, %v; want 2", got, err)
	}
	if _, err := a.smallestSite("h3", labelled); err == nil || !strings.Contains(err.Error(), `"h3"`) {
		t.Errorf("misspelt site: %v, want an error naming it", err)
	}
}
