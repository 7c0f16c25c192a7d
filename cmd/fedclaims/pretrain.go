package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// newPretrainCmd trains an encoder with MLM on one or more datasets pooled: the
// centralised reference that federated training is compared against.
func newPretrainCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pretrain --data DIR... --vocab V --preset P --steps N --out CKPT",
		Short: "Pretrain the encoder with masked-language modelling on pooled datasets",
		Long: `Reads every --data dataset (MEDS or OMOP CDM), keeps the patients of the training
split (the dataset's own when it declares one, metadata/subject_splits.parquet or
data/train|tuning|held_out/, whose tuning and held_out patients are never read; else
tasks.SplitOf by subject id under --split-salt: the split fedclaims eval scores the
test split of), encodes each one's whole history with the vocabulary (at most --seq
tokens, the most recent kept; with --random-cut the history up to a random visit day), holds out --valid-fraction of them for the loss, and trains a --preset encoder for --steps optimiser
steps of --batch sequences (times --accum micro-batches), length-bucketed. Writes the
checkpoint directory --out (model.safetensors, config.json, vocab.json, and the
optimiser and trainer state that --resume continues from exactly). Prints one JSON line:
validation MLM loss before and after, the unigram entropy of the codes, the patients
left out by the split and whose split it was ("split": "dataset's (...)" or
"fedclaims hash"), and timings.

A whole history includes the events after a patient's index date, which are the
patient's labels: an encoder pretrained on validation or test patients has read the
outcomes the evaluation chooses and scores on. --include-test-split pretrains on every
patient, for an encoder that no evaluation on these datasets will score.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			v := a.v
			data, vocabPath, out := v.GetStringSlice("data"), v.GetString("vocab"), v.GetString("out")
			switch {
			case len(data) == 0:
				return errors.New("flag --data: at least one dataset directory is required")
			case vocabPath == "":
				return errors.New("flag --vocab: a vocabulary file is required")
			case out == "":
				return errors.New("flag --out: a checkpoint directory is required")
			case v.GetInt("steps") <= 0:
				return fmt.Errorf("flag --steps: %d must be positive", v.GetInt("steps"))
			case v.GetInt("batch") <= 0:
				return fmt.Errorf("flag --batch: %d must be positive", v.GetInt("batch"))
			}
			vocabBytes, err := os.ReadFile(vocabPath)
			if err != nil {
				return fmt.Errorf("flag --vocab: %w", err)
			}
			vocab, err := tokenizer.ReadFile(vocabPath)
			if err != nil {
				return err
			}
			if err := refuseEmptyVocab(vocabPath, vocab); err != nil {
				return err
			}
			cfg, err := model.Preset(v.GetString("preset"), vocab.Len())
			if err != nil {
				return fmt.Errorf("flag --preset: %w", err)
			}
			cfg.Dropout = float32(v.GetFloat64("dropout"))
			seq := v.GetInt("seq")
			if seq < 2 || seq > cfg.MaxLen {
				return fmt.Errorf("flag --seq: %d must be in [2, %d]", seq, cfg.MaxLen)
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			enc, err := tokenizer.NewEncoder(vocab, seq)
			if err != nil {
				return err
			}
			seed := v.GetUint64("seed")
			windows := model.Windows{RandomCut: v.GetBool("random-cut"), Seed: seed}
			var all []model.Sequence
			everyone, salt := v.GetBool("include-test-split"), v.GetString("split-salt")
			excluded, read := 0, 0
			var splitsUsed []string // each dataset's split, for the log and the output
			for _, dir := range data {
				src, err := claims.Open(dir, codesOption(a))
				if err != nil {
					return err
				}
				var r claims.Reader = src
				var pr *tasks.PretrainingReader
				split := "every patient (--include-test-split)"
				if !everyone {
					splits, err := tasks.LoadSplits(dir, salt)
					if err != nil {
						src.Close()
						return err
					}
					pr = tasks.NewSplitsPretrainingReader(src, splits)
					r, split = pr, splits.String()
				}
				splitsUsed = append(splitsUsed, split)
				seqs, n, err := model.ReadSequencesWindows(ctx, r, enc, windows)
				src.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", dir, err)
				}
				var left int
				if pr != nil {
					left = pr.Excluded
				}
				excluded += left
				read += n
				a.log.Info("encoded dataset", "data", dir, "split", split, "patients", n, "left_out", left, "sequences", len(seqs))
				all = append(all, seqs...)
			}
			train, valid := splitSequences(all, v.GetFloat64("valid-fraction"), seed)
			if len(train) == 0 {
				return noSequences(data, vocabPath, read, excluded)
			}
			if err := model.CheckSequences(train, cfg); err != nil {
				return err
			}

			var tr *model.Trainer
			var ld *model.Loader
			if _, err := os.Stat(filepath.Join(out, model.TrainerFile)); err == nil && v.GetBool("resume") {
				if tr, ld, err = model.Resume(out, train); err != nil {
					return err
				}
				if tr.Model.Config() != cfg {
					return fmt.Errorf("--resume: checkpoint %s has config %+v, the flags give %+v", out, tr.Model.Config(), cfg)
				}
				a.log.Info("resuming", "checkpoint", out, "step", tr.Opt.Step)
			} else {
				m, err := model.New(cfg, seed)
				if err != nil {
					return err
				}
				tc := model.DefaultTrainConfig(v.GetInt("steps"))
				tc.LR = v.GetFloat64("lr")
				tc.Warmup = v.GetInt("warmup")
				if tc.Warmup < 0 {
					tc.Warmup = max(1, tc.Steps/10)
				}
				tc.Accum = v.GetInt("accum")
				tc.Schedule = v.GetString("schedule")
				tc.WeightDecay = v.GetFloat64("weight-decay")
				tc.ClipNorm = v.GetFloat64("clip")
				if tr, err = model.NewTrainer(m, tc, seed+1); err != nil {
					return err
				}
				if ld, err = model.NewLoader(train, v.GetInt("batch"), seed+2); err != nil {
					return err
				}
			}
			const evalSeed = 7
			before := tr.Eval(model.Batches(valid, 16), evalSeed)

			bar := a.newProgress(tr.TC.Steps, "pretrain")
			bar.Set(tr.Opt.Step)
			saveEvery := v.GetInt("save-every")
			stopAt := tr.TC.Steps
			if n := v.GetInt("stop-after"); n > 0 {
				stopAt = min(stopAt, tr.Opt.Step+n)
			}
			start := time.Now()
			var tokens int
			var last model.StepStats
			for tr.Opt.Step < stopAt {
				epoch, cursor := ld.Epoch, ld.Cursor
				micro := make([]*model.Batch, tr.TC.Accum)
				for i := range micro {
					micro[i] = ld.Next()
				}
				st, err := tr.Step(ctx, micro)
				if err != nil {
					if ctx.Err() != nil {
						// Interrupted: keep the steps completed so --resume
						// continues exactly, the loader back where this step began.
						ld.Epoch, ld.Cursor = epoch, cursor
						if serr := tr.SaveCheckpoint(out, vocabBytes, ld); serr != nil {
							return errors.Join(err, serr)
						}
					}
					return err
				}
				last = st
				tokens += st.Tokens
				el := time.Since(start).Seconds()
				bar.Describe(fmt.Sprintf("loss %.3f  %.0f tok/s", st.Loss, float64(tokens)/el))
				bar.Set(st.Step)
				if saveEvery > 0 && st.Step%saveEvery == 0 && st.Step < tr.TC.Steps {
					if err := tr.SaveCheckpoint(out, vocabBytes, ld); err != nil {
						return err
					}
				}
			}
			bar.Finish()
			elapsed := time.Since(start).Seconds()
			if err := tr.SaveCheckpoint(out, vocabBytes, ld); err != nil {
				return err
			}
			after := tr.Eval(model.Batches(valid, 16), evalSeed)
			return a.printJSONLine(map[string]any{
				"checkpoint":        out,
				"steps":             tr.Opt.Step,
				"params":            cfg.Params(),
				"train_sequences":   len(train),
				"valid_sequences":   len(valid),
				"left_out_patients": excluded,
				"split":             tasks.DescribeSplits(data, splitsUsed),
				"random_cut":        windows.RandomCut,
				"valid_loss_start":  before,
				"valid_loss_end":    after,
				"last_train_loss":   last.Loss,
				"unigram_entropy":   model.UnigramEntropy(train),
				"seconds":           elapsed,
				"tokens_per_s":      float64(tokens) / elapsed,
			})
		},
	}
	f := cmd.Flags()
	f.StringSlice("data", nil, "dataset directories (MEDS or OMOP CDM), pooled")
	f.String("vocab", "", "vocabulary JSON (fedclaims vocab build)")
	addCodesFlag(cmd)
	f.String("preset", "2m", "model preset: "+fmt.Sprint(model.Presets()))
	f.Int("steps", 1000, "optimiser steps")
	f.String("out", "", "checkpoint directory to write")
	f.Int("batch", 16, "sequences per micro-batch")
	f.Int("accum", 1, "micro-batches per optimiser step (gradient accumulation)")
	f.Int("seq", 256, "longest sequence in tokens (the most recent are kept)")
	f.Float64("lr", 5e-4, "peak learning rate")
	f.Int("warmup", -1, "warm-up steps (default a tenth of --steps)")
	f.String("schedule", "cosine", "decay after warm-up: cosine or linear")
	f.Float64("weight-decay", 0.01, "AdamW decoupled weight decay")
	f.Float64("clip", 1, "clip gradients to this global norm (0: off)")
	f.Float64("dropout", 0.1, "dropout rate")
	f.Float64("valid-fraction", 0.05, "share of patients held out for the validation loss")
	f.Uint64("seed", 1, "seed of initialisation, data order, masking, dropout and --random-cut's windows")
	f.String("split-salt", tasks.DefaultSalt, "salt of the train/validation/test split by subject id; pretrain on the training split under it (fedclaims eval --split-salt)"+datasetSplitNote)
	f.Bool("random-cut", false, "end each patient's window at a random visit day (drawn from --seed and the subject id) instead of encoding the whole history, as fine-tuning windows end at an index date")
	f.Bool("include-test-split", false, "pretrain on every patient, validation and test splits included: only for an encoder no evaluation on these datasets will score")
	f.Int("save-every", 0, "also checkpoint every this many steps (0: only at the end)")
	f.Bool("resume", false, "continue from the trainer state in --out when there is one")
	f.Int("stop-after", 0, "stop after this many steps of this run, checkpointed for --resume (0: run to --steps)")
	return cmd
}

// splitSequences holds out a seeded random fraction of seqs (at least one when
// there are two or more) for validation.
func splitSequences(seqs []model.Sequence, frac float64, seed uint64) (train, valid []model.Sequence) {
	idx := rand.New(rand.NewPCG(seed, 0x76616c6964)).Perm(len(seqs))
	nv := int(frac * float64(len(seqs)))
	if nv == 0 && frac > 0 && len(seqs) > 1 {
		nv = 1
	}
	for i, j := range idx {
		if i < nv {
			valid = append(valid, seqs[j])
		} else {
			train = append(train, seqs[j])
		}
	}
	return train, valid
}
