package aggregator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// testFed is an aggregator on loopback with its consortium directory.
type testFed struct {
	t       *testing.T
	cfg     Config
	certDir string
	addr    string
	srv     *Server
	clock   *manualClock
	cancel  context.CancelFunc
	done    chan error
}

func newTestFed(t *testing.T, mut func(*Config)) *testFed {
	t.Helper()
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := certs.Init(certDir, certs.Options{Sites: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Federation = "fed-test"
	cfg.Certs = certDir
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Metrics = ""
	cfg.Sites = []string{"c", "a", "b"} // party order is sorted order, whatever the file says
	// t = 1 keeps min_sites >= t+1 with three sites and still lets one drop out.
	cfg.MinSites, cfg.Threshold, cfg.Rounds = 2, 1, 2
	cfg.RoundDeadline, cfg.DecryptDeadline = time.Minute, time.Minute
	cfg.AutoStart = true
	cfg.SecureAgg.WeightCap = 100
	// The smallest encoder the model package accepts with a real layout: a few
	// thousand parameters, one ciphertext chunk.
	cfg.Model = ModelConfig{Preset: "2m", Seed: 7, Hidden: 8, Layers: 1, Heads: 2, MaxLen: 16}
	cfg.Vocabulary.KFloor = 10
	if mut != nil {
		mut(&cfg)
	}
	return &testFed{t: t, cfg: cfg, certDir: certDir, clock: &manualClock{}}
}

// manualClock fires deadlines only when the test says, so that no test depends on
// how fast the machine runs.
type manualClock struct {
	mu     sync.Mutex
	timers []*manualTimer
}

type manualTimer struct {
	f       func()
	stopped bool
}

func (c *manualClock) Now() time.Time { return time.Now() }

func (c *manualClock) AfterFunc(_ time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// fire runs every pending timer.
func (c *manualClock) fire() {
	c.mu.Lock()
	ts := c.timers
	c.timers = nil
	for _, t := range ts {
		if !t.stopped {
			t.stopped = true
			go t.f()
		}
	}
	c.mu.Unlock()
}

// start runs the aggregator, on the same address as before after a restart.
func (f *testFed) start() {
	f.t.Helper()
	srv, err := NewServer(f.cfg, Options{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Clock: f.clock})
	if err != nil {
		f.t.Fatal(err)
	}
	addr := f.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lis net.Listener
	for i := 0; ; i++ {
		if lis, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.addr, f.srv = lis.Addr().String(), srv
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- srv.Run(ctx, lis) }()
	f.t.Cleanup(f.stop)
}

func (f *testFed) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("aggregator: %v", err)
	}
	f.cancel = nil
}

func (f *testFed) sites(ctx context.Context, counts map[string]float64, delta func(site string, version uint64, global []float32) []float32, setup ...func(*testSite)) []*testSite {
	f.t.Helper()
	var out []*testSite
	for _, id := range []string{"a", "b", "c"} {
		s := newTestSite(f.t, id, f.addr, f.certDir, counts[id])
		s.delta = func(v uint64, g []float32) []float32 { return delta(id, v, g) }
		for _, fn := range setup {
			fn(s)
		}
		if err := s.dial(); err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { s.conn.Close() })
		if err := s.enroll(ctx, f.cfg.Federation); err != nil {
			f.t.Fatalf("enrol %s: %v", id, err)
		}
		out = append(out, s)
	}
	for _, s := range out {
		go s.run(ctx)
	}
	return out
}

func (f *testFed) admin() fedclaimspb.AdminClient {
	f.t.Helper()
	return fedclaimspb.NewAdminClient(f.dial(certs.AdminFiles(f.certDir)))
}

// dial connects to the aggregator with files' certificate; the connection closes
// with the test.
func (f *testFed) dial(files certs.Files) *grpc.ClientConn {
	f.t.Helper()
	tlsConf, err := certs.ClientTLS(files, "127.0.0.1")
	if err != nil {
		f.t.Fatal(err)
	}
	conn, err := grpc.NewClient(f.addr, fedclaimspb.DialOptions(tlsConf)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return conn
}

func waitFinal(t *testing.T, ctx context.Context, sites []*testSite) {
	t.Helper()
	for _, s := range sites {
		select {
		case <-s.final:
		case <-ctx.Done():
			s.mu.Lock()
			t.Fatalf("site %s saw %d publications before the timeout; errors: %v", s.id, len(s.published), s.errs)
		}
	}
}

// fedAvg is the plaintext FedAvg the encrypted path must match: the count-weighted
// mean of the updates (weights capped at 1 as secureagg.Weight does), added to global.
func fedAvg(global []float32, updates map[string][]float32, counts map[string]float64, weightCap float64) []float32 {
	out := slices.Clone(global)
	var total float64
	sum := make([]float64, len(global))
	for site, d := range updates {
		w := secureagg.Weight(counts[site], weightCap)
		total += w
		for i, v := range d {
			sum[i] += w * float64(v)
		}
	}
	for i := range out {
		out[i] += float32(sum[i] / total)
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// bound is the secure-aggregation error bound of one decrypted mean value: six
// standard deviations of the decryption error, divided by the total weight, plus
// float32 rounding of the model.
func bound(sites int, weight float64) float64 {
	p, _ := secureagg.NewParameters(secureagg.PresetN12Q60)
	return 6*p.ErrorStdDev(sites)/weight + 1e-6
}

// TestRoundsOverMTLS runs setup and two rounds with three sites over real gRPC and
// mutual TLS with real ciphertexts. Site c sends nothing in the second round, which
// therefore closes at its deadline (fired by the test's clock) with the two others
// (min_sites 2).
func TestRoundsOverMTLS(t *testing.T) {
	metricsAddr := freeAddr(t)
	f := newTestFed(t, func(c *Config) { c.Metrics = metricsAddr })
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 300, "c": 50}
	globals := map[uint64][]float32{}
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 {
		if site == "a" {
			globals[v] = g
		}
		if site == "c" && v == 1 {
			return nil
		}
		return randomDelta(site, v, len(g))
	})
	// Round 2's deadline passes once a and b are in; c never sends.
	for !(sites[0].hasUploaded(1) && sites[1].hasUploaded(1)) {
		if ctx.Err() != nil {
			t.Fatal("a and b never uploaded in round 2")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.clock.fire()
	waitFinal(t, ctx, sites)
	for _, s := range sites {
		if len(s.errs) > 0 {
			t.Fatalf("site %s: %v", s.id, s.errs)
		}
		if len(s.published) != 2 || !s.published[1].Final || s.published[0].Final {
			t.Fatalf("site %s: publications %v", s.id, s.published)
		}
	}
	a := sites[0]
	v1, err := flatModel(a.models[string(a.published[0].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	v2, err := flatModel(a.models[string(a.published[1].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	round1 := map[string][]float32{}
	for _, s := range sites {
		round1[s.id] = s.sent[0]
	}
	want1 := fedAvg(globals[0], round1, counts, f.cfg.SecureAgg.WeightCap)
	t.Logf("round 1: |decrypted - plaintext FedAvg| <= %g (bound %g); model %d values", maxDiff(v1, want1), bound(3, 2.5), len(v1))
	if d, b := maxDiff(v1, want1), bound(3, 2.5); d > b {
		t.Fatalf("round 1: decrypted FedAvg differs from the plaintext one by %g, bound %g", d, b)
	}
	if !slices.Equal(globals[1], v1) {
		t.Fatal("round 2 did not start from the published round-1 model")
	}
	want2 := fedAvg(v1, map[string][]float32{"a": sites[0].sent[1], "b": sites[1].sent[1]}, counts, f.cfg.SecureAgg.WeightCap)
	if d, b := maxDiff(v2, want2), bound(2, 2); d > b {
		t.Fatalf("round 2: decrypted FedAvg differs from the plaintext one by %g, bound %g", d, b)
	}
	if m := sites[2].published[1].Metrics; !slices.Equal(m.Contributors, []string{"a", "b"}) && !slices.Equal(m.Contributors, []string{"b", "a"}) {
		t.Fatalf("round 2 contributors %v", m.Contributors)
	}

	st, err := f.admin().Status(ctx, &fedclaimspb.StatusRequest{Envelope: &fedclaimspb.Envelope{FederationId: f.cfg.Federation}})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != fedclaimspb.StatusResponse_STATE_FINISHED || len(st.History) != 2 || st.History[0].UploadBytes == 0 || st.History[0].TrainLoss != 2.5 {
		t.Fatalf("status %v", st)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"fedclaims_rounds_completed_total 2\n", "fedclaims_contributions_total 5\n", "fedclaims_sites_online 3\n", "fedclaims_train_loss 2.5\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	f.stop()
	types := auditTypes(t, filepath.Join(f.cfg.StateDir, "audit.jsonl"))
	for _, typ := range []string{audit.Enrol, audit.KeySetup, audit.Vocabulary, audit.RoundStart, audit.Upload, "decryption_request", audit.DecryptionShare, audit.RoundEnd, audit.ModelPublished} {
		if types[typ] == 0 {
			t.Errorf("no %s entry in the audit log (%v)", typ, types)
		}
	}
	if types[audit.Upload] != 5 {
		t.Errorf("%d upload entries, want 5 (three updates in round 1, two in round 2)", types[audit.Upload])
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// auditTypes verifies a log and counts its entries by type.
func auditTypes(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(bytes.NewReader(b)); err != nil {
		t.Fatalf("audit log: %v", err)
	}
	// Every entry is signed by the aggregator's certificate key.
	cert, err := certs.LoadCert(certs.AggregatorFiles(filepath.Join(filepath.Dir(filepath.Dir(path)), "certs")).Cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (audit.Verifier{PublicKey: cert.PublicKey}).Verify(bytes.NewReader(b)); err != nil {
		t.Fatalf("audit log signatures: %v", err)
	}
	out := map[string]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		e, err := audit.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Type]++
	}
	return out
}

// TestRestartResumes stops the aggregator after the first round, while the second is
// collecting, and starts it again on the same state directory: the sites reconnect on
// their own, the lost round's id is not reused, and the final model is the one the
// same updates give without a restart.
func TestRestartResumes(t *testing.T) {
	f := newTestFed(t, nil)
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 100, "c": 100}
	gate := make(chan struct{})
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 {
		if v == 1 {
			<-gate
		}
		return randomDelta(site, v, len(g))
	})
	for _, s := range sites {
		for {
			s.mu.Lock()
			n := len(s.published)
			s.mu.Unlock()
			if n > 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("site %s never saw round 1 published: %v", s.id, s.errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	f.stop()
	f.start()
	close(gate)
	waitFinal(t, ctx, sites)
	a := sites[0]
	final, err := flatModel(a.models[string(a.published[len(a.published)-1].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	v1, err := flatModel(a.models[string(a.published[0].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	upd := map[string][]float32{}
	for _, s := range sites {
		upd[s.id] = s.sent[1]
	}
	if d, b := maxDiff(final, fedAvg(v1, upd, counts, f.cfg.SecureAgg.WeightCap)), bound(3, 3); d > b {
		t.Fatalf("final model after a restart differs from the plaintext FedAvg by %g, bound %g", d, b)
	}
	// Round 2's TrainTask (where a site got it before the restart) and round 3's,
	// both from version 1, carry the same local seed: the seed follows the model
	// version, not the round id a restart advances.
	for _, s := range sites {
		want := TrainSeed(f.cfg.Model.Seed, 1, s.id)
		if got := s.seeds[1]; len(got) == 0 || slices.ContainsFunc(got, func(x uint64) bool { return x != want }) || want == s.seeds[0][0] {
			t.Fatalf("site %s: seeds %v, want %d for version 1", s.id, s.seeds, want)
		}
	}
	st, err := f.admin().Status(ctx, &fedclaimspb.StatusRequest{Envelope: &fedclaimspb.Envelope{FederationId: f.cfg.Federation}})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.History) != 2 || st.History[0].Round != 1 || st.History[1].Round != 3 || st.State != fedclaimspb.StatusResponse_STATE_FINISHED {
		t.Fatalf("after restart: state %s, history %v (want rounds 1 and 3: round 2 was lost with the restart)", st.State, st.History)
	}
}

// TestCallRefusals checks who may not call, and that refusals of calls that reach the
// server are audited.
func TestCallRefusals(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.Sites = []string{"a", "b", "c", "e"}; c.AutoStart = false })
	if _, err := certs.IssueSite(f.certDir, f.certDir, "d", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueSite(f.certDir, f.certDir, "e", 0); err != nil {
		t.Fatal(err)
	}
	if err := certs.Revoke(f.certDir, certs.SiteFiles(f.certDir, "e").Cert); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := certs.Init(other, certs.Options{Sites: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dial := func(files certs.Files, strip bool) *grpc.ClientConn {
		conf, err := certs.ClientTLS(files, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if strip {
			conf.Certificates = nil
		}
		// Trust the real CA even for the foreign client, so only its own certificate fails.
		real, err := certs.ClientTLS(certs.SiteFiles(f.certDir, "a"), "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		conf.RootCAs = real.RootCAs
		conf.VerifyConnection = nil
		conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	site := func(id string) certs.Files { return certs.SiteFiles(f.certDir, id) }
	enroll := func(conn *grpc.ClientConn, env *fedclaimspb.Envelope) error {
		_, err := fedclaimspb.NewFederationClient(conn).Enroll(ctx, &fedclaimspb.EnrollRequest{Envelope: env})
		return err
	}
	env := func(fed string, round uint64, id string) *fedclaimspb.Envelope {
		return &fedclaimspb.Envelope{FederationId: fed, RoundId: round, SiteId: id}
	}
	for _, tc := range []struct {
		name    string
		call    func() error
		code    codes.Code
		audited string // a substring of the refusal's audit entry; empty for handshake failures
	}{
		{"certificate from another CA", func() error { return enroll(dial(certs.SiteFiles(other, "a"), false), env(f.cfg.Federation, 0, "a")) }, codes.Unavailable, ""},
		{"no certificate", func() error { return enroll(dial(site("a"), true), env(f.cfg.Federation, 0, "a")) }, codes.Unavailable, ""},
		{"revoked site", func() error { return enroll(dial(site("e"), false), env(f.cfg.Federation, 0, "e")) }, codes.Unavailable, ""},
		{"site not allow-listed", func() error { return enroll(dial(site("d"), false), env(f.cfg.Federation, 0, "d")) }, codes.PermissionDenied, "not allow-listed"},
		{"envelope names another site", func() error { return enroll(dial(site("a"), false), env(f.cfg.Federation, 0, "b")) }, codes.PermissionDenied, `envelope site_id \"b\"`},
		{"envelope names another round", func() error { return enroll(dial(site("a"), false), env(f.cfg.Federation, 5, "a")) }, codes.FailedPrecondition, "envelope round_id 5"},
		// From b: a's second refusal of the same kind would be counted, not recorded
		// (TestRefusalsRateLimited).
		{"envelope names another federation", func() error { return enroll(dial(site("b"), false), env("other-fed", 0, "b")) }, codes.FailedPrecondition, "other-fed"},
		{"share key missing", func() error { return enroll(dial(site("a"), false), env(f.cfg.Federation, 0, "a")) }, codes.InvalidArgument, "share key"},
		{"admin calling a site method", func() error { return enroll(dial(certs.AdminFiles(f.certDir), false), env(f.cfg.Federation, 0, "")) }, codes.PermissionDenied, "may not call"},
		{"site calling an admin method", func() error {
			_, err := fedclaimspb.NewAdminClient(dial(site("a"), false)).Status(ctx, &fedclaimspb.StatusRequest{Envelope: env(f.cfg.Federation, 0, "")})
			return err
		}, codes.PermissionDenied, "may not call"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want code %s", err, tc.code)
			}
			if tc.audited == "" {
				return
			}
			b, rerr := os.ReadFile(filepath.Join(f.cfg.StateDir, "audit.jsonl"))
			if rerr != nil {
				t.Fatal(rerr)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, `"type":"refusal"`) || !strings.Contains(last, tc.audited) {
				t.Fatalf("last audit entry %s, want a refusal mentioning %s", last, tc.audited)
			}
		})
	}
	// Nothing refused changed the federation.
	st, err := f.admin().Status(ctx, &fedclaimspb.StatusRequest{Envelope: env(f.cfg.Federation, 0, "")})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != fedclaimspb.StatusResponse_STATE_ENROLLING || slices.ContainsFunc(st.Sites, func(s *fedclaimspb.SiteStatus) bool { return s.Enrolled }) {
		t.Fatalf("status after refusals: %v", st)
	}
	// Starting before every site enrolled is refused, and audited as an attempt.
	if _, err := f.admin().Start(ctx, &fedclaimspb.ControlRequest{Envelope: env(f.cfg.Federation, 0, "")}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("start with no site enrolled: %v", err)
	}
	// The metrics count the refusals that reached the server.
	rec := httptest.NewRecorder()
	f.srv.metrics.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "fedclaims_refusals_total 8") {
		t.Fatalf("metrics:\n%s", rec.Body)
	}
}

// TestPauseResumeStop drives the coordinator's controls: a pause lets the open round
// finish and holds the next, a resume goes on, and a stop ends the federation after
// the open round with the global model published as final.
func TestPauseResumeStop(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.Rounds = 5 })
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 100, "c": 100}
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 { return randomDelta(site, v, len(g)) })
	adm := f.admin()
	env := &fedclaimspb.Envelope{FederationId: f.cfg.Federation}
	statusNow := func() *fedclaimspb.StatusResponse {
		st, err := adm.Status(ctx, &fedclaimspb.StatusRequest{Envelope: env}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitFor := func(what string, ok func(*fedclaimspb.StatusResponse) bool) *fedclaimspb.StatusResponse {
		for {
			if st := statusNow(); ok(st) {
				return st
			}
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s: %v", what, statusNow())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("round 1", func(st *fedclaimspb.StatusResponse) bool { return len(st.History) >= 1 })
	if _, err := adm.Pause(ctx, &fedclaimspb.ControlRequest{Envelope: env, Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor("the pause", func(st *fedclaimspb.StatusResponse) bool { return st.State == fedclaimspb.StatusResponse_STATE_PAUSED })
	held := len(st.History)
	// The pause survives a restart of the aggregator.
	f.stop()
	f.start()
	time.Sleep(300 * time.Millisecond)
	if st := waitFor("the restarted aggregator", func(*fedclaimspb.StatusResponse) bool { return true }); len(st.History) != held || st.State != fedclaimspb.StatusResponse_STATE_PAUSED {
		t.Fatalf("a round ran while paused: %v", st)
	}
	if _, err := adm.Resume(ctx, &fedclaimspb.ControlRequest{Envelope: env}); err != nil {
		t.Fatal(err)
	}
	waitFor("a round after the resume", func(st *fedclaimspb.StatusResponse) bool { return len(st.History) > held })
	if _, err := adm.Stop(ctx, &fedclaimspb.ControlRequest{Envelope: env, Reason: "enough"}); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, ctx, sites)
	st = statusNow()
	if st.State != fedclaimspb.StatusResponse_STATE_STOPPED || len(st.History) >= f.cfg.Rounds {
		t.Fatalf("after stop: %v", st)
	}
	if _, err := adm.Resume(ctx, &fedclaimspb.ControlRequest{Envelope: env}); err == nil {
		t.Fatal("resume after stop accepted")
	}
	for _, s := range sites {
		for _, err := range s.errs {
			// The restart breaks off what a site was doing; the rest is a failure.
			if status.Code(errors.Unwrap(err)) != codes.Unavailable {
				t.Fatalf("site %s: %v", s.id, err)
			}
		}
		last := s.published[len(s.published)-1]
		if !last.Final || last.Model.Kind != fedclaimspb.BlobKind_BLOB_KIND_FINAL_MODEL {
			t.Fatalf("site %s: last publication %v", s.id, last)
		}
	}
	f.stop()
	types := auditTypes(t, filepath.Join(f.cfg.StateDir, "audit.jsonl"))
	// auto_start's start, pause, resume, stop, and the resume after the stop: an
	// action is audited before it is tried, and its refusal after.
	if types[audit.ConfigChange] != 5 || types[audit.Refusal] != 1 {
		t.Fatalf("%d config_change and %d refusal entries, want 5 and 1", types[audit.ConfigChange], types[audit.Refusal])
	}
}

// TestRestartDuringSetup stops the aggregator while one site has yet to deal its
// Shamir shares: restarted, it keeps the setup blobs it had, assigns the step again to
// the site that owes it, and the federation completes a round whose aggregate
// decrypts to the plaintext FedAvg.
func TestRestartDuringSetup(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.Rounds = 1 })
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 100, "c": 100}
	gate := make(chan struct{})
	held := make(chan struct{}, 1)
	globals := map[uint64][]float32{}
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 {
		if site == "a" {
			globals[v] = g
		}
		return randomDelta(site, v, len(g))
	}, func(s *testSite) {
		if s.id != "c" {
			return
		}
		s.hold = func(task *fedclaimspb.KeySetupTask) {
			if task.Step == fedclaimspb.KeySetupTask_STEP_DEAL_SHAMIR_SHARES {
				select {
				case held <- struct{}{}:
				default:
				}
				<-gate
			}
		}
	})
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("site c never got to dealing")
	}
	// Wait until a and b have dealt, so that their shares are on disk.
	for {
		n := 0
		for _, d := range []string{"a", "b"} {
			for _, to := range []string{"a", "b", "c"} {
				if _, err := os.Stat(filepath.Join(f.cfg.StateDir, setupDir, shamirBlob(d, to))); err == nil {
					n++
				}
			}
		}
		if n == 6 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("a and b never dealt")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.stop()
	f.start()
	close(gate)
	waitFinal(t, ctx, sites)
	a := sites[0]
	v1, err := flatModel(a.models[string(a.published[0].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	upd := map[string][]float32{}
	for _, s := range sites {
		upd[s.id] = s.sent[0]
	}
	if d, b := maxDiff(v1, fedAvg(globals[0], upd, counts, f.cfg.SecureAgg.WeightCap)), bound(3, 3); d > b {
		t.Fatalf("model after a restart during setup differs from the plaintext FedAvg by %g, bound %g", d, b)
	}
}

// TestDecryptionDeadlineRetries has a decryptor withhold its share in every round:
// the round aborts at the decryption deadline, and the next round, under a fresh id
// (no site shares twice under one), passes over the withholding site and applies.
// Before the machine counted withheld shares, the decrypting set was always the
// first t contributors by id, so site a stalled every round forever.
func TestDecryptionDeadlineRetries(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.Rounds = 1 })
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 100, "c": 100}
	globals := map[uint64][]float32{}
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 {
		if site == "a" {
			globals[v] = g
		}
		return randomDelta(site, v, len(g))
	}, func(s *testSite) {
		if s.id == "a" {
			s.withhold = func(uint64) bool { return true }
		}
	})
	// The first decrypting set is a (t = 1), the first contributor by id.
	for !sites[0].hasWithheld(1) {
		if ctx.Err() != nil {
			t.Fatal("a was never asked for its share of round 1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.clock.fire()
	waitFinal(t, ctx, sites)
	a := sites[0]
	v1, err := flatModel(a.models[string(a.published[0].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	upd := map[string][]float32{}
	for _, s := range sites {
		upd[s.id] = s.sent[0]
	}
	if d, b := maxDiff(v1, fedAvg(globals[0], upd, counts, f.cfg.SecureAgg.WeightCap)), bound(3, 3); d > b {
		t.Fatalf("model after a retried round differs from the plaintext FedAvg by %g, bound %g", d, b)
	}
	if m := a.published[0].Metrics; m.Round != 2 {
		t.Fatalf("applied round %d, want 2 (round 1 aborted)", m.Round)
	}
	if a.hasShared(2) || !sites[1].hasShared(2) {
		t.Fatalf("round 2 decrypted by a: %v, by b: %v; want b, passing over a", a.hasShared(2), sites[1].hasShared(2))
	}
	f.stop()
	if n := auditTypes(t, filepath.Join(f.cfg.StateDir, "audit.jsonl"))["round_abort"]; n != 1 {
		t.Fatalf("%d round_abort entries, want 1", n)
	}
}

// TestForgedUploadsRefused has site a, mid-round, send an update under another round
// id and one whose ciphertext chunks claim to be site b's: both are refused and
// audited, and the round's result is the FedAvg of the honest updates only.
func TestForgedUploadsRefused(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.Rounds = 1 })
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 100, "c": 100}
	globals := map[uint64][]float32{}
	var wrongRound, wrongSite error
	forge := func(s *testSite, g []float32) {
		wrongRound = s.uploadBlob(ctx, 7, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: 1}, [][]byte{{0}})
		b, err := s.download(ctx, 0, fedclaimspb.BlobKind_BLOB_KIND_COLLECTIVE_PUBLIC_KEY, "", nil)
		if err != nil {
			t.Error(err)
			return
		}
		var pk secureagg.PublicKey
		if err := pk.UnmarshalBinary(b); err != nil {
			t.Error(err)
			return
		}
		other, err := secureagg.NewParty(s.party.Config(), 1) // site b's party id
		if err != nil {
			t.Error(err)
			return
		}
		if err := other.SetPublicKey(&pk); err != nil {
			t.Error(err)
			return
		}
		chunks, err := other.Encrypt(ctx, 1, make([]float32, len(g)), 100)
		if err != nil {
			t.Error(err)
			return
		}
		msgs := make([][]byte, len(chunks))
		var size uint64
		for i, c := range chunks {
			msgs[i], _ = c.MarshalBinary()
			size += uint64(len(msgs[i]))
		}
		wrongSite = s.uploadBlob(ctx, 1, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: size}, msgs)
	}
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 {
		if site == "a" {
			globals[v] = g
		}
		return randomDelta(site, v, len(g))
	}, func(s *testSite) {
		if s.id != "a" {
			return
		}
		honest := s.delta
		s.delta = func(v uint64, g []float32) []float32 {
			forge(s, g)
			return honest(v, g)
		}
	})
	waitFinal(t, ctx, sites)
	if status.Code(wrongRound) != codes.FailedPrecondition || status.Code(wrongSite) != codes.PermissionDenied {
		t.Fatalf("wrong round: %v; wrong site: %v", wrongRound, wrongSite)
	}
	a := sites[0]
	v1, err := flatModel(a.models[string(a.published[0].Model.Sha256)])
	if err != nil {
		t.Fatal(err)
	}
	upd := map[string][]float32{}
	for _, s := range sites {
		upd[s.id] = s.sent[0]
	}
	if d, b := maxDiff(v1, fedAvg(globals[0], upd, counts, f.cfg.SecureAgg.WeightCap)), bound(3, 3); d > b {
		t.Fatalf("model differs from the plaintext FedAvg of the honest updates by %g, bound %g", d, b)
	}
	f.stop()
	log, err := os.ReadFile(filepath.Join(f.cfg.StateDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"envelope round_id 7", "carries secureagg header"} {
		found := false
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, `"type":"refusal"`) && strings.Contains(line, want) && strings.Contains(line, `"site":"a"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no refusal of site a mentioning %q in the audit log", want)
		}
	}
}

// TestRefusalsRateLimited has a site send the same refused call in a loop: the first
// is recorded, the rest only counted, and the count audited as one refusal_summary
// entry when the interval ends. Before, every refusal was a signed, fsynced entry
// of its own.
func TestRefusalsRateLimited(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.AutoStart = false })
	f.start()
	ctx := t.Context()
	cl := f.siteClient("a")
	const calls = 30
	for range calls {
		_, err := cl.Enroll(ctx, &fedclaimspb.EnrollRequest{Envelope: &fedclaimspb.Envelope{FederationId: "other-fed", SiteId: "a"}})
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("err = %v", err)
		}
	}
	path := filepath.Join(f.cfg.StateDir, "audit.jsonl")
	if n := auditTypes(t, path)[audit.Refusal]; n != 1 {
		t.Fatalf("%d refusal entries for %d identical refusals, want 1", n, calls)
	}
	f.clock.fire() // the limiter's interval ends: its summary is audited
	deadline := time.Now().Add(30 * time.Second)
	for auditTypes(t, path)[audit.Refusals] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no refusal_summary entry after the interval")
		}
		runtime.Gosched()
	}
}

// TestUnexpectedSetupUploadNotRead: a setup upload the setup machine does not expect
// (a count table during enrolment) is refused after its header, before a byte of it
// is read. Before,
// the handler read the whole blob (up to 64 MiB) before the phase check, and a
// stream that never closed held the buffer.
func TestUnexpectedSetupUploadNotRead(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.AutoStart = false })
	f.start()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl := f.siteClient("a")
	env := &fedclaimspb.Envelope{FederationId: f.cfg.Federation, SiteId: "a"}
	open := func() fedclaimspb.Federation_UploadClient {
		st, err := cl.Upload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hdr := &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_COUNT_TABLE, Size: 32 << 20, Sha256: make([]byte, 32)}
		if err := st.Send(&fedclaimspb.UploadRequest{Envelope: env, Part: &fedclaimspb.UploadRequest_Header{Header: hdr}}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// The header alone, the stream left open: the answer comes without a byte more.
	var resp fedclaimspb.UploadResponse
	if err := open().RecvMsg(&resp); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("count table during enrolment: err = %v, want FailedPrecondition before the body", err)
	}
}

// TestShareUploadRetried: a decryptor's share upload breaks off after its first
// chunk and is sent again whole; the round applies. Before, the first chunk stayed
// in the decryption and the retry was refused as a duplicate, so one network blip
// aborted the round.
func TestShareUploadRetried(t *testing.T) {
	// Hidden 32: about 15k parameters, four ciphertext chunks.
	f := newTestFed(t, func(c *Config) { c.Rounds = 1; c.Model.Hidden = 32 })
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts := map[string]float64{"a": 100, "b": 100, "c": 100}
	sites := f.sites(ctx, counts, func(site string, v uint64, g []float32) []float32 {
		return randomDelta(site, v, len(g))
	}, func(s *testSite) {
		s.breakShare = func(uint64) bool { return true }
	})
	waitFinal(t, ctx, sites)
	a := sites[0]
	if m := a.published[0].Metrics; m.Round != 1 {
		t.Fatalf("applied round %d, want 1 (no abort)", m.Round)
	}
	n := 0
	for _, s := range sites {
		s.mu.Lock()
		n = max(n, s.broke[1])
		s.mu.Unlock()
	}
	if n < 2 {
		t.Fatalf("the share has %d chunks: breaking it after the first tests nothing", n)
	}
}

// siteClient is a Federation client with site's certificate.
func (f *testFed) siteClient(site string) fedclaimspb.FederationClient {
	f.t.Helper()
	return fedclaimspb.NewFederationClient(f.dial(certs.SiteFiles(f.certDir, site)))
}
