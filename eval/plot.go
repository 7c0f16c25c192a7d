package eval

import (
	"fmt"
	"image/color"
	"io"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// PlotPR writes one task's precision-recall curves, one per model, with the
// prevalence as the no-skill line, as a PNG at path.
func PlotPR(path string, p Predictions) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s (%s): precision-recall, test split", p.Name, p.Kind)
	pl.X.Label.Text = "recall"
	pl.Y.Label.Text = "precision"
	pl.X.Min, pl.X.Max, pl.Y.Min, pl.Y.Max = 0, 1, 0, 1
	pl.Add(plotter.NewGrid())
	colors := map[string]color.Color{
		ModelEncoder:  color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		ModelBaseline: color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	}
	names := make([]string, 0, len(p.Scores))
	for name := range p.Scores {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		recall, precision, err := PRCurve(p.Scores[name], p.Labels)
		if err != nil {
			return fmt.Errorf("plot %s: model %s: %w", p.Name, name, err)
		}
		// Step-wise, as average precision integrates it: precision holds until
		// recall moves.
		pts := make(plotter.XYs, 0, 2*len(recall))
		for i := range recall {
			if i > 0 {
				pts = append(pts, plotter.XY{X: recall[i-1], Y: precision[i]})
			}
			pts = append(pts, plotter.XY{X: recall[i], Y: precision[i]})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", p.Name, err)
		}
		if c, ok := colors[name]; ok {
			line.Color = c
		}
		line.Width = vg.Points(1.5)
		ap, _ := AveragePrecision(p.Scores[name], p.Labels)
		pl.Add(line)
		pl.Legend.Add(fmt.Sprintf("%s (AUPRC %.3f)", name, ap), line)
	}
	prev, err := Prevalence(p.Labels)
	if err != nil {
		return fmt.Errorf("plot %s: %w", p.Name, err)
	}
	chance, err := plotter.NewLine(plotter.XYs{{X: 0, Y: prev}, {X: 1, Y: prev}})
	if err != nil {
		return fmt.Errorf("plot %s: %w", p.Name, err)
	}
	chance.Color = color.Gray{Y: 0x80}
	chance.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	pl.Add(chance)
	pl.Legend.Add(fmt.Sprintf("prevalence %.3f", prev), chance)
	pl.Legend.Top = true
	wt, err := pl.WriterTo(6*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plot %s: %w", p.Name, err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
