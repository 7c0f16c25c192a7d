package eval

import (
	"cmp"
	"fmt"
	"image/color"
	"io"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// The colors every fedclaims figure gives the encoder and the baseline, so that a
// reader of several figures never has to look them up twice.
var (
	EncoderColor  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	EncoderBand   = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x40}
	BaselineColor = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	BaselineBand  = color.NRGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0x30}
)

// modelColors are the plots' colors of the report's two models.
var modelColors = map[string]color.Color{ModelEncoder: EncoderColor, ModelBaseline: BaselineColor}

// PlotPR writes one task's precision-recall curves, one per model, with the
// prevalence as the no-skill line, as a PNG at path.
func PlotPR(path string, p Predictions) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s (%s): precision-recall, test split", p.Name, p.Kind)
	pl.X.Label.Text = "recall"
	pl.Y.Label.Text = "precision"
	pl.X.Min, pl.X.Max, pl.Y.Min, pl.Y.Max = 0, 1, 0, 1
	pl.Add(plotter.NewGrid())
	for _, name := range modelNames(p.Scores) {
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
		if c, ok := modelColors[name]; ok {
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
	return WritePNG(path, pl)
}

// WritePNG renders pl as a 6 × 4.5 inch PNG at path through a temporary file
// renamed into place.
func WritePNG(path string, pl *plot.Plot) error {
	wt, err := pl.WriterTo(6*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}

// CalibrationBins is the number of bins of the reliability plot.
const CalibrationBins = 10

// ReliabilityCurve returns the points of a reliability diagram: the rows sorted by
// predicted probability are cut into bins quantile bins of (as nearly as possible)
// equal count, fewer when there are fewer rows, and each bin gives the mean predicted
// probability and the observed fraction of positives. Rows tied in probability may
// fall into neighbouring bins; the cut is by rank, in row order among ties.
func ReliabilityCurve(probs []float64, labels []bool, bins int) (predicted, observed []float64, err error) {
	if err := checkProbabilities(probs, labels); err != nil {
		return nil, nil, fmt.Errorf("reliability curve: %w", err)
	}
	if bins < 1 {
		return nil, nil, fmt.Errorf("reliability curve: %d bins, want at least 1", bins)
	}
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(probs[a], probs[b]) })
	n := len(idx)
	bins = min(bins, n)
	for k := range bins {
		lo, hi := k*n/bins, (k+1)*n/bins
		var sp, sy float64
		for _, i := range idx[lo:hi] {
			sp += probs[i]
			if labels[i] {
				sy++
			}
		}
		predicted = append(predicted, sp/float64(hi-lo))
		observed = append(observed, sy/float64(hi-lo))
	}
	return predicted, observed, nil
}

// PlotCalibration writes one task's reliability diagram as a PNG at path: for each
// model, CalibrationBins quantile bins of predicted probability, the mean predicted
// probability against the observed fraction of positives, with the diagonal of
// perfect calibration. Scores must be probabilities; a split without positives or
// negatives is plotted too (its observed fractions are all 0 or all 1).
func PlotCalibration(path string, p Predictions) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s (%s): calibration, test split", p.Name, p.Kind)
	pl.X.Label.Text = fmt.Sprintf("mean predicted probability (%d quantile bins)", CalibrationBins)
	pl.Y.Label.Text = "observed fraction of positives"
	pl.X.Min, pl.X.Max, pl.Y.Min, pl.Y.Max = 0, 1, 0, 1
	pl.Add(plotter.NewGrid())
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return fmt.Errorf("plot %s: %w", p.Name, err)
	}
	diag.Color = color.Gray{Y: 0x80}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	pl.Add(diag)
	pl.Legend.Add("perfect calibration", diag)
	if len(p.Scores) == 0 {
		return fmt.Errorf("plot %s: no model scores", p.Name)
	}
	for _, name := range modelNames(p.Scores) {
		pred, obs, err := ReliabilityCurve(p.Scores[name], p.Labels, CalibrationBins)
		if err != nil {
			return fmt.Errorf("plot %s: model %s: %w", p.Name, name, err)
		}
		pts := make(plotter.XYs, len(pred))
		for i := range pred {
			pts[i] = plotter.XY{X: pred[i], Y: obs[i]}
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", p.Name, err)
		}
		if c, ok := modelColors[name]; ok {
			line.Color, points.Color = c, c
		}
		line.Width = vg.Points(1.5)
		label := name
		if b, err := Brier(p.Scores[name], p.Labels); err == nil {
			label = fmt.Sprintf("%s (Brier %.4f)", name, b)
		}
		pl.Add(line, points)
		pl.Legend.Add(label, line, points)
	}
	pl.Legend.Top = true
	pl.Legend.Left = true
	return WritePNG(path, pl)
}
