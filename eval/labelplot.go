package eval

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// SizePoint is one model's test AUPRC after training on Patients labelled
// patients, with its interval (nil when the test split has too few positives).
type SizePoint struct {
	Patients int
	AUPRC    float64
	CI       *[2]float64
}

// PlotLabelEfficiency writes one task's label-efficiency curve as a PNG at path:
// test AUPRC against the number of labelled training patients on a log axis, one
// line per model of models, each with its interval as a shaded band, and the test
// prevalence as the no-skill line (omitted when prevalence is not in (0, 1)).
// A model's points must be in increasing Patients; a band is drawn over each run
// of consecutive points that have an interval, so that a missing interval shows as
// a gap rather than as a band narrowed to the point.
func PlotLabelEfficiency(path, name string, models map[string][]SizePoint, prevalence float64) error {
	if len(models) == 0 {
		return fmt.Errorf("plot %s: no models", name)
	}
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s: label efficiency, test split", name)
	pl.X.Label.Text = "labelled training patients"
	pl.Y.Label.Text = "AUPRC (95% interval)"
	pl.X.Scale = plot.LogScale{}
	pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
	pl.Add(plotter.NewGrid())
	lo, hi, top := 0, 0, 0.0
	var lines []plot.Plotter
	for _, m := range modelNames(models) {
		pts := models[m]
		if len(pts) == 0 {
			continue
		}
		xy := make(plotter.XYs, len(pts))
		for i, p := range pts {
			if p.Patients <= 0 || (i > 0 && p.Patients <= pts[i-1].Patients) {
				return fmt.Errorf("plot %s: model %s: point %d has %d patients, want positive and increasing", name, m, i, p.Patients)
			}
			xy[i] = plotter.XY{X: float64(p.Patients), Y: p.AUPRC}
			top = max(top, p.AUPRC)
			if p.CI != nil {
				top = max(top, p.CI[1])
			}
		}
		if lo == 0 || pts[0].Patients < lo {
			lo = pts[0].Patients
		}
		hi = max(hi, pts[len(pts)-1].Patients)
		c, ok := modelColors[m]
		if !ok {
			c = color.Gray{Y: 0x40}
		}
		// Every band goes under every line, so that no model's band hides
		// another's line.
		for _, band := range bands(pts) {
			poly, err := plotter.NewPolygon(band)
			if err != nil {
				return fmt.Errorf("plot %s: %w", name, err)
			}
			r, g, b, _ := c.RGBA()
			poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x40}
			poly.LineStyle.Width = 0
			pl.Add(poly)
		}
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		lines = append(lines, line, points)
		pl.Legend.Add(m, line, points)
	}
	pl.Add(lines...)
	// AUPRC of a rare outcome sits far below 1: a fixed [0, 1] axis would
	// flatten the curves.
	pl.Y.Min, pl.Y.Max = 0, min(1, 1.15*max(top, prevalence)+0.02)
	if hi == 0 {
		return fmt.Errorf("plot %s: no points", name)
	}
	if prevalence > 0 && prevalence < 1 {
		chance, err := plotter.NewLine(plotter.XYs{{X: float64(lo), Y: prevalence}, {X: float64(hi), Y: prevalence}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		chance.Color = color.Gray{Y: 0x80}
		chance.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		pl.Add(chance)
		pl.Legend.Add(fmt.Sprintf("prevalence %.3f", prevalence), chance)
	}
	pl.Legend.Top = true
	pl.Legend.Left = true
	return WritePNG(path, pl)
}

// bands returns the interval polygons of pts: one per run of consecutive points
// with an interval, upper bounds left to right then lower bounds back. A lone
// point's band would have no area, so runs of one are left out.
func bands(pts []SizePoint) []plotter.XYs {
	var out []plotter.XYs
	for i := 0; i < len(pts); {
		if pts[i].CI == nil {
			i++
			continue
		}
		j := i
		for j < len(pts) && pts[j].CI != nil {
			j++
		}
		if j-i > 1 {
			poly := make(plotter.XYs, 0, 2*(j-i))
			for k := i; k < j; k++ {
				poly = append(poly, plotter.XY{X: float64(pts[k].Patients), Y: pts[k].CI[1]})
			}
			for k := j - 1; k >= i; k-- {
				poly = append(poly, plotter.XY{X: float64(pts[k].Patients), Y: pts[k].CI[0]})
			}
			out = append(out, poly)
		}
		i = j
	}
	return out
}
