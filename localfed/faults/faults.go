// Package faults is the opt-in fault harness (`fedclaims faults`, `make faults`):
// it runs the aggregator and three site agents as processes (package localfed),
// each site's connection to the aggregator through its own in-process toxiproxy
// proxy, first without faults and then once per fault scenario: delay with jitter,
// bandwidth limits, dropped and reset connections, a 30-second blackhole of one
// site, and kill -9 of a site and of the aggregator at seeded points of a round.
// Every fault is bounded in count and in time.
//
// After each run it checks what a federation must keep through faults: every
// planned round applied, the same sites in every round as without faults, a final
// model within the decryption-noise bound of the no-fault run's, every party's
// audit log intact (chain and signatures, as `fedclaims audit verify --cert` checks
// it), every contributor's upload audited, and every party holding the same final
// model. It reports one row per scenario (Result), as a table, faults.json and
// faults.md.
package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/secureagg"
)

// Options configure the harness.
type Options struct {
	// Out receives one federation directory per scenario, faults.json and faults.md.
	Out string
	// Binary is the fedclaims executable the processes run; empty: os.Executable().
	Binary string
	// Seed fixes where the faults land (round, point in the round, site): the same
	// seed gives the same plan.
	Seed uint64
	// DataSeed seeds the synthetic hospitals and the model, the same in every run.
	DataSeed uint64
	// Rounds of federated pretraining per run.
	Rounds int
	// Patients per synthetic hospital on average.
	Patients int
	// Scenarios to run after the baseline (None always runs first); empty: all.
	Scenarios []string
	// RunTimeout bounds one run of the federation.
	RunTimeout time.Duration
	// Log receives localfed's progress; Progress one line per step of the harness.
	Log      *slog.Logger
	Progress io.Writer
}

// The federation every run uses: three sites, t = 2 and min_sites = 3 (with three
// sites every one must contribute to every round, as configs/aggregator.yaml
// explains), a tiny encoder and short rounds.
const (
	hospitals  = 3
	threshold  = 2
	minSites   = 3
	localSteps = 200
	batchSize  = 8
	maxLen     = 32
	// weightCap 1 gives every site weight 1, so the decrypted mean is the sum over
	// three and its noise is known exactly (ErrorStdDev(3)/3).
	weightCap       = 1.0
	roundDeadline   = 20 * time.Second
	decryptDeadline = 15 * time.Second
	serverLR        = 1.0 // fedavg's default
	// propagation allows for later rounds' local training carrying a round's
	// decryption noise on (see noiseBound).
	propagation = 4.0
)

var secureaggPreset = secureagg.PresetN12Q60

func (o *Options) setDefaults() error {
	if o.Out == "" {
		return errors.New("faults: no output directory")
	}
	if o.Rounds == 0 {
		o.Rounds = 4
	}
	if o.Rounds < 1 {
		return fmt.Errorf("faults: rounds %d: need at least one", o.Rounds)
	}
	if o.Patients == 0 {
		o.Patients = 120
	}
	if o.DataSeed == 0 {
		o.DataSeed = 1
	}
	if o.RunTimeout == 0 {
		o.RunTimeout = 4 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = Scenarios[1:]
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("faults: unknown scenario %q (known: %v)", s, Scenarios)
		}
	}
	o.Scenarios = slices.DeleteFunc(slices.Clone(o.Scenarios), func(s string) bool { return s == None })
	return nil
}

// Result is one scenario's row.
type Result struct {
	Scenario string `json:"scenario"`
	Fault    string `json:"fault"`
	// Events are the planned faults, Injected how many fired, and Landed where
	// each landed (the aggregator's phase at that moment).
	Events   []event  `json:"events,omitempty"`
	Injected int      `json:"injected"`
	Landed   []string `json:"landed,omitempty"`
	// RoundsPlanned and RoundsApplied count model versions; RoundIDs the round ids
	// opened (an aborted round spends an id and is retried under the next).
	RoundsPlanned int      `json:"rounds_planned"`
	RoundsApplied int      `json:"rounds_applied"`
	RoundIDs      uint64   `json:"round_ids"`
	Aborts        []string `json:"aborts,omitempty"`
	// Contributors per applied round; SameContributors whether they are the
	// baseline's, round by round.
	Contributors     [][]string `json:"contributors"`
	SameContributors bool       `json:"same_contributors"`
	// MaxAbsDiff is the largest |parameter difference| between this run's final
	// model and the baseline's; NoiseBound what the decryption noise alone
	// explains (see noiseBound); Within whether MaxAbsDiff <= NoiseBound.
	MaxAbsDiff float64 `json:"max_abs_diff"`
	// P99AbsDiff is the 99th percentile of the same differences: the noise's bulk,
	// where MaxAbsDiff is its tail.
	P99AbsDiff float64 `json:"p99_abs_diff"`
	NoiseBound float64 `json:"noise_bound"`
	Within     bool    `json:"within_bound"`
	// AuditVerified counts the parties' audit logs that verified, of AuditLogs.
	AuditVerified int `json:"audit_verified"`
	AuditLogs     int `json:"audit_logs"`
	// NothingLost: every planned round applied, every contributor's upload audited,
	// every party holding the same final model, every process ended cleanly.
	NothingLost bool `json:"nothing_lost"`
	// Problems says what failed, one line each; empty when the row is all good.
	Problems []string `json:"problems,omitempty"`
	Seconds  float64  `json:"seconds"`
	Dir      string   `json:"dir"`
}

// OK reports whether the scenario kept everything.
func (r *Result) OK() bool {
	return r.RoundsApplied == r.RoundsPlanned && r.SameContributors && r.Within &&
		r.AuditVerified == r.AuditLogs && r.NothingLost && len(r.Problems) == 0
}

// Report is faults.json.
type Report struct {
	Seed     uint64         `json:"seed"`
	Settings map[string]any `json:"settings"`
	// NoiseStdDev is the standard deviation of one decrypted mean value of one
	// round (secureagg.Parameters.ErrorStdDev(sites) / total weight).
	NoiseStdDev float64   `json:"noise_stddev_per_round"`
	Params      int       `json:"model_params"`
	Results     []*Result `json:"results"`
	Seconds     float64   `json:"seconds"`
}

// OK reports whether every scenario kept everything.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if !res.OK() {
			return false
		}
	}
	return true
}

// Run runs the baseline and then every scenario, and writes faults.json and
// faults.md under opts.Out. A scenario that fails its checks is a row with
// problems, not an error; an error is the harness itself failing (or ctx ending).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := claimOut(opts.Out); err != nil {
		return nil, err
	}
	start := time.Now()
	params, err := secureagg.NewParameters(secureaggPreset)
	if err != nil {
		return nil, err
	}
	rep := &Report{Seed: opts.Seed, Settings: map[string]any{
		"sites": hospitals, "threshold": threshold, "min_sites": minSites, "rounds": opts.Rounds,
		"patients": opts.Patients, "data_seed": opts.DataSeed, "local_steps": localSteps, "batch": batchSize,
		"model": "hidden 16, 1 layer, 2 heads, max_len 32", "secureagg_preset": string(secureaggPreset),
		"weight_cap": weightCap, "round_deadline": roundDeadline.String(), "decrypt_deadline": decryptDeadline.String(),
	}}
	rep.NoiseStdDev = params.ErrorStdDev(hospitals) / (hospitals * weightCapWeight())

	h := &harness{opts: opts, noise: rep.NoiseStdDev}
	fmt.Fprintf(opts.Progress, "faults: baseline (no fault), seed %d\n", opts.Seed)
	base, err := h.run(ctx, plan(opts.Seed, None, nil, nil))
	if err != nil {
		return nil, err
	}
	rep.Results = append(rep.Results, base.Result)
	rep.Params = len(base.model)
	if base.model == nil || base.Result.RoundsApplied != opts.Rounds {
		rep.Seconds = time.Since(start).Seconds()
		if err := write(opts.Out, rep); err != nil {
			return nil, err
		}
		return rep, fmt.Errorf("faults: the baseline did not finish (%v); nothing to compare with (logs under %s)", base.Result.Problems, base.Result.Dir)
	}
	h.base = base
	fmt.Fprintf(opts.Progress, "faults: baseline done in %.0fs, rounds of %v\n", base.Result.Seconds, base.roundDur)
	for _, name := range opts.Scenarios {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sc := plan(opts.Seed, name, base.sites, base.roundDur)
		fmt.Fprintf(opts.Progress, "faults: %s: %s\n", name, sc.Fault)
		out, err := h.run(ctx, sc)
		if err != nil {
			return nil, err
		}
		r := out.Result
		fmt.Fprintf(opts.Progress, "faults: %s: %d/%d rounds, max |diff| %.3g (bound %.3g), audit %d/%d, ok %v, %.0fs\n",
			name, r.RoundsApplied, r.RoundsPlanned, r.MaxAbsDiff, r.NoiseBound, r.AuditVerified, r.AuditLogs, r.OK(), r.Seconds)
		rep.Results = append(rep.Results, r)
	}
	rep.Seconds = time.Since(start).Seconds()
	if err := write(opts.Out, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func weightCapWeight() float64 { return secureagg.Weight(1, weightCap) }

// noiseBound is the largest |difference| between two runs' final models that the
// decryption noise alone explains: each round adds to every parameter an
// independent error of standard deviation noise (times the server learning rate),
// so after rounds rounds the difference of two runs has standard deviation
// sqrt(2*rounds)*noise, and the largest of params such values stays below
// sqrt(2 ln(2 params)) + 1 standard deviations but for a few runs in a hundred.
// Local training from a model that differs by that much moves the next round's
// deltas too, which propagation allows for: with these settings (4 rounds of 200
// local steps) no-fault reruns differ by 0.7 to 2.4 times the bound without it
// (their p99 at half of it), and more with more rounds or much longer local
// training (400 steps a round).
func noiseBound(noise float64, rounds, params int) float64 {
	if params < 1 {
		return 0
	}
	z := math.Sqrt(2*math.Log(2*float64(params))) + 1
	return propagation * z * math.Sqrt(2*float64(rounds)) * serverLR * noise
}

// claimOut makes out the harness's: empty, absent or written by an earlier run.
func claimOut(out string) error {
	const marker = ".fedclaims-faults"
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("faults: %w", err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(out, marker)); err != nil {
			return fmt.Errorf("faults: %s is not empty and not an earlier fault run's (no %s); choose another --out", out, marker)
		}
		if err := os.RemoveAll(out); err != nil {
			return fmt.Errorf("faults: %w", err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return os.WriteFile(filepath.Join(out, marker), []byte("written by fedclaims faults; replaced by the next run\n"), 0o644)
}

// harness runs scenarios against one baseline.
type harness struct {
	opts  Options
	noise float64
	base  *outcome
}

// outcome is a run's row and what later runs compare with.
type outcome struct {
	Result   *Result
	model    []float32
	sites    []string
	roundDur []time.Duration // each applied round's duration, as the aggregator timed it
}

// tracker is what the run's status poller shares with the fault injector.
type tracker struct {
	mu       sync.Mutex
	begun    map[int]time.Time // round number (1-based) -> when it was first seen open
	phase    string
	round    uint64
	finished bool
	down     map[string]bool // processes killed on purpose and not yet restarted
}

func (t *tracker) set(st *fedclaimspb.StatusResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.phase, t.round = st.GetPhase(), st.GetRound()
	switch st.GetState() {
	case fedclaimspb.StatusResponse_STATE_TRAINING:
		n := len(st.GetHistory()) + 1
		if _, ok := t.begun[n]; !ok {
			t.begun[n] = time.Now()
		}
	case fedclaimspb.StatusResponse_STATE_FINISHED, fedclaimspb.StatusResponse_STATE_STOPPED:
		t.finished = true
	}
}

func (t *tracker) setDown(who string, down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.down[who] = down
}

func (t *tracker) isDown(who string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.down[who]
}

// run runs one scenario on a fresh federation.
func (h *harness) run(ctx context.Context, sc scenario) (*outcome, error) {
	start := time.Now()
	dir := filepath.Join(h.opts.Out, sc.Name)
	res := &Result{Scenario: sc.Name, Fault: sc.Fault, Events: sc.Events, RoundsPlanned: h.opts.Rounds, Dir: dir}
	out := &outcome{Result: res}
	defer func() { res.Seconds = time.Since(start).Seconds() }()

	lk := newLinks()
	defer lk.close()
	f, err := localfed.Prepare(ctx, localfed.Options{
		Dir: dir, Binary: h.opts.Binary, Hospitals: hospitals, Patients: h.opts.Patients, Seed: h.opts.DataSeed,
		Federation: "faults", MinSites: minSites, Threshold: threshold, Rounds: h.opts.Rounds,
		LocalSteps: localSteps, BatchSize: batchSize, MaxLen: maxLen,
		Aggregator: map[string]any{
			"model.hidden": 16, "model.layers": 1, "model.heads": 2, "model.max_len": maxLen,
			"vocabulary.k_floor": 5, "secureagg.preset": string(secureaggPreset), "secureagg.weight_cap": weightCap,
			"round_deadline": roundDeadline.String(), "decrypt_deadline": decryptDeadline.String(),
		},
		SiteAggregator: lk.add,
		Log:            h.opts.Log,
	})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, s := range f.Sites {
		out.sites = append(out.sites, s.ID)
	}
	for _, w := range sc.Whole {
		if _, err := lk.injectAll(out.sites, w.Type, w.Attrs); err != nil {
			return nil, err
		}
	}

	rctx, cancel := context.WithTimeout(ctx, h.opts.RunTimeout)
	defer cancel()
	tr := &tracker{begun: map[int]time.Time{}, down: map[string]bool{}}
	var final *fedclaimspb.StatusResponse
	var runErr error
	if err := f.Start(rctx); err != nil {
		runErr = err
	} else {
		inj := &injector{f: f, links: lk, tr: tr}
		done := make(chan struct{})
		go func() {
			defer close(done)
			inj.run(rctx, sc.Events)
		}()
		final, runErr = drive(rctx, f, tr)
		// A fault still holding (a blackhole) ends on its own; then every site must
		// install the final model and exit.
		<-done
		res.Injected, res.Landed = inj.injected, inj.landed
		if runErr == nil {
			runErr = waitSites(rctx, f)
		}
		if inj.err != nil {
			res.Problems = append(res.Problems, "injecting: "+inj.err.Error())
		}
	}
	if runErr != nil {
		res.Problems = append(res.Problems, runErr.Error())
	}
	f.Close()
	lk.close()
	h.check(f, final, out)
	return out, nil
}

// drive polls the aggregator until the federation finishes, feeding the tracker.
// A process that exits while not killed on purpose ends the run.
func drive(ctx context.Context, f *localfed.Federation, tr *tracker) (*fedclaimspb.StatusResponse, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last *fedclaimspb.StatusResponse
	for {
		if !tr.isDown("aggregator") {
			cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := f.Status(cctx)
			ccancel()
			if err == nil {
				last = st
				tr.set(st)
				switch st.GetState() {
				case fedclaimspb.StatusResponse_STATE_FINISHED:
					return st, nil
				case fedclaimspb.StatusResponse_STATE_STOPPED:
					return st, errors.New("the federation was stopped before its last round")
				}
			}
			if exited(f.Aggregator) && !tr.isDown("aggregator") {
				return last, fmt.Errorf("the aggregator exited: %v (log %s)", f.Aggregator.Err(), f.Aggregator.Log)
			}
		}
		for _, s := range f.Sites {
			if exited(s.Process) && s.Process.Err() != nil && !tr.isDown(s.ID) {
				return last, fmt.Errorf("site %s exited: %v (log %s)", s.ID, s.Process.Err(), s.Process.Log)
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("the federation did not finish (state %v, round %d, %d applied): %w",
				last.GetState(), last.GetRound(), len(last.GetHistory()), ctx.Err())
		case <-tick.C:
		}
	}
}

func exited(p *localfed.Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// waitSites waits for every site agent to install the final model and exit 0.
func waitSites(ctx context.Context, f *localfed.Federation) error {
	for _, s := range f.Sites {
		select {
		case <-s.Process.Done():
			if err := s.Process.Err(); err != nil {
				return fmt.Errorf("site %s exited: %v (log %s)", s.ID, err, s.Process.Log)
			}
		case <-ctx.Done():
			return fmt.Errorf("site %s did not install the final model and exit: %w (log %s)", s.ID, ctx.Err(), s.Process.Log)
		}
	}
	return nil
}

// injector fires a scenario's events, one after another.
type injector struct {
	f     *localfed.Federation
	links *links
	tr    *tracker

	mu       sync.Mutex
	injected int
	landed   []string
	err      error
}

func (in *injector) run(ctx context.Context, events []event) {
	in.landed = make([]string, len(events))
	var wg sync.WaitGroup
	for i, e := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.one(ctx, i, e)
		}()
	}
	wg.Wait()
}

// one fires event e, the i-th, at its point of its round.
func (in *injector) one(ctx context.Context, i int, e event) {
	note := func(s string) {
		in.mu.Lock()
		in.landed[i] = e.String() + ": " + s
		in.mu.Unlock()
	}
	at, ok := in.waitRound(ctx, e.Round)
	if !ok {
		note("not injected (the federation ended first)")
		return
	}
	select {
	case <-ctx.Done():
		note("not injected (the run ended)")
		return
	case <-time.After(time.Until(at.Add(e.Offset))):
	}
	in.tr.mu.Lock()
	phase, round, finished := in.tr.phase, in.tr.round, in.tr.finished
	in.tr.mu.Unlock()
	if finished {
		note("not injected (the federation ended first)")
		return
	}
	note(fmt.Sprintf("round id %d, %s", round, phase))
	in.mu.Lock()
	in.injected++
	in.mu.Unlock()
	if err := in.fire(ctx, e); err != nil {
		in.mu.Lock()
		in.err = errors.Join(in.err, fmt.Errorf("%s %s: %w", e.Kind, e, err))
		in.mu.Unlock()
	}
}

// waitRound waits until the federation's round number n has opened.
func (in *injector) waitRound(ctx context.Context, n int) (time.Time, bool) {
	for {
		in.tr.mu.Lock()
		at, ok := in.tr.begun[n]
		finished := in.tr.finished
		in.tr.mu.Unlock()
		if ok {
			return at, true
		}
		if finished {
			return time.Time{}, false
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (in *injector) fire(ctx context.Context, e event) error {
	hold := func(remove func()) {
		select {
		case <-ctx.Done():
		case <-time.After(e.Hold):
		}
		remove()
	}
	switch e.Kind {
	case Drop:
		remove, err := in.links.inject(e.Site, "timeout", map[string]any{"timeout": dropClose.Milliseconds()})
		if err != nil {
			return err
		}
		hold(remove)
	case Reset:
		remove, err := in.links.inject(e.Site, "reset_peer", map[string]any{"timeout": 0})
		if err != nil {
			return err
		}
		hold(remove)
	case Blackhole:
		// timeout 0: nothing passes and nothing is closed until the toxic is
		// removed, which closes the connections it held.
		remove, err := in.links.inject(e.Site, "timeout", map[string]any{"timeout": 0})
		if err != nil {
			return err
		}
		hold(remove)
	case KillSite:
		s := in.f.Site(e.Site)
		in.tr.setDown(e.Site, true)
		s.Process.Kill()
		hold(func() {})
		err := in.f.RestartSite(e.Site)
		in.tr.setDown(e.Site, false)
		return err
	case KillAggregator:
		in.tr.setDown("aggregator", true)
		in.f.Aggregator.Kill()
		hold(func() {})
		err := in.f.RestartAggregator(ctx)
		in.tr.setDown("aggregator", false)
		return err
	default:
		return fmt.Errorf("unknown fault %q", e.Kind)
	}
	return nil
}
