package sweep

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/fedclaims/fedclaims/eval"
)

var (
	palette = []color.Color{
		eval.EncoderColor, eval.BaselineColor,
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
		color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	}
)

// PlotFiles are the plots Save writes, relative to the output directory, given the
// task names.
func PlotFiles(taskNames []string) []string {
	files := []string{"pretrain_loss.png", "loss_curves.png", "auprc_compute.png"}
	for _, t := range taskNames {
		files = append(files, "auprc_"+t+".png")
	}
	return files
}

// logAxis puts a log scale on ax over xs, padded, with one labelled tick per value:
// a sweep has a handful of sizes, and powers of ten alone would leave most unlabelled.
func logAxis(ax *plot.Axis, xs []float64, labels []string) {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	ax.Scale = plot.LogScale{}
	ax.Min, ax.Max = lo/1.6, hi*1.6
	ticks := make([]plot.Tick, len(xs))
	for i, x := range xs {
		ticks[i] = plot.Tick{Value: x, Label: labels[i]}
	}
	ax.Tick.Marker = plot.ConstantTicks(ticks)
}

func band(xs, lo, hi []float64, c color.Color) (*plotter.Polygon, error) {
	pts := make(plotter.XYs, 0, 2*len(xs))
	for i := range xs {
		pts = append(pts, plotter.XY{X: xs[i], Y: lo[i]})
	}
	for i := len(xs) - 1; i >= 0; i-- {
		pts = append(pts, plotter.XY{X: xs[i], Y: hi[i]})
	}
	p, err := plotter.NewPolygon(pts)
	if err != nil {
		return nil, err
	}
	p.Color = c
	p.LineStyle.Width = 0
	return p, nil
}

func paramLabel(p PresetResult) string {
	return fmt.Sprintf("%s\n%.3gM", p.Name, float64(p.Params)/1e6)
}

// auprcBand is m's AUPRC interval, or no band at all (the point itself) where the
// test split had too few positives for one.
func auprcBand(m eval.Metrics) (lo, hi float64) {
	if m.AUPRCCI == nil {
		return m.AUPRC, m.AUPRC
	}
	return m.AUPRCCI[0], m.AUPRCCI[1]
}

// plotTask draws AUPRC against parameters for task k, with the 95% interval as a
// band and the baseline as a horizontal line with its own band.
func (r *Result) plotTask(dir string, k int) error {
	bt := r.Baseline[k]
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s (%s): AUPRC against encoder size", bt.Name, bt.Kind)
	pl.X.Label.Text = "parameters (log scale)"
	pl.Y.Label.Text = "test AUPRC (95% bootstrap CI)"
	pl.Add(plotter.NewGrid())
	var xs, ys, lo, hi []float64
	var labels []string
	for _, p := range r.Presets {
		m := p.Tasks[k].Metrics
		xs, ys = append(xs, float64(p.Params)), append(ys, m.AUPRC)
		l, h := auprcBand(m)
		lo, hi = append(lo, l), append(hi, h)
		labels = append(labels, paramLabel(p))
	}
	logAxis(&pl.X, xs, labels)
	bm := bt.Metrics
	bl0, bh0 := auprcBand(bm)
	bb, err := band([]float64{pl.X.Min, pl.X.Max}, []float64{bl0, bl0}, []float64{bh0, bh0}, eval.BaselineBand)
	if err != nil {
		return err
	}
	pl.Add(bb)
	bl, err := plotter.NewLine(plotter.XYs{{X: pl.X.Min, Y: bm.AUPRC}, {X: pl.X.Max, Y: bm.AUPRC}})
	if err != nil {
		return err
	}
	bl.Color, bl.Width, bl.Dashes = eval.BaselineColor, vg.Points(1.5), []vg.Length{vg.Points(5), vg.Points(3)}
	pl.Add(bl)
	pl.Legend.Add(fmt.Sprintf("baseline (AUPRC %.3f)", bm.AUPRC), bl)
	eb, err := band(xs, lo, hi, eval.EncoderBand)
	if err != nil {
		return err
	}
	pl.Add(eb)
	line, pts, err := plotter.NewLinePoints(xyOf(xs, ys))
	if err != nil {
		return err
	}
	line.Color, line.Width, pts.Color = eval.EncoderColor, vg.Points(1.5), eval.EncoderColor
	pl.Add(line, pts)
	pl.Legend.Add("encoder", line, pts)
	// Bottom right: AUPRC bands tend to reach the top.
	return eval.WritePNG(filepath.Join(dir, "auprc_"+bt.Name+".png"), pl)
}

func xyOf(xs, ys []float64) plotter.XYs {
	pts := make(plotter.XYs, len(xs))
	for i := range xs {
		pts[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	return pts
}

// plotLoss draws the final validation MLM loss against parameters.
func (r *Result) plotLoss(dir string) error {
	pl := plot.New()
	pl.Title.Text = "pretraining: validation MLM loss against encoder size"
	pl.X.Label.Text = "parameters (log scale)"
	pl.Y.Label.Text = "validation MLM loss (nats), end of budget"
	pl.Add(plotter.NewGrid())
	var xs, ys []float64
	var labels []string
	for _, p := range r.Presets {
		xs, ys = append(xs, float64(p.Params)), append(ys, p.FinalLoss())
		labels = append(labels, paramLabel(p))
	}
	logAxis(&pl.X, xs, labels)
	line, pts, err := plotter.NewLinePoints(xyOf(xs, ys))
	if err != nil {
		return err
	}
	line.Color, pts.Color = eval.EncoderColor, eval.EncoderColor
	pl.Add(line, pts)
	return eval.WritePNG(filepath.Join(dir, "pretrain_loss.png"), pl)
}

// plotCurves draws each preset's validation loss against optimiser steps, or its
// training loss where the validation loss was measured at the end only (federated).
func (r *Result) plotCurves(dir string) error {
	pl := plot.New()
	pl.Title.Text = "pretraining: MLM loss curves"
	pl.X.Label.Text = "optimiser steps (per site, when federated)"
	pl.Y.Label.Text = "MLM loss (nats)"
	pl.Add(plotter.NewGrid())
	for i, p := range r.Presets {
		var valid, train plotter.XYs
		for _, lp := range p.Loss {
			if lp.Valid != nil {
				valid = append(valid, plotter.XY{X: float64(lp.Step), Y: *lp.Valid})
			}
			if lp.Train != nil {
				train = append(train, plotter.XY{X: float64(lp.Step), Y: *lp.Train})
			}
		}
		pts, what := valid, "validation"
		if len(valid) < 2 {
			pts, what = train, "training"
		}
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color, line.Width = palette[i%len(palette)], vg.Points(1.5)
		pl.Add(line)
		pl.Legend.Add(p.Name+" ("+what+")", line)
	}
	pl.Legend.Top = true
	return eval.WritePNG(filepath.Join(dir, "loss_curves.png"), pl)
}

// plotCompute draws every task's AUPRC against pretraining FLOPs.
func (r *Result) plotCompute(dir string) error {
	pl := plot.New()
	pl.Title.Text = "AUPRC against pretraining compute"
	pl.X.Label.Text = "pretraining FLOPs (log scale)"
	pl.Y.Label.Text = "test AUPRC"
	pl.Add(plotter.NewGrid())
	var xs []float64
	var labels []string
	for _, p := range r.Presets {
		xs = append(xs, max(p.FLOPs, 1))
		labels = append(labels, fmt.Sprintf("%s\n%.2g", p.Name, p.FLOPs))
	}
	logAxis(&pl.X, xs, labels)
	for k, bt := range r.Baseline {
		ys := make([]float64, len(r.Presets))
		for i, p := range r.Presets {
			ys[i] = p.Tasks[k].Metrics.AUPRC
		}
		line, pts, err := plotter.NewLinePoints(xyOf(xs, ys))
		if err != nil {
			return err
		}
		c := palette[k%len(palette)]
		line.Color, line.Width, pts.Color = c, vg.Points(1.5), c
		pl.Add(line, pts)
		pl.Legend.Add(bt.Name, line, pts)
	}
	pl.Legend.Top = true
	return eval.WritePNG(filepath.Join(dir, "auprc_compute.png"), pl)
}

func (r *Result) plots(dir string) error {
	if err := r.plotLoss(dir); err != nil {
		return err
	}
	if err := r.plotCurves(dir); err != nil {
		return err
	}
	if err := r.plotCompute(dir); err != nil {
		return err
	}
	for k := range r.Baseline {
		if err := r.plotTask(dir, k); err != nil {
			return err
		}
	}
	return nil
}
