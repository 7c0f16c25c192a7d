package main

import (
	"context"
	"fmt"

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
	m, v, err := model.LoadWithVocab(dir)
	if err != nil {
		return nil, fmt.Errorf("flag --model: %w", err)
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
