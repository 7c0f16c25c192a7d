package site

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHeartbeat steps a heartbeat through a work stream's life on an injected
// clock and connection state, and reads the file back as the probe does.
func TestHeartbeat(t *testing.T) {
	dir := t.TempDir()
	// A previous run's heartbeat is gone once the next run starts.
	if err := os.WriteFile(filepath.Join(dir, HeartbeatFile), []byte(`{"last_contact":"2030-01-01T00:00:00Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2031, 5, 1, 9, 0, 0, 0, time.UTC)
	now, ready := t0, true
	h := newHeartbeat(dir, "h01", func() time.Time { return now }, func() bool { return ready }, slog.New(slog.DiscardHandler))
	if _, err := ReadHeartbeat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("before any contact: err %v, want fs.ErrNotExist", err)
	}
	steps := []struct {
		name        string
		at          time.Duration
		ready       bool
		do          func()
		wantContact time.Duration // -1: no heartbeat file
		wantMessage time.Duration // -1: none
	}{
		{"no stream yet", 0, true, h.beat, -1, -1},
		{"stream opens", 1 * time.Second, true, func() { h.streamOpened("fed") }, 1 * time.Second, -1},
		{"tick", 31 * time.Second, true, h.beat, 31 * time.Second, -1},
		{"assignment", 40 * time.Second, true, h.received, 40 * time.Second, 40 * time.Second},
		{"connection not ready", 71 * time.Second, false, h.beat, 40 * time.Second, 40 * time.Second},
		{"ready again", 101 * time.Second, true, h.beat, 101 * time.Second, 40 * time.Second},
		{"stream closes", 110 * time.Second, true, h.streamClosed, 101 * time.Second, 40 * time.Second},
		{"tick after close", 131 * time.Second, true, h.beat, 101 * time.Second, 40 * time.Second},
		{"stream reopens", 140 * time.Second, true, func() { h.streamOpened("fed") }, 140 * time.Second, -1},
	}
	for _, s := range steps {
		now, ready = t0.Add(s.at), s.ready
		s.do()
		got, err := ReadHeartbeat(dir)
		if s.wantContact < 0 {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s: err %v, want no heartbeat", s.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		wantMsg := time.Time{}
		if s.wantMessage >= 0 {
			wantMsg = t0.Add(s.wantMessage)
		}
		if !got.LastContact.Equal(t0.Add(s.wantContact)) || !got.LastMessage.Equal(wantMsg) ||
			got.SiteID != "h01" || got.Federation != "fed" || got.PID != os.Getpid() {
			t.Fatalf("%s: heartbeat %+v, want last contact at +%v, last message %v", s.name, got, s.wantContact, wantMsg)
		}
	}
}

// TestHeartbeatRun beats at each tick of an injected ticker until ctx ends.
func TestHeartbeatRun(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2031, 5, 1, 9, 0, 0, 0, time.UTC)
	clock := make(chan time.Time, 4)
	clock <- t0
	clock <- t0
	h := newHeartbeat(dir, "h02", func() time.Time { return <-clock }, func() bool { return true }, slog.New(slog.DiscardHandler))
	h.streamOpened("fed") // reads the clock twice: the stream's opening and the beat

	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(ctx, tick)
	}()
	clock <- t0.Add(HeartbeatEvery)
	tick <- time.Time{}
	// run takes the second tick only once the first beat is written.
	clock <- t0.Add(2 * HeartbeatEvery)
	tick <- time.Time{}
	cancel()
	<-done
	got, err := ReadHeartbeat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(2 * HeartbeatEvery); !got.LastContact.Equal(want) || !got.StreamOpen.Equal(t0) {
		t.Fatalf("heartbeat %+v, want last contact %v, stream open since %v", got, want, t0)
	}
}

// TestReadHeartbeatErrors names the file for every way it can be unusable.
func TestReadHeartbeatErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
	}{
		{"corrupt", `{"last_contact":`},
		{"no contact", `{"site_id":"h01"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, HeartbeatFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadHeartbeat(dir); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("err %v, want one naming %s", err, path)
			}
		})
	}
}
