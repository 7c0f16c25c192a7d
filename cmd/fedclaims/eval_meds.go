package main

import (
	"errors"
	"fmt"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/tasks"
)

// An evaluation scores the test split the dataset itself holds out when it
// declares one, and may take its tasks as MEDS labels (--labels) rather than as
// a task file: both are read here and handed to package pipeline, which does the
// rest as for fedclaims' own tasks.

// medsSource sets po's split from --data (the dataset's own when it declares one,
// else the hash under --split-salt) and, with --labels, the MEDS labels to
// evaluate instead of the task file's.
func (o evalOptions) medsSource(po *pipeline.Options) error {
	splits, err := tasks.LoadSplits(o.data, o.salt)
	if err != nil {
		return err
	}
	po.Splits = splits
	if o.labels == "" {
		return nil
	}
	if o.tasksFile != "" {
		return errors.New("flags --labels and --tasks: the tasks come from one or the other; drop one")
	}
	sets, err := claims.ReadLabelDir(o.labels)
	if err != nil {
		return fmt.Errorf("flag --labels: %w", err)
	}
	po.Given = sets
	return nil
}

// datasetSplitNote ends the help of every --split-salt flag.
const datasetSplitNote = "; a dataset that declares its own split (metadata/subject_splits.parquet or data/train|tuning|held_out/) is split its way instead"
