package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/inference"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// Where an evaluation keeps what it learns, under its output directory.
const (
	HeadsDir        = "heads"               // OUT/heads/<task>.{safetensors,json}
	PredictionsFile = "predictions.parquet" // every model's test-split predictions
)

// Checkpoint is a pretrained encoder with the vocabulary it was trained on.
type Checkpoint struct {
	Dir   string
	Model *model.Model
	Vocab *tokenizer.Vocab
}

// LoadCheckpoint reads a checkpoint directory and checks that its vocabulary is
// the one its embeddings were sized for; a mismatch would silently shift every
// token.
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	m, v, err := model.LoadWithVocab(dir)
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Dir: dir, Model: m, Vocab: v}, nil
}

// Scored is an encoder an evaluation scores, under the report's model name.
type Scored struct {
	Name string
	*Checkpoint
}

// Evaluation is one dataset's evaluation, as `fedclaims eval`, a site's local
// evaluation and the demo run it.
type Evaluation struct {
	// Data is the dataset's directory: its name in the report comes from its
	// dataset.json.
	Data string
	// Patients are its patients, read already (LoadPatientsWith).
	Patients []*claims.Patient
	Tasks    []tasks.Task
	// Encoders are scored in order on the baseline's rows; the one named
	// eval.ModelEncoder is the one the report tests against the baseline, and
	// its heads are saved under Out/heads.
	Encoders []Scored
	// Out receives the report, the plots, the baseline models, the heads and the
	// test predictions; everything is computed before Out is touched.
	Out string
}

// Evaluate labels the patients for every task, trains the baseline, fits each
// encoder's heads on the same rows, and writes the report; it returns the report.
// A dataset in which no task labels anyone is baseline.ErrNoIndexDates itself,
// for the caller to explain.
func Evaluate(ctx context.Context, ev Evaluation, o Options) (*eval.Report, error) {
	log := o.log()
	log.Info("labelling", "data", ev.Data, "tasks", len(ev.Tasks), "patients", len(ev.Patients))
	c, err := Label(ev.Patients, ev.Tasks, o)
	if errors.Is(err, baseline.ErrNoIndexDates) {
		return nil, err // the caller explains it with the data's dates and codes
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ev.Data, err)
	}
	log.Info("training the baseline", "data", ev.Data, "tasks", len(c.Runs))
	if err := c.TrainBaseline(ctx, o); err != nil {
		return nil, fmt.Errorf("%s: %w", ev.Data, err)
	}
	var heads []*inference.Head
	var saved *Checkpoint
	for i, enc := range ev.Encoders {
		log.Info("fitting the encoder's heads", "data", ev.Data, "encoder", enc.Name, "of", fmt.Sprintf("%d/%d", i+1, len(ev.Encoders)), "tasks", len(c.Runs))
		res, err := c.EncoderScores(ctx, enc.Model, enc.Vocab, o)
		if err != nil {
			return nil, fmt.Errorf("%s: encoder %s: %w", ev.Data, enc.Dir, err)
		}
		for ri := range c.Runs {
			c.Runs[ri].Predictions.Scores[enc.Name] = res[ri].Test
		}
		if enc.Name == eval.ModelEncoder {
			if heads, err = c.SavedHeads(res, enc.Model, enc.Model.WeightsHash(), enc.Dir, o); err != nil {
				return nil, fmt.Errorf("%s: %w", ev.Data, err)
			}
			saved = enc.Checkpoint
		}
	}
	report, err := c.Report(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ev.Data, err)
	}
	if m, err := claims.ReadDatasetMetadata(ev.Data); err != nil {
		return nil, err
	} else if m != nil {
		report.Dataset = m.String()
	}
	preds, err := c.TestPredictions()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ev.Data, err)
	}
	if err := saveHeads(ev.Out, saved, heads, preds); err != nil {
		return nil, err
	}
	if err := saveReport(ev.Out, c, report); err != nil {
		return nil, err
	}
	return report, nil
}

// saveReport writes the report, each evaluated task's precision-recall and
// reliability plots and each baseline model into out.
func saveReport(out string, c *Cohort, report *eval.Report) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	for _, run := range c.Runs {
		name := run.Predictions.Name
		if err := eval.PlotPR(filepath.Join(out, "pr_"+name+".png"), run.Predictions); err != nil {
			// A test split without a positive has no curve; the report says why.
			if !errors.Is(err, eval.ErrNoPositives) {
				return err
			}
		}
		if err := eval.PlotCalibration(filepath.Join(out, "calibration_"+name+".png"), run.Predictions); err != nil {
			return err
		}
		if err := run.Model.Save(filepath.Join(out, "baseline_"+name+".txt")); err != nil {
			return err
		}
	}
	return report.Save(out)
}

// saveHeads writes OUT/heads/<task>.{safetensors,json} for each head (a
// fine-tuned head's encoder beside it, with ck's vocabulary) and
// OUT/predictions.parquet.
func saveHeads(out string, ck *Checkpoint, heads []*inference.Head, preds []inference.EvalPredictionRow) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if len(heads) > 0 {
		var vocab []byte
		for _, h := range heads {
			if !h.Info.Frozen && vocab == nil {
				var err error
				if vocab, err = os.ReadFile(filepath.Join(ck.Dir, model.VocabFile)); err != nil {
					return fmt.Errorf("saving fine-tuned encoders: %w", err)
				}
			}
		}
		dir := filepath.Join(out, HeadsDir)
		for _, h := range heads {
			if err := inference.SaveHead(dir, h, vocab); err != nil {
				return err
			}
		}
	}
	return inference.WriteEvalPredictions(filepath.Join(out, PredictionsFile), preds)
}
