package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// testLog writes the parties' structured logs to the test's log, so a failing test
// shows what every party did.
func testLog(t *testing.T, who string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("party", who)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// consortium makes a CA with the aggregator's, the admin's and these sites'
// certificates in a fresh directory.
func consortium(t *testing.T, sites ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := certs.Init(dir, certs.Options{Consortium: "e2e", Sites: sites}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// aggregatorConfig is a small, fast federation: the tiny model shape, few steps.
func aggregatorConfig(t *testing.T, pki string, sites []string) aggregator.Config {
	t.Helper()
	c := aggregator.DefaultConfig()
	c.Federation = "e2e"
	c.Listen = "127.0.0.1:0"
	c.Metrics = ""
	c.Certs = pki
	c.StateDir = filepath.Join(t.TempDir(), "aggregator")
	c.Sites = sites
	// t = 1 and min_sites = t + 1 = 2: three sites, one of which may drop out.
	c.Threshold = 1
	c.MinSites = 2
	c.Rounds = 2
	c.RoundDeadline = 2 * time.Minute
	c.DecryptDeadline = time.Minute
	c.AutoStart = true
	c.Model.Hidden, c.Model.Layers, c.Model.Heads, c.Model.MaxLen = 16, 1, 2, 32
	c.Vocabulary.KFloor = 5
	c.Local.Steps, c.Local.BatchSize = 2, 4
	// The synthetic sites hold 60 to 200 patients. With the default cap (65536) their
	// weights would be about 0.002 and the decryption noise, divided by their sum,
	// would be of the order of the updates; at 400 it is a thousandth of them.
	c.SecureAgg.WeightCap = 400
	return c
}

// runningAggregator is an aggregator serving on a loopback port in this process.
type runningAggregator struct {
	cfg    aggregator.Config
	addr   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func startAggregator(t *testing.T, cfg aggregator.Config) *runningAggregator {
	t.Helper()
	return startAggregatorAt(t, cfg, "127.0.0.1:0")
}

// startAggregatorAt serves on addr: a restarted aggregator takes its old port,
// where the sites keep dialling.
func startAggregatorAt(t *testing.T, cfg aggregator.Config, addr string) *runningAggregator {
	t.Helper()
	srv, err := aggregator.NewServer(cfg, aggregator.Options{Log: testLog(t, "aggregator")})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAggregator{cfg: cfg, addr: lis.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- srv.Run(ctx, lis) }()
	t.Cleanup(func() { ra.stop() })
	return ra
}

// stop ends the aggregator and returns what Run returned; it may be called more
// than once.
func (ra *runningAggregator) stop() error {
	ra.once.Do(func() {
		ra.cancel()
		select {
		case ra.err = <-ra.done:
		case <-time.After(30 * time.Second):
			ra.err = errors.New("the aggregator did not stop within 30s")
		}
	})
	return ra.err
}

func (ra *runningAggregator) auditPath() string {
	if ra.cfg.AuditLog != "" {
		return ra.cfg.AuditLog
	}
	return filepath.Join(ra.cfg.StateDir, "audit.jsonl")
}

// dial connects to the aggregator with tlsConf; the connection closes with the test.
func dial(t *testing.T, addr string, tlsConf *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, fedclaimspb.DialOptions(tlsConf)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func clientTLS(t *testing.T, f certs.Files) *tls.Config {
	t.Helper()
	c, err := certs.ClientTLS(f, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrollRequest is a well-formed enrolment for site id with a share key signed by
// the key of its certificate in f.
func enrollRequest(t *testing.T, f certs.Files, federation, id string) *fedclaimspb.EnrollRequest {
	t.Helper()
	pair, _, err := certs.LoadPair(f)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := certs.LoadCert(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := secureagg.NewTransportKey()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := fedclaimspb.SignShareKey(pair.PrivateKey.(crypto.Signer), cert, federation, tk.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return &fedclaimspb.EnrollRequest{Envelope: &fedclaimspb.Envelope{FederationId: federation, SiteId: id}, SoftwareVersion: "e2e", ShareKey: sk}
}

// auditEntries verifies a log and returns its entries.
func auditEntries(t *testing.T, path string) []audit.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := audit.Verify(f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		e, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasEntry reports whether the log at path, as far as it is written, has an entry
// of type typ for round. A line still being written is ignored.
func hasEntry(path, typ string, round uint64) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for line := range bytes.Lines(b) {
		e, err := audit.ParseLine(bytes.TrimSuffix(line, []byte("\n")))
		if err == nil && e.Type == typ && e.Round == round {
			return true
		}
	}
	return false
}
