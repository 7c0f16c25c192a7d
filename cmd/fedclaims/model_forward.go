package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// newModelForwardCmd dumps one inference forward pass of a checkpoint as JSON,
// for checking a reimplementation (python/fedclaims_torch.py check) against it.
func newModelForwardCmd(a *app) *cobra.Command {
	var (
		ckpt, inputs, data, out, saveInputs string
		limit, seq                          int
		logits                              bool
	)
	cmd := &cobra.Command{
		Use:   "forward --model CKPT (--inputs F | --data DIR [--limit N] [--seq S]) --out F",
		Short: "Write one forward pass of a checkpoint (hidden states, pooled outputs) as JSON",
		Long: `Runs the checkpoint's encoder without dropout over one padded batch and writes JSON
to --out: b, t, hidden, hidden_states [B][T][H] (after final_ln, padding rows
included), pooled_cls and pooled_mean [B][H], time_bucket and gap_bucket [B][T] (the
time embedding rows each token used, when the model has them) and, with
--mlm-logits, the tied MLM head's logits [B][T][V].

The batch is --inputs, a JSON object of four equal-shaped tables (rows padded with
[PAD] = 0): {"tokens": [[...]], "segments": [[...]], "positions": [[...]], "ages":
[[...]]}; or the first --limit patients of --data (MEDS or OMOP) with a code in the
checkpoint's vocab.json, each whole history encoded as pretrain does (the most
recent --seq tokens; --codes as for pretrain). --save-inputs writes that batch in the --inputs format.

python3 python/fedclaims_torch.py check --checkpoint CKPT --inputs IN --expect OUT
compares PyTorch's forward pass with this one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case ckpt == "":
				return errors.New("flag --model: a checkpoint directory is required")
			case out == "":
				return errors.New("flag --out: an output file is required")
			case (inputs == "") == (data == ""):
				return errors.New("give exactly one of --inputs and --data")
			}
			var (
				m   *model.Model
				b   *model.Batch
				err error
			)
			if inputs != "" {
				if m, err = model.Load(ckpt); err != nil {
					return fmt.Errorf("flag --model: %w", err)
				}
				raw, err := os.ReadFile(inputs)
				if err != nil {
					return fmt.Errorf("flag --inputs: %w", err)
				}
				var in model.ForwardInputs
				if err := json.Unmarshal(raw, &in); err != nil {
					return fmt.Errorf("flag --inputs: %s: %w", inputs, err)
				}
				if b, err = in.Batch(m.Config()); err != nil {
					return fmt.Errorf("flag --inputs: %s: %w", inputs, err)
				}
			} else {
				ck, err := loadEncoder(ckpt)
				if err != nil {
					return err
				}
				m = ck.Model
				if limit <= 0 {
					return fmt.Errorf("flag --limit: %d must be positive", limit)
				}
				if seq < 2 || seq > m.Config().MaxLen {
					return fmt.Errorf("flag --seq: %d must be in [2, %d]", seq, m.Config().MaxLen)
				}
				if b, err = forwardBatchFromData(cmd, a, ck.Vocab, data, limit, seq); err != nil {
					return err
				}
			}
			if saveInputs != "" {
				if err := writeForwardJSON(saveInputs, model.InputsOf(b)); err != nil {
					return fmt.Errorf("flag --save-inputs: %w", err)
				}
			}
			if err := writeForwardJSON(out, model.ForwardDump(m, b, logits)); err != nil {
				return fmt.Errorf("flag --out: %w", err)
			}
			return a.printJSONLine(map[string]any{"out": out, "b": b.B, "t": b.T, "hidden": m.Config().Hidden, "checkpoint": ckpt})
		},
	}
	f := cmd.Flags()
	f.StringVar(&ckpt, "model", "", "checkpoint directory")
	f.StringVar(&inputs, "inputs", "", "JSON batch to run (tokens, segments, positions, ages)")
	f.StringVar(&data, "data", "", "dataset directory (MEDS or OMOP) to take the batch from instead")
	f.IntVar(&limit, "limit", 8, "with --data: sequences in the batch")
	f.IntVar(&seq, "seq", 256, "with --data: longest sequence in tokens (the most recent are kept)")
	f.StringVar(&saveInputs, "save-inputs", "", "also write the batch, in the --inputs format, to this file")
	f.StringVar(&out, "out", "", "JSON file to write")
	f.BoolVar(&logits, "mlm-logits", false, "also write the MLM head's logits at every token")
	addCodesFlag(cmd)
	return cmd
}

// forwardBatchFromData pads the first limit patients of dir with a code token in
// vocab, whole histories of at most seq tokens, into one batch.
func forwardBatchFromData(cmd *cobra.Command, a *app, vocab *tokenizer.Vocab, dir string, limit, seq int) (*model.Batch, error) {
	enc, err := tokenizer.NewEncoder(vocab, seq)
	if err != nil {
		return nil, err
	}
	src, err := claims.Open(dir, codesOption(a))
	if err != nil {
		return nil, fmt.Errorf("flag --data: %w", err)
	}
	defer src.Close()
	var seqs []model.Sequence
	var e tokenizer.Encoding
	for len(seqs) < limit {
		p, err := src.Next(cmd.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("flag --data: %s: %w", dir, err)
		}
		enc.EncodeTo(&e, p, tokenizer.NoCutoff)
		for _, id := range e.IDs {
			if id >= model.FirstCode {
				seqs = append(seqs, model.FromEncoding(&e))
				break
			}
		}
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("flag --data: no patient of %s has a code in the checkpoint's vocabulary", dir)
	}
	idx := make([]int, len(seqs))
	for i := range idx {
		idx[i] = i
	}
	return model.Pad(seqs, idx), nil
}

// writeForwardJSON writes v as JSON to path, atomically.
func writeForwardJSON(path string, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(js, '\n'), 0o644)
}
