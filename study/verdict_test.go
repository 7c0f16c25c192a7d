package study

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/eval"
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
