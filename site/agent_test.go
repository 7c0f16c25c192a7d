package site

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tokenizer"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestFederation runs the real aggregator and three agents over loopback mutual TLS
// with real ciphertexts through key setup, the vocabulary and two rounds, restarting
// one agent between rounds, and checks what each site keeps: the final checkpoint
// `fedclaims eval --model` loads, the released rounds and an intact audit log.
func TestFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("federation over loopback")
	}
	sites := []string{"h1", "h2", "h3"}
	pki := consortium(t, sites...)
	root := t.TempDir()
	g, err := synth.New(synth.Config{Hospitals: len(sites), Patients: 60, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	addr := startAggregator(t, ctx, pki, sites, filepath.Join(root, "aggregator"))
	cfgs := make([]Config, len(sites))
	for i, id := range sites {
		if _, err := g.WriteHospital(ctx, filepath.Join(root, "data"), i); err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(root, "data", g.Hospitals()[i].ID)
		cfgs[i] = Config{SiteID: id, Federation: "fed", Aggregator: AggregatorConfig{Address: addr, ServerName: "127.0.0.1"}, CertsDir: pki,
			Data: []string{data}, StateDir: filepath.Join(root, "state", id), AuditLog: filepath.Join(root, "state", id, "audit.jsonl"),
			Threads: 1, Train: TrainConfig{MaxLen: 32}, ExitOnFinal: true, Seed: 1, Backoff: BackoffConfig{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}}
	}
	run := func(c Config) error {
		a, err := New(c, slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err != nil {
			return err
		}
		err = a.Run(ctx)
		if cerr := a.Close(); err == nil {
			err = cerr
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(sites))
	for i := range sites[:2] {
		wg.Go(func() { errs[i] = run(cfgs[i]) })
	}
	// The third site stops as soon as it has uploaded its first update, and comes
	// back: it must resume from its state directory and finish with the others.
	first, stopFirst := context.WithCancel(ctx)
	go func() {
		for first.Err() == nil {
			if b, err := os.ReadFile(cfgs[2].AuditLog); err == nil && strings.Contains(string(b), `"type":"upload"`) {
				stopFirst()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	a3, err := New(cfgs[2], slog.New(slog.NewTextHandler(logWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a3.Run(first); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped agent: %v", err)
	}
	a3.Close()
	errs[2] = run(cfgs[2])
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("site %s: %v", sites[i], err)
		}
	}

	// Each agent left the heartbeat `fedclaims health --site-state` reads: its last
	// contact on an open work stream, at or after the stream opened and an assignment.
	for _, c := range cfgs {
		h, err := ReadHeartbeat(c.StateDir)
		if err != nil || h.SiteID != c.SiteID || h.Federation != "fed" || h.LastMessage.IsZero() || h.LastContact.Before(h.StreamOpen) {
			t.Fatalf("site %s heartbeat %+v, %v", c.SiteID, h, err)
		}
	}
	var published []byte
	for _, c := range cfgs {
		final := filepath.Join(c.StateDir, finalDir)
		b, err := os.ReadFile(filepath.Join(final, model.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		if published == nil {
			published = b
		} else if !bytes.Equal(b, published) {
			t.Fatalf("site %s installed another final model", c.SiteID)
		}
		m, err := model.Load(final)
		if err != nil {
			t.Fatalf("site %s final model: %v", c.SiteID, err)
		}
		v, err := tokenizer.ReadFile(filepath.Join(final, model.VocabFile))
		if err != nil || v.Len() != m.Config().Vocab {
			t.Fatalf("site %s final vocabulary: %v", c.SiteID, err)
		}
		st, _ := openState(c.StateDir)
		rounds, err := st.releasedRounds("fed")
		if err != nil {
			t.Fatal(err)
		}
		if len(rounds) > 2 || !slices.IsSorted(rounds) {
			t.Fatalf("site %s released shares for rounds %v", c.SiteID, rounds)
		}
		f, err := os.Open(c.AuditLog)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := audit.Verify(f)
		f.Close()
		if err != nil {
			t.Fatalf("site %s audit log: %v", c.SiteID, err)
		}
		t.Logf("site %s: audit log of %+v, shares released for rounds %v", c.SiteID, sum, rounds)
		for _, p := range []string{transportFile, partyFile} {
			fi, err := os.Stat(filepath.Join(c.StateDir, p))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("site %s %s: %v %v", c.SiteID, p, fi.Mode(), err)
			}
		}
	}
}

// startAggregator serves a small federation "fed" of sites (threshold 2, sums of at
// least 3 updates, two rounds, a tiny model) on a loopback port until the test ends.
func startAggregator(t *testing.T, ctx context.Context, pki string, sites []string, state string) string {
	t.Helper()
	ac := aggregator.DefaultConfig()
	ac.Federation, ac.Listen, ac.Metrics, ac.Certs, ac.StateDir = "fed", "127.0.0.1:0", "", pki, state
	ac.Sites, ac.Threshold, ac.MinSites, ac.Rounds = sites, 2, 3, 2
	ac.RoundDeadline, ac.DecryptDeadline, ac.AutoStart = 2*time.Minute, time.Minute, true
	ac.Model.Hidden, ac.Model.Layers, ac.Model.Heads, ac.Model.MaxLen = 16, 1, 2, 32
	ac.Vocabulary.KFloor = 3
	ac.Local.Steps, ac.Local.BatchSize = 2, 8
	srv, err := aggregator.NewServer(ac, aggregator.Options{Log: slog.New(slog.NewTextHandler(logWriter{t}, nil)).With("party", "aggregator")})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("aggregator: %v", err)
		}
	})
	return lis.Addr().String()
}

// TestRefusedSiteStops: a site the aggregator refuses for good (not on the
// allow-list, or configured for another federation) stops with the reason instead of
// retrying forever.
func TestRefusedSiteStops(t *testing.T) {
	pki := consortium(t, "h1", "h2", "h3", "h4")
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := startAggregator(t, ctx, pki, []string{"h1", "h2", "h3"}, filepath.Join(root, "aggregator"))
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteHospital(ctx, root, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, site, federation, want string
	}{
		{"not allow-listed", "h4", "fed", "PermissionDenied"},
		{"another federation", "h1", "other", "federation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			a, err := New(Config{SiteID: tt.site, Federation: tt.federation, Aggregator: AggregatorConfig{Address: addr, ServerName: "127.0.0.1"}, CertsDir: pki,
				Data: []string{filepath.Join(root, g.Hospitals()[0].ID)}, StateDir: state, AuditLog: filepath.Join(state, "audit.jsonl"),
				Train: TrainConfig{MaxLen: 32}, Seed: 1, Backoff: BackoffConfig{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			err = a.Run(ctx)
			if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestCheckConfig: the site refuses, for good, a federation configuration that
// secureagg.Config does not accept (a threshold of every site, min_sites below
// threshold+1), naming the field; the order of the site list does not matter.
func TestCheckConfig(t *testing.T) {
	a := newTestAgent(t)
	abc := []string{"a", "b", "c"}
	tests := []struct {
		name                string
		federation          string
		sites               []string
		threshold, minSites uint32
		want                string // "" for accepted
		unsafe              bool   // refused as errUnsafeConfig (fatal)
	}{
		{"2 of 3, sums of 3", "fed", abc, 2, 3, "", false},
		{"site list in another order", "fed", []string{"c", "a", "b"}, 2, 3, "", false},
		{"1 of 2, sums of 2", "fed", []string{"b", "a"}, 1, 2, "", false},
		{"min_sites equal to the threshold", "fed", abc, 2, 2, "min sites 2 below threshold+1", true},
		{"min_sites below the threshold", "fed", []string{"a", "b", "c", "d"}, 3, 2, "min sites 2 below threshold+1", true},
		{"threshold of every site", "fed", abc, 3, 3, "threshold 3", true},
		{"min_sites above the sites", "fed", abc, 2, 4, "min sites 4 for 3 sites", true},
		{"one site", "fed", []string{"a"}, 1, 1, "1 sites", true},
		{"site listed twice", "fed", []string{"a", "b", "b", "c"}, 2, 3, "listed twice", true},
		{"threshold unset", "fed", abc, 0, 3, "threshold 0", false},
		{"min_sites unset", "fed", abc, 2, 0, "min_sites 0", false},
		{"another federation", "other", abc, 2, 3, "configured for", false},
		{"site not in the list", "fed", []string{"b", "c", "d"}, 2, 3, "not in the federation's site list", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.checkConfig(&fedclaimspb.FederationConfig{FederationId: tt.federation, Sites: tt.sites, Threshold: tt.threshold, MinSites: tt.minSites})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkConfig: %v, want an error with %q", err, tt.want)
			}
			if errors.Is(err, errUnsafeConfig) != tt.unsafe || (tt.unsafe && !fatal(err)) {
				t.Fatalf("checkConfig: %v: unsafe %v (fatal %v), want %v", err, errors.Is(err, errUnsafeConfig), fatal(err), tt.unsafe)
			}
		})
	}
}
