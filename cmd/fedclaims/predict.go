package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/inference"
	"github.com/fedclaims/fedclaims/model"
)

// inferenceOptions reads the flags predict and embed share: --at and --batch.
func inferenceOptions(a *app) (inference.Options, error) {
	o := inference.Options{Batch: a.v.GetInt("batch"), Log: a.log}
	if o.Batch < 1 {
		return o, fmt.Errorf("flag --batch: %d must be at least 1", o.Batch)
	}
	if at := a.v.GetString("at"); at != "" {
		t, err := parseDate(at)
		if err != nil {
			return o, fmt.Errorf("flag --at: %w", err)
		}
		if t == 0 {
			return o, errors.New("flag --at: the Unix epoch itself cannot be given (0 means each patient's own date)")
		}
		o.At = t
	}
	return o, nil
}

// inferenceFlags adds the flags inferenceOptions reads.
func inferenceFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("at", "", "prediction date for every patient, as 2024-01-01 or RFC 3339; the history is the events before it (default: per patient, the day after its last care event, patients with a recorded death left out)")
	f.Int("batch", 16, "sequences per encoder batch")
}

// openData opens --data for a single pass.
func openData(a *app) (claims.Source, error) {
	data := a.v.GetString("data")
	if data == "" {
		return nil, errors.New("flag --data: a dataset directory is required")
	}
	src, err := claims.Open(data, dataOptions(a)...)
	if err != nil {
		return nil, fmt.Errorf("flag --data: %w", err)
	}
	return src, nil
}

func newPredictCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "predict --model CKPT --head HEAD [--head HEAD2 ...] --data DIR [--at DATE] --out F.parquet",
		Short: "Score every eligible patient of a dataset with heads that fedclaims eval saved; write parquet (subject_id, prediction_time, task, probability)",
		Long: `predict applies heads saved by fedclaims eval (OUT/heads/<task>.json with
<task>.safetensors beside it; --head takes either file or the path without an
extension) to every patient of --data at a prediction date: --at for everyone, or
by default the midnight after each patient's last care event (its whole record is
the history), patients with a recorded death then left out. A patient is scored
for a task when it has a care event before the date, was not dead by it, its
record starts at least the task's look-back before it, and neither the task's
target nor an excluded code is on record by then (the labeler's rules at an index
date; follow-up, in the future, is not asked).

A head applies only to the encoder it was trained on: --model's weights hash
(SHA-256 of model.safetensors' data section) must equal the head's
encoder_sha256. A fine-tuned head (frozen false) carries its own encoder in
OUT/heads/<task>.encoder/; pass that as --model.

The output has one row per scored patient and task: subject_id (int64),
prediction_time (timestamp[us]), task (string), probability (float64).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, ckpt := a.v.GetString("out"), a.v.GetString("model")
			headPaths, err := cmd.Flags().GetStringArray("head")
			if err != nil {
				return err
			}
			switch {
			case ckpt == "":
				return errors.New("flag --model: an encoder checkpoint directory is required")
			case len(headPaths) == 0:
				return errors.New("flag --head: at least one saved head is required")
			case out == "":
				return errors.New("flag --out: a parquet file to write is required")
			}
			o, err := inferenceOptions(a)
			if err != nil {
				return err
			}
			ck, err := loadEncoder(ckpt)
			if err != nil {
				return err
			}
			hash := ck.Model.WeightsHash()
			var bound []inference.Bound
			seen := map[string]string{}
			for _, hp := range headPaths {
				h, err := inference.LoadHead(hp)
				if err != nil {
					return fmt.Errorf("flag --head: %w", err)
				}
				if prev, dup := seen[h.Info.Task.Name]; dup {
					return fmt.Errorf("flag --head: %s and %s are both heads of task %s", prev, h.Path, h.Info.Task.Name)
				}
				seen[h.Info.Task.Name] = h.Path
				c, err := h.Bind(ck.Model, hash, ck.Dir)
				if err != nil {
					return fmt.Errorf("flag --head: %w", err)
				}
				bound = append(bound, inference.Bound{Head: h, Classifier: c})
			}
			src, err := openData(a)
			if err != nil {
				return err
			}
			defer src.Close()
			preds, sum, err := inference.Predict(cmd.Context(), src, ck.Vocab, bound, o)
			if err != nil {
				return fmt.Errorf("%s: %w", a.v.GetString("data"), err)
			}
			if err := writeParquetOut(out, func(path string) error {
				return inference.WritePredictions(path, preds, map[string]string{"fedclaims.encoder_sha256": hash})
			}); err != nil {
				return err
			}
			return a.printJSONLine(map[string]any{"out": out, "rows": len(preds), "patients": sum.Patients,
				"scored": sum.Scored, "skipped": sum.Skipped, "encoder_sha256": hash})
		},
	}
	f := cmd.Flags()
	f.String("model", "", "encoder checkpoint directory the heads were trained on (model.safetensors, config.json, vocab.json)")
	f.StringArray("head", nil, "a saved head: OUT/heads/<task>.json, its .safetensors, or the path without extension (repeatable)")
	f.String("data", "", "dataset directory to score (MEDS or OMOP CDM)")
	f.String("out", "", "parquet file to write")
	inferenceFlags(cmd)
	dataFlags(cmd)
	return cmd
}

func newEmbedCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "embed --model CKPT --data DIR --out F.parquet [--pooling cls|mean|both] [--at DATE] [--seq N]",
		Short: "Write every patient's pooled encoder embedding as parquet (subject_id, prediction_time, embedding list<float>)",
		Long: `embed encodes every patient of --data alive with a care event before its
prediction date (--at, or by default the midnight after its last care event,
patients with a recorded death then left out) and writes the encoder's pooled
state: subject_id (int64), prediction_time (timestamp[us]) and embedding, a
list<float> column of hidden floats (cls: the [CLS] state; mean: the mean of
the history's token states) or 2·hidden (both: [CLS] then mean). The file's
key/value metadata names the pooling, the width and the encoder's weights hash
(fedclaims.pooling, fedclaims.width, fedclaims.encoder_sha256).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, ckpt := a.v.GetString("out"), a.v.GetString("model")
			switch {
			case ckpt == "":
				return errors.New("flag --model: an encoder checkpoint directory is required")
			case out == "":
				return errors.New("flag --out: a parquet file to write is required")
			}
			base, err := inferenceOptions(a)
			if err != nil {
				return err
			}
			o := inference.EmbedOptions{Options: base, Pooling: model.Pooling(a.v.GetString("pooling")), Seq: a.v.GetInt("seq")}
			if err := o.Pooling.Validate(); err != nil {
				return fmt.Errorf("flag --pooling: %w", err)
			}
			if o.Seq < 0 || o.Seq == 1 {
				return fmt.Errorf("flag --seq: %d must be 0 (the model's max_len) or at least 2", o.Seq)
			}
			ck, err := loadEncoder(ckpt)
			if err != nil {
				return err
			}
			src, err := openData(a)
			if err != nil {
				return err
			}
			defer src.Close()
			embs, sum, err := inference.Embed(cmd.Context(), src, ck.Model, ck.Vocab, o)
			if err != nil {
				return fmt.Errorf("%s: %w", a.v.GetString("data"), err)
			}
			hash := ck.Model.WeightsHash()
			width := o.Pooling.Width(ck.Model.Config().Hidden)
			if err := writeParquetOut(out, func(path string) error {
				return inference.WriteEmbeddings(path, embs, map[string]string{
					"fedclaims.pooling": string(o.Pooling), "fedclaims.width": strconv.Itoa(width),
					"fedclaims.encoder_sha256": hash,
				})
			}); err != nil {
				return err
			}
			return a.printJSONLine(map[string]any{"out": out, "rows": len(embs), "patients": sum.Patients,
				"width": width, "pooling": o.Pooling, "skipped": sum.Skipped[""], "encoder_sha256": hash})
		},
	}
	f := cmd.Flags()
	f.String("model", "", "encoder checkpoint directory (model.safetensors, config.json, vocab.json)")
	f.String("data", "", "dataset directory to embed (MEDS or OMOP CDM)")
	f.String("out", "", "parquet file to write")
	f.String("pooling", string(model.PoolCLS), "cls (the [CLS] state), mean (the mean of the history's token states) or both (the two concatenated)")
	f.Int("seq", 0, "tokens per history, most recent kept (0: the model's max_len)")
	inferenceFlags(cmd)
	dataFlags(cmd)
	return cmd
}

// writeParquetOut creates out's directory and writes out with write.
func writeParquetOut(out string, write func(string) error) error {
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("flag --out: %w", err)
		}
	}
	return write(out)
}
