package aggregator

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// metrics is the aggregator's Prometheus exposition, written by hand in the text
// format (version 0.0.4).
type metrics struct {
	mu            sync.Mutex
	rounds        uint64
	aborted       uint64
	lastDuration  float64
	contributions uint64
	bytes         uint64
	refusals      uint64
	online        int
	trainLoss     float64
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) roundDone(r RoundRecord) {
	m.mu.Lock()
	m.rounds++
	m.lastDuration = r.Duration.Seconds()
	m.trainLoss = r.TrainLoss
	m.mu.Unlock()
}

func (m *metrics) roundAborted() { m.mu.Lock(); m.aborted++; m.mu.Unlock() }
func (m *metrics) contribution() { m.mu.Lock(); m.contributions++; m.mu.Unlock() }
func (m *metrics) refusal()      { m.mu.Lock(); m.refusals++; m.mu.Unlock() }
func (m *metrics) received(n uint64) {
	m.mu.Lock()
	m.bytes += n
	m.mu.Unlock()
}
func (m *metrics) setOnline(n int) { m.mu.Lock(); m.online = n; m.mu.Unlock() }

// ServeHTTP writes the exposition.
func (m *metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	var b strings.Builder
	for _, x := range []struct {
		name, kind, help string
		v                float64
	}{
		{"fedclaims_rounds_completed_total", "counter", "Rounds applied to the global model.", float64(m.rounds)},
		{"fedclaims_rounds_aborted_total", "counter", "Rounds ended without an update.", float64(m.aborted)},
		{"fedclaims_round_duration_seconds", "gauge", "Duration of the last applied round.", m.lastDuration},
		{"fedclaims_contributions_total", "counter", "Encrypted updates added to a round's sum.", float64(m.contributions)},
		{"fedclaims_received_bytes_total", "counter", "Bytes of blobs received from sites.", float64(m.bytes)},
		{"fedclaims_refusals_total", "counter", "Calls and messages refused.", float64(m.refusals)},
		{"fedclaims_sites_online", "gauge", "Sites with an open Work stream.", float64(m.online)},
		{"fedclaims_train_loss", "gauge", "Mean training loss the contributors of the last round reported.", m.trainLoss},
	} {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", x.name, x.help, x.name, x.kind, x.name, x.v)
	}
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
