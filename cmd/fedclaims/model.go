package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/model/safetensors"
)

func newModelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect encoder presets and checkpoints",
	}
	cmd.AddCommand(newModelInfoCmd(a))
	cmd.AddCommand(newModelForwardCmd(a))
	return cmd
}

// newModelInfoCmd prints the shape, exact parameter count and training FLOPs per
// token of a preset or a checkpoint as one JSON object.
func newModelInfoCmd(a *app) *cobra.Command {
	var (
		preset, ckpt string
		vocab, seq   int
	)
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print layers, hidden, heads, params and flops_per_token of a preset or checkpoint",
		Long: `Print one JSON object describing a preset (--preset, --vocab-size) or a checkpoint
(--checkpoint). params is exact; for a checkpoint it is counted from the tensors in
model.safetensors. flops_per_token is the training cost (forward and backward) of one
token at sequence length --seq (default max_len):
6*12*H^2*L + 12*L*seq*H + 6*0.15*H*V.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg model.Config
			var err error
			params := 0
			switch {
			case (preset == "") == (ckpt == ""):
				return fmt.Errorf("give exactly one of --preset and --checkpoint")
			case preset != "":
				if cfg, err = model.Preset(preset, vocab); err != nil {
					return fmt.Errorf("flag --preset: %w", err)
				}
				params = cfg.Params()
			default:
				if cfg, err = model.ReadConfig(ckpt); err != nil {
					return err
				}
				path := filepath.Join(ckpt, model.ModelFile)
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				f, err := safetensors.Read(data)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				for _, t := range f.Tensors {
					params += len(t.Data)
				}
				if params != cfg.Params() {
					return fmt.Errorf("%s holds %d parameters, its config.json describes %d", path, params, cfg.Params())
				}
			}
			s := seq
			if s <= 0 {
				s = cfg.MaxLen
			}
			out := map[string]any{
				"layers":          cfg.Layers,
				"hidden":          cfg.Hidden,
				"heads":           cfg.Heads,
				"params":          params,
				"flops_per_token": cfg.FLOPsPerToken(s),
				"seq":             s,
				"vocab_size":      cfg.Vocab,
				"max_len":         cfg.MaxLen,
			}
			if preset != "" {
				out["preset"] = preset
			} else {
				out["checkpoint"] = ckpt
			}
			return a.printJSONLine(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&preset, "preset", "", "preset name: "+fmt.Sprint(model.Presets()))
	f.IntVar(&vocab, "vocab-size", model.StudyVocab, "vocabulary size for --preset")
	f.StringVar(&ckpt, "checkpoint", "", "checkpoint directory")
	f.IntVar(&seq, "seq", 0, "sequence length for flops_per_token (default max_len)")
	return cmd
}
