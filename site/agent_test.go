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
		cfgs[i] = Config{SiteID: id, Federation: "fed", Aggregator: addr, ServerName: "127.0.0.1", CertsDir: pki,
			Data: []string{data}, StateDir: filepath.Join(root, "state", id), AuditLog: filepath.Join(root, "state", id, "audit.jsonl"),
			Threads: 1, MaxLen: 32, ExitOnFinal: true, Seed: 1, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
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

// startAggregator serves a small federation "fed" of sites (threshold 2, two rounds,
// a tiny model) on a loopback port until the test ends.
func startAggregator(t *testing.T, ctx context.Context, pki string, sites []string, state string) string {
	t.Helper()
	ac := aggregator.DefaultConfig()
	ac.Federation, ac.Listen, ac.Metrics, ac.Certs, ac.StateDir = "fed", "127.0.0.1:0", "", pki, state
	ac.Sites, ac.Threshold, ac.MinSites, ac.Rounds = sites, 2, 2, 2
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
			a, err := New(Config{SiteID: tt.site, Federation: tt.federation, Aggregator: addr, ServerName: "127.0.0.1", CertsDir: pki,
				Data: []string{filepath.Join(root, g.Hospitals()[0].ID)}, StateDir: state, AuditLog: filepath.Join(state, "audit.jsonl"),
				MaxLen: 32, Seed: 1, BackoffMin: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond}, nil)
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
