package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/internal/jsonfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// Modes of one preset's pretraining beyond the sweep's two: a site alone, on its
// own training split (the study's comparison for a small site).
const ModeSiteAlone = "site-alone"

// WorkspaceSpec is what a Workspace is made of. Labelled sites are evaluated and
// pretrain on their training split only; pretraining-only sites hold no labels
// that anything scores, so every one of their patients pretrains.
type WorkspaceSpec struct {
	// Dir receives vocab.json, baseline.json and presets/.
	Dir string
	// Labelled and PretrainOnly are dataset directories (MEDS or OMOP CDM), one per
	// site; subject ids must be distinct across all of them.
	Labelled, PretrainOnly []string
	// Transform, when set, is applied to every patient after loading (a control
	// experiment's change of the data, such as shuffled visits).
	Transform func(*claims.Patient)
	// Vocab, when set, is the vocabulary (vocab.json's bytes) instead of one built
	// from the sites: a site-alone encoder on the federation's vocabulary.
	Vocab []byte
	// VocabMinCount is the k-anonymity floor of a built vocabulary.
	VocabMinCount int
	Tasks         []tasks.Task
	Pipeline      pipeline.Options
	Pretrain      Pretrain
}

// Workspace is one consortium's data made ready for pretraining and scoring
// encoders: the patients, the vocabulary, the labelled cohort with its trained
// baseline, and the pretraining and validation histories. Every preset run in it
// is scored on the same rows against the same baseline.
type Workspace struct {
	Spec WorkspaceSpec
	// Sites are every site's directory, the labelled first.
	Sites []string
	// Patients are the labelled sites' patients, the evaluation cohort's.
	Patients   []*claims.Patient
	Vocab      *tokenizer.Vocab
	VocabBytes []byte
	Cohort     *pipeline.Cohort
	// Baseline is the baseline's test predictions per task that can be scored, in
	// the order of every PresetResult's Tasks.
	Baseline []BaselineTask
	// Train are the pretraining histories, TrainSite the index in Sites of each;
	// Valid the labelled sites' validation histories for the loss curve.
	Train     []model.Sequence
	TrainSite []int
	Valid     []model.Sequence
	// all are every site's patients, for the federated vocabulary's re-encoding,
	// and splits each site's split.
	all    [][]*claims.Patient
	splits []*tasks.Splits
}

// Prepare loads the sites of s, builds (or takes) the vocabulary, labels the
// cohort and trains the baseline (or reads it back from s.Dir), and encodes the
// pretraining histories.
func Prepare(ctx context.Context, s WorkspaceSpec, log *slog.Logger) (*Workspace, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(s.Labelled) == 0 {
		return nil, errors.New("field data: no labelled site")
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, PresetsDir), 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	w := &Workspace{Spec: s, Sites: append(slices.Clone(s.Labelled), s.PretrainOnly...)}
	bySite, splits, err := loadSites(ctx, w.Sites)
	if err != nil {
		return nil, err
	}
	w.splits = splits
	// The cohort is split as its sites are: none of a site's own held-out
	// patients is pretrained on, and each is scored where its site puts it.
	s.Pipeline.Splits = cohortSplits(s.Labelled, bySite[:len(s.Labelled)], splits[:len(s.Labelled)])
	w.Spec.Pipeline.Splits = s.Pipeline.Splits
	if s.Transform != nil {
		for _, ps := range bySite {
			for _, p := range ps {
				s.Transform(p)
			}
		}
	}
	w.all = bySite
	for _, ps := range bySite[:len(s.Labelled)] {
		w.Patients = append(w.Patients, ps...)
	}
	if s.Vocab != nil {
		if w.Vocab, err = tokenizer.Load(bytes.NewReader(s.Vocab)); err != nil {
			return nil, fmt.Errorf("the given vocabulary: %w", err)
		}
		w.VocabBytes = s.Vocab
	} else if w.Vocab, w.VocabBytes, err = buildVocab(bySite, splits, len(s.Labelled), s.VocabMinCount); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, VocabFile), w.VocabBytes, 0o644); err != nil {
		return nil, err
	}
	log.Info("workspace data", "sites", len(w.Sites), "pretraining_only", len(s.PretrainOnly), "labelled_patients", len(w.Patients), "vocab", w.Vocab.Len())

	if w.Cohort, err = pipeline.Label(w.Patients, s.Tasks, s.Pipeline); err != nil {
		return nil, fmt.Errorf("%v: %w", s.Labelled, err)
	}
	if w.Baseline, err = loadOrTrainBaseline(ctx, w.Cohort, filepath.Join(s.Dir, BaselineFile), s.Pipeline, log); err != nil {
		return nil, err
	}
	if w.Train, w.TrainSite, w.Valid, err = pretrainSequences(bySite, splits, len(s.Labelled), w.Vocab, s.Pretrain); err != nil {
		return nil, err
	}
	return w, nil
}

// PresetRun is one encoder to pretrain in a Workspace.
type PresetRun struct {
	Spec PresetSpec
	// Name names the run in the workspace (its result file, checkpoint and
	// federation directory); empty, Spec.Name. A study runs one shape as several
	// arms ("s2-central"), and Spec.Name must stay the preset's name for its shape.
	Name string
	// Mode is ModeCentral, ModeFederated or ModeSiteAlone.
	Mode string
	// Site is the index in Labelled of the site a ModeSiteAlone run trains on.
	Site   int
	Budget Budget
	Seed   uint64
	// TimeBuckets is the encoder's time embedding (model.Config.TimeBuckets; 0
	// none).
	TimeBuckets int
	Federated   Federated
	// Binary is the fedclaims executable a federated run starts.
	Binary string
}

// name is the run's name in the workspace.
func (r PresetRun) name() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Spec.Name
}

// Result is the file a finished run leaves in presets/.
func (w *Workspace) resultPath(name string) string {
	return filepath.Join(w.Spec.Dir, PresetsDir, name+".json")
}

// CheckpointDir is where run name's encoder is saved.
func (w *Workspace) CheckpointDir(name string) string {
	return filepath.Join(w.Spec.Dir, PresetsDir, name)
}

// Done returns run name's result when it has already finished in this workspace.
func (w *Workspace) Done(name string) (*PresetResult, error) {
	var done PresetResult
	path := w.resultPath(name)
	if err := jsonfile.Read(path, &done); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if err := done.check(w.Baseline); err != nil {
		return nil, fmt.Errorf("%s: %w; remove it to run the preset again", path, err)
	}
	return &done, nil
}

// Run pretrains r, scores it on every task and writes presets/NAME.json and its
// checkpoint, unless they are already there (then it reads them back). It returns
// the result and the encoder with its vocabulary.
func (w *Workspace) Run(ctx context.Context, r PresetRun, log *slog.Logger) (*PresetResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := r.name()
	if done, err := w.Done(name); err != nil || done != nil {
		if done != nil {
			log.Info("preset already done", "preset", name, "file", w.resultPath(name))
		}
		return done, err
	}
	var (
		res      PresetResult
		m        *model.Model
		vb       = w.VocabBytes
		preVocab = w.Vocab
		err      error
	)
	switch r.Mode {
	case ModeFederated:
		res, m, preVocab, vb, err = w.pretrainFederated(ctx, r, log)
	case ModeCentral, ModeSiteAlone:
		var cfg model.Config
		if cfg, err = r.modelConfig(w.Vocab.Len(), w.Spec.Pretrain); err != nil {
			return nil, err
		}
		train := w.Train
		if r.Mode == ModeSiteAlone {
			if r.Site < 0 || r.Site >= len(w.Spec.Labelled) {
				return nil, fmt.Errorf("preset %s: site %d: the workspace has %d labelled sites", name, r.Site, len(w.Spec.Labelled))
			}
			train = nil
			for i, s := range w.TrainSite {
				if s == r.Site {
					train = append(train, w.Train[i])
				}
			}
			res.Site = filepath.Base(w.Spec.Labelled[r.Site])
		}
		log.Info("pretraining", "preset", name, "mode", r.Mode, "params", cfg.Params(), "histories", len(train))
		var pr PresetResult
		pr, m, err = pretrain(ctx, cfg, r.Budget, w.Spec.Pretrain, r.Seed, train, w.Valid, log)
		pr.Site = res.Site
		res = pr
	default:
		return nil, fmt.Errorf("preset %s: mode %q, want %s, %s or %s", name, r.Mode, ModeCentral, ModeFederated, ModeSiteAlone)
	}
	if err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	if err := m.Save(w.CheckpointDir(name), vb); err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	res.Name, res.Mode = name, r.Mode
	if res.Params > 0 {
		res.TokensPerParam = float64(res.Tokens) / float64(res.Params)
	}
	if res.Tasks, err = w.Score(ctx, m, preVocab); err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	// Written last, in one rename: a preset is either wholly done or redone.
	if err := jsonfile.Write(w.resultPath(name), res); err != nil {
		return nil, err
	}
	log.Info("preset done", "preset", name, "cpu_seconds", res.CPUSeconds, "valid_loss", res.FinalLoss())
	return &res, nil
}

// Score fits m's heads (m encoded with vocab) on this workspace's cohort and
// scores them on every task the baseline scores, row for row with it.
func (w *Workspace) Score(ctx context.Context, m *model.Model, vocab *tokenizer.Vocab) ([]PresetTask, error) {
	return w.ScoreWith(ctx, m, vocab, w.Spec.Pipeline)
}

// ScoreWith is Score with other evaluation options (another pooling of the head).
func (w *Workspace) ScoreWith(ctx context.Context, m *model.Model, vocab *tokenizer.Vocab, o pipeline.Options) ([]PresetTask, error) {
	heads, err := w.Cohort.EncoderScores(ctx, m, vocab, o)
	if err != nil {
		return nil, err
	}
	var out []PresetTask
	for k, bt := range w.Baseline {
		met, err := eval.Score(heads[k].Test, bt.Labels, bt.Patient, eval.Bootstrap{Resamples: o.Resamples, Seed: o.Seed})
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", bt.Name, err)
		}
		out = append(out, PresetTask{Name: bt.Name, Metrics: met, ValidLogLoss: heads[k].ValidLogLoss, Scores: heads[k].Test})
	}
	return out, nil
}

// Model loads run name's saved encoder and the vocabulary it was trained with.
func (w *Workspace) Model(name string) (*model.Model, *tokenizer.Vocab, error) {
	return model.LoadWithVocab(w.CheckpointDir(name))
}

// modelConfig is the run's encoder shape at vocabulary size vocab.
func (r PresetRun) modelConfig(vocab int, p Pretrain) (model.Config, error) {
	var cfg model.Config
	if r.Spec.Custom() {
		cfg = model.Config{Vocab: vocab, Hidden: r.Spec.Hidden, Layers: r.Spec.Layers, Heads: r.Spec.Heads,
			MaxLen: 512, Segments: 3, LNEps: 1e-5}
	} else {
		var err error
		if cfg, err = model.Preset(r.Spec.Name, vocab); err != nil {
			return cfg, err
		}
	}
	cfg.TimeBuckets = r.TimeBuckets
	cfg.Dropout = float32(*p.Dropout)
	return cfg, cfg.Validate()
}
