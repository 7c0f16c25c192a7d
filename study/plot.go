package study

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
)

var modeColors = map[string]color.Color{
	"federated":  color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"central":    color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"site-alone": color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// modeOffsets moves the arms that share a scale's size a little apart on the log
// axis, so that their intervals do not hide one another.
var modeOffsets = map[string]float64{"federated": 1, "central": 1.07, "site-alone": 0.93}

// plots writes study_<task>.png for every task: AUPRC against parameters (log x)
// for each mode's encoders with their intervals, the baseline as a line in its band.
func (r *Result) plots(dir string) error {
	for _, t := range r.Tasks {
		if err := plotTask(t, filepath.Join(dir, "study_"+t.Name+".png")); err != nil {
			return err
		}
	}
	if len(r.LabelEfficiency) > 0 {
		if _, err := pipeline.PlotLabelCurves(dir, r.LabelEfficiency); err != nil {
			return err
		}
	}
	return nil
}

// yErr is a point with an asymmetric vertical interval.
type yErr struct {
	plotter.XYs
	plotter.YErrors
}

func plotTask(t Task, path string) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s (%d test positives): AUPRC against encoder size", t.Name, t.PositivesTest)
	pl.X.Label.Text = "parameters (log scale; central and site-alone drawn slightly apart)"
	pl.Y.Label.Text = "test AUPRC (95% bootstrap CI)"
	pl.X.Scale = plot.LogScale{}
	pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
	pl.Add(plotter.NewGrid())
	lo, hi := 0.0, 0.0
	for i, e := range t.Encoders {
		x := float64(e.Params)
		if i == 0 || x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	lo, hi = lo/1.6, hi*1.6
	pl.X.Min, pl.X.Max = lo, hi
	b := t.Baseline
	bl, bh := b.AUPRC, b.AUPRC
	if b.CI != nil {
		bl, bh = b.CI[0], b.CI[1]
	}
	poly, err := plotter.NewPolygon(plotter.XYs{{X: lo, Y: bl}, {X: hi, Y: bl}, {X: hi, Y: bh}, {X: lo, Y: bh}})
	if err != nil {
		return err
	}
	poly.Color, poly.LineStyle.Width = eval.BaselineBand, 0
	pl.Add(poly)
	line, err := plotter.NewLine(plotter.XYs{{X: lo, Y: b.AUPRC}, {X: hi, Y: b.AUPRC}})
	if err != nil {
		return err
	}
	line.Color, line.Width, line.Dashes = eval.BaselineColor, vg.Points(1.5), []vg.Length{vg.Points(5), vg.Points(3)}
	pl.Add(line)
	pl.Legend.Add(fmt.Sprintf("baseline (%.3f)", b.AUPRC), line)
	for _, mode := range []string{"federated", "central", "site-alone"} {
		var pts yErr
		for _, e := range t.Encoders {
			if e.Mode != mode {
				continue
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: float64(e.Params) * modeOffsets[mode], Y: e.AUPRC})
			lo, hi := 0.0, 0.0
			if e.AUPRCCI != nil {
				lo, hi = e.AUPRC-e.AUPRCCI[0], e.AUPRCCI[1]-e.AUPRC
			}
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{lo, hi})
		}
		if len(pts.XYs) == 0 {
			continue
		}
		c := modeColors[mode]
		lp, sc, err := plotter.NewLinePoints(pts.XYs)
		if err != nil {
			return err
		}
		lp.Color, sc.Color = c, c
		sc.Shape = draw.CircleGlyph{}
		if len(pts.XYs) == 1 {
			lp.Width = 0
		}
		eb, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return err
		}
		eb.Color = c
		pl.Add(lp, sc, eb)
		pl.Legend.Add(mode, lp, sc)
	}
	pl.Legend.Top = false
	return eval.WritePNG(path, pl)
}
