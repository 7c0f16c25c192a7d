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
			// No positive row: one stratum, every patient in it.
			NewStratifiedResampler(tc.groups, make([]bool, len(tc.groups)), rand.New(rand.NewPCG(seed, 1))).Draw(func(i int) { rows = append(rows, i) })
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

func TestStratifiedResampler(t *testing.T) {
	tests := []struct {
		name     string
		groups   []int64
		labels   []bool
		pos, neg int // patients with a positive row, without
	}{
		{"one row each", []int64{7, 3, 9, 1, 4}, []bool{true, false, false, false, false}, 1, 4},
		// Patient 5 is positive through one of its three rows and counts as positive
		// with all three.
		{"several rows", []int64{5, 5, 2, 8, 2, 5, 6}, []bool{false, true, false, false, false, false, true}, 2, 2},
		{"no positive", []int64{1, 2, 3}, []bool{false, false, false}, 0, 3},
		{"only positives", []int64{1, 1, 2}, []bool{true, false, true}, 2, 0},
		// One positive among twenty patients: an unstratified draw misses it about
		// (19/20)^20 = 36% of the time.
		{"rare positive", []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
			[]bool{false, false, false, false, false, false, false, false, false, false, false, false, false, true, false, false, false, false, false, false}, 1, 19},
	}
	for _, tc := range tests {
		patientPos := map[int64]bool{}
		rowsOf := map[int64][]int{}
		for i, g := range tc.groups {
			patientPos[g] = patientPos[g] || tc.labels[i]
			rowsOf[g] = append(rowsOf[g], i)
		}
		rs := NewStratifiedResampler(tc.groups, tc.labels, rand.New(rand.NewPCG(11, 1)))
		if got := rs.strataSizes(); !slices.Equal(got, []int{tc.pos, tc.neg}) {
			t.Errorf("%s: strata %v, want [%d %d]", tc.name, got, tc.pos, tc.neg)
		}
		for d := range 500 {
			var rows []int
			rs.Draw(func(i int) { rows = append(rows, i) })
			// Walk the draw patient by patient, counting each stratum's draws.
			pos, neg, positiveRows := 0, 0, 0
			for k := 0; k < len(rows); {
				g := tc.groups[rows[k]]
				want := rowsOf[g]
				if k+len(want) > len(rows) || !slices.Equal(rows[k:k+len(want)], want) {
					t.Fatalf("%s: draw %d, %v, does not hold patient %d's rows %v whole at %d", tc.name, d, rows, g, want, k)
				}
				if patientPos[g] {
					if neg > 0 {
						t.Fatalf("%s: draw %d, %v: a positive patient after the negatives", tc.name, d, rows)
					}
					pos++
				} else {
					neg++
				}
				for _, i := range want {
					if tc.labels[i] {
						positiveRows++
					}
				}
				k += len(want)
			}
			if pos != tc.pos || neg != tc.neg {
				t.Fatalf("%s: draw %d has %d positive and %d other patients, want %d and %d", tc.name, d, pos, neg, tc.pos, tc.neg)
			}
			if tc.pos > 0 && positiveRows == 0 {
				t.Fatalf("%s: draw %d has no positive row", tc.name, d)
			}
		}
	}
}

func TestStratifiedResamplerDeterministic(t *testing.T) {
	groups := []int64{5, 5, 2, 8, 2, 5, 6, 9}
	labels := []bool{false, true, false, false, false, false, true, false}
	draw := func(seed uint64) []int {
		var rows []int
		rs := NewStratifiedResampler(groups, labels, rand.New(rand.NewPCG(seed, 1)))
		for range 5 {
			rs.Draw(func(i int) { rows = append(rows, i) })
		}
		return rows
	}
	if a, b := draw(3), draw(3); !slices.Equal(a, b) {
		t.Errorf("the same seed drew %v and %v", a, b)
	}
	if a, b := draw(3), draw(4); slices.Equal(a, b) {
		t.Errorf("seeds 3 and 4 drew the same %v", a)
	}
}
