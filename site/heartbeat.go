package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// HeartbeatFile is the file, directly under the state directory, where a running
// agent records its last live contact with the aggregator. A site only dials out
// and has no listener to probe: `fedclaims health --site-state DIR` reads this file.
const HeartbeatFile = "heartbeat.json"

// HeartbeatEvery is how often an agent with an open work stream over a ready
// connection rewrites its heartbeat. gRPC keepalive pings (fedclaimspb.DialOptions:
// every 30 s, 10 s to answer) take a dead aggregator's connection out of the ready
// state, so a heartbeat older than a few of these means no live contact.
const HeartbeatEvery = 30 * time.Second

// Heartbeat is the content of HeartbeatFile.
type Heartbeat struct {
	SiteID     string `json:"site_id"`
	Federation string `json:"federation_id"`
	// PID is the agent's process id, to tell one run from the next.
	PID int `json:"pid"`
	// LastContact is when the agent last knew its work stream to the aggregator open
	// over a ready connection.
	LastContact time.Time `json:"last_contact"`
	// StreamOpen is when the current work stream opened.
	StreamOpen time.Time `json:"work_stream_open_since"`
	// LastMessage is when the agent last received an assignment on it; zero for none.
	LastMessage time.Time `json:"last_message,omitzero"`
}

// ReadHeartbeat reads stateDir's heartbeat. fs.ErrNotExist (wrapped) means the
// agent has not had a live contact with the aggregator since it started.
func ReadHeartbeat(stateDir string) (Heartbeat, error) {
	path := filepath.Join(stateDir, HeartbeatFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat %s: %w", path, err)
	}
	var h Heartbeat
	if err := json.Unmarshal(b, &h); err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat %s: %w", path, err)
	}
	if h.LastContact.IsZero() {
		return Heartbeat{}, fmt.Errorf("heartbeat %s: no last_contact", path)
	}
	return h, nil
}

// heartbeat writes HeartbeatFile while the agent is in contact with the aggregator.
// The session tells it when the work stream opens and closes and when a message
// arrives; beat, called then and every HeartbeatEvery by run, writes the file when
// the stream is open and the connection is ready. It decides nothing for the agent:
// a failed write is logged once, and the agent goes on.
type heartbeat struct {
	path  string
	now   func() time.Time
	ready func() bool
	log   *slog.Logger
	rec   Heartbeat

	mu      sync.Mutex
	open    bool
	failing bool
}

// newHeartbeat removes a previous run's heartbeat, so that a fresh file always
// means a contact of this run.
func newHeartbeat(stateDir, siteID string, now func() time.Time, ready func() bool, log *slog.Logger) *heartbeat {
	h := &heartbeat{path: filepath.Join(stateDir, HeartbeatFile), now: now, ready: ready, log: log,
		rec: Heartbeat{SiteID: siteID, PID: os.Getpid()}}
	if err := os.Remove(h.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("cannot remove the previous run's heartbeat", "err", err)
	}
	return h
}

// streamOpened records a work stream opened in federation and beats.
func (h *heartbeat) streamOpened(federation string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.open, h.rec.Federation, h.rec.StreamOpen, h.rec.LastMessage = true, federation, h.now(), time.Time{}
	h.mu.Unlock()
	h.beat()
}

// received records a message on the work stream and beats.
func (h *heartbeat) received() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.rec.LastMessage = h.now()
	h.mu.Unlock()
	h.beat()
}

// streamClosed stops the beats until the next stream opens; the file keeps the
// last contact, and grows stale.
func (h *heartbeat) streamClosed() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.open = false
	h.mu.Unlock()
}

// beat writes the heartbeat when the work stream is open over a ready connection.
func (h *heartbeat) beat() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.open || !h.ready() {
		return
	}
	h.rec.LastContact = h.now()
	b, err := json.MarshalIndent(h.rec, "", "  ")
	if err == nil {
		err = atomicfile.WriteFile(h.path, append(b, '\n'), 0o644)
	}
	switch {
	case err != nil && !h.failing:
		h.log.Warn("cannot write the heartbeat; `fedclaims health --site-state` will report this site unhealthy", "err", err)
		h.failing = true
	case err == nil && h.failing:
		h.log.Info("heartbeat written again", "path", h.path)
		h.failing = false
	}
}

// run beats at every tick until ctx ends.
func (h *heartbeat) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			h.beat()
		}
	}
}

// start beats every interval until ctx ends or stop is called; stop waits for the
// last beat to finish.
func (h *heartbeat) start(ctx context.Context, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	t := time.NewTicker(every)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(ctx, t.C)
	}()
	return func() {
		cancel()
		<-done
		t.Stop()
	}
}
