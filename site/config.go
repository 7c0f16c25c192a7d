package site

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/fedclaims/fedclaims/baseline"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
)

// Config is a site agent's configuration; its yaml tags are the keys of site.yaml
// (configs/site.yaml is a commented example). `fedclaims site` loads it
// (internal/config: the file, FEDCLAIMS_* variables such as
// FEDCLAIMS_AGGREGATOR_ADDRESS for aggregator.address, and flags) onto
// DefaultConfig and then calls Validate.
type Config struct {
	// SiteID must equal the id in the site's certificate.
	SiteID string `yaml:"site_id"`
	// Federation is the federation the agent enrols in; its id is bound into every
	// message and into the share key's signature.
	Federation string `yaml:"federation_id"`
	// Aggregator is where the aggregator is and the name its certificate carries.
	Aggregator AggregatorConfig `yaml:"aggregator"`
	// CertsDir holds ca.crt, the revocation list and the site's certificate and key
	// as `fedclaims certs init` lays them out.
	CertsDir string `yaml:"certs_dir"`
	// Data lists the site's datasets (MEDS or OMOP CDM directories), read together.
	Data []string `yaml:"data"`
	// Codes is the codes file (claims.CodeRules) the datasets are read through,
	// before the built-in conventions; empty for the built-ins alone.
	Codes string `yaml:"codes"`
	// StateDir keeps what survives a restart.
	StateDir string `yaml:"state_dir"`
	// AuditLog is the site's audit log; empty means StateDir/audit.jsonl
	// (AuditLogPath).
	AuditLog string `yaml:"audit_log"`
	// Threads bounds the model's worker goroutines; 0 uses every core. The model's
	// parallel reductions sum in an order that depends on it, so a delta is
	// reproducible bit for bit only at the same thread count (they differ by about
	// 1e-6 otherwise).
	Threads int `yaml:"threads"`
	// Train is the local training's site-side settings.
	Train TrainConfig `yaml:"train"`
	// SplitSalt salts the train/validation/test split of the site's patients
	// (tasks.SplitOf); empty means tasks.DefaultSalt, eval's default. Local
	// training and the vocabulary counts read the training split only
	// (tasks.InPretraining; all of it with PretrainOnly), and the local evaluation
	// scores the test split under the same salt, so that no test patient's outcome
	// shapes the encoder it scores. A dataset that declares its own split
	// (metadata/subject_splits.parquet or data/train|tuning|held_out/) is split its
	// way instead, by the site and by its local evaluation alike.
	SplitSalt string `yaml:"split_salt"`
	// PretrainOnly marks a site whose datasets serve pretraining alone: no
	// evaluation will ever score an encoder on them, so local training and the
	// vocabulary counts read every patient, not the training split, and the site
	// runs no local evaluation (Validate refuses Eval.Out with it). A consortium's
	// unlabelled data can then make the pretraining corpus many times the labelled
	// set. The rule is pretrainingReader's.
	PretrainOnly bool `yaml:"pretrain_only"`
	// ExitOnFinal makes Run return once the final model is installed.
	ExitOnFinal bool `yaml:"exit_on_final"`
	// Seed seeds the reconnection jitter and Train.RandomCut's windows.
	Seed uint64 `yaml:"seed"`
	// Backoff bounds the reconnection delay.
	Backoff BackoffConfig `yaml:"backoff"`
	// Eval is the local evaluation `fedclaims site` runs on the final model.
	Eval EvalConfig `yaml:"eval"`
	// Software is what the agent reports of itself at enrolment (the binary's
	// version and commit, for the coordinator's page and both audit logs); empty
	// means Version. Not a key: the binary sets it.
	Software string `yaml:"-"`
}

// AggregatorConfig is where a site dials.
type AggregatorConfig struct {
	// Address is the aggregator's host:port.
	Address string `yaml:"address"`
	// ServerName is the name the aggregator's certificate must carry (empty: the
	// host of Address).
	ServerName string `yaml:"server_name"`
}

// TrainConfig is what a site sets of its local training; the rest comes with
// each round's task.
type TrainConfig struct {
	// BatchSize, when positive, overrides the round's batch size (memory).
	BatchSize int `yaml:"batch_size"`
	// MaxLen is the longest patient history in tokens (the most recent kept).
	MaxLen int `yaml:"max_len"`
	// RandomCut ends each patient's pretraining window at a random visit day
	// (model.Windows, drawn from Seed and the patient's id, so the same every round
	// and after a restart) rather than encoding the whole history: fine-tuning
	// windows end at an index date, and pretraining on whole histories alone never
	// shows the encoder a history cut there. Off by default until the study shows it
	// helps.
	RandomCut bool `yaml:"random_cut"`
}

// BackoffConfig bounds the delay between reconnections.
type BackoffConfig struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// EvalConfig sets the local evaluation of the final model (eval/pipeline on the
// site's first dataset); an empty Out runs none.
type EvalConfig struct {
	Out       string `yaml:"out"`
	Bootstrap int    `yaml:"bootstrap"` // patient-level bootstrap resamples; 0 is eval's default
	// Frozen fits an L2 logistic probe on the frozen encoder (the default) rather
	// than fine-tune.
	Frozen bool `yaml:"frozen"`
	Seq    int  `yaml:"seq"` // tokens per history; 0 is the model's max_len
	// Features is the baseline's feature set (time or counts; empty: eval's default).
	Features string `yaml:"features"`
	// MaxIndexPerPatient is the index dates drawn per patient; 0 is eval's default (1).
	MaxIndexPerPatient int `yaml:"max_index_per_patient"`
}

// DefaultConfig is what a file that sets only the required keys means.
func DefaultConfig() Config {
	return Config{
		Train:       TrainConfig{MaxLen: 256},
		SplitSalt:   tasks.DefaultSalt,
		ExitOnFinal: true,
		Seed:        1,
		Backoff:     BackoffConfig{Min: 500 * time.Millisecond, Max: 30 * time.Second},
		Eval:        EvalConfig{Frozen: true},
	}
}

// ErrConfig reports an unusable configuration; the message names the key.
var ErrConfig = errors.New("site config")

func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("%w: key %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// AuditLogPath is the site's audit log: AuditLog, or StateDir/audit.jsonl.
func (c Config) AuditLogPath() string {
	if c.AuditLog == "" && c.StateDir != "" {
		return filepath.Join(c.StateDir, "audit.jsonl")
	}
	return c.AuditLog
}

// software is Software, or Version.
func (c Config) software() string {
	if c.Software == "" {
		return Version
	}
	return c.Software
}

// splitSalt is SplitSalt, or tasks.DefaultSalt when a file set it empty.
func (c Config) splitSalt() string {
	if c.SplitSalt == "" {
		return tasks.DefaultSalt
	}
	return c.SplitSalt
}

// EvalSplitSalt is the salt the local evaluation splits the site's patients
// under: the one local training held the test patients out under.
func (c Config) EvalSplitSalt() string { return c.splitSalt() }

// Validate reports the first missing or invalid setting, by key.
func (c Config) Validate() error {
	switch {
	case c.SiteID == "":
		return keyErr("site_id", "required")
	case certs.ValidID(c.SiteID) != nil:
		return keyErr("site_id", "%v", certs.ValidID(c.SiteID))
	case c.Federation == "":
		return keyErr("federation_id", "required")
	case c.Aggregator.Address == "":
		return keyErr("aggregator.address", "required (host:port)")
	case c.CertsDir == "":
		return keyErr("certs_dir", "required")
	case len(c.Data) == 0:
		return keyErr("data", "at least one dataset directory is required")
	case c.StateDir == "":
		return keyErr("state_dir", "required")
	case c.Threads < 0:
		return keyErr("threads", "%d must not be negative", c.Threads)
	case c.Train.BatchSize < 0:
		return keyErr("train.batch_size", "%d must not be negative", c.Train.BatchSize)
	case c.Train.MaxLen < 2:
		return keyErr("train.max_len", "%d must be at least 2", c.Train.MaxLen)
	case c.Backoff.Min <= 0:
		return keyErr("backoff.min", "%v must be positive", c.Backoff.Min)
	case c.Backoff.Max < c.Backoff.Min:
		return keyErr("backoff.max", "%v is below backoff.min %v", c.Backoff.Max, c.Backoff.Min)
	}
	if c.PretrainOnly && c.Eval.Out != "" {
		// The site's every patient shapes the encoder, the test split's outcomes
		// included: a local evaluation would score an encoder on patients it read.
		return keyErr("pretrain_only", "a pretraining-only site pretrains on its test split and runs no local evaluation; eval.out %q must be empty", c.Eval.Out)
	}
	if c.Eval.Bootstrap < 0 {
		return keyErr("eval.bootstrap", "%d must not be negative", c.Eval.Bootstrap)
	}
	if c.Eval.Seq < 0 {
		return keyErr("eval.seq", "%d must not be negative", c.Eval.Seq)
	}
	if c.Eval.Features != "" {
		// Checked at start, not after the federation's last round.
		if _, err := baseline.ParseFeatureSet(c.Eval.Features); err != nil {
			return keyErr("eval.features", "%v", err)
		}
	}
	if _, port, err := net.SplitHostPort(c.Aggregator.Address); err != nil || port == "" {
		return keyErr("aggregator.address", "%q is not host:port", c.Aggregator.Address)
	}
	for i, d := range c.Data {
		if d == "" {
			return keyErr("data", "entry %d is empty", i)
		}
	}
	if c.Codes != "" {
		if _, err := claims.ReadCodeRules(c.Codes); err != nil {
			return fmt.Errorf("%w: key codes: %w", ErrConfig, err)
		}
	}
	return nil
}

// readerOptions are the options the site's datasets are opened with.
func (c Config) readerOptions() []claims.Option {
	return []claims.Option{claims.CodesFile(c.Codes)}
}

// serverName is the name the aggregator's certificate must carry.
func (c Config) serverName() string {
	if c.Aggregator.ServerName != "" {
		return c.Aggregator.ServerName
	}
	host, _, _ := net.SplitHostPort(c.Aggregator.Address)
	return host
}
