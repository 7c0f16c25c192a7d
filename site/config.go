package site

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/viper"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tasks"
)

// Config is a site agent's configuration. Load reads it from YAML, FEDCLAIMS_*
// environment variables and flags; configs/site.yaml is a commented example.
type Config struct {
	// SiteID must equal the id in the site's certificate.
	SiteID string
	// Federation is the federation the agent enrols in; its id is bound into every
	// message and into the share key's signature.
	Federation string
	// Aggregator is the aggregator's host:port; ServerName the name its
	// certificate must carry (empty: the host of Aggregator).
	Aggregator, ServerName string
	// CertsDir holds ca.crt, the revocation list and the site's certificate and key
	// as `fedclaims certs init` lays them out.
	CertsDir string
	// Data lists the site's datasets (MEDS or OMOP CDM directories), read together.
	Data []string
	// Codes is the codes file (claims.CodeRules) the datasets are read through,
	// before the built-in conventions; empty for the built-ins alone.
	Codes string
	// StateDir keeps what survives a restart; AuditLog is the site's audit log
	// (default StateDir/audit.jsonl).
	StateDir, AuditLog string
	// Threads bounds the model's worker goroutines; 0 uses every core. The model's
	// parallel reductions sum in an order that depends on it, so a delta is
	// reproducible bit for bit only at the same thread count (they differ by about
	// 1e-6 otherwise).
	Threads int
	// BatchSize, when positive, overrides the round's batch size (memory).
	BatchSize int
	// MaxLen is the longest patient history in tokens (the most recent kept).
	MaxLen int
	// RandomCut ends each patient's pretraining window at a random visit day
	// (model.Windows, drawn from Seed and the patient's id, so the same every round
	// and after a restart) rather than encoding the whole history: fine-tuning
	// windows end at an index date, and pretraining on whole histories alone never
	// shows the encoder a history cut there. Off by default until the study shows it
	// helps.
	RandomCut bool
	// SplitSalt salts the train/validation/test split of the site's patients
	// (tasks.SplitOf). Local training and the vocabulary counts read the training
	// split only (tasks.InPretraining; all of it with PretrainOnly), and the local evaluation scores the test split
	// under the same salt, so that no test patient's outcome shapes the encoder it
	// scores. Default tasks.DefaultSalt, eval's default. A dataset that declares
	// its own split (metadata/subject_splits.parquet or data/train|tuning|held_out/)
	// is split its way instead, by the site and by its local evaluation alike.
	SplitSalt string
	// PretrainOnly marks a site whose datasets serve pretraining alone: no
	// evaluation will ever score an encoder on them, so local training and the
	// vocabulary counts read every patient, not the training split, and the site
	// runs no local evaluation (Validate refuses Eval.Out with it). A consortium's
	// unlabelled data can then make the pretraining corpus many times the labelled
	// set. The rule is pretrainingReader's.
	PretrainOnly bool
	// ExitOnFinal makes Run return once the final model is installed.
	ExitOnFinal bool
	// Seed seeds the reconnection jitter and RandomCut's windows.
	Seed uint64
	// BackoffMin and BackoffMax bound the reconnection delay.
	BackoffMin, BackoffMax time.Duration
	// Eval is the local evaluation `fedclaims site` runs on the final model.
	Eval EvalConfig
}

// EvalConfig sets the local evaluation of the final model (`fedclaims eval` on the
// site's first dataset); an empty Out runs none.
type EvalConfig struct {
	Out       string
	Bootstrap int  // patient-level bootstrap resamples; 0 is eval's default
	Frozen    bool // fit an L2 logistic probe on the frozen encoder (the default) rather than fine-tune
	Seq       int  // tokens per history; 0 is the model's max_len
	// Features is the baseline's feature set (time or counts; empty: eval's default).
	Features string
	// MaxIndexPerPatient is the index dates drawn per patient; 0 is eval's default (1).
	MaxIndexPerPatient int
}

// keyList returns the configuration keys, as viper names them (nested YAML keys joined by
// dots). Environment variables are FEDCLAIMS_ and the key upper-cased with dots as
// underscores: FEDCLAIMS_AGGREGATOR_ADDRESS.
func keyList() []string {
	return []string{
		"site_id",
		"federation_id",
		"aggregator.address",
		"aggregator.server_name",
		"certs_dir",
		"data",
		"codes",
		"state_dir",
		"audit_log",
		"threads",
		"train.batch_size",
		"train.max_len",
		"train.random_cut",
		"split_salt",
		"pretrain_only",
		"exit_on_final",
		"seed",
		"backoff.min",
		"backoff.max",
		"eval.out",
		"eval.bootstrap",
		"eval.frozen",
		"eval.seq",
		"eval.features",
		"eval.max_index_per_patient",
	}
}

// Keys returns the configuration keys a site accepts.
func Keys() []string { return keyList() }

// ErrConfig reports an unusable configuration; the message names the key.
var ErrConfig = errors.New("site config")

func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("%w: key %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// CheckKeys refuses keys that are not configuration keys, naming the first; file
// is for the message. Pass the keys a YAML file sets (viper's AllKeys of a viper
// that read only that file), so that a misspelt key is an error, not a default.
func CheckKeys(file string, fileKeys []string) error {
	keys := keyList()
	sorted := slices.Clone(fileKeys)
	slices.Sort(sorted)
	for _, k := range sorted {
		if !slices.Contains(keys, k) {
			var hint string
			for _, known := range keys {
				if strings.HasPrefix(known, k+".") {
					hint = fmt.Sprintf(" (a map with %s)", known)
					break
				}
			}
			return fmt.Errorf("%w: %s: unknown key %s%s", ErrConfig, file, k, hint)
		}
	}
	return nil
}

// Load builds a Config from v: the values of the keys above, from whichever of
// flags, environment and file viper finds first. A file given here is read first
// and its keys checked with CheckKeys; pass "" when v already holds the file and
// its keys were checked. Every missing or invalid value is an error naming its
// key.
func Load(v *viper.Viper, file string) (Config, error) {
	if file != "" {
		fv := viper.New()
		fv.SetConfigFile(file)
		if err := fv.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, file, err)
		}
		if err := CheckKeys(file, fv.AllKeys()); err != nil {
			return Config{}, err
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, file, err)
		}
	}
	r := reader{v: v}
	c := Config{
		SiteID:       r.str("site_id"),
		Federation:   r.str("federation_id"),
		Aggregator:   r.str("aggregator.address"),
		ServerName:   r.str("aggregator.server_name"),
		CertsDir:     r.str("certs_dir"),
		Data:         r.strs("data"),
		Codes:        r.str("codes"),
		StateDir:     r.str("state_dir"),
		AuditLog:     r.str("audit_log"),
		Threads:      r.int("threads", 0),
		BatchSize:    r.int("train.batch_size", 0),
		MaxLen:       r.int("train.max_len", 256),
		RandomCut:    r.bool("train.random_cut", false),
		SplitSalt:    r.str("split_salt"),
		PretrainOnly: r.bool("pretrain_only", false),
		ExitOnFinal:  r.bool("exit_on_final", true),
		Seed:         r.uint64("seed", 1),
		BackoffMin:   r.duration("backoff.min", 500*time.Millisecond),
		BackoffMax:   r.duration("backoff.max", 30*time.Second),
		Eval: EvalConfig{
			Out:                r.str("eval.out"),
			Bootstrap:          r.int("eval.bootstrap", 0),
			Frozen:             r.bool("eval.frozen", true),
			Seq:                r.int("eval.seq", 0),
			Features:           r.str("eval.features"),
			MaxIndexPerPatient: r.int("eval.max_index_per_patient", 0),
		},
	}
	if r.err != nil {
		return Config{}, r.err
	}
	if c.SplitSalt == "" {
		c.SplitSalt = tasks.DefaultSalt
	}
	if c.AuditLog == "" && c.StateDir != "" {
		c.AuditLog = filepath.Join(c.StateDir, "audit.jsonl")
	}
	return c, c.Validate()
}

// Validate reports the first missing or invalid setting, by key.
func (c Config) Validate() error {
	switch {
	case c.SiteID == "":
		return keyErr("site_id", "required")
	case certs.ValidID(c.SiteID) != nil:
		return keyErr("site_id", "%v", certs.ValidID(c.SiteID))
	case c.Federation == "":
		return keyErr("federation_id", "required")
	case c.Aggregator == "":
		return keyErr("aggregator.address", "required (host:port)")
	case c.CertsDir == "":
		return keyErr("certs_dir", "required")
	case len(c.Data) == 0:
		return keyErr("data", "at least one dataset directory is required")
	case c.StateDir == "":
		return keyErr("state_dir", "required")
	case c.Threads < 0:
		return keyErr("threads", "%d must not be negative", c.Threads)
	case c.BatchSize < 0:
		return keyErr("train.batch_size", "%d must not be negative", c.BatchSize)
	case c.MaxLen < 2:
		return keyErr("train.max_len", "%d must be at least 2", c.MaxLen)
	case c.BackoffMin <= 0:
		return keyErr("backoff.min", "%v must be positive", c.BackoffMin)
	case c.BackoffMax < c.BackoffMin:
		return keyErr("backoff.max", "%v is below backoff.min %v", c.BackoffMax, c.BackoffMin)
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
	if _, port, err := net.SplitHostPort(c.Aggregator); err != nil || port == "" {
		return keyErr("aggregator.address", "%q is not host:port", c.Aggregator)
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
	if c.ServerName != "" {
		return c.ServerName
	}
	host, _, _ := net.SplitHostPort(c.Aggregator)
	return host
}

// reader converts viper values, keeping the first error, which names its key.
type reader struct {
	v   *viper.Viper
	err error
}

func (r *reader) fail(key string, err error) {
	if r.err == nil {
		r.err = keyErr(key, "%v", err)
	}
}

func (r *reader) str(key string) string {
	if !r.v.IsSet(key) {
		return ""
	}
	s, err := cast.ToStringE(r.v.Get(key))
	if err != nil {
		r.fail(key, err)
	}
	return strings.TrimSpace(s)
}

func (r *reader) strs(key string) []string {
	if !r.v.IsSet(key) {
		return nil
	}
	raw := r.v.Get(key)
	// From the environment or a flag a list arrives as one comma-separated string.
	if s, ok := raw.(string); ok {
		var out []string
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	out, err := cast.ToStringSliceE(raw)
	if err != nil {
		r.fail(key, err)
	}
	return out
}

func (r *reader) int(key string, def int) int {
	if !r.v.IsSet(key) {
		return def
	}
	n, err := cast.ToIntE(r.v.Get(key))
	if err != nil {
		r.fail(key, err)
	}
	return n
}

func (r *reader) uint64(key string, def uint64) uint64 {
	if !r.v.IsSet(key) {
		return def
	}
	n, err := cast.ToUint64E(r.v.Get(key))
	if err != nil {
		r.fail(key, err)
	}
	return n
}

func (r *reader) bool(key string, def bool) bool {
	if !r.v.IsSet(key) {
		return def
	}
	b, err := cast.ToBoolE(r.v.Get(key))
	if err != nil {
		r.fail(key, err)
	}
	return b
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	if !r.v.IsSet(key) {
		return def
	}
	d, err := cast.ToDurationE(r.v.Get(key))
	if err != nil {
		r.fail(key, err)
	}
	return d
}
