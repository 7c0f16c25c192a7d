package sweep

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/model"
)

// Modes of pretraining.
const (
	ModeCentral   = "central"
	ModeFederated = "federated"
)

// DefaultMargin is the non-inferiority margin: the AUPRC loss against the best
// preset that still counts as enough (see Rule).
const DefaultMargin = 0.01

// Config is a sweep file; its yaml tags are the file's keys. Unknown keys are
// errors (internal/config), so that a misspelt key is not silently ignored;
// relative paths are relative to the file's directory.
//
//	mode: central                 # central or federated
//	presets:                      # smallest first is not required; they are sorted by parameters
//	  - name: 2m                  # a model preset ...
//	  - name: tiny                # ... or a custom shape
//	    hidden: 32
//	    layers: 1
//	    heads: 2
//	    budget: {steps: 20}       # overrides the default budget for this preset
//	budget: {steps: 300}          # or {tokens: 2000000} or {tokens_per_param: 20}
//	data:
//	  synthetic: {hospitals: 3, pretrain_only: 0, patients: 500, seed: 1, temporal_strength: 1}
//	  # or dirs: [a, b] and pretrain_only_dirs: [c]
//	  vocab_min_count: 5
//	tasks: ""                     # task file; the shipped default tasks when empty
//	seed: 1
//	margin: 0.01                  # non-inferiority margin in AUPRC (see Rule)
//	alpha: 0.05
//	pretrain: {batch: 16, seq: 128, lr: 5e-4, random_cut: false, time_embedding: true}
//	finetune: {frozen: true, pooling: cls, epochs: 3}
//	eval: {bootstrap: 1000, grid: true, iterations: 500, features: time, max_index_per_patient: 1}
//	federated: {local_steps: 20}  # mode federated only
type Config struct {
	Mode    string       `yaml:"mode" json:"mode"`
	Presets []PresetSpec `yaml:"presets" json:"presets"`
	Budget  Budget       `yaml:"budget" json:"budget"`
	Data    Data         `yaml:"data" json:"data"`
	Tasks   string       `yaml:"tasks" json:"tasks,omitempty"`
	Seed    uint64       `yaml:"seed" json:"seed"`
	// Margin is the non-inferiority margin of Rule.
	Margin *float64 `yaml:"margin" json:"margin"`
	// Tolerance was the rule before non-inferiority; set, it is an error that
	// says so rather than an unknown field.
	Tolerance *float64 `yaml:"tolerance" json:"-"`
	// Alpha is the one-sided level of the Holm-corrected non-inferiority tests.
	Alpha    float64  `yaml:"alpha" json:"alpha"`
	Pretrain Pretrain `yaml:"pretrain" json:"pretrain"`
	FineTune FineTune `yaml:"finetune" json:"finetune"`
	Eval     Eval     `yaml:"eval" json:"eval"`
	// Federated sets the rounds of mode federated.
	Federated Federated `yaml:"federated" json:"federated"`
}

// Federated sets federated pretraining: a preset's budget of steps becomes
// ceil(steps / LocalSteps) rounds of LocalSteps local steps at every site.
type Federated struct {
	LocalSteps int `yaml:"local_steps" json:"local_steps"`
	// SecureAggPreset names the CKKS parameters (empty: the aggregator's default).
	SecureAggPreset string `yaml:"secureagg_preset" json:"secureagg_preset,omitempty"`
	// ServerOptimizer is how the aggregator applies the round's mean update:
	// fedavg (the default, empty) or fedadam (Adam on the pseudo-gradient, Reddi
	// et al. 2021), whose ServerLR must then be given.
	ServerOptimizer string `yaml:"server_optimizer" json:"server_optimizer,omitempty"`
	// ServerLR scales the server step; 0 means 1 for fedavg.
	ServerLR float64 `yaml:"server_learning_rate" json:"server_learning_rate,omitempty"`
}

// PresetSpec names a model preset, or gives a custom shape when Hidden is set.
type PresetSpec struct {
	Name   string  `yaml:"name" json:"name"`
	Hidden int     `yaml:"hidden" json:"hidden,omitempty"`
	Layers int     `yaml:"layers" json:"layers,omitempty"`
	Heads  int     `yaml:"heads" json:"heads,omitempty"`
	Budget *Budget `yaml:"budget" json:"budget,omitempty"`
}

// Custom reports whether p is a custom shape rather than a named preset.
func (p PresetSpec) Custom() bool { return p.Hidden != 0 || p.Layers != 0 || p.Heads != 0 }

// Budget is how much pretraining one preset gets: optimiser steps, tokens (real,
// non-padding tokens seen, by every site together in a federation), or tokens per
// parameter of the preset (as scaling studies state budgets), exactly one of them.
type Budget struct {
	Steps          int     `yaml:"steps" json:"steps,omitempty"`
	Tokens         int64   `yaml:"tokens" json:"tokens,omitempty"`
	TokensPerParam float64 `yaml:"tokens_per_param" json:"tokens_per_param,omitempty"`
}

// total is the budget in tokens for a model of params parameters, 0 for a budget
// in steps.
func (b Budget) total(params int) int64 {
	if b.TokensPerParam > 0 {
		return int64(math.Round(b.TokensPerParam * float64(params)))
	}
	return b.Tokens
}

// Data is where the hospitals come from.
type Data struct {
	// Dirs are datasets (MEDS or OMOP CDM), one per site.
	Dirs []string `yaml:"dirs" json:"dirs,omitempty"`
	// PretrainOnlyDirs are datasets of sites without labels: every patient of
	// theirs pretrains, and nothing scores them.
	PretrainOnlyDirs []string `yaml:"pretrain_only_dirs" json:"pretrain_only_dirs,omitempty"`
	// Synthetic generates hospitals under the output directory instead.
	Synthetic *Synthetic `yaml:"synthetic" json:"synthetic,omitempty"`
	// VocabMinCount is the k-anonymity floor of the vocabulary built from the sites'
	// training splits.
	VocabMinCount int `yaml:"vocab_min_count" json:"vocab_min_count"`
}

// Synthetic is the claims/synth generator's configuration.
type Synthetic struct {
	// Hospitals are labelled; PretrainOnly more hospitals, generated after them,
	// that only pretrain.
	Hospitals    int    `yaml:"hospitals" json:"hospitals"`
	PretrainOnly int    `yaml:"pretrain_only" json:"pretrain_only,omitempty"`
	Patients     int    `yaml:"patients" json:"patients"`
	Seed         uint64 `yaml:"seed" json:"seed"`
	// TemporalStrength scales the generator's order and recency effects
	// (synth.Config; default 1, 0 turns them off).
	TemporalStrength *float64 `yaml:"temporal_strength" json:"temporal_strength,omitempty"`
}

// Generator is the synthetic configuration's generator.
func (s Synthetic) Generator() (*synth.Generator, error) {
	return synth.New(synth.Config{Hospitals: s.Hospitals + s.PretrainOnly, Patients: s.Patients, Seed: s.Seed, TemporalStrength: s.TemporalStrength})
}

// Pretrain sets the MLM pretraining shared by every preset.
type Pretrain struct {
	Batch   int      `yaml:"batch" json:"batch"`
	Seq     int      `yaml:"seq" json:"seq"`
	LR      float64  `yaml:"lr" json:"lr"`
	Dropout *float64 `yaml:"dropout" json:"dropout"`
	// EvalEvery is the number of steps between points of the validation loss curve.
	EvalEvery int `yaml:"eval_every" json:"eval_every"`
	// ValidSequences caps the validation-split histories the loss is measured on.
	ValidSequences int `yaml:"valid_sequences" json:"valid_sequences"`
	// RandomCut ends each pretraining window at a random visit of the history
	// (tokenizer.RandomCutoff), as a fine-tuning window ends at an index date,
	// instead of at the end of the record.
	RandomCut bool `yaml:"random_cut" json:"random_cut,omitempty"`
	// TimeEmbedding gives the encoder learned embeddings of the time before the
	// window's end and of the gap since the previous visit (model.Config's
	// TimeBuckets; default true).
	TimeEmbedding *bool `yaml:"time_embedding" json:"time_embedding"`
	// CutSeed seeds RandomCut; the sweep's seed.
	CutSeed uint64 `yaml:"-" json:"-"`
}

// TimeBuckets is the encoder's model.Config.TimeBuckets under p.
func (p Pretrain) TimeBuckets() int {
	if p.TimeEmbedding != nil && !*p.TimeEmbedding {
		return 0
	}
	return model.DefaultTimeBuckets
}

// FineTune sets the heads' training, as fedclaims eval's flags do.
type FineTune struct {
	Frozen bool `yaml:"frozen" json:"frozen"`
	// Pooling is the head's input, cls, mean or both (empty: eval's default).
	Pooling string `yaml:"pooling" json:"pooling,omitempty"`
	Epochs  int    `yaml:"epochs" json:"epochs"`
	Seq     int    `yaml:"seq" json:"seq"`
}

// Eval sets the baseline and the bootstrap, as fedclaims eval's flags do.
type Eval struct {
	Bootstrap  int   `yaml:"bootstrap" json:"bootstrap"`
	Grid       *bool `yaml:"grid" json:"grid"`
	Iterations int   `yaml:"iterations" json:"iterations"`
	MinCount   int   `yaml:"min_count" json:"min_count"`
	// Features is the baseline's feature set: time (the default) or counts.
	Features   string `yaml:"features" json:"features"`
	RecentDays *int   `yaml:"recent_days" json:"recent_days"`
	Threads    int    `yaml:"threads" json:"threads"`
	// MaxIndexPerPatient is the index dates drawn per patient (0: one).
	MaxIndexPerPatient int `yaml:"max_index_per_patient" json:"max_index_per_patient"`
	// SkipDegenerate is accepted from older sweep files and ignored: a task that
	// cannot be decided is always listed with its reason.
	SkipDegenerate bool `yaml:"skip_degenerate" json:"-"`
}

// DefaultConfig is what a sweep file that gives only presets, a budget and data
// means; `fedclaims sweep` decodes the file onto it (internal/config) and then
// calls Prepare.
func DefaultConfig() Config {
	var c Config
	c.Defaults()
	return c
}

// Prepare fills in the defaults a file left out, checks every field and makes
// relative paths relative to dir, the file's directory.
func (c *Config) Prepare(dir string) error {
	c.Defaults()
	if err := c.Validate(); err != nil {
		return err
	}
	c.Resolve(dir)
	return nil
}

// Resolve makes c's relative paths relative to dir, the file's directory.
func (c *Config) Resolve(dir string) {
	for _, ds := range [][]string{c.Data.Dirs, c.Data.PretrainOnlyDirs} {
		for i, d := range ds {
			if !filepath.IsAbs(d) {
				ds[i] = filepath.Join(dir, d)
			}
		}
	}
	if c.Tasks != "" && !filepath.IsAbs(c.Tasks) {
		c.Tasks = filepath.Join(dir, c.Tasks)
	}
}

// Defaults fills in every field the file leaves out.
func (c *Config) Defaults() {
	if c.Mode == "" {
		c.Mode = ModeCentral
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Margin == nil {
		m := DefaultMargin
		c.Margin = &m
	}
	if c.Alpha == 0 {
		c.Alpha = 0.05
	}
	if c.Data.VocabMinCount == 0 {
		c.Data.VocabMinCount = 5
	}
	p := &c.Pretrain
	if p.Batch == 0 {
		p.Batch = 16
	}
	if p.Seq == 0 {
		p.Seq = 128
	}
	if p.LR == 0 {
		p.LR = 5e-4
	}
	if p.Dropout == nil {
		d := 0.1
		p.Dropout = &d
	}
	if p.EvalEvery == 0 {
		p.EvalEvery = 50
	}
	if p.ValidSequences == 0 {
		p.ValidSequences = 256
	}
	if p.TimeEmbedding == nil {
		t := true
		p.TimeEmbedding = &t
	}
	p.CutSeed = c.Seed
	if c.Federated.LocalSteps == 0 {
		c.Federated.LocalSteps = 20
	}
	e := &c.Eval
	if e.Bootstrap == 0 {
		e.Bootstrap = 1000
	}
	if e.Grid == nil {
		g := true
		e.Grid = &g
	}
	if e.Iterations == 0 {
		e.Iterations = 500
	}
	if e.MinCount == 0 {
		e.MinCount = 5
	}
	if e.RecentDays == nil {
		d := 365
		e.RecentDays = &d
	}
	if e.Features == "" {
		e.Features = string(baseline.DefaultFeatures)
	}
}

var presetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Validate reports the first field that makes c unusable, by its path in the file.
func (c *Config) Validate() error {
	switch c.Mode {
	case ModeCentral, ModeFederated:
	default:
		return fmt.Errorf("field mode: %q, want %q or %q", c.Mode, ModeCentral, ModeFederated)
	}
	if len(c.Presets) == 0 {
		return errors.New("field presets: no presets to sweep")
	}
	seen := map[string]int{}
	for i, p := range c.Presets {
		at := fmt.Sprintf("presets[%d]", i)
		if !presetName.MatchString(p.Name) {
			return fmt.Errorf("field %s.name: %q must be lower-case letters, digits, '_', '.' or '-'", at, p.Name)
		}
		if j, dup := seen[p.Name]; dup {
			return fmt.Errorf("field %s.name: %q is already presets[%d]", at, p.Name, j)
		}
		seen[p.Name] = i
		if p.Custom() {
			cfg := model.Config{Vocab: model.FirstCode + 1, Hidden: p.Hidden, Layers: p.Layers, Heads: p.Heads,
				MaxLen: 512, Segments: 3, LNEps: 1e-5}
			if p.Layers <= 0 {
				return fmt.Errorf("field %s.layers: %d must be positive", at, p.Layers)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("field %s: %w", at, err)
			}
		} else if _, err := model.Preset(p.Name, model.StudyVocab); err != nil {
			return fmt.Errorf("field %s.name: %w (or give hidden, layers and heads for a custom shape)", at, err)
		}
		if p.Budget != nil {
			if err := p.Budget.validate(at + ".budget"); err != nil {
				return err
			}
		} else if err := c.Budget.validate("budget"); err != nil {
			return fmt.Errorf("%w (presets[%d] has no budget of its own)", err, i)
		}
	}
	d := c.Data
	switch {
	case len(d.Dirs) == 0 && d.Synthetic == nil:
		return errors.New("field data: give dirs or synthetic")
	case len(d.Dirs) > 0 && d.Synthetic != nil:
		return errors.New("field data: give dirs or synthetic, not both")
	case d.Synthetic != nil && d.Synthetic.Hospitals < 1:
		return fmt.Errorf("field data.synthetic.hospitals: %d must be at least 1", d.Synthetic.Hospitals)
	case d.Synthetic != nil && d.Synthetic.PretrainOnly < 0:
		return fmt.Errorf("field data.synthetic.pretrain_only: %d must not be negative", d.Synthetic.PretrainOnly)
	case d.Synthetic != nil && d.Synthetic.TemporalStrength != nil && !(*d.Synthetic.TemporalStrength >= 0 && *d.Synthetic.TemporalStrength <= 1):
		return fmt.Errorf("field data.synthetic.temporal_strength: %g must be in [0, 1]", *d.Synthetic.TemporalStrength)
	case len(d.PretrainOnlyDirs) > 0 && d.Synthetic != nil:
		return errors.New("field data.pretrain_only_dirs: give them with dirs, not with synthetic (which has pretrain_only)")
	case d.Synthetic != nil && d.Synthetic.Patients < 1:
		return fmt.Errorf("field data.synthetic.patients: %d must be at least 1", d.Synthetic.Patients)
	case d.VocabMinCount < 1:
		return fmt.Errorf("field data.vocab_min_count: %d must be at least 1", d.VocabMinCount)
	}
	switch c.Federated.ServerOptimizer {
	case "", "fedavg":
	case "fedadam":
		if c.Federated.ServerLR == 0 {
			return errors.New("field federated.server_learning_rate: fedadam needs one (0.001 to 0.1 is usual)")
		}
	default:
		return fmt.Errorf("field federated.server_optimizer: %q, want fedavg or fedadam", c.Federated.ServerOptimizer)
	}
	if lr := c.Federated.ServerLR; lr < 0 || math.IsInf(lr, 0) || math.IsNaN(lr) {
		return fmt.Errorf("field federated.server_learning_rate: %v must be a positive number", lr)
	}
	if c.Federated.LocalSteps < 1 {
		return fmt.Errorf("field federated.local_steps: %d must be positive", c.Federated.LocalSteps)
	}
	for i, dir := range d.Dirs {
		if dir == "" {
			return fmt.Errorf("field data.dirs[%d]: empty path", i)
		}
	}
	for i, dir := range d.PretrainOnlyDirs {
		if dir == "" {
			return fmt.Errorf("field data.pretrain_only_dirs[%d]: empty path", i)
		}
	}
	switch m := *c.Margin; {
	case c.Tolerance != nil:
		return errors.New("field tolerance: no longer read: a smaller preset is now enough when it is shown non-inferior to the best within margin (default 0.01); write margin instead")
	case m < 0 || m >= 1 || m != m:
		return fmt.Errorf("field margin: %g must be in [0, 1)", m)
	case !(c.Alpha > 0 && c.Alpha < 1):
		return fmt.Errorf("field alpha: %g must be in (0, 1)", c.Alpha)
	}
	p := c.Pretrain
	switch {
	case p.Batch < 1:
		return fmt.Errorf("field pretrain.batch: %d must be positive", p.Batch)
	case p.Seq < 2 || p.Seq > 512:
		return fmt.Errorf("field pretrain.seq: %d must be in [2, 512]", p.Seq)
	case !(p.LR > 0):
		return fmt.Errorf("field pretrain.lr: %g must be positive", p.LR)
	case *p.Dropout < 0 || *p.Dropout >= 1:
		return fmt.Errorf("field pretrain.dropout: %g must be in [0, 1)", *p.Dropout)
	case p.EvalEvery < 1:
		return fmt.Errorf("field pretrain.eval_every: %d must be positive", p.EvalEvery)
	case p.ValidSequences < 1:
		return fmt.Errorf("field pretrain.valid_sequences: %d must be positive", p.ValidSequences)
	}
	f := c.FineTune
	switch {
	case f.Epochs < 0:
		return fmt.Errorf("field finetune.epochs: %d must not be negative", f.Epochs)
	case f.Seq < 0 || f.Seq == 1 || f.Seq > 512:
		return fmt.Errorf("field finetune.seq: %d must be 0 (the model's max_len) or in [2, 512]", f.Seq)
	}
	if f.Pooling != "" {
		if err := model.Pooling(f.Pooling).Validate(); err != nil {
			return fmt.Errorf("field finetune.pooling: %w", err)
		}
	}
	e := c.Eval
	switch {
	case e.Bootstrap < 1:
		return fmt.Errorf("field eval.bootstrap: %d must be positive", e.Bootstrap)
	case e.Iterations < 1:
		return fmt.Errorf("field eval.iterations: %d must be positive", e.Iterations)
	case e.MinCount < 1:
		return fmt.Errorf("field eval.min_count: %d must be positive", e.MinCount)
	case *e.RecentDays < 0:
		return fmt.Errorf("field eval.recent_days: %d must not be negative", *e.RecentDays)
	case e.Threads < 0:
		return fmt.Errorf("field eval.threads: %d must not be negative", e.Threads)
	case e.MaxIndexPerPatient < 0:
		return fmt.Errorf("field eval.max_index_per_patient: %d must not be negative", e.MaxIndexPerPatient)
	}
	if _, err := baseline.ParseFeatureSet(e.Features); err != nil {
		return fmt.Errorf("field eval.features: %w", err)
	}
	return nil
}

func (b Budget) validate(field string) error {
	switch {
	case b.Steps < 0:
		return fmt.Errorf("field %s.steps: %d must not be negative", field, b.Steps)
	case b.Tokens < 0:
		return fmt.Errorf("field %s.tokens: %d must not be negative", field, b.Tokens)
	case b.TokensPerParam < 0 || b.TokensPerParam != b.TokensPerParam:
		return fmt.Errorf("field %s.tokens_per_param: %g must be positive", field, b.TokensPerParam)
	}
	given := 0
	for _, set := range []bool{b.Steps > 0, b.Tokens > 0, b.TokensPerParam > 0} {
		if set {
			given++
		}
	}
	switch given {
	case 0:
		return fmt.Errorf("field %s: give steps, tokens or tokens_per_param", field)
	case 1:
	default:
		return fmt.Errorf("field %s: give one of steps, tokens and tokens_per_param", field)
	}
	return nil
}

// budget is preset i's budget.
func (c *Config) budget(i int) Budget {
	if b := c.Presets[i].Budget; b != nil {
		return *b
	}
	return c.Budget
}
