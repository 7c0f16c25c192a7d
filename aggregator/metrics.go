package aggregator

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// metrics are the aggregator's Prometheus metrics. Each Server has a registry of its
// own, not the client's global default: tests and `fedclaims bench` run several
// aggregators in one process, and each must count only its own federation.
//
// Counters are bumped where the event happens; the gauges of the federation's state
// are set by observe, on the loop, after every event, so that a scrape never waits
// for the loop (which may be combining a round for seconds).
type metrics struct {
	reg *prometheus.Registry

	rounds, aborted, contributions, bytes, refusals prometheus.Counter
	lastDuration, online, trainLoss                 prometheus.Gauge

	round, roundsPlanned, roundContributions, roundBytes, roundExpected prometheus.Gauge
	enrolled, sites, setupPhase, auditSeq                               prometheus.Gauge
	state                                                               *prometheus.GaugeVec
	// stateNames are the values of fedclaims_state's label: the Admin Status
	// states in lower case ("training").
	stateNames map[fedclaimspb.StatusResponse_State]string

	log *slog.Logger
}

// StateName is a state as the status page and the metrics name it: "key_setup".
func StateName(st fedclaimspb.StatusResponse_State) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "STATE_"))
}

func newMetrics(log *slog.Logger) *metrics {
	reg := prometheus.NewRegistry()
	f := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(x)
		return x
	}
	m := &metrics{
		reg: reg, log: log, stateNames: map[fedclaimspb.StatusResponse_State]string{},
		rounds:        c("fedclaims_rounds_completed_total", "Rounds applied to the global model."),
		aborted:       c("fedclaims_rounds_aborted_total", "Rounds ended without an update."),
		contributions: c("fedclaims_contributions_total", "Encrypted updates added to a round's sum."),
		bytes:         c("fedclaims_received_bytes_total", "Bytes of blobs received from sites."),
		refusals:      c("fedclaims_refusals_total", "Calls and messages refused."),
		lastDuration:  f("fedclaims_round_duration_seconds", "Duration of the last applied round."),
		online:        f("fedclaims_sites_online", "Sites with an open Work stream."),
		trainLoss:     f("fedclaims_train_loss", "Mean training loss the contributors of the last round reported."),

		round:              f("fedclaims_round", "Id of the current (or last) round; 0 before the first."),
		roundsPlanned:      f("fedclaims_rounds_planned", "Rounds the federation is configured to apply."),
		roundContributions: f("fedclaims_round_contributions", "Encrypted updates added to the open round's sum so far; 0 while no round is open."),
		roundBytes:         f("fedclaims_round_received_bytes", "Bytes of the encrypted updates added to the open round's sum so far."),
		roundExpected:      f("fedclaims_round_expected_contributions", "Sites asked for an update in the open round; 0 while no round is open."),
		enrolled:           f("fedclaims_sites_enrolled", "Sites that enrolled a share key."),
		sites:              f("fedclaims_sites", "Sites allow-listed in the federation."),
		setupPhase: f("fedclaims_setup_phase", "Setup step: 0 enrolling, 1 public key shares, 2 dealing Shamir shares, "+
			"3 collecting Shamir shares, 4 installing the collective key, 5 vocabulary, 6 done."),
		auditSeq: f("fedclaims_audit_seq", "Sequence number of the aggregator's audit log head."),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fedclaims_state",
			Help: "The federation's state, as Admin Status reports it: 1 for the current one, 0 for the others."}, []string{"state"}),
	}
	reg.MustRegister(m.state,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for v := range fedclaimspb.StatusResponse_State_name {
		if st := fedclaimspb.StatusResponse_State(v); st != fedclaimspb.StatusResponse_STATE_UNSPECIFIED {
			m.stateNames[st] = StateName(st)
			m.state.WithLabelValues(m.stateNames[st]).Set(0)
		}
	}
	return m
}

func (m *metrics) roundDone(r RoundRecord) {
	m.rounds.Inc()
	m.lastDuration.Set(r.Duration.Seconds())
	m.trainLoss.Set(r.TrainLoss)
}

func (m *metrics) roundAborted()     { m.aborted.Inc() }
func (m *metrics) contribution()     { m.contributions.Inc() }
func (m *metrics) refusal()          { m.refusals.Inc() }
func (m *metrics) received(n uint64) { m.bytes.Add(float64(n)) }
func (m *metrics) setOnline(n int)   { m.online.Set(float64(n)) }

// gauges is the federation's state as the metrics report it.
type gauges struct {
	state                   fedclaimspb.StatusResponse_State
	setup                   SetupPhase
	round                   uint64
	rounds, enrolled, sites int
	contributions, expected int
	bytes                   uint64
	auditSeq                uint64
}

func (m *metrics) observe(g gauges) {
	for v, name := range m.stateNames {
		x := 0.0
		if v == g.state {
			x = 1
		}
		m.state.WithLabelValues(name).Set(x)
	}
	m.setupPhase.Set(float64(g.setup))
	m.round.Set(float64(g.round))
	m.roundsPlanned.Set(float64(g.rounds))
	m.enrolled.Set(float64(g.enrolled))
	m.sites.Set(float64(g.sites))
	m.roundContributions.Set(float64(g.contributions))
	m.roundExpected.Set(float64(g.expected))
	m.roundBytes.Set(float64(g.bytes))
	m.auditSeq.Set(float64(g.auditSeq))
}

// handler serves the exposition. An error collecting one metric is logged and the
// rest still served (ContinueOnError): a scrape that loses the process collector
// should not lose the federation's counters.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: promLog{m.log}, Registry: m.reg})
}

// promLog hands promhttp's error lines to slog.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn("metrics exposition", "err", fmt.Sprint(v...)) }
