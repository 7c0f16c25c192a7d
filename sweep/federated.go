package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// pretrainFederated pretrains r through a whole local federation over the
// workspace's sites (the aggregator and one site agent per site, as processes on
// loopback, every update threshold-encrypted) and measures it. It returns the
// final model with the federated vocabulary it was trained on.
//
// Labelled site agents pretrain on their training split only (tasks.InPretraining
// under the default salt, the salt the evaluation splits by), as the central mode
// does; pretraining-only sites on every patient. A budget in tokens is the
// federation's total: each site takes an equal share of the steps, so that a
// federated and a central encoder of one budget see the same number of tokens.
// Tokens and FLOPs are estimated from the mean training history, since the sites do
// not report them.
func (w *Workspace) pretrainFederated(ctx context.Context, r PresetRun, log *slog.Logger) (PresetResult, *model.Model, *tokenizer.Vocab, []byte, error) {
	spec := r.Spec
	fail := func(err error) (PresetResult, *model.Model, *tokenizer.Vocab, []byte, error) {
		return PresetResult{}, nil, nil, nil, err
	}
	cfg, err := r.modelConfig(w.Vocab.Len(), w.Spec.Pretrain)
	if err != nil {
		return fail(err)
	}
	p := w.Spec.Pretrain
	steps := stepsOf(r.Budget, cfg.Params(), w.Train, p.Batch)
	if r.Budget.Steps == 0 {
		steps = max(1, (steps+len(w.Sites)-1)/len(w.Sites))
	}
	local := min(r.Federated.LocalSteps, steps)
	rounds := (steps + local - 1) / local
	agg := map[string]any{
		"local.learning_rate":  p.LR,
		"model.seed":           r.Seed,
		"model.time_buckets":   r.TimeBuckets,
		"vocabulary.k_floor":   w.Spec.VocabMinCount,
		"local.clip_norm":      1.0,
		"server.optimizer":     "fedavg",
		"server.learning_rate": 1.0,
	}
	if o := r.Federated.ServerOptimizer; o != "" {
		agg["server.optimizer"] = o
	}
	if lr := r.Federated.ServerLR; lr != 0 {
		agg["server.learning_rate"] = lr
	}
	preset := spec.Name
	if spec.Custom() {
		// The aggregator reshapes a preset by its non-zero fields.
		preset = "2m"
		agg["model.hidden"], agg["model.layers"], agg["model.heads"] = spec.Hidden, spec.Layers, spec.Heads
	}
	if sp := r.Federated.SecureAggPreset; sp != "" {
		agg["secureagg.preset"] = sp
	}
	var datasets []localfed.Dataset
	for i, dir := range w.Sites {
		datasets = append(datasets, localfed.Dataset{ID: filepath.Base(dir), Dir: dir, PretrainOnly: i >= len(w.Spec.Labelled)})
	}
	fedDir := filepath.Join(w.Spec.Dir, PresetsDir, r.name()+".federation")
	// A federation interrupted earlier starts again from nothing.
	if err := os.RemoveAll(fedDir); err != nil {
		return fail(err)
	}
	fed, err := localfed.Prepare(ctx, localfed.Options{
		Dir: fedDir, Binary: r.Binary, Datasets: datasets, Seed: r.Seed,
		Federation: "sweep-" + r.name(), Rounds: rounds, LocalSteps: local, BatchSize: p.Batch,
		ModelPreset: preset, MaxLen: p.Seq, Aggregator: agg,
		Site: map[string]any{"train.random_cut": p.RandomCut}, Log: log,
	})
	if err != nil {
		return fail(err)
	}
	log.Info("federated pretraining", "rounds", rounds, "local_steps", local, "sites", len(fed.Sites), "logs", filepath.Join(fedDir, "logs"))
	wall, cpu := time.Now(), cpuSeconds()
	final, werr := runFederation(ctx, fed)
	res := PresetResult{Budget: r.Budget, Steps: rounds * local,
		WallSeconds: time.Since(wall).Seconds(), CPUSeconds: cpuSeconds() - cpu}
	if werr != nil {
		return fail(werr)
	}
	ups, err := fed.Uploads()
	if err != nil {
		return fail(err)
	}
	res.BytesSent = map[string]int64{}
	for _, u := range ups {
		res.BytesSent[u.Site] += int64(u.Bytes)
	}
	for _, h := range final.GetHistory() {
		loss := h.GetTrainLoss()
		res.Loss = append(res.Loss, LossPoint{Step: int(h.GetRound()) * local, Train: &loss})
	}

	site := fed.Sites[0]
	m, err := model.Load(site.FinalModel())
	if err != nil {
		return fail(fmt.Errorf("the federation's final model: %w", err))
	}
	vocabBytes, err := os.ReadFile(site.Vocabulary())
	if err != nil {
		return fail(fmt.Errorf("the federated vocabulary: %w", err))
	}
	vocab, err := tokenizer.ReadFile(site.Vocabulary())
	if err != nil {
		return fail(err)
	}
	mc := m.Config()
	if vocab.Len() != mc.Vocab {
		return fail(fmt.Errorf("%s holds %d tokens but the final model's embeddings have %d rows", site.Vocabulary(), vocab.Len(), mc.Vocab))
	}
	res.Config, res.Params = mc, mc.Params()
	fedTrain, _, valid, err := pretrainSequences(w.all, w.splits, len(w.Spec.Labelled), vocab, p)
	if err != nil {
		return fail(err)
	}
	tr, err := model.NewTrainer(m, model.DefaultTrainConfig(1), r.Seed)
	if err != nil {
		return fail(err)
	}
	v := tr.Eval(batches(valid), evalSeed)
	if n := len(res.Loss); n > 0 {
		res.Loss[n-1].Valid = &v
	} else {
		res.Loss = append(res.Loss, LossPoint{Step: res.Steps, Valid: &v})
	}
	// Every site takes Steps local steps of Batch histories.
	perSite := float64(res.Steps*p.Batch) * meanTokens(fedTrain)
	res.Tokens = int64(math.Round(perSite * float64(len(fed.Sites))))
	res.FLOPs = float64(res.Tokens) * mc.FLOPsPerToken(int(math.Round(meanTokens(fedTrain))))
	res.TokensEstimated = true
	for k := range res.Loss {
		res.Loss[k].Tokens = int64(float64(res.Tokens) * float64(res.Loss[k].Step) / float64(res.Steps))
	}
	return res, m, vocab, vocabBytes, nil
}

// runFederation starts fed, waits for its last round and for every site to
// install the final model, and stops every process, also on failure, so that the
// processes' CPU time is counted once they are reaped.
func runFederation(ctx context.Context, fed *localfed.Federation) (*fedclaimspb.StatusResponse, error) {
	defer fed.Close()
	if err := fed.Start(ctx); err != nil {
		return nil, err
	}
	return fed.Wait(ctx, nil)
}
