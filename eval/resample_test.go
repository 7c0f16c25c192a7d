package eval

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPatientResampler(t *testing.T) {
	tests := []struct {
		name   string
		groups []int64
	}{
		{"one row each", []int64{7, 3, 9, 1}},
		{"several rows", []int64{5, 5, 2, 8, 2, 5}},
		{"one patient", []int64{4, 4, 4}},
	}
	for _, tc := range tests {
		draw := func(seed uint64) []int {
			var rows []int
			NewPatientResampler(tc.groups, rand.New(rand.NewPCG(seed, 1))).Draw(func(i int) { rows = append(rows, i) })
			return rows
		}
		rows := draw(3)
		if !slices.Equal(rows, draw(3)) {
			t.Errorf("%s: the same seed drew %v and %v", tc.name, rows, draw(3))
		}
		// Walk the draw patient by patient: each patient's rows come together, whole.
		patients := 0
		for k := 0; k < len(rows); patients++ {
			g := tc.groups[rows[k]]
			var want []int
			for i, h := range tc.groups {
				if h == g {
					want = append(want, i)
				}
			}
			if k+len(want) > len(rows) || !slices.Equal(rows[k:k+len(want)], want) {
				t.Fatalf("%s: draw %v does not hold patient %d's rows %v whole at %d", tc.name, rows, g, want, k)
			}
			k += len(want)
		}
		distinct := map[int64]bool{}
		for _, g := range tc.groups {
			distinct[g] = true
		}
		if patients != len(distinct) {
			t.Errorf("%s: drew %d patients, want %d", tc.name, patients, len(distinct))
		}
	}
}
