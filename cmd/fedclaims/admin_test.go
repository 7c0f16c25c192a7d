package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/certs"
)

// TestAdminCommands runs fedclaims admin against an aggregator on loopback, with the
// admin certificate over mutual TLS.
func TestAdminCommands(t *testing.T) {
	agg := startTestAggregator(t, "fed-admin", "")
	defer func() {
		if err := agg.stop(); err != nil {
			t.Error(err)
		}
	}()
	ctx, lis, pki := agg.ctx, agg.addr, agg.pki
	admin := func(args ...string) (map[string]any, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append([]string{"admin"}, append(args, "--addr", lis, "--certs", pki)...), &out, &errb)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("admin %s printed %q: %v", args[0], out.String(), err)
		}
		return m, nil
	}
	st, err := admin("status", "--federation", "fed-admin")
	if err != nil {
		t.Fatal(err)
	}
	if st["state"] != "STATE_ENROLLING" || len(st["sites"].([]any)) != 2 {
		t.Fatalf("status %v", st)
	}
	if _, err := admin("sites", "--federation", "fed-admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin("pause", "--federation", "fed-admin", "--reason", "test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"start", "--federation", "fed-admin"}, "0 of 2 sites enrolled"},
		{[]string{"status", "--federation", "other"}, `federation_id "other"`},
		{[]string{"status"}, "--federation is required"},
	} {
		if _, err := admin(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %v: err = %v, want one mentioning %s", tc.args, err, tc.want)
		}
	}
}

// testAggregator is an aggregator of sites a and b (threshold 1) serving on
// loopback, for the commands that talk to one.
type testAggregator struct {
	pki, addr string
	// ctx ends when stop is called.
	ctx  context.Context
	stop func() error // stops it and returns Run's error; call once
}

// startTestAggregator starts federation's aggregator, with its metrics listener on
// metrics ("" for none).
func startTestAggregator(t *testing.T, federation, metrics string) *testAggregator {
	t.Helper()
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if err := certs.Init(pki, certs.Options{Sites: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	cfg := aggregator.DefaultConfig()
	cfg.Federation, cfg.Certs, cfg.StateDir, cfg.Metrics = federation, pki, filepath.Join(dir, "state"), metrics
	cfg.Sites, cfg.MinSites, cfg.Threshold = []string{"a", "b"}, 2, 1
	srv, err := aggregator.NewServer(cfg, aggregator.Options{Log: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	return &testAggregator{pki: pki, addr: lis.Addr().String(), ctx: ctx, stop: func() error {
		cancel()
		return <-done
	}}
}
