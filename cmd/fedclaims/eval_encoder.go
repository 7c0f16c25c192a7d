package main

import (
	"fmt"

	"github.com/fedclaims/fedclaims/eval/pipeline"
)

// loadEncoder reads the checkpoint of --model (pipeline.LoadCheckpoint).
func loadEncoder(dir string) (*pipeline.Checkpoint, error) {
	ck, err := pipeline.LoadCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("flag --model: %w", err)
	}
	return ck, nil
}
