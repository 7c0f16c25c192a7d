package localfed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/site"
)

// BenchOptions describe one scale measurement (`fedclaims bench federation`): an
// aggregator process and Sites site agents, all of them goroutines of the calling
// process, on loopback, through Rounds rounds of a small model.
type BenchOptions struct {
	// Dir receives the federation (as Options.Dir); it must be empty or absent.
	Dir string
	// Binary is the fedclaims executable the aggregator runs as; empty means
	// os.Executable().
	Binary string
	// Sites is the number of site agents, 3 to secureagg.MaxSites.
	Sites int
	// Threshold and MinSites default to max(2, Sites/2) and Threshold+1.
	Threshold, MinSites int
	// Rounds defaults to 2; Patients (the mean per site) to 40; LocalSteps to 1;
	// BatchSize to 4.
	Rounds, Patients, LocalSteps, BatchSize int
	// Hidden, Layers, Heads and MaxLen shape the encoder; they default to 16, 1, 2
	// and 32 (a model of a few tens of thousands of parameters at the vocabulary
	// of the synthetic sites).
	Hidden, Layers, Heads, MaxLen int
	// Preset is the secure-aggregation parameter preset; empty means N12Q60.
	Preset secureagg.Preset
	Seed   uint64
	// RoundDeadline bounds a round's upload collection; 0 means 10 minutes. A round
	// ends as soon as every site has uploaded, so it is a bound, not a wait.
	RoundDeadline time.Duration
	// AggregatorEnv is added to the aggregator's environment (GODEBUG=gctrace=1,
	// GOMEMLIMIT=..., for a diagnosis).
	AggregatorEnv []string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// BenchResult is one measurement, printed as one JSON line.
type BenchResult struct {
	Name      string `json:"name"`
	Sites     int    `json:"sites"`
	Threshold int    `json:"threshold"`
	MinSites  int    `json:"min_sites"`
	// Params is the number of model parameters every site encrypts and the
	// aggregator sums, per round.
	Params int    `json:"params"`
	Preset string `json:"secureagg_preset"`
	// AggregatorPeakRSSMB is the aggregator process's peak resident set (VmHWM),
	// in MiB, read when the federation finished.
	AggregatorPeakRSSMB float64 `json:"aggregator_peak_rss_mb"`
	// AggregatorSetupPeakRSSMB is the same peak read when the first round was seen
	// under way: enrolment, key setup (the public key shares and, for t < N, the
	// N x N sealed Shamir shares relayed) and the vocabulary.
	AggregatorSetupPeakRSSMB float64 `json:"aggregator_setup_peak_rss_mb"`
	// AggregatorSetupHeapMB and AggregatorRoundsHeapMB are the largest Go heap the
	// aggregator's garbage collector reported (GODEBUG=gctrace=1) before the first
	// round started and from then on: what the process needed, without what the
	// runtime had not yet returned to the system.
	AggregatorSetupHeapMB  float64 `json:"aggregator_setup_heap_mb"`
	AggregatorRoundsHeapMB float64 `json:"aggregator_rounds_heap_mb"`
	// RoundSeconds is the mean duration of the applied rounds as the aggregator
	// records them (assignment to the published model); Rounds how many there were.
	RoundSeconds float64 `json:"round_seconds"`
	Rounds       int     `json:"rounds"`
	// Contributors is the fewest contributions of any round.
	Contributors int `json:"min_contributors"`
	// UploadBytesPerRound is the mean over rounds of the encrypted bytes received.
	UploadBytesPerRound float64 `json:"upload_bytes_per_round"`
	// WallSeconds runs from starting the aggregator to the last site's exit: key
	// setup, the vocabulary and the rounds.
	WallSeconds float64 `json:"wall_seconds"`
}

func (o *BenchOptions) setDefaults() error {
	if o.Sites < 3 || o.Sites > secureagg.MaxSites {
		return fmt.Errorf("localfed: bench: %d sites: want 3 to %d (secureagg.MaxSites)", o.Sites, secureagg.MaxSites)
	}
	if o.Threshold == 0 {
		o.Threshold = max(2, o.Sites/2)
	}
	if o.MinSites == 0 {
		o.MinSites = o.Threshold + 1
	}
	if o.Threshold < 1 || o.MinSites < o.Threshold+1 || o.MinSites > o.Sites {
		return fmt.Errorf("localfed: bench: threshold %d, min_sites %d for %d sites: want threshold+1 <= min_sites <= sites", o.Threshold, o.MinSites, o.Sites)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Rounds, 2)
	def(&o.Patients, 40)
	def(&o.LocalSteps, 1)
	def(&o.BatchSize, 4)
	def(&o.Hidden, 16)
	def(&o.Layers, 1)
	def(&o.Heads, 2)
	def(&o.MaxLen, 32)
	if o.Preset == "" {
		o.Preset = secureagg.PresetN12Q60
	}
	if _, err := secureagg.NewParameters(o.Preset); err != nil {
		return fmt.Errorf("localfed: bench: %w", err)
	}
	if o.RoundDeadline == 0 {
		o.RoundDeadline = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Bench runs one federation of o.Sites sites to its end and measures the
// aggregator: it runs as a process of its own, so that its peak resident set is
// its own, while the site agents run as goroutines of this process, each with its
// own certificate, state directory and synthetic data, as separate processes would
// (they share nothing but the process).
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	f, err := Prepare(ctx, Options{
		Dir: o.Dir, Binary: o.Binary, Hospitals: o.Sites, Patients: o.Patients, Seed: o.Seed,
		Federation: "bench", MinSites: o.MinSites, Threshold: o.Threshold,
		Rounds: o.Rounds, LocalSteps: o.LocalSteps, BatchSize: o.BatchSize, MaxLen: o.MaxLen,
		Aggregator: map[string]any{
			"model.hidden": o.Hidden, "model.layers": o.Layers, "model.heads": o.Heads, "model.max_len": o.MaxLen,
			"vocabulary.k_floor": 5, "secureagg.preset": string(o.Preset),
			// Sites of a few dozen patients: a cap near their size keeps their weights
			// near 1 and the decrypted mean's noise small.
			"secureagg.weight_cap": o.Patients,
			"round_deadline":       o.RoundDeadline.String(),
			"decrypt_deadline":     o.RoundDeadline.String(),
		},
		Log: o.Log,
	})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// gctrace's lines go to the aggregator's log, between its own, where heapPeaks
	// reads them; a GODEBUG in AggregatorEnv replaces this one.
	f.Aggregator.env = append(f.Aggregator.env, "GODEBUG=gctrace=1")
	f.Aggregator.env = append(f.Aggregator.env, o.AggregatorEnv...)

	agents := make([]*site.Agent, len(f.Sites))
	var logs []*os.File
	defer func() {
		for _, a := range agents {
			if a != nil {
				_ = a.Close()
			}
		}
		for _, l := range logs {
			_ = l.Close()
		}
	}()
	for i, s := range f.Sites {
		cfg, err := LoadSiteConfig(s.Config)
		if err != nil {
			return nil, fmt.Errorf("localfed: bench: site %s: %w", s.ID, err)
		}
		lf, err := os.Create(filepath.Join(f.Dir, "logs", "site-"+s.ID+".log"))
		if err != nil {
			return nil, fmt.Errorf("localfed: bench: %w", err)
		}
		logs = append(logs, lf)
		if agents[i], err = site.New(cfg, slog.New(slog.NewJSONHandler(lf, nil))); err != nil {
			return nil, fmt.Errorf("localfed: bench: site %s: %w", s.ID, err)
		}
	}

	start := time.Now()
	if err := f.Aggregator.start(); err != nil {
		return nil, err
	}
	if err := f.waitAggregator(ctx); err != nil {
		return nil, err
	}
	o.Log.Info("aggregator up; starting the sites", "sites", o.Sites, "threshold", o.Threshold, "min_sites", o.MinSites)

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(agents))
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(actx); err != nil {
				errs <- fmt.Errorf("site %s: %w (log %s)", f.Sites[i].ID, err, logs[i].Name())
			}
		}()
	}
	sitesDone := make(chan struct{})
	go func() { wg.Wait(); close(sitesDone) }()

	st, setupPeak, err := f.benchWait(ctx, errs, sitesDone, o.Log)
	if err != nil {
		cancel()
		<-sitesDone
		return nil, err
	}
	wall := time.Since(start)
	// The aggregator keeps running after the federation finished: its peak so far is
	// the run's.
	peak, err := PeakRSS(f.Aggregator.Pid())
	if err != nil {
		return nil, err
	}
	cfg, err := model.ReadConfig(f.Sites[0].FinalModel())
	if err != nil {
		return nil, fmt.Errorf("localfed: bench: the final model: %w", err)
	}
	res := &BenchResult{
		Name: "federation", Sites: o.Sites, Threshold: o.Threshold, MinSites: o.MinSites,
		Params: cfg.Params(), Preset: string(o.Preset),
		AggregatorPeakRSSMB:      float64(peak) / (1 << 20),
		AggregatorSetupPeakRSSMB: float64(setupPeak) / (1 << 20),
		WallSeconds:              wall.Seconds(),
	}
	if res.AggregatorSetupHeapMB, res.AggregatorRoundsHeapMB, err = heapPeaks(f.Aggregator.Log); err != nil {
		return nil, err
	}
	var secs, bytes float64
	for _, h := range st.GetHistory() {
		secs += h.GetDuration().AsDuration().Seconds()
		bytes += float64(h.GetUploadBytes())
		if n := len(h.GetContributors()); res.Rounds == 0 || n < res.Contributors {
			res.Contributors = n
		}
		res.Rounds++
	}
	if res.Rounds > 0 {
		res.RoundSeconds = secs / float64(res.Rounds)
		res.UploadBytesPerRound = bytes / float64(res.Rounds)
	}
	return res, nil
}

// benchWait follows the aggregator's status until the federation finishes and
// every site agent has installed the final model and returned. A site agent's
// error, the aggregator's exit, the federation stopping or ctx ending is an error.
// It returns the last status and the aggregator's peak resident set when the first
// round was seen training.
func (f *Federation) benchWait(ctx context.Context, errs <-chan error, sitesDone <-chan struct{}, log *slog.Logger) (st *fedclaimspb.StatusResponse, setupPeak int64, err error) {
	c, conn, err := f.Admin()
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	finished := false
	lastPhase := ""
	for {
		if !finished {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := c.Status(cctx, &fedclaimspb.StatusRequest{Envelope: f.Envelope()})
			ccancel()
			if err == nil {
				st = s
				phase := fmt.Sprintf("%v round %d %s", st.GetState(), st.GetRound(), st.GetPhase())
				if phase != lastPhase {
					log.Info("aggregator", "state", st.GetState().String(), "round", st.GetRound(), "phase", st.GetPhase(), "applied", len(st.GetHistory()))
					lastPhase = phase
				}
				if setupPeak == 0 && (st.GetState() == fedclaimspb.StatusResponse_STATE_TRAINING || st.GetState() == fedclaimspb.StatusResponse_STATE_FINISHED) {
					if setupPeak, err = PeakRSS(f.Aggregator.Pid()); err != nil {
						return st, 0, err
					}
				}
				switch st.GetState() {
				case fedclaimspb.StatusResponse_STATE_FINISHED:
					finished = true
				case fedclaimspb.StatusResponse_STATE_STOPPED:
					return st, setupPeak, errors.New("localfed: bench: the federation was stopped before its last round")
				}
			}
		}
		select {
		case err := <-errs:
			return st, setupPeak, fmt.Errorf("localfed: bench: %w", err)
		case <-f.Aggregator.Done():
			return st, setupPeak, f.Aggregator.exitError()
		case <-sitesDone:
			if finished {
				return st, setupPeak, nil
			}
			// Every agent returned without an error before the aggregator said
			// finished: read the status once more.
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := c.Status(cctx, &fedclaimspb.StatusRequest{Envelope: f.Envelope()})
			ccancel()
			if err == nil && s.GetState() == fedclaimspb.StatusResponse_STATE_FINISHED {
				return s, setupPeak, nil
			}
			return st, setupPeak, fmt.Errorf("localfed: bench: every site agent returned before the federation finished (status %v, %v)", s.GetState(), err)
		case <-ctx.Done():
			return st, setupPeak, fmt.Errorf("localfed: bench: waiting for the federation (state %v, round %d): %w", st.GetState(), st.GetRound(), ctx.Err())
		case <-tick.C:
		}
	}
}

// gcLine matches the heap sizes of a gctrace line: at the start of the cycle, at
// its end, and live after it ("12->14->9 MB").
var gcLine = regexp.MustCompile(`^gc \d+ .* (\d+)->(\d+)->(\d+) MB`)

// heapPeaks reads the largest heap the aggregator's gctrace lines report before the
// log's first "round started" and after it, in MiB (gctrace's MB are 2^20 bytes).
func heapPeaks(log string) (setup, rounds float64, err error) {
	file, err := os.Open(log)
	if err != nil {
		return 0, 0, fmt.Errorf("localfed: bench: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	peak := &setup
	for sc.Scan() {
		line := sc.Text()
		if peak == &setup && strings.Contains(line, `"msg":"round started"`) {
			peak = &rounds
			continue
		}
		m := gcLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, v := range m[1:3] {
			if mb, err := strconv.ParseFloat(v, 64); err == nil && mb > *peak {
				*peak = mb
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("localfed: bench: %s: %w", log, err)
	}
	return setup, rounds, nil
}

// PeakRSS returns a process's peak resident set size in bytes (VmHWM of
// /proc/PID/status; Linux only).
func PeakRSS(pid int) (int64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("localfed: peak RSS: no process")
	}
	file, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("localfed: peak RSS: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("localfed: peak RSS: unexpected line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("localfed: peak RSS: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("localfed: peak RSS: %w", err)
	}
	return 0, fmt.Errorf("localfed: peak RSS: no VmHWM in /proc/%d/status", pid)
}
