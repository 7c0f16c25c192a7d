package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/site"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// federation is an aggregator and its site agents running in this process, over
// real gRPC with mutual TLS on loopback.
type federation struct {
	t     *testing.T
	pki   string
	data  string
	ids   []string
	agg   *runningAggregator
	sites map[string]*runningSite
}

type runningSite struct {
	cfg    site.Config
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned err
	err    error
}

// newFederation synthesises one small hospital per id (a general hospital, a cancer
// centre, a clinic, in turn), issues the certificates and starts the aggregator with
// cfg (from aggregatorConfig, adjusted by the caller); it starts no site.
func newFederation(t *testing.T, ids []string, adjust func(*aggregator.Config)) *federation {
	t.Helper()
	pki := consortium(t, ids...)
	data := filepath.Join(t.TempDir(), "data")
	g, err := synth.New(synth.Config{Hospitals: len(ids), Patients: 120, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Write(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	for i, h := range g.Hospitals() {
		if h.ID != ids[i] {
			t.Fatalf("synthetic hospital %d is %s, want %s", i, h.ID, ids[i])
		}
	}
	cfg := aggregatorConfig(t, pki, ids)
	if adjust != nil {
		adjust(&cfg)
	}
	return &federation{t: t, pki: pki, data: data, ids: ids, agg: startAggregator(t, cfg), sites: map[string]*runningSite{}}
}

// siteConfig is site id's agent configuration; its state lives in the federation's
// temporary directory so that a restarted agent finds it.
func (f *federation) siteConfig(id string) site.Config {
	state := filepath.Join(filepath.Dir(f.data), "state", id)
	return site.Config{
		SiteID: id, Federation: "e2e", Aggregator: site.AggregatorConfig{Address: f.agg.addr, ServerName: "127.0.0.1"},
		CertsDir: f.pki, Data: []string{filepath.Join(f.data, id)},
		StateDir: state, AuditLog: filepath.Join(state, "audit.jsonl"),
		Threads: 1, Train: site.TrainConfig{MaxLen: 32}, ExitOnFinal: true, Seed: 1,
		Backoff: site.BackoffConfig{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	}
}

// startSite starts (or restarts) site id's agent.
func (f *federation) startSite(id string) {
	f.t.Helper()
	cfg := f.siteConfig(id)
	a, err := site.New(cfg, testLog(f.t, id))
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSite{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		rs.err = a.Run(ctx)
		a.Close()
		close(rs.done)
	}()
	f.sites[id] = rs
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-rs.done:
		case <-time.After(30 * time.Second):
		}
	})
}

// kill stops site id's agent where it stands and waits for it to let go.
func (f *federation) kill(id string) {
	rs := f.sites[id]
	rs.cancel()
	select {
	case <-rs.done:
	case <-time.After(30 * time.Second):
		f.t.Fatalf("site %s did not stop", id)
	}
}

// waitSites waits for the agents of ids to install the final model and return.
func (f *federation) waitSites(ctx context.Context, ids ...string) {
	f.t.Helper()
	for _, id := range ids {
		select {
		case <-f.sites[id].done:
			if err := f.sites[id].err; err != nil {
				f.t.Fatalf("site %s: %v", id, err)
			}
		case <-ctx.Done():
			f.t.Fatalf("site %s did not finish: %v", id, ctx.Err())
		}
	}
}

func (f *federation) status(ctx context.Context) *fedclaimspb.StatusResponse {
	f.t.Helper()
	st, err := fedclaimspb.NewAdminClient(dial(f.t, f.agg.addr, clientTLS(f.t, certs.AdminFiles(f.pki)))).
		Status(ctx, &fedclaimspb.StatusRequest{Envelope: &fedclaimspb.Envelope{FederationId: "e2e"}})
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *federation) state(id string) string { return f.siteConfig(id).StateDir }

// replay recomputes in plaintext what the federation computed under encryption in
// the round that went from global model prev (version) to next: every
// contributor's local training from the same model, data and seed, clipped and
// weighted as the agents do, averaged with FedAvg. It returns the largest
// difference from next and the secure-aggregation error bound for that average.
func replay(t *testing.T, cfg aggregator.Config, f *federation, vocab *tokenizer.Vocab, prev, next *model.Model, version uint64, contributors []string) (maxErr, unweighted, bound, moved float64) {
	t.Helper()
	enc, err := tokenizer.NewEncoder(vocab, min(f.siteConfig(contributors[0]).Train.MaxLen, prev.Config().MaxLen))
	if err != nil {
		t.Fatal(err)
	}
	w0 := prev.Flatten()
	sum, plain := make([]float64, len(w0)), make([]float64, len(w0))
	var wsum float64
	for _, id := range contributors {
		src, err := claims.Open(filepath.Join(f.data, id))
		if err != nil {
			t.Fatal(err)
		}
		// The agent trains on its training split only.
		seqs, _, err := model.ReadSequences(context.Background(), tasks.NewPretrainingReader(src, f.siteConfig(id).SplitSalt), enc)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		res, err := site.Train(context.Background(), prev, seqs, site.LocalTraining{
			Steps: cfg.Local.Steps, Epochs: cfg.Local.Epochs, Batch: cfg.Local.BatchSize, LR: cfg.Local.LearningRate,
			Mu: cfg.Local.FedProxMu, Seed: aggregator.TrainSeed(cfg.Model.Seed, version, id),
		})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Local.ClipNorm > 0 {
			secureagg.Clip(res.Delta, cfg.Local.ClipNorm)
		}
		w := secureagg.Weight(float64(res.Samples), cfg.SecureAgg.WeightCap)
		for i, d := range res.Delta {
			sum[i] += w * float64(d)
			plain[i] += float64(d)
		}
		wsum += w
	}
	got := next.Flatten()
	if len(got) != len(w0) {
		t.Fatalf("model sizes %d and %d", len(w0), len(got))
	}
	for i := range got {
		want := float64(w0[i]) + cfg.Server.LearningRate*sum[i]/wsum
		maxErr = max(maxErr, math.Abs(float64(got[i])-want))
		// What an aggregator that ignored the sites' weights would have published.
		naive := float64(w0[i]) + cfg.Server.LearningRate*plain[i]/float64(len(contributors))
		unweighted = max(unweighted, math.Abs(float64(got[i])-naive))
		moved = max(moved, math.Abs(float64(got[i])-float64(w0[i])))
	}
	// The decryption's flooding noise has standard deviation 2^-20 on the weighted
	// sum (secureagg's presets); dividing by the total weight scales it. Eight
	// deviations bound the largest of the model's values; float32 rounding of the
	// stored models adds a little.
	bound = 8*math.Pow(2, -20)/wsum + 4e-7*(1+maxAbs(w0))
	return maxErr, unweighted, bound, moved
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

// Three sites, two rounds, every update threshold-encrypted: the published models
// equal a plaintext FedAvg of the same local updates within the secure-aggregation
// error bound; every upload the aggregator audited is one a site audited sending,
// byte for byte; and both audit chains verify, and fail at an altered entry.
func TestThreeSitesTwoRounds(t *testing.T) {
	ids := []string{"h01", "h02", "h03"}
	f := newFederation(t, ids, func(c *aggregator.Config) {
		// aggregatorConfig's weight cap leaves the sites weights below 1 that differ,
		// so the weighting is checked.
		c.Local.LearningRate = 1e-2
	})
	for _, id := range ids {
		f.startSite(id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f.waitSites(ctx, ids...)
	st := f.status(ctx)
	if st.GetState() != fedclaimspb.StatusResponse_STATE_FINISHED {
		t.Fatalf("aggregator state %v (%s) after the sites finished", st.GetState(), st.GetPhase())
	}
	if len(st.GetHistory()) != 2 {
		t.Fatalf("%d rounds in the history, want 2", len(st.GetHistory()))
	}
	for _, h := range st.GetHistory() {
		if got := slices.Sorted(slices.Values(h.GetContributors())); !slices.Equal(got, ids) {
			t.Errorf("round %d contributors %v, want %v", h.GetRound(), got, ids)
		}
	}

	// Every site installed the same final model.
	var final []byte
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(f.state(id), "final", model.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		if final == nil {
			final = b
		} else if !bytes.Equal(b, final) {
			t.Errorf("site %s installed a different final model", id)
		}
	}

	// Replay both rounds in plaintext. The initial model is the configured preset
	// at the federated vocabulary and the model seed; the sites keep the model they
	// trained the last round from (global) and the final one.
	cfg := f.agg.cfg
	vocab, err := tokenizer.ReadFile(filepath.Join(f.state("h01"), "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := cfg.ModelConfig(vocab.Len())
	if err != nil {
		t.Fatal(err)
	}
	g0, err := model.New(mc, cfg.Model.Seed)
	if err != nil {
		t.Fatal(err)
	}
	g1, err := model.Load(filepath.Join(f.state("h01"), "global"))
	if err != nil {
		t.Fatal(err)
	}
	g2, err := model.Load(filepath.Join(f.state("h01"), "final"))
	if err != nil {
		t.Fatal(err)
	}
	for i, pair := range [][2]*model.Model{{g0, g1}, {g1, g2}} {
		maxErr, unweighted, bound, moved := replay(t, cfg, f, vocab, pair[0], pair[1], uint64(i), ids)
		t.Logf("round %d: largest difference from plaintext FedAvg %.3g (from an unweighted mean %.3g), bound %.3g, largest update %.3g",
			i+1, maxErr, unweighted, bound, moved)
		if maxErr > bound {
			t.Errorf("round %d: the published model differs from plaintext FedAvg by %.3g, above the bound %.3g", i+1, maxErr, bound)
		}
		if unweighted < 10*bound {
			t.Errorf("round %d: an unweighted mean is within %.3g of the published model: the sites' weights are not being checked", i+1, unweighted)
		}
		if moved < 100*bound {
			t.Errorf("round %d: the model moved at most %.3g, too little for the comparison to mean anything (bound %.3g)", i+1, moved, bound)
		}
	}

	// What the aggregator received is what the sites sent.
	received := map[string]string{}
	for _, e := range auditEntries(t, f.agg.auditPath()) {
		if e.Type == audit.Upload && e.Fields["kind"] == "encrypted_update" {
			received[fmt.Sprint(e.Round, "/", e.Site)] = e.Fields["sha256"]
		}
	}
	if len(received) != 2*len(ids) {
		t.Errorf("the aggregator audited %d encrypted updates, want %d", len(received), 2*len(ids))
	}
	for _, id := range ids {
		for _, e := range auditEntries(t, f.siteConfig(id).AuditLog) {
			if e.Type != audit.Upload || e.Fields["kind"] != "encrypted_update" {
				continue
			}
			if got := received[fmt.Sprint(e.Round, "/", id)]; got != e.Fields["sha256"] {
				t.Errorf("round %d site %s: sent sha256 %s, the aggregator audited %q", e.Round, id, e.Fields["sha256"], got)
			}
		}
	}

	t.Run("audit log with one byte changed", func(t *testing.T) {
		for _, path := range []string{f.agg.auditPath(), f.siteConfig("h02").AuditLog} {
			tamperEveryWay(t, path)
		}
	})
}

// tamperEveryWay checks that a copy of the log at path with one byte changed in
// entry k fails verification at entry k, for an entry near the start, the middle
// and the end.
func tamperEveryWay(t *testing.T, path string) {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(bytes.NewReader(orig)); err != nil {
		t.Fatalf("%s does not verify untouched: %v", path, err)
	}
	lines := bytes.SplitAfter(orig, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) < 3 {
		t.Fatalf("%s has %d entries", path, len(lines))
	}
	for _, k := range []int{0, len(lines) / 2, len(lines) - 1} {
		// Change one character of the entry's time, a field every entry has and
		// that stays valid JSON, so that only the chain can notice.
		line := lines[k]
		i := bytes.Index(line, []byte(`"time":"`)) + len(`"time":"`) + 3
		changed := bytes.Clone(orig)
		off := 0
		for _, l := range lines[:k] {
			off += len(l)
		}
		if changed[off+i] == '9' {
			changed[off+i] = '8'
		} else {
			changed[off+i]++
		}
		_, err := audit.Verify(bytes.NewReader(changed))
		var ae *audit.Error
		if !errors.As(err, &ae) {
			t.Errorf("%s with entry %d altered: %v, want an *audit.Error", filepath.Base(path), k+1, err)
			continue
		}
		if ae.Line != k+1 {
			t.Errorf("%s with entry %d altered: verification names line %d (%v)", filepath.Base(path), k+1, ae.Line, err)
		}
		if want := strconv.Itoa(k + 1); ae.Seq != 0 && strconv.FormatUint(ae.Seq, 10) != want {
			t.Errorf("%s with entry %d altered: verification names seq %d", filepath.Base(path), k+1, ae.Seq)
		}
	}
}

// A site killed while it trains leaves the round to the others: the round closes at
// its deadline with the min_sites that uploaded and is decrypted by them. The site,
// restarted, rejoins and ends with the same final model as the others.
func TestSiteKilledMidRound(t *testing.T) {
	ids := []string{"h01", "h02", "h03"}
	f := newFederation(t, ids, func(c *aggregator.Config) {
		// Long enough local training that h03 is still at it when it is killed.
		c.Local.Steps = 40
		c.RoundDeadline = 6 * time.Second
	})
	for _, id := range ids {
		f.startSite(id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h03 := f.siteConfig("h03").AuditLog
	waitFor(t, time.Minute, "h03 to begin round 1", func() bool { return hasEntry(h03, audit.RoundStart, 1) })
	f.kill("h03")
	if hasEntry(h03, audit.Upload, 1) {
		t.Fatal("h03 uploaded its round-1 update before it could be killed; the test needs longer local training")
	}

	var st *fedclaimspb.StatusResponse
	waitFor(t, time.Minute, "round 1 to complete without h03", func() bool {
		st = f.status(ctx)
		return len(st.GetHistory()) >= 1
	})
	if got := slices.Sorted(slices.Values(st.GetHistory()[0].GetContributors())); !slices.Equal(got, []string{"h01", "h02"}) {
		t.Fatalf("round 1 contributors %v, want h01 and h02", got)
	}
	if hasEntry(h03, audit.DecryptionShare, 1) {
		t.Error("h03 released a decryption share for a round it did not contribute to")
	}

	f.startSite("h03")
	f.waitSites(ctx, ids...)
	st = f.status(ctx)
	if st.GetState() != fedclaimspb.StatusResponse_STATE_FINISHED || len(st.GetHistory()) != 2 {
		t.Fatalf("state %v with %d rounds applied, want finished after 2", st.GetState(), len(st.GetHistory()))
	}
	t.Logf("round 2 contributors after h03 rejoined: %v", st.GetHistory()[1].GetContributors())
	want, err := os.ReadFile(filepath.Join(f.state("h01"), "final", model.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(f.state("h03"), "final", model.ModelFile))
	if err != nil {
		t.Fatalf("h03 rejoined but has no final model: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Error("h03's final model differs from h01's")
	}
}

// The aggregator stopped after a round resumes from its checkpoint on restart; the
// sites reconnect by themselves; no round id is used twice and no site releases two
// decryption shares under one id; and the final model matches, within the
// secure-aggregation error, a federation with the same seeds that ran without a
// restart.
func TestAggregatorRestartResumes(t *testing.T) {
	ids := []string{"h01", "h02", "h03"}
	three := func(c *aggregator.Config) {
		c.Rounds = 3
		// Rounds long enough that the restart falls between round 1 and the end.
		c.Local.Steps = 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The reference: the same federation without a restart.
	ref := newFederation(t, ids, three)
	for _, id := range ids {
		ref.startSite(id)
	}
	ref.waitSites(ctx, ids...)

	f := newFederation(t, ids, three)
	for _, id := range ids {
		f.startSite(id)
	}
	var before *fedclaimspb.StatusResponse
	waitFor(t, time.Minute, "round 1 to be applied", func() bool {
		before = f.status(ctx)
		return len(before.GetHistory()) >= 1
	})
	if err := f.agg.stop(); err != nil {
		t.Fatalf("aggregator stop: %v", err)
	}

	cfg, addr := f.agg.cfg, f.agg.addr
	time.Sleep(300 * time.Millisecond) // the sites see it gone and back off
	f.agg = startAggregatorAt(t, cfg, addr)
	after := f.status(ctx)
	if len(after.GetHistory()) < len(before.GetHistory()) {
		t.Fatalf("restarted with %d rounds applied, had %d", len(after.GetHistory()), len(before.GetHistory()))
	}
	if n := len(after.GetHistory()); n >= 3 {
		t.Fatalf("all %d rounds were applied before the restart; the test needs longer rounds", n)
	}

	f.waitSites(ctx, ids...)
	st := f.status(ctx)
	if st.GetState() != fedclaimspb.StatusResponse_STATE_FINISHED || len(st.GetHistory()) != 3 {
		t.Fatalf("state %v with %d rounds applied, want finished after 3", st.GetState(), len(st.GetHistory()))
	}
	var rounds []uint64
	for _, h := range st.GetHistory() {
		rounds = append(rounds, h.GetRound())
	}
	if !slices.IsSorted(rounds) || len(slices.Compact(slices.Clone(rounds))) != len(rounds) {
		t.Errorf("applied round ids %v: not increasing", rounds)
	}
	t.Logf("applied round ids across the restart: %v", rounds)
	for _, id := range ids {
		shared := map[uint64]int{}
		for _, e := range auditEntries(t, f.siteConfig(id).AuditLog) {
			if e.Type == audit.DecryptionShare {
				shared[e.Round]++
			}
		}
		for r, n := range shared {
			if n > 1 {
				t.Errorf("site %s released %d decryption shares for round %d", id, n, r)
			}
		}
	}
	// The aggregator's chain runs on across the restart.
	auditEntries(t, f.agg.auditPath())

	// The resumed aggregator went on from its checkpoint: the last round, replayed
	// in plaintext from the model the sites trained it from, with the seeds of model
	// version 2, gives the published final model.
	vocab, err := tokenizer.ReadFile(filepath.Join(f.state("h01"), "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := model.Load(filepath.Join(f.state("h01"), "final"))
	if err != nil {
		t.Fatal(err)
	}
	g2, err := model.Load(filepath.Join(f.state("h01"), "global"))
	if err != nil {
		t.Fatal(err)
	}
	last := st.GetHistory()[2].GetContributors()
	maxErr, _, bound, _ := replay(t, cfg, f, vocab, g2, a, 2, last)
	if maxErr > bound {
		t.Errorf("the last round after the restart differs from its plaintext replay by %.3g (bound %.3g)", maxErr, bound)
	}

	// Same seeds, same federation: the first round's local training is identical bit
	// for bit with and without the restart (the sites audit each update's norm and
	// loss), and the final models differ only by the decryption noise each round
	// adds, carried through the later rounds' training.
	firstRound := func(fed *federation, id string) string {
		for _, e := range auditEntries(t, fed.siteConfig(id).AuditLog) {
			if e.Type == audit.Upload && e.Round == 1 && e.Fields["delta_norm"] != "" && e.Fields["train_loss"] != "" {
				return e.Fields["delta_norm"] + " " + e.Fields["train_loss"]
			}
		}
		return ""
	}
	for _, id := range ids {
		if x, y := firstRound(f, id), firstRound(ref, id); x == "" || x != y {
			t.Errorf("site %s round 1: update norm and loss %q with the restart, %q without", id, x, y)
		}
	}
	b, err := model.Load(filepath.Join(ref.state("h01"), "final"))
	if err != nil {
		t.Fatal(err)
	}
	var diff, d2, m2 float64
	for i, x := range a.Flatten() {
		d := float64(x) - float64(b.Params()[i])
		diff = max(diff, math.Abs(d))
		d2 += d * d
		m := float64(x) - float64(g2.Params()[i])
		m2 += m * m
	}
	rel := math.Sqrt(d2 / m2)
	t.Logf("final models with and without a restart: largest difference %.3g, L2 difference %.3g of the last round's update", diff, rel)
	if rel > 0.05 {
		t.Errorf("final models with and without a restart differ by %.3g of the last round's update", rel)
	}
}
