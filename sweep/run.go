package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/internal/jsonfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// Files under a sweep's output directory.
const (
	ConfigFile   = "config.json"   // the sweep's configuration, checked on resume
	VocabFile    = "vocab.json"    // the vocabulary of the sites' training splits
	BaselineFile = "baseline.json" // the baseline's test predictions and metrics
	PresetsDir   = "presets"       // NAME.json per finished preset, NAME/ its checkpoint
	ResultFile   = "sweep.json"
	ReportFile   = "sweep.md"
	dataDir      = "data" // synthetic hospitals, when the sweep makes them
)

// LossPoint is one point of a preset's pretraining loss curve.
type LossPoint struct {
	Step   int   `json:"step"`
	Tokens int64 `json:"tokens"`
	// Train is the mean training MLM loss of the steps since the previous point
	// (absent at step 0).
	Train *float64 `json:"train_loss,omitempty"`
	// Valid is the MLM loss on the validation split's histories, with fixed masks
	// (in federated sweeps, at the end only).
	Valid *float64 `json:"valid_loss,omitempty"`
}

// PresetTask is one preset's score on one task.
type PresetTask struct {
	Name    string       `json:"name"`
	Metrics eval.Metrics `json:"metrics"`
	// ValidLogLoss is the head's log-loss on the validation split, which chooses
	// the best preset (the test split never does).
	ValidLogLoss float64 `json:"valid_logloss"`
	// Scores are the test rows' probabilities, row for row with the baseline's.
	Scores []float64 `json:"scores,omitempty"`
}

// PresetResult is everything measured for one preset.
type PresetResult struct {
	Name string `json:"name"`
	// Mode is how it was pretrained (ModeCentral, ModeFederated, ModeSiteAlone);
	// Site the site of a ModeSiteAlone run.
	Mode   string       `json:"mode,omitempty"`
	Site   string       `json:"site,omitempty"`
	Config model.Config `json:"config"`
	Params int          `json:"params"`
	Budget Budget       `json:"budget"`
	Steps  int          `json:"steps"`
	Tokens int64        `json:"tokens"`
	// TokensPerParam is Tokens over Params, the budget's size against the model's.
	TokensPerParam float64 `json:"tokens_per_param,omitempty"`
	// TokensEstimated is set when Tokens and FLOPs are estimated from the mean
	// history length (federated sweeps: the sites do not report their tokens).
	TokensEstimated bool `json:"tokens_estimated,omitempty"`
	// FLOPs is the pretraining cost by model.Config.FLOPsPerToken over the real
	// tokens of every batch at the batch's padded length.
	FLOPs float64     `json:"flops"`
	Loss  []LossPoint `json:"loss"`
	// WallSeconds, CPUSeconds (getrusage of the process and its children) and
	// GPUSeconds cover the pretraining steps only, not the loss evaluations.
	WallSeconds float64 `json:"wall_seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	// GPUSeconds is not measured and is 0, also in the cuda build.
	GPUSeconds float64 `json:"gpu_seconds"`
	// BytesSent is per site, in federated sweeps only.
	BytesSent map[string]int64 `json:"bytes_sent_per_site,omitempty"`
	Tasks     []PresetTask     `json:"tasks"`
}

// FinalLoss is the last validation loss of the curve, NaN when there is none.
func (p *PresetResult) FinalLoss() float64 {
	for i := len(p.Loss) - 1; i >= 0; i-- {
		if v := p.Loss[i].Valid; v != nil {
			return *v
		}
	}
	return math.NaN()
}

// BaselineTask is the baseline's test predictions and score on one task.
type BaselineTask struct {
	Name       string       `json:"name"`
	Kind       string       `json:"kind"`
	Prevalence float64      `json:"prevalence"`
	NTest      int          `json:"n_test"`
	Metrics    eval.Metrics `json:"metrics"`
	// Undecided says why the task cannot be scored on its test split (no positive
	// or no negative there); such a task has no predictions and is not compared.
	Undecided string    `json:"undecided,omitempty"`
	Labels    []bool    `json:"labels,omitempty"`
	Patient   []int64   `json:"patient,omitempty"`
	Scores    []float64 `json:"scores,omitempty"`
}

// Result is sweep.json.
type Result struct {
	Mode  string   `json:"mode"`
	Sites []string `json:"sites"`
	// Split says whose train/validation/test split the labelled sites' patients
	// were split by (each site's own when it declares one, else fedclaims' hash).
	Split     string  `json:"split,omitempty"`
	Patients  int     `json:"patients"`
	VocabSize int     `json:"vocab_size"`
	Margin    float64 `json:"margin"`
	Alpha     float64 `json:"alpha"`
	// Test and Compute say in words how presets are compared and what compute is.
	Test    string `json:"test"`
	Compute string `json:"compute"`
	// Presets are sorted by parameters, smallest first.
	Presets         []PresetResult   `json:"presets"`
	Baseline        []BaselineTask   `json:"baseline"`
	Recommendations []Recommendation `json:"recommendations"`
	// Skipped are the tasks that could not be evaluated at all, with the reason.
	Skipped []baseline.Skipped `json:"skipped,omitempty"`
}

const (
	testText           = "best = lowest validation log-loss of the head; a smaller preset is enough when non-inferior to the best on the test split: the same outcome-stratified resamples of test patients applied to both presets' predictions, d = AUPRC_smaller - AUPRC_best, one-sided p = (1 + #{d <= -margin}) / (1 + B), Holm-corrected across every comparison of the sweep, enough when below alpha; no test from fewer than 10 test positives"
	computeTextCentral = "pretraining CPU-seconds (getrusage of the process, training steps only); FLOPs analytic per model.Config.FLOPsPerToken; GPU-seconds not measured (recorded as 0)"
	computeTextFed     = "pretraining CPU-seconds of the whole local federation (getrusage of the process and its children: the aggregator and the sites, key setup and encryption included); FLOPs estimated from the mean history length per model.Config.FLOPsPerToken; GPU-seconds not measured (recorded as 0)"
)

// Options are how Run runs, apart from what it runs.
type Options struct {
	Log *slog.Logger
	// Binary is the fedclaims executable that a federated sweep starts as the
	// aggregator and the sites; empty means this process's own executable.
	Binary string
}

// Run runs the sweep c into dir, resuming from the presets already finished there,
// and returns what it wrote to dir/sweep.json.
func Run(ctx context.Context, c *Config, dir string, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	if err := ClaimDir(dir, c); err != nil {
		return nil, err
	}
	sites, pretrainOnly, err := SiteDirs(ctx, c.Data, dir)
	if err != nil {
		return nil, err
	}
	ts := tasks.Default()
	if c.Tasks != "" {
		if ts, err = tasks.ReadFile(c.Tasks); err != nil {
			return nil, fmt.Errorf("field tasks: %w", err)
		}
	}
	w, err := Prepare(ctx, WorkspaceSpec{Dir: dir, Labelled: sites, PretrainOnly: pretrainOnly, VocabMinCount: c.Data.VocabMinCount,
		Tasks: ts, Pipeline: c.PipelineOptions(log), Pretrain: c.Pretrain}, log)
	if err != nil {
		return nil, err
	}
	var results []PresetResult
	for i, spec := range c.Presets {
		r, err := w.Run(ctx, PresetRun{Spec: spec, Mode: c.Mode, Budget: c.budget(i), Seed: c.Seed,
			TimeBuckets: c.Pretrain.TimeBuckets(), Federated: c.Federated, Binary: o.Binary}, log.With("preset", spec.Name))
		if err != nil {
			return nil, err
		}
		results = append(results, *r)
	}
	rule := Rule{Margin: *c.Margin, Alpha: c.Alpha, Resamples: c.Eval.Bootstrap, Seed: c.Seed}
	res, err := Assemble(c.Mode, sites, len(w.Patients), w.Vocab.Len(), rule, results, w.Baseline)
	if err != nil {
		return nil, err
	}
	res.Skipped = w.Cohort.Skipped
	res.Split = w.Cohort.Labeler.Splits().String()
	if err := res.Save(dir); err != nil {
		return nil, err
	}
	return res, nil
}

func (c *Config) PipelineOptions(log *slog.Logger) pipeline.Options {
	return pipeline.Options{
		Seed: c.Seed, Resamples: c.Eval.Bootstrap, Grid: *c.Eval.Grid, Iterations: c.Eval.Iterations,
		MinCount: c.Eval.MinCount, RecentDays: *c.Eval.RecentDays, Threads: c.Eval.Threads,
		Features: baseline.FeatureSet(c.Eval.Features), Frozen: c.FineTune.Frozen, Epochs: c.FineTune.Epochs,
		MaxIndexPerPatient: c.Eval.MaxIndexPerPatient, Pooling: model.Pooling(c.FineTune.Pooling),
		Seq: c.FineTune.Seq, Log: log,
	}
}

// ClaimDir records cfg in dir/config.json, or checks that dir holds a run of this
// same configuration, so that a resume never mixes results of different settings.
func ClaimDir(dir string, cfg any) error {
	want, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	want = append(want, '\n')
	path := filepath.Join(dir, ConfigFile)
	have, err := os.ReadFile(path)
	switch {
	case err == nil && !bytes.Equal(have, want):
		return fmt.Errorf("%s: the output directory holds a run of another configuration; choose another --out or remove it", path)
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("output directory: %w", err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(want)
		return err
	})
}

// SiteDirs returns the labelled and the pretraining-only sites' dataset
// directories of d, generating synthetic hospitals under dir/data when d asks for
// them (an interrupted generation is redone; a finished one is kept).
func SiteDirs(ctx context.Context, d Data, dir string) (labelled, pretrainOnly []string, err error) {
	s := d.Synthetic
	if s == nil {
		return d.Dirs, d.PretrainOnlyDirs, nil
	}
	g, err := s.Generator()
	if err != nil {
		return nil, nil, fmt.Errorf("field data.synthetic: %w", err)
	}
	data := filepath.Join(dir, dataDir)
	for i, h := range g.Hospitals() {
		if i < s.Hospitals {
			labelled = append(labelled, filepath.Join(data, h.ID))
		} else {
			pretrainOnly = append(pretrainOnly, filepath.Join(data, h.ID))
		}
	}
	if _, err := os.Stat(data); err == nil {
		return labelled, pretrainOnly, nil
	}
	// Generated aside and renamed, so that an interrupted generation is redone.
	tmp := data + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, nil, err
	}
	if err := g.Write(ctx, tmp); err != nil {
		return nil, nil, fmt.Errorf("synthetic hospitals: %w", err)
	}
	if err := os.Rename(tmp, data); err != nil {
		return nil, nil, fmt.Errorf("synthetic hospitals: %w", err)
	}
	return labelled, pretrainOnly, nil
}

// loadSites reads every site's patients and split (its own when it declares one,
// else the hash under the default salt, as a site agent's).
func loadSites(ctx context.Context, sites []string) ([][]*claims.Patient, []*tasks.Splits, error) {
	var bySite [][]*claims.Patient
	var splits []*tasks.Splits
	from := map[int64]string{}
	for _, s := range sites {
		ps, err := pipeline.LoadPatients(ctx, s)
		if err != nil {
			return nil, nil, fmt.Errorf("field data: %w", err)
		}
		sp, err := tasks.LoadSplits(s, tasks.DefaultSalt)
		if err != nil {
			return nil, nil, fmt.Errorf("field data: %w", err)
		}
		splits = append(splits, sp)
		for _, p := range ps {
			if other, dup := from[p.ID]; dup {
				return nil, nil, fmt.Errorf("field data: subject %d is in both %s and %s: sites need distinct subject ids", p.ID, other, s)
			}
			from[p.ID] = s
		}
		bySite = append(bySite, ps)
	}
	return bySite, splits, nil
}

// cohortSplits is the split of the labelled sites' pooled cohort: each patient
// its own site's.
func cohortSplits(sites []string, bySite [][]*claims.Patient, splits []*tasks.Splits) *tasks.Splits {
	ids := make([][]int64, len(bySite))
	for i, ps := range bySite {
		for _, p := range ps {
			ids[i] = append(ids[i], p.ID)
		}
	}
	return tasks.Union(sites, splits, ids)
}

// buildVocab builds the vocabulary as a federation would: each site counts the
// patients it may pretrain on (a labelled site, the first labelled of bySite, its
// training split; a pretraining-only site every patient), floors its table at k,
// and the tables are merged. A labelled site's validation and test patients are
// left out so that nothing about them shapes the encoder.
func buildVocab(bySite [][]*claims.Patient, splits []*tasks.Splits, labelled, k int) (*tokenizer.Vocab, []byte, error) {
	var tables []*tokenizer.CountTable
	for i, ps := range bySite {
		cnt := tokenizer.NewCounter()
		for _, p := range ps {
			if i >= labelled || splits[i].InPretraining(p.ID) {
				cnt.Add(p)
			}
		}
		t, err := cnt.Table(k)
		if err != nil {
			return nil, nil, err
		}
		tables = append(tables, t)
	}
	m, err := tokenizer.Merge(tables...)
	if err != nil {
		return nil, nil, err
	}
	v, err := tokenizer.New(m, k)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := v.Save(&buf); err != nil {
		return nil, nil, err
	}
	return v, buf.Bytes(), nil
}

// pretrainSequences encodes the histories the encoder pretrains on (a labelled
// site's training split, every patient of a pretraining-only site: bySite's sites
// from index labelled on), with the site index of each, and the labelled sites'
// validation histories for the loss curve (at most p.ValidSequences, whole
// histories, so that every curve is measured on the same windows). Test patients
// are never seen. With p.RandomCut each pretraining window ends at a random visit
// (tokenizer.RandomCutoff), as a fine-tuning window ends at an index date.
func pretrainSequences(bySite [][]*claims.Patient, splits []*tasks.Splits, labelled int, v *tokenizer.Vocab, p Pretrain) (train []model.Sequence, site []int, valid []model.Sequence, err error) {
	enc, err := tokenizer.NewEncoder(v, p.Seq)
	if err != nil {
		return nil, nil, nil, err
	}
	hasCode := func(e *tokenizer.Encoding) bool {
		return slices.ContainsFunc(e.IDs, func(id int32) bool { return id >= model.FirstCode })
	}
	var e tokenizer.Encoding
	for i, ps := range bySite {
		for _, pt := range ps {
			split, inSplit := splits[i].Of(pt.ID)
			switch {
			case i >= labelled || (inSplit && split == tasks.Train):
				cut := tokenizer.NoCutoff
				if p.RandomCut {
					cut = tokenizer.RandomCutoff(pt, p.CutSeed)
				}
				enc.EncodeTo(&e, pt, cut)
				if hasCode(&e) {
					train = append(train, model.FromEncoding(&e))
					site = append(site, i)
				}
			case inSplit && split == tasks.Validation && len(valid) < p.ValidSequences:
				enc.EncodeTo(&e, pt, tokenizer.NoCutoff)
				if hasCode(&e) {
					valid = append(valid, model.FromEncoding(&e))
				}
			}
		}
	}
	if len(train) == 0 || len(valid) == 0 {
		return nil, nil, nil, fmt.Errorf("field data: %d training and %d validation histories with a code in the vocabulary; need some of each", len(train), len(valid))
	}
	return train, site, valid, nil
}

// pretrain trains one encoder for its budget and measures it.
func pretrain(ctx context.Context, cfg model.Config, b Budget, p Pretrain, seed uint64, train, valid []model.Sequence, log *slog.Logger) (PresetResult, *model.Model, error) {
	if err := model.CheckSequences(train, cfg); err != nil {
		return PresetResult{}, nil, err
	}
	steps := stepsOf(b, cfg.Params(), train, p.Batch)
	m, err := model.New(cfg, seed)
	if err != nil {
		return PresetResult{}, nil, err
	}
	tc := model.DefaultTrainConfig(steps)
	tc.LR = p.LR
	tr, err := model.NewTrainer(m, tc, seed+1)
	if err != nil {
		return PresetResult{}, nil, err
	}
	ld, err := model.NewLoader(train, p.Batch, seed+2)
	if err != nil {
		return PresetResult{}, nil, err
	}
	validBatches := batches(valid)
	r := PresetResult{Config: cfg, Params: cfg.Params(), Budget: b}
	v0 := tr.Eval(validBatches, evalSeed)
	r.Loss = append(r.Loss, LossPoint{Valid: &v0})
	var sinceLoss float64
	var sinceSteps int
	for tr.Opt.Step < steps {
		batch := ld.Next()
		var real int64
		for _, t := range batch.Tokens {
			if t != model.PAD {
				real++
			}
		}
		wall, cpu := time.Now(), cpuSeconds()
		st, err := tr.Step(ctx, []*model.Batch{batch})
		if err != nil {
			return PresetResult{}, nil, err
		}
		r.WallSeconds += time.Since(wall).Seconds()
		r.CPUSeconds += cpuSeconds() - cpu
		r.Tokens += real
		r.FLOPs += float64(real) * cfg.FLOPsPerToken(batch.T)
		sinceLoss += st.Loss
		sinceSteps++
		if st.Step%p.EvalEvery == 0 || st.Step == steps {
			mean := sinceLoss / float64(sinceSteps)
			v := tr.Eval(validBatches, evalSeed)
			r.Loss = append(r.Loss, LossPoint{Step: st.Step, Tokens: r.Tokens, Train: &mean, Valid: &v})
			sinceLoss, sinceSteps = 0, 0
			log.Info("pretrain", "step", st.Step, "of", steps, "train_loss", mean, "valid_loss", v)
		}
	}
	r.Steps = tr.Opt.Step
	return r, m, nil
}

// evalSeed fixes the validation loss's masks, so that every point of every curve
// is measured on the same masked tokens.
const evalSeed = 7

// batches cuts seqs into padded batches of 16 in order.
func batches(seqs []model.Sequence) []*model.Batch {
	var bs []*model.Batch
	for i := 0; i < len(seqs); i += 16 {
		idx := make([]int, 0, 16)
		for j := i; j < min(i+16, len(seqs)); j++ {
			idx = append(idx, j)
		}
		bs = append(bs, model.Pad(seqs, idx))
	}
	return bs
}

// stepsOf is a budget in optimiser steps: a token budget becomes steps at the mean
// history length, so that the learning-rate schedule knows its end.
func stepsOf(b Budget, params int, train []model.Sequence, batch int) int {
	tokens := b.total(params)
	if tokens == 0 {
		return b.Steps
	}
	perStep := meanTokens(train) * float64(batch)
	return max(1, int(math.Ceil(float64(tokens)/perStep)))
}

// meanTokens is the mean number of real tokens per sequence.
func meanTokens(seqs []model.Sequence) float64 {
	var total int64
	for _, s := range seqs {
		for _, t := range s.Tokens {
			if t != model.PAD {
				total++
			}
		}
	}
	return float64(total) / float64(len(seqs))
}

// loadOrTrainBaseline trains the baseline once per sweep directory: a resumed sweep
// reads its predictions back, and checks them against the cohort's test rows. It
// returns the tasks the presets are compared on, and leaves in c.Runs exactly
// those, in the same order; a task whose test split cannot be scored joins
// c.Skipped with its reason.
func loadOrTrainBaseline(ctx context.Context, c *pipeline.Cohort, path string, o pipeline.Options, log *slog.Logger) ([]BaselineTask, error) {
	var saved []BaselineTask
	if err := jsonfile.Read(path, &saved); err == nil {
		log.Info("baseline already trained", "file", path, "tasks", len(saved))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else {
		if err := c.TrainBaseline(ctx, o); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		for _, s := range c.Skipped {
			saved = append(saved, BaselineTask{Name: s.Name, Kind: s.Kind, NTest: s.NTest, Undecided: s.Reason})
		}
		for _, run := range c.Runs {
			pr := run.Predictions
			t, err := eval.Evaluate(pr, eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed})
			if err != nil {
				return nil, fmt.Errorf("baseline: %w", err)
			}
			bt := BaselineTask{Name: t.Name, Kind: t.Kind, Prevalence: t.Prevalence, NTest: t.NTest}
			if m, ok := t.Models[eval.ModelBaseline]; ok {
				bt.Metrics, bt.Labels, bt.Patient, bt.Scores = m, pr.Labels, pr.Patient, pr.Scores[eval.ModelBaseline]
			} else {
				bt.Undecided = t.Undecided
			}
			saved = append(saved, bt)
		}
		if err := jsonfile.Write(path, saved); err != nil {
			return nil, err
		}
	}
	var out []BaselineTask
	c.Runs, c.Skipped = nil, nil
	for _, bt := range saved {
		if bt.Undecided != "" {
			c.Skipped = append(c.Skipped, baseline.Skipped{Name: bt.Name, Kind: bt.Kind, Reason: bt.Undecided, NTest: bt.NTest})
			continue
		}
		c.Runs = append(c.Runs, baseline.TaskRun{Predictions: eval.Predictions{
			Name: bt.Name, Kind: bt.Kind, Labels: bt.Labels, Patient: bt.Patient,
			Scores: map[string][]float64{eval.ModelBaseline: bt.Scores},
		}})
		out = append(out, bt)
	}
	return out, nil
}

// check reports whether a finished preset's results fit the baseline's tasks.
func (r *PresetResult) check(base []BaselineTask) error {
	if len(r.Tasks) != len(base) {
		return fmt.Errorf("%d tasks, the baseline has %d", len(r.Tasks), len(base))
	}
	for i, t := range r.Tasks {
		if t.Name != base[i].Name || len(t.Scores) != len(base[i].Labels) {
			return fmt.Errorf("task %d is %s with %d scores, the baseline's is %s with %d rows",
				i, t.Name, len(t.Scores), base[i].Name, len(base[i].Labels))
		}
	}
	return nil
}

// Assemble sorts the presets of one mode by size and recommends one per task
// under rule: the sweep's result, as sweep.json and sweep.md hold it.
func Assemble(mode string, sites []string, patients, vocab int, rule Rule, presets []PresetResult, base []BaselineTask) (*Result, error) {
	presets = slices.Clone(presets)
	slices.SortStableFunc(presets, func(a, b PresetResult) int { return a.Params - b.Params })
	res := &Result{Mode: mode, Sites: sites, Patients: patients, VocabSize: vocab,
		Margin: rule.Margin, Alpha: rule.Alpha, Test: testText, Compute: computeTextCentral,
		Presets: presets, Baseline: base}
	if mode == ModeFederated {
		res.Compute = computeTextFed
	}
	var ts []TaskCandidates
	for k, bt := range base {
		tc := TaskCandidates{Task: bt.Name, Labels: bt.Labels, Groups: bt.Patient}
		for _, p := range presets {
			t := p.Tasks[k]
			tc.Cands = append(tc.Cands, Candidate{Preset: p.Name, Params: p.Params, Compute: p.CPUSeconds,
				AUPRC: t.Metrics.AUPRC, ValidLogLoss: t.ValidLogLoss, Scores: t.Scores})
		}
		ts = append(ts, tc)
	}
	recs, err := Recommend(ts, rule)
	if err != nil {
		return nil, err
	}
	res.Recommendations = recs
	return res, nil
}
