package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fedclaims/fedclaims/inference"
	"github.com/fedclaims/fedclaims/model"
)

// Where fedclaims eval keeps what it learns, under --out.
const (
	headsDir        = "heads"               // OUT/heads/<task>.{safetensors,json}
	predictionsFile = "predictions.parquet" // every model's test-split predictions
)

// saveHeads writes OUT/heads/<task>.{safetensors,json} for each head (a
// fine-tuned head's encoder beside it, with ck's vocabulary) and
// OUT/predictions.parquet.
func saveHeads(out string, ck *encoderCheckpoint, heads []*inference.Head, preds []inference.EvalPredictionRow) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if len(heads) > 0 {
		var vocab []byte
		for _, h := range heads {
			if !h.Info.Frozen && vocab == nil {
				var err error
				if vocab, err = os.ReadFile(filepath.Join(ck.dir, model.VocabFile)); err != nil {
					return fmt.Errorf("saving fine-tuned encoders: %w", err)
				}
			}
		}
		dir := filepath.Join(out, headsDir)
		for _, h := range heads {
			if err := inference.SaveHead(dir, h, vocab); err != nil {
				return err
			}
		}
	}
	return inference.WriteEvalPredictions(filepath.Join(out, predictionsFile), preds)
}
