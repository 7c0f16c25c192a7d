package aggregator

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
)

// Config is the aggregator's configuration; its yaml tags are the keys of
// aggregator.yaml (see configs/aggregator.yaml). `fedclaims aggregator` loads it
// (internal/config: the file, FEDCLAIMS_* variables such as FEDCLAIMS_LOCAL_STEPS
// for local.steps, and flags) onto DefaultConfig and then calls Validate.
type Config struct {
	// Federation is the federation id, bound into every message and ciphertext.
	Federation string `yaml:"federation"`
	// Listen is the gRPC address sites and the admin dial.
	Listen string `yaml:"listen"`
	// Metrics is the plain-HTTP address of the coordinator's status page, /metrics and
	// /healthz; empty turns them off. Keep it on loopback: it has no TLS.
	Metrics string `yaml:"metrics"`
	// Certs is the consortium directory holding ca.crt, aggregator.crt/.key and crl.pem.
	Certs string `yaml:"certs"`
	// StateDir holds checkpoints and the setup blobs.
	StateDir string `yaml:"state_dir"`
	// AuditLog is the aggregator's audit log; empty means state_dir/audit.jsonl.
	AuditLog string `yaml:"audit_log"`
	// Sites is the allow-list, in any order; party order is sorted order.
	Sites     []string `yaml:"sites"`
	MinSites  int      `yaml:"min_sites"`
	Threshold int      `yaml:"threshold"`
	Rounds    int      `yaml:"rounds"`
	// RoundDeadline is how long a round collects updates; DecryptDeadline how long
	// it then waits for decryption shares.
	RoundDeadline   time.Duration `yaml:"round_deadline"`
	DecryptDeadline time.Duration `yaml:"decrypt_deadline"`
	// UploadIdleTimeout ends an upload stream that sends nothing for this long, so
	// that a stalled or malicious sender holds no buffer or round state.
	UploadIdleTimeout time.Duration `yaml:"upload_idle_timeout"`
	// AutoStart begins setup once every site enrolled, and the first round once the
	// vocabulary is built, without waiting for `admin start`.
	AutoStart bool `yaml:"auto_start"`

	SecureAgg  SecureAggConfig  `yaml:"secureagg"`
	Model      ModelConfig      `yaml:"model"`
	Vocabulary VocabularyConfig `yaml:"vocabulary"`
	Local      LocalConfig      `yaml:"local"`
	Server     ServerConfig     `yaml:"server"`
}

// SecureAggConfig names the CKKS parameters and the weight cap.
type SecureAggConfig struct {
	Preset    string  `yaml:"preset"`
	WeightCap float64 `yaml:"weight_cap"`
}

// ModelConfig fixes the global model: a preset, optionally reshaped (non-zero
// fields override the preset's), and the seed of its initialisation.
type ModelConfig struct {
	Preset string `yaml:"preset"`
	Seed   uint64 `yaml:"seed"`
	Hidden int    `yaml:"hidden"`
	Layers int    `yaml:"layers"`
	Heads  int    `yaml:"heads"`
	MaxLen int    `yaml:"max_len"`
	// TimeBuckets is the encoder's time embedding (model.Config.TimeBuckets): -1,
	// the default, keeps the preset's; 0 turns it off; 2 to 64 sets the buckets
	// (model.Config.Validate refuses the rest).
	TimeBuckets int `yaml:"time_buckets"`
}

// VocabularyConfig is the federated vocabulary's k-anonymity floor and the bounds
// that keep one site from forcing a vocabulary (and so a model) no party can hold.
type VocabularyConfig struct {
	KFloor int `yaml:"k_floor"`
	// MaxVocab caps the merged vocabulary; the most frequent codes are kept.
	MaxVocab int `yaml:"max_vocab"`
	// MaxCodesPerTable refuses a site's count table with more codes than this.
	MaxCodesPerTable int `yaml:"max_codes_per_table"`
	// MaxCodesPerPatient refuses a count table with more codes than its patients
	// times this: a code needs k_floor patients, so a real table stays far below.
	MaxCodesPerPatient int `yaml:"max_codes_per_patient"`
}

// LocalConfig is the local training every TrainTask carries.
type LocalConfig struct {
	Steps         int     `yaml:"steps"`
	Epochs        int     `yaml:"epochs"`
	BatchSize     int     `yaml:"batch_size"`
	LearningRate  float64 `yaml:"learning_rate"`
	FedProxMu     float64 `yaml:"fedprox_mu"`
	ClipNorm      float64 `yaml:"clip_norm"`
	DPNoiseStdDev float64 `yaml:"dp_noise_stddev"`
}

// ServerConfig is the server optimizer applied to each round's decrypted mean.
type ServerConfig struct {
	Optimizer    string  `yaml:"optimizer"` // fedavg or fedadam
	LearningRate float64 `yaml:"learning_rate"`
	Beta1        float64 `yaml:"beta1"`
	Beta2        float64 `yaml:"beta2"`
	Epsilon      float64 `yaml:"epsilon"`
}

// DefaultConfig is what an empty configuration file means.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:7443",
		Metrics:           "127.0.0.1:9464",
		StateDir:          "state",
		RoundDeadline:     10 * time.Minute,
		DecryptDeadline:   5 * time.Minute,
		UploadIdleTimeout: time.Minute,
		Rounds:            1,
		SecureAgg:         SecureAggConfig{Preset: string(secureagg.PresetN12Q60), WeightCap: secureagg.DefaultWeightCap},
		Model:             ModelConfig{Preset: "2m", Seed: 1, TimeBuckets: -1},
		Vocabulary:        VocabularyConfig{KFloor: 10, MaxVocab: 100_000, MaxCodesPerTable: 200_000, MaxCodesPerPatient: 50},
		Local:             LocalConfig{Steps: 20, BatchSize: 16, LearningRate: 5e-4, ClipNorm: 1},
		Server:            ServerConfig{Optimizer: "fedavg", LearningRate: 1, Beta1: 0.9, Beta2: 0.99, Epsilon: 1e-3},
	}
}

// Validate reports the first key whose value is unusable, by name.
func (c *Config) Validate() error {
	bad := func(key string, format string, args ...any) error {
		return fmt.Errorf("aggregator config: key %s: %s", key, fmt.Sprintf(format, args...))
	}
	if c.Federation == "" {
		return bad("federation", "missing")
	}
	if len(c.Federation) > 255 {
		return bad("federation", "longer than 255 bytes")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%v", err)
	}
	if c.Metrics != "" {
		if _, _, err := net.SplitHostPort(c.Metrics); err != nil {
			return bad("metrics", "%v", err)
		}
	}
	if c.Certs == "" {
		return bad("certs", "missing: the consortium directory with ca.crt and aggregator.crt")
	}
	if c.StateDir == "" {
		return bad("state_dir", "missing")
	}
	for _, s := range c.Sites {
		if err := certs.ValidID(s); err != nil {
			return bad("sites", "%v", err)
		}
	}
	if err := c.Rules().validate(); err != nil {
		key := "sites"
		switch {
		case c.Threshold < 1 || c.Threshold > len(c.Sites):
			key = "threshold"
		case c.MinSites < c.Threshold+1 || c.MinSites > len(c.Sites):
			key = "min_sites"
		case c.Rounds < 1:
			key = "rounds"
		}
		return bad(key, "%v", err)
	}
	if c.RoundDeadline <= 0 {
		return bad("round_deadline", "%v is not positive", c.RoundDeadline)
	}
	if c.DecryptDeadline <= 0 {
		return bad("decrypt_deadline", "%v is not positive", c.DecryptDeadline)
	}
	if _, err := secureagg.NewParameters(secureagg.Preset(c.SecureAgg.Preset)); err != nil {
		return bad("secureagg.preset", "%v", err)
	}
	if !(c.SecureAgg.WeightCap > 0) {
		return bad("secureagg.weight_cap", "%v is not positive", c.SecureAgg.WeightCap)
	}
	if _, err := c.ModelConfig(100); err != nil {
		return bad("model", "%v", err)
	}
	if c.Vocabulary.KFloor < 1 {
		return bad("vocabulary.k_floor", "%d: must be at least 1", c.Vocabulary.KFloor)
	}
	if c.Vocabulary.MaxVocab < 1 {
		return bad("vocabulary.max_vocab", "%d: must be at least 1", c.Vocabulary.MaxVocab)
	}
	if c.Vocabulary.MaxCodesPerTable < 1 {
		return bad("vocabulary.max_codes_per_table", "%d: must be at least 1", c.Vocabulary.MaxCodesPerTable)
	}
	if c.Vocabulary.MaxCodesPerPatient < 1 {
		return bad("vocabulary.max_codes_per_patient", "%d: must be at least 1", c.Vocabulary.MaxCodesPerPatient)
	}
	if c.UploadIdleTimeout <= 0 {
		return bad("upload_idle_timeout", "%v is not positive", c.UploadIdleTimeout)
	}
	l := c.Local
	switch {
	case l.Steps < 0:
		return bad("local.steps", "%d is negative", l.Steps)
	case l.Epochs < 0:
		return bad("local.epochs", "%d is negative", l.Epochs)
	case l.Steps == 0 && l.Epochs == 0:
		return bad("local.steps", "local.steps and local.epochs are both 0")
	case l.BatchSize < 1:
		return bad("local.batch_size", "%d: must be at least 1", l.BatchSize)
	case !(l.LearningRate > 0):
		return bad("local.learning_rate", "%v is not positive", l.LearningRate)
	case l.FedProxMu < 0:
		return bad("local.fedprox_mu", "%v is negative", l.FedProxMu)
	case l.ClipNorm < 0:
		return bad("local.clip_norm", "%v is negative", l.ClipNorm)
	case l.DPNoiseStdDev < 0:
		return bad("local.dp_noise_stddev", "%v is negative", l.DPNoiseStdDev)
	}
	if _, err := NewOptimizer(c.Server); err != nil {
		return bad("server", "%v", err)
	}
	return nil
}

// Rules returns the round rules of the configuration.
func (c *Config) Rules() Rules {
	return Rules{FederationID: c.Federation, Sites: c.Sites, MinSites: c.MinSites, Threshold: c.Threshold, Rounds: c.Rounds}
}

// ModelConfig returns the global model's shape at a vocabulary of vocab tokens.
func (c *Config) ModelConfig(vocab int) (model.Config, error) {
	mc, err := model.Preset(c.Model.Preset, vocab)
	if err != nil {
		return model.Config{}, err
	}
	for _, o := range []struct {
		v   int
		dst *int
	}{{c.Model.Hidden, &mc.Hidden}, {c.Model.Layers, &mc.Layers}, {c.Model.Heads, &mc.Heads}, {c.Model.MaxLen, &mc.MaxLen}} {
		if o.v < 0 {
			return model.Config{}, errors.New("hidden, layers, heads and max_len must not be negative")
		}
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	switch tb := c.Model.TimeBuckets; {
	case tb >= 0:
		mc.TimeBuckets = tb
	case tb != -1:
		return model.Config{}, fmt.Errorf("model.time_buckets %d: want -1 (the preset's), 0 (none) or 2 to 64", tb)
	}
	return mc, mc.Validate()
}
