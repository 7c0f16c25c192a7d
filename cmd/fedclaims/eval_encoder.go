package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// encoderCheckpoint is a pretrained encoder with the vocabulary it was trained on.
type encoderCheckpoint struct {
	dir   string
	model *model.Model
	vocab *tokenizer.Vocab
}

// loadEncoder reads a checkpoint directory and checks that its vocabulary is the
// one its embeddings were sized for; a mismatch would silently shift every token.
func loadEncoder(dir string) (*encoderCheckpoint, error) {
	m, err := model.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("flag --model: %w", err)
	}
	vpath := filepath.Join(dir, model.VocabFile)
	v, err := tokenizer.ReadFile(vpath)
	if err != nil {
		return nil, fmt.Errorf("flag --model: %w", err)
	}
	if n := m.Config().Vocab; v.Len() != n {
		return nil, fmt.Errorf("flag --model: %s holds %d tokens but the checkpoint's embeddings (%s) have %d rows: the vocabulary does not match the model",
			vpath, v.Len(), filepath.Join(dir, model.ConfigFile), n)
	}
	return &encoderCheckpoint{dir: dir, model: m, vocab: v}, nil
}

// addEncoder fine-tunes one head per task on the training split, stopping on the
// validation split, and adds its test-split probabilities to each run, row for row
// with the baseline's.
func addEncoder(ctx context.Context, ck *encoderCheckpoint, o evalOptions, a *app, patients []*claims.Patient,
	cohort *baseline.Cohort, l *tasks.Labeler, runs []baseline.TaskRun) error {
	cfg := ck.model.Config()
	seqLen := cfg.MaxLen
	if o.seq > 0 {
		seqLen = min(seqLen, o.seq)
	}
	enc, err := tokenizer.NewEncoder(ck.vocab, seqLen)
	if err != nil {
		return fmt.Errorf("flag --model: %w", err)
	}
	byID := make(map[int64]*claims.Patient, len(patients))
	for _, p := range patients {
		byID[p.ID] = p
	}
	seqs := make([]model.Sequence, len(cohort.Examples))
	var e tokenizer.Encoding
	for i, ex := range cohort.Examples {
		enc.EncodeTo(&e, byID[ex.SubjectID], ex.Index)
		seqs[i] = model.FromEncoding(&e)
	}
	taskIndex := map[string]int{}
	for i, t := range l.Tasks() {
		taskIndex[t.Name] = i
	}
	hc := model.DefaultHeadConfig()
	hc.Seed, hc.Frozen = o.seed, o.frozen
	if o.epochs > 0 {
		hc.Epochs = o.epochs
	}
	if hc.Frozen {
		hc.Train.LR = 1e-2
	}
	for ri := range runs {
		pred := &runs[ri].Predictions
		ti := taskIndex[pred.Name]
		var split [3][]model.Example
		var testIDs []int64
		var testSeqs []model.Sequence
		for i, ex := range cohort.Examples {
			lab := ex.Labels[ti]
			if !lab.Labelled() {
				continue
			}
			split[ex.Split] = append(split[ex.Split], model.Example{Seq: seqs[i], Label: lab == tasks.Positive})
			if ex.Split == tasks.Test {
				testIDs = append(testIDs, ex.SubjectID)
				testSeqs = append(testSeqs, seqs[i])
			}
		}
		if len(testIDs) != len(pred.Patient) {
			return fmt.Errorf("task %s: encoder test split has %d rows, baseline's %d", pred.Name, len(testIDs), len(pred.Patient))
		}
		for k, id := range testIDs {
			if pred.Patient[k] != id {
				return fmt.Errorf("task %s: encoder test row %d is patient %d, baseline's is %d", pred.Name, k, id, pred.Patient[k])
			}
		}
		c, err := model.FineTune(ctx, ck.model, split[tasks.Train], split[tasks.Validation], hc)
		if err != nil {
			return fmt.Errorf("task %s: fine-tuning the encoder from %s: %w", pred.Name, ck.dir, err)
		}
		pred.Scores[eval.ModelEncoder] = c.PredictAll(testSeqs, hc.Batch)
		a.log.Info("encoder head trained", "task", pred.Name, "best_epoch", c.BestEpoch, "valid_auprc", c.ValidScore, "frozen", hc.Frozen)
	}
	return nil
}
