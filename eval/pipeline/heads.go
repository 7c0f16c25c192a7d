package pipeline

import (
	"fmt"
	"math"
	"sort"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/inference"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
)

// SeqLen is the tokens per history the heads see on an encoder of cfg under o:
// cfg.MaxLen, capped by o.Seq.
func (o Options) SeqLen(cfg model.Config) int {
	if o.Seq > 0 {
		return min(cfg.MaxLen, o.Seq)
	}
	return cfg.MaxLen
}

// TestTimes returns the prediction times (index dates, microseconds since the
// Unix epoch) of run ri's test rows, row for row with c.Runs[ri].Predictions.
func (c *Cohort) TestTimes(ri int) ([]int64, error) {
	pred := &c.Runs[ri].Predictions
	ti, ok := c.taskIndex()[pred.Name]
	if !ok {
		return nil, fmt.Errorf("task %s: not among the labeler's tasks", pred.Name)
	}
	rows := c.taskRows(ti)[tasks.Test]
	if err := c.checkTestRows(pred, rows); err != nil {
		return nil, err
	}
	out := make([]int64, len(rows))
	for k, i := range rows {
		out[k] = c.Cohort.Examples[i].Index
	}
	return out, nil
}

// SavedHeads turns EncoderScores' results on enc, the checkpoint at encDir with
// weights hash encHash, into the heads to save, one per run in c.Runs' order,
// each with the calibration of its test-split probabilities.
func (c *Cohort) SavedHeads(results []EncoderResult, enc *model.Model, encHash, encDir string, o Options) ([]*inference.Head, error) {
	if len(results) != len(c.Runs) {
		return nil, fmt.Errorf("saved heads: %d results for %d tasks", len(results), len(c.Runs))
	}
	byName := map[string]tasks.Task{}
	for _, t := range c.Labeler.Tasks() {
		byName[t.Name] = t
	}
	seq := o.SeqLen(enc.Config())
	heads := make([]*inference.Head, len(results))
	for ri, r := range results {
		pred := &c.Runs[ri].Predictions
		if r.Head == nil {
			return nil, fmt.Errorf("task %s: no head to save", pred.Name)
		}
		h, err := inference.NewHead(r.Head, byName[pred.Name], seq, encHash, encDir, o.Salt)
		if err != nil {
			return nil, err
		}
		if slope, icpt, err := eval.Calibration(r.Test, pred.Labels); err == nil && !math.IsNaN(slope) && !math.IsNaN(icpt) {
			pos := 0
			for _, l := range pred.Labels {
				if l {
					pos++
				}
			}
			h.Info.Calibration = &inference.Calibration{Slope: slope, Intercept: icpt, N: len(pred.Labels), Positives: pos}
		}
		heads[ri] = h
	}
	return heads, nil
}

// TestPredictions returns every run's test-split predictions, one row per test
// row and model of its Predictions.Scores (the baseline always, the encoder
// when EncoderScores' probabilities were added under eval.ModelEncoder), task
// by task, the models in report order.
func (c *Cohort) TestPredictions() ([]inference.EvalPredictionRow, error) {
	var out []inference.EvalPredictionRow
	for ri := range c.Runs {
		pred := &c.Runs[ri].Predictions
		times, err := c.TestTimes(ri)
		if err != nil {
			return nil, err
		}
		for _, m := range modelOrder(pred.Scores) {
			scores := pred.Scores[m]
			if len(scores) != len(times) {
				return nil, fmt.Errorf("task %s: model %s has %d test scores for %d rows", pred.Name, m, len(scores), len(times))
			}
			for k, p := range scores {
				out = append(out, inference.EvalPredictionRow{SubjectID: pred.Patient[k], PredictionTime: times[k],
					Task: pred.Name, Model: m, Probability: p, Label: pred.Labels[k]})
			}
		}
	}
	return out, nil
}

// modelOrder is the models of scores: encoder, baseline, then the others by name.
func modelOrder(scores map[string][]float64) []string {
	var out, rest []string
	for _, m := range []string{eval.ModelEncoder, eval.ModelBaseline} {
		if _, ok := scores[m]; ok {
			out = append(out, m)
		}
	}
	for m := range scores {
		if m != eval.ModelEncoder && m != eval.ModelBaseline {
			rest = append(rest, m)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}
