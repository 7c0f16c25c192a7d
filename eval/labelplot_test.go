package eval

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

func ci(lo, hi float64) *[2]float64 { return &[2]float64{lo, hi} }

func TestPlotLabelEfficiency(t *testing.T) {
	curve := []SizePoint{{25, 0.10, nil}, {100, 0.20, ci(0.1, 0.3)}, {400, 0.30, ci(0.2, 0.4)}, {1600, 0.35, ci(0.3, 0.4)}}
	tests := []struct {
		name   string
		models map[string][]SizePoint
		prev   float64
		err    string // "" when the plot is written
	}{
		{"both models", map[string][]SizePoint{ModelEncoder: curve, ModelBaseline: curve}, 0.05, ""},
		{"no interval anywhere, no prevalence", map[string][]SizePoint{ModelBaseline: {{10, 0.1, nil}, {20, 0.2, nil}}}, 0, ""},
		{"one point", map[string][]SizePoint{ModelEncoder: {{10, 0.1, ci(0, 0.2)}}}, 0.1, ""},
		{"no models", nil, 0.05, "no models"},
		{"no points", map[string][]SizePoint{ModelEncoder: nil}, 0.05, "no points"},
		{"decreasing", map[string][]SizePoint{ModelEncoder: {{100, 0.1, nil}, {50, 0.2, nil}}}, 0.05, "increasing"},
		{"zero patients", map[string][]SizePoint{ModelEncoder: {{0, 0.1, nil}}}, 0.05, "positive"},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i))+".png")
			err := PlotLabelEfficiency(path, "t2d", tc.models, tc.prev)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %v, want an error saying %q", err, tc.err)
				}
				if _, err := os.Stat(path); err == nil {
					t.Errorf("a refused plot was written")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := png.Decode(f); err != nil {
				t.Errorf("not a PNG: %v", err)
			}
		})
	}
}

// TestBands: a band spans each run of two or more points with an interval, upper
// bounds out and lower bounds back; a point without one breaks it.
func TestBands(t *testing.T) {
	pts := []SizePoint{{1, 0, ci(0, 1)}, {2, 0, nil}, {3, 0, ci(0.1, 0.5)}, {4, 0, ci(0.2, 0.6)}, {5, 0, nil}, {6, 0, ci(0, 1)}}
	got := bands(pts)
	want := []plotter.XYs{{{X: 3, Y: 0.5}, {X: 4, Y: 0.6}, {X: 4, Y: 0.2}, {X: 3, Y: 0.1}}}
	if len(got) != len(want) {
		t.Fatalf("%d bands, want %d: %v", len(got), len(want), got)
	}
	for k := range want {
		if len(got[k]) != len(want[k]) {
			t.Fatalf("band %d: %v, want %v", k, got[k], want[k])
		}
		for i := range want[k] {
			if got[k][i] != want[k][i] {
				t.Errorf("band %d: %v, want %v", k, got[k], want[k])
				break
			}
		}
	}
}
