// Package localfed runs a whole fedclaims federation on one machine: synthetic
// hospitals of different kinds (or datasets already on disk), the consortium PKI, and the aggregator and one site
// agent per hospital as separate processes of the fedclaims binary on loopback,
// driven to the end over the admin API with the admin certificate. It is what
// `fedclaims demo` runs, and what end-to-end tests use when the test is about
// processes (a site killed mid-round, an aggregator restarted).
//
// The topology is docker-compose.yml's without docker: every party reads only its
// own certificate, data and state directory, and sites only dial out.
package localfed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// Options describe a local federation.
type Options struct {
	// Dir receives everything: data/, pki/, configs, state and logs. It must be
	// empty or absent.
	Dir string
	// Binary is the fedclaims executable to run; empty means os.Executable().
	Binary string
	// Hospitals, Patients and Seed are the synthetic data's (synth.Config):
	// hospitals cycle through a general hospital, a cancer centre and a clinic.
	// Seed also seeds the model and the sites' jitter when Datasets are given.
	Hospitals, Patients int
	Seed                uint64
	// Datasets, when set, are the federation's sites instead of synthetic
	// hospitals: nothing is synthesised, and Hospitals and Patients must be zero.
	Datasets []Dataset
	// Federation is the federation id; empty means "localfed".
	Federation string
	// Threshold defaults to half the sites (rounded up, at most all but one) and
	// MinSites to Threshold + 1, the smallest sum that t-1 colluders cannot undo.
	MinSites, Threshold int
	// Rounds of federated pretraining, each of LocalSteps optimizer steps of
	// BatchSize sequences at every site.
	Rounds, LocalSteps, BatchSize int
	// ModelPreset names the encoder (model.Presets); empty means "2m".
	ModelPreset string
	// MaxLen is the sites' longest history in tokens; 0 means 128. The model keeps
	// its preset's position table, so a model trained elsewhere on the same preset
	// has the same shape.
	MaxLen int
	// Aggregator and Site are further configuration keys, merged over the ones
	// localfed writes (dotted keys name nested ones: "model.hidden"). Site applies to
	// every site.
	Aggregator, Site map[string]any
	// SiteAggregator, when set, is asked once per site, at Prepare, for the address
	// that site dials instead of the aggregator's own (addr): a fault-injecting proxy
	// in front of the aggregator, one per site. The address must be on loopback
	// (127.0.0.1), the name the aggregator's certificate carries.
	SiteAggregator func(site, addr string) (string, error)
	// Log receives localfed's own progress; nil discards it.
	Log *slog.Logger
}

// Dataset is a site of a federation over data already on disk.
type Dataset struct {
	// ID is the site's id (certs.ValidID), Dir its MEDS or OMOP CDM directory.
	ID, Dir string
	// PretrainOnly writes pretrain_only: true into the site's configuration: it
	// pretrains and counts on every patient and runs no local evaluation.
	PretrainOnly bool
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("localfed: no directory")
	}
	if len(o.Datasets) > 0 {
		if o.Hospitals != 0 || o.Patients != 0 {
			return fmt.Errorf("localfed: %d datasets and hospitals %d, patients %d: synthetic hospitals or existing datasets, not both", len(o.Datasets), o.Hospitals, o.Patients)
		}
		seen := map[string]bool{}
		for i, d := range o.Datasets {
			switch {
			case certs.ValidID(d.ID) != nil:
				return fmt.Errorf("localfed: dataset %d: id: %w", i, certs.ValidID(d.ID))
			case seen[d.ID]:
				return fmt.Errorf("localfed: dataset %d: site %q listed twice", i, d.ID)
			case d.Dir == "":
				return fmt.Errorf("localfed: dataset %s: no directory", d.ID)
			}
			seen[d.ID] = true
		}
	} else {
		if o.Hospitals < 1 {
			return fmt.Errorf("localfed: hospitals %d: need at least one", o.Hospitals)
		}
		if o.Patients < 1 {
			return fmt.Errorf("localfed: patients %d: need at least one", o.Patients)
		}
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("localfed: the fedclaims binary: %w", err)
		}
		o.Binary = exe
	}
	if o.Federation == "" {
		o.Federation = "localfed"
	}
	if o.Threshold == 0 {
		n := o.sites()
		o.Threshold = max(1, min(n-1, (n+1)/2))
	}
	if o.MinSites == 0 {
		o.MinSites = o.Threshold + 1
	}
	if o.Rounds == 0 {
		o.Rounds = 2
	}
	if o.LocalSteps == 0 {
		o.LocalSteps = 10
	}
	if o.BatchSize == 0 {
		o.BatchSize = 16
	}
	if o.ModelPreset == "" {
		o.ModelPreset = "2m"
	}
	if o.MaxLen == 0 {
		o.MaxLen = 128
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// sites is the number of sites the options make.
func (o *Options) sites() int {
	if len(o.Datasets) > 0 {
		return len(o.Datasets)
	}
	return o.Hospitals
}

// Site is one hospital of the federation and where its files are.
type Site struct {
	ID string
	// Archetype and Patients describe a synthetic hospital; a site of
	// Options.Datasets has none ("" and 0).
	Archetype string
	Patients  int
	// PretrainOnly: the site pretrains on every patient and evaluates nothing.
	PretrainOnly bool
	// Data is the hospital's MEDS dataset, StateDir the agent's state directory,
	// Config its YAML file and AuditLog its audit log.
	Data, StateDir, Config, AuditLog string
	// Process is the running agent.
	Process *Process
}

// FinalModel is the checkpoint directory of the final published model, once the
// agent has installed it.
func (s *Site) FinalModel() string { return filepath.Join(s.StateDir, "final") }

// Vocabulary is the federated vocabulary the agent received.
func (s *Site) Vocabulary() string { return filepath.Join(s.StateDir, "vocab.json") }

// Federation is a prepared local federation.
type Federation struct {
	opts Options
	// Dir is Options.Dir; PKI the consortium directory (the CA key included: this
	// is a demonstration on one machine).
	Dir, PKI string
	// Addr is the aggregator's gRPC address on loopback; MetricsAddr its /metrics.
	Addr, MetricsAddr string
	// AggregatorConfig is the aggregator's YAML file, AggregatorState its state
	// directory and AggregatorAudit its audit log.
	AggregatorConfig, AggregatorState, AggregatorAudit string
	Aggregator                                         *Process
	Sites                                              []*Site
}

// Prepare synthesises the hospitals (unless opts.Datasets names the sites' data),
// issues the certificates and writes every party's configuration under opts.Dir. It
// starts nothing.
func Prepare(ctx context.Context, opts Options) (*Federation, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(opts.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("localfed: %s is not empty", opts.Dir)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localfed: %w", err)
	}
	for _, d := range []string{"data", "logs", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("localfed: %w", err)
		}
	}
	f := &Federation{opts: opts, Dir: dir, PKI: filepath.Join(dir, "pki")}

	if len(opts.Datasets) > 0 {
		f.Sites, err = datasetSites(dir, opts.Datasets)
	} else {
		f.Sites, err = synthesise(ctx, dir, opts)
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range f.Sites {
		s.StateDir = filepath.Join(dir, "state", s.ID)
		s.Config = filepath.Join(dir, "site-"+s.ID+".yaml")
		s.AuditLog = filepath.Join(s.StateDir, "audit.jsonl")
		ids = append(ids, s.ID)
	}
	if err := certs.Init(f.PKI, certs.Options{Consortium: opts.Federation, Sites: ids,
		ServerNames: []string{"localhost", "127.0.0.1"}}); err != nil {
		return nil, fmt.Errorf("localfed: %w", err)
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	f.Addr, f.MetricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), net.JoinHostPort("127.0.0.1", strconv.Itoa(mport))
	f.AggregatorConfig = filepath.Join(dir, "aggregator.yaml")
	f.AggregatorState = filepath.Join(dir, "state", "aggregator")
	f.AggregatorAudit = filepath.Join(f.AggregatorState, "audit.jsonl")

	agg := map[string]any{
		"federation":       opts.Federation,
		"listen":           f.Addr,
		"metrics":          f.MetricsAddr,
		"certs":            f.PKI,
		"state_dir":        f.AggregatorState,
		"audit_log":        f.AggregatorAudit,
		"sites":            ids,
		"min_sites":        opts.MinSites,
		"threshold":        opts.Threshold,
		"rounds":           opts.Rounds,
		"auto_start":       true,
		"model.preset":     opts.ModelPreset,
		"model.seed":       opts.Seed,
		"local.steps":      opts.LocalSteps,
		"local.batch_size": opts.BatchSize,
	}
	maps.Copy(agg, opts.Aggregator)
	if err := writeYAML(f.AggregatorConfig, "the aggregator", agg); err != nil {
		return nil, err
	}
	f.Aggregator = &Process{Name: "aggregator", Log: filepath.Join(dir, "logs", "aggregator.log"),
		bin: opts.Binary, args: []string{"aggregator", "--config", f.AggregatorConfig}}

	for _, s := range f.Sites {
		dial := f.Addr
		if opts.SiteAggregator != nil {
			if dial, err = opts.SiteAggregator(s.ID, f.Addr); err != nil {
				return nil, fmt.Errorf("localfed: the aggregator address of site %s: %w", s.ID, err)
			}
		}
		cfg := map[string]any{
			"site_id":                s.ID,
			"federation_id":          opts.Federation,
			"aggregator.address":     dial,
			"aggregator.server_name": "127.0.0.1",
			"certs_dir":              f.PKI,
			"data":                   []string{s.Data},
			"state_dir":              s.StateDir,
			"audit_log":              s.AuditLog,
			// The sites share the machine's cores; one worker each keeps them from
			// fighting over the same cores.
			"threads":       1,
			"train.max_len": opts.MaxLen,
			"exit_on_final": true,
			"seed":          opts.Seed,
			"backoff.min":   "200ms",
			"backoff.max":   "2s",
		}
		maps.Copy(cfg, opts.Site)
		if s.PretrainOnly {
			cfg["pretrain_only"] = true
		}
		if err := writeYAML(s.Config, "site "+s.ID, cfg); err != nil {
			return nil, err
		}
		s.Process = &Process{Name: "site " + s.ID, Log: filepath.Join(dir, "logs", "site-"+s.ID+".log"),
			bin: opts.Binary, args: []string{"site", "--config", s.Config}}
	}
	return f, nil
}

// synthesise writes opts' synthetic hospitals under dir/data.
func synthesise(ctx context.Context, dir string, opts Options) ([]*Site, error) {
	g, err := synth.New(synth.Config{Hospitals: opts.Hospitals, Patients: opts.Patients, Seed: opts.Seed})
	if err != nil {
		return nil, fmt.Errorf("localfed: %w", err)
	}
	var sites []*Site
	for i, h := range g.Hospitals() {
		start := time.Now()
		events, err := g.WriteHospital(ctx, filepath.Join(dir, "data"), i)
		if err != nil {
			return nil, fmt.Errorf("localfed: hospital %s: %w", h.ID, err)
		}
		opts.Log.Info("synthesised hospital", "site", h.ID, "archetype", h.Archetype.String(),
			"patients", h.Patients, "events", events, "elapsed", time.Since(start).Round(time.Millisecond))
		sites = append(sites, &Site{ID: h.ID, Archetype: h.Archetype.String(), Patients: h.Patients, Data: filepath.Join(dir, "data", h.ID)})
	}
	return sites, nil
}

// datasetSites makes the sites of existing datasets. Each directory must open as a
// dataset now: a site whose data does not would stop only once its process started.
// The paths are made absolute, since every party runs in its own working directory.
func datasetSites(dir string, datasets []Dataset) ([]*Site, error) {
	var sites []*Site
	for _, d := range datasets {
		data, err := filepath.Abs(d.Dir)
		if err != nil {
			return nil, fmt.Errorf("localfed: dataset %s: %w", d.ID, err)
		}
		src, err := claims.Open(data)
		if err != nil {
			return nil, fmt.Errorf("localfed: dataset %s: %w", d.ID, err)
		}
		src.Close()
		sites = append(sites, &Site{ID: d.ID, PretrainOnly: d.PretrainOnly, Data: data})
	}
	return sites, nil
}

// Site returns the site with id, or nil.
func (f *Federation) Site(id string) *Site {
	for _, s := range f.Sites {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// freePort asks the kernel for a loopback port that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localfed: a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeYAML writes flat dotted keys as nested YAML, atomically.
func writeYAML(path, what string, flat map[string]any) error {
	nested := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(flat)) {
		m := nested
		parts := splitKey(k)
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = flat[k]
	}
	b, err := yaml.Marshal(nested)
	if err != nil {
		return fmt.Errorf("localfed: config of %s: %w", what, err)
	}
	header := fmt.Sprintf("# Written by fedclaims' localfed: the configuration of %s.\n", what)
	if err := atomicfile.WriteFile(path, append([]byte(header), b...), 0o600); err != nil {
		return fmt.Errorf("localfed: %w", err)
	}
	return nil
}

func splitKey(k string) []string {
	var parts []string
	start := 0
	for i := range len(k) {
		if k[i] == '.' {
			parts = append(parts, k[start:i])
			start = i + 1
		}
	}
	return append(parts, k[start:])
}
