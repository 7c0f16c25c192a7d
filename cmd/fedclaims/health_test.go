package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/site"
)

// health runs `fedclaims health args...` and returns its stdout and error.
func health(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(ctx, append([]string{"health"}, args...), &out, &errb)
	return out.String(), err
}

// TestHealthAggregator probes the /healthz of a real aggregator's metrics listener
// while it serves and after it stopped, and servers that answer 500 or too late.
func TestHealthAggregator(t *testing.T) {
	metrics := freeLoopbackAddr(t)
	agg := startTestAggregator(t, "fed-health", metrics)
	ctx, dir := agg.ctx, t.TempDir()

	// Run returns to the test before its listener and loop are up: the probe
	// fails (refused, then 503 "not serving") until they are.
	var out string
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for out, err = health(t, ctx, "--addr", metrics); err != nil; out, err = health(t, ctx, "--addr", metrics) {
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator never became healthy: %v", err)
		}
		runtime.Gosched()
	}
	if want := "aggregator http://" + metrics + "/healthz: healthy (ok)\n"; out != want {
		t.Errorf("healthy: printed %q, want %q", out, want)
	}
	if _, err := health(t, ctx, "--url", "http://"+metrics+"/healthz", "--timeout", "2s"); err != nil {
		t.Errorf("--url: %v", err)
	}
	if err := agg.stop(); err != nil {
		t.Fatal(err)
	}

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not serving", http.StatusInternalServerError)
	}))
	defer failing.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"stopped", []string{"--addr", metrics}, "aggregator http://" + metrics + "/healthz is not reachable: "},
		{"500", []string{"--url", failing.URL + "/healthz"}, `is unhealthy: it answered 500 Internal Server Error "not serving"`},
		{"too slow", []string{"--url", slow.URL + "/healthz", "--timeout", "50ms"}, "is unhealthy: no answer within 50ms"},
		{"bad url", []string{"--url", "127.0.0.1:9464"}, `flag --url "127.0.0.1:9464": want http://HOST:PORT/healthz`},
		{"nothing to probe", nil, "exactly one of --url, --addr"},
		{"two targets", []string{"--addr", metrics, "--site-state", dir}, "exactly one of --url, --addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := health(t, context.Background(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || out != "" {
				t.Fatalf("err %v, stdout %q; want an error with %q and nothing printed", err, out, tc.want)
			}
		})
	}
}

// freeLoopbackAddr is a loopback address no one listens on (just now).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestHealthSite reads site heartbeats fresh, stale, missing and unreadable, on an
// injected clock, and once through the command on the real one.
func TestHealthSite(t *testing.T) {
	now := time.Date(2031, 5, 1, 9, 0, 0, 0, time.UTC)
	write := func(t *testing.T, h any) string {
		t.Helper()
		dir := t.TempDir()
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, site.HeartbeatFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	beat := func(contact, message time.Duration) site.Heartbeat {
		h := site.Heartbeat{SiteID: "h01", Federation: "fed", StreamOpen: now.Add(-time.Hour), LastContact: now.Add(-contact)}
		if message >= 0 {
			h.LastMessage = now.Add(-message)
		}
		return h
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		name    string
		dir     string
		maxAge  time.Duration
		wantOK  string
		wantErr string
	}{
		{"fresh", write(t, beat(5*time.Second, 20*time.Second)), 2 * time.Minute,
			"site h01 (federation fed): healthy, in contact with the aggregator 5s ago, work stream open since 2031-05-01T08:00:00Z, last assignment 20s ago", ""},
		{"fresh, no assignment yet", write(t, beat(30*time.Second, -1)), 2 * time.Minute, "no assignment yet on this stream", ""},
		{"at max age", write(t, beat(2*time.Minute, -1)), 2 * time.Minute, "in contact with the aggregator 2m0s ago", ""},
		{"stale", write(t, beat(3*time.Minute, time.Hour)), 2 * time.Minute, "",
			"site h01 is unhealthy: its last contact with the aggregator was 3m0s ago (2031-05-01T08:57:00Z), longer than --max-age 2m0s"},
		{"missing", empty, 2 * time.Minute, "", "holds no heartbeat.json: the site agent has had no live contact with the aggregator since it started"},
		{"no such dir", filepath.Join(empty, "nope"), 2 * time.Minute, "", "flag --site-state " + filepath.Join(empty, "nope") + ": "},
		{"unreadable", write(t, "garbage"), 2 * time.Minute, "", "/" + site.HeartbeatFile + ": json: cannot unmarshal"},
		{"max age below the heartbeat", write(t, beat(time.Second, -1)), 10 * time.Second, "", "flag --max-age 10s: shorter than the 30s between a site's heartbeats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := siteHealth(tc.dir, tc.maxAge, now)
			switch {
			case tc.wantErr == "" && (err != nil || !strings.Contains(got, tc.wantOK)):
				t.Fatalf("got %q, %v; want healthy with %q", got, err, tc.wantOK)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %q, %v; want an error with %q", got, err, tc.wantErr)
			}
		})
	}

	// The command reads the clock itself.
	fresh := site.Heartbeat{SiteID: "h02", Federation: "fed", StreamOpen: time.Now().Add(-time.Minute), LastContact: time.Now()}
	dir := write(t, fresh)
	if out, err := health(t, context.Background(), "--site-state", dir); err != nil || !strings.HasPrefix(out, "site h02 (federation fed): healthy") {
		t.Fatalf("fresh: %q, %v", out, err)
	}
	stale := fresh
	stale.LastContact = time.Now().Add(-10 * time.Minute)
	dir = write(t, stale)
	if out, err := health(t, context.Background(), "--site-state", dir, "--max-age", "5m"); err == nil || out != "" || !strings.Contains(err.Error(), "site h02 is unhealthy") {
		t.Fatalf("stale: %q, %v", out, err)
	}
}
