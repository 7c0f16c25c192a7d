package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/model"
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

// addEncoder fits one head per task on ck's encoder on the training split, chosen
// on the validation split, and adds its test-split probabilities to each of c's
// runs under name, row for row with the baseline's; it returns the heads, in
// c.Runs' order. The work is package pipeline's, which fedclaims sweep shares.
func addEncoder(ctx context.Context, ck *encoderCheckpoint, o pipeline.Options, c *pipeline.Cohort, name string) ([]pipeline.EncoderResult, error) {
	heads, err := c.EncoderScores(ctx, ck.model, ck.vocab, o)
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w", ck.dir, err)
	}
	for i := range c.Runs {
		c.Runs[i].Predictions.Scores[name] = heads[i].Test
	}
	return heads, nil
}
