package aggregator

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
)

// RoundRecord is what the aggregator keeps of an applied round: aggregates only.
type RoundRecord struct {
	Round        uint64        `json:"round"`
	Version      uint64        `json:"version"`
	Contributors []string      `json:"contributors"`
	TrainLoss    float64       `json:"train_loss"`
	Duration     time.Duration `json:"duration_ns"`
	UploadBytes  uint64        `json:"upload_bytes"`
	Finished     time.Time     `json:"finished"`
	ModelSHA256  string        `json:"model_sha256"`
}

// Clock is the time source of deadlines; tests may substitute their own.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f after d, unless the returned stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Options are the Server's collaborators beyond its Config.
type Options struct {
	Log *slog.Logger
	// Clock defaults to the wall clock.
	Clock Clock
}

// Server is the aggregator: the gRPC Federation and Admin services over mutual TLS,
// an event loop that owns the round and setup machines, the global model and the
// per-site assignment queues, and the metrics listener (/metrics, the status page).
//
// RPC handlers never touch that state themselves: they hand closures to the loop
// (call) and stream ciphertext chunks into the round's secureagg.Aggregate, which is
// safe for concurrent use, outside it.
type Server struct {
	fedclaimspb.UnimplementedFederationServer
	fedclaimspb.UnimplementedAdminServer

	cfg     Config
	log     *slog.Logger
	clock   Clock
	audit   *audit.Log
	store   store
	roots   *x509.CertPool
	params  secureagg.Parameters
	sacfg   secureagg.Config
	roster  secureagg.Roster
	sites   []string // roster.Names(): party order
	uploads uploadSlots
	// uploadGate holds one token per upload being read (maxUploads); downloads
	// wait for their slots likewise (downloads.go).
	uploadGate chan struct{}
	downloads  *downloadSlots
	// refusals keeps a peer refused in a loop from filling the disk with audit
	// entries (the guard's refusals and the handlers' share it).
	refusals *audit.RefusalLimiter
	metrics  *metrics

	events chan func()
	done   chan struct{}
	// loopCtx is the loop's context, for work the loop starts on behalf of an RPC
	// (a round opened by admin start) that must outlive the call.
	loopCtx context.Context
	fatal   error // set on the loop when the federation must stop
	// serving is true while the loop runs and has not halted: what /healthz reports.
	serving atomic.Bool

	// Owned by the loop.
	round    *Machine
	setup    *SetupMachine
	seqs     map[string]uint64
	outbox   map[string][]*fedclaimspb.Assignment
	notify   map[string]map[chan struct{}]bool
	online   map[string]int
	lastSeen map[string]time.Time
	lastRnd  map[string]uint64
	software map[string]string // the version each site said it runs when it enrolled
	keys     map[string]*fedclaimspb.SignedKey
	dealt    map[string]map[string]bool // dealer -> recipients served in its current dealing
	model    *model.Model
	blob     []byte // the global model's safetensors bytes
	blobSum  []byte
	vocab    []byte
	vocabSum []byte
	pubKey   []byte
	opt      Optimizer
	history  []RoundRecord
	cur      *roundIO
	finished bool
}

// roundIO is the I/O side of the open round.
type roundIO struct {
	id         uint64
	started    time.Time
	deadline   time.Time
	stopTimer  func() bool
	agg        *secureagg.Aggregate
	dec        *secureagg.Decryption
	decryptors map[string]bool
	sealed     []*secureagg.SumChunk
	sums       [][]byte
	sumSize    uint64
	// ended is closed when the round ends, releasing the uploads reading into it.
	ended  chan struct{}
	sumSHA []byte
	bytes  uint64
	losses map[string]float64
}

// NewServer opens the audit log and the state directory and restores the federation
// from its last checkpoint, if any.
func NewServer(cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	params, err := secureagg.NewParameters(secureagg.Preset(cfg.SecureAgg.Preset))
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	ca, err := certs.LoadCert(certs.AggregatorFiles(cfg.Certs).CA)
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	roster, err := secureagg.NewRoster(cfg.Sites)
	if err != nil {
		return nil, fmt.Errorf("aggregator: sites: %w", err)
	}
	s := &Server{
		cfg: cfg, log: opts.Log, clock: opts.Clock, store: st, roots: roots, params: params, roster: roster, sites: roster.Names(),
		uploads: uploadSlots{limit: maxUploadsPerSite, busy: map[string]int{}}, uploadGate: make(chan struct{}, maxUploads),
		downloads: newDownloadSlots(maxDownloads, maxDownloadsPerSite), refusals: audit.NewRefusalLimiter(audit.RefusalLimits{}), metrics: newMetrics(opts.Log),
		events: make(chan func(), 64), done: make(chan struct{}),
		seqs: map[string]uint64{}, outbox: map[string][]*fedclaimspb.Assignment{}, notify: map[string]map[chan struct{}]bool{},
		online: map[string]int{}, lastSeen: map[string]time.Time{}, lastRnd: map[string]uint64{}, software: map[string]string{}, keys: map[string]*fedclaimspb.SignedKey{}, dealt: map[string]map[string]bool{},
	}
	s.sacfg = secureagg.Config{Params: params, Federation: cfg.Federation, Sites: roster.IDs(), Threshold: cfg.Threshold,
		WeightCap: cfg.SecureAgg.WeightCap, MinSites: cfg.MinSites}
	if s.opt, err = NewOptimizer(cfg.Server); err != nil {
		return nil, err
	}
	auditPath := cfg.AuditLog
	if auditPath == "" {
		auditPath = filepath.Join(cfg.StateDir, "audit.jsonl")
	}
	// Entries are signed with the aggregator's certificate key, so that
	// `fedclaims audit verify --cert aggregator.crt` shows who wrote the log.
	pair, _, err := certs.LoadPair(certs.AggregatorFiles(cfg.Certs))
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("aggregator: key of %s cannot sign", certs.AggregatorFiles(cfg.Certs).Cert)
	}
	// The state files name the audit head they were written after; a log that no
	// longer reaches one of them lost entries, and the federation must not go on.
	heads, err := s.restore()
	if err != nil {
		return nil, err
	}
	if s.audit, err = audit.Open(auditPath, audit.Options{Actor: "aggregator", Signer: signer, RepairTorn: true, Now: s.clock.Now, Expect: heads}); err != nil {
		return nil, err
	}
	return s, nil
}

// saveSetup writes setup.json with the audit head it follows.
func (s *Server) saveSetup() error {
	return s.store.writeJSON(setupFile, setupJSON{SetupState: s.setup.State(), AuditHead: s.audit.Anchor()})
}

// saveRound writes round.json with the audit head it follows.
func (s *Server) saveRound() error {
	return s.store.writeJSON(roundFile, roundJSON{State: s.round.State(), AuditHead: s.audit.Anchor()})
}

// restore loads the setup state, the assignment seqs and the last checkpoint, and
// returns the audit heads they recorded.
func (s *Server) restore() ([]audit.Head, error) {
	var heads []audit.Head
	var sj setupJSON
	if _, err := s.store.readJSON(setupFile, &sj); err != nil {
		return nil, err
	}
	heads = append(heads, sj.AuditHead)
	sst := sj.SetupState
	var err error
	if s.setup, err = NewSetupMachine(s.cfg.Rules(), sst); err != nil {
		return nil, fmt.Errorf("%s: %w", s.store.path(setupFile), err)
	}
	if _, err := s.store.readJSON(seqsFile, &s.seqs); err != nil {
		return nil, err
	}
	if s.seqs == nil {
		s.seqs = map[string]uint64{}
	}
	for _, id := range sst.Enrolled {
		b, err := s.store.getBlob("enrol-" + id)
		if err != nil {
			return nil, err
		}
		var k fedclaimspb.SignedKey
		if err := unmarshalProto(b, &k); err != nil {
			return nil, fmt.Errorf("state: enrolment of %s: %w", id, err)
		}
		s.keys[id] = &k
	}
	if s.store.hasBlob("collective.key") {
		if s.pubKey, err = s.store.getBlob("collective.key"); err != nil {
			return nil, err
		}
	}
	var st State
	ck, err := s.store.loadCheckpoint()
	if err != nil {
		return nil, err
	}
	if ck != nil {
		if err := s.opt.UnmarshalBinary(ck.Optimizer); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		s.model, s.vocab, s.history, st = ck.Model, ck.Vocab, ck.History, ck.State
		heads = append(heads, ck.AuditHead)
		if err := s.loadBlob(); err != nil {
			return nil, err
		}
	}
	// round.json is written after every checkpoint, when a round opens and on every
	// pause, resume and stop, so it is never older than the checkpoint: it names the
	// latest round id spent and the coordinator's latest command. The model version
	// is the checkpoint's.
	var rj roundJSON
	if ok, err := s.store.readJSON(roundFile, &rj); err != nil {
		return nil, err
	} else if latest := rj.State; ok && latest.Round >= st.Round {
		st.Round, st.Paused, st.Stopped = latest.Round, latest.Paused, latest.Stopped
		st.Withheld, st.SharesReleased = latest.Withheld, latest.SharesReleased
	}
	if s.round, err = NewMachine(s.cfg.Rules(), st); err != nil {
		return nil, err
	}
	s.finished = s.round.Phase() == PhaseDone
	heads = append(heads, rj.AuditHead)
	return heads, nil
}

// loadBlob reads the current checkpoint's model bytes, the global model blob.
func (s *Server) loadBlob() error {
	cur, err := os.ReadFile(s.store.path(currentFile))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(s.store.path(string(trimNL(cur))), model.ModelFile))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	s.setBlob(b)
	return nil
}

// setBlob makes b, a checkpoint's model bytes, the global model blob.
func (s *Server) setBlob(b []byte) {
	sum := sha256.Sum256(b)
	vs := sha256.Sum256(s.vocab)
	s.blob, s.blobSum, s.vocabSum = b, sum[:], vs[:]
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Run serves the federation on lis (and /metrics, the coordinator's status page and
// /healthz on the configured metrics address) until
// ctx ends or the federation hits an error it cannot continue past, such as an audit
// entry that cannot be written.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	defer s.audit.Close()
	// Refusals counted since the last summary are audited before the log closes.
	defer s.flushRefusals(context.Background())
	tlsConf, err := certs.ServerTLS(certs.AggregatorFiles(s.cfg.Certs))
	if err != nil {
		return err
	}
	// The revocation list is checked on every call and open streams re-checked, not
	// only at the handshake: site connections live for hours.
	crl, err := certs.LoadRevocationList(certs.AggregatorFiles(s.cfg.Certs))
	if err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	guard := fedclaimspb.Guard{Allow: s.allow, Refused: s.refused, Refusals: s.refusals, Now: s.clock.Now}
	if crl != nil {
		guard.Revocations = crl
	}
	// Each site holds a Work stream and at most maxUploadsPerSite uploads; the
	// admin a few calls. Beyond that a peer is misbehaving.
	opts := append(fedclaimspb.ServerOptions(tlsConf, guard), grpc.MaxConcurrentStreams(uint32(len(s.sites)*(maxUploadsPerSite+2)+16)))
	gs := grpc.NewServer(opts...)
	fedclaimspb.RegisterFederationServer(gs, s)
	fedclaimspb.RegisterAdminServer(gs, s)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var loopErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		loopErr = s.loop(ctx)
		cancel()
	}()
	var httpSrv *http.Server
	if s.cfg.Metrics != "" {
		ml, err := net.Listen("tcp", s.cfg.Metrics)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("metrics listener %s: %w", s.cfg.Metrics, err)
		}
		httpSrv = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := httpSrv.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics server", "err", err)
			}
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	s.log.Info("aggregator listening", "addr", lis.Addr().String(), "federation", s.cfg.Federation, "sites", s.sites)
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		cancel()
	}
	// Streams block in Work; Stop ends them rather than waiting for sites to leave.
	gs.Stop()
	if httpSrv != nil {
		httpSrv.Close()
	}
	wg.Wait()
	if loopErr != nil && !errors.Is(loopErr, context.Canceled) {
		return loopErr
	}
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// loop runs the closures RPC handlers and timers hand it, then acts on what the
// machines are ready for.
func (s *Server) loop(ctx context.Context) error {
	defer close(s.done)
	s.serving.Store(true)
	defer s.serving.Store(false)
	s.loopCtx = ctx
	s.resume(ctx)
	s.observe()
	s.scheduleRefusalFlush(ctx)
	for s.fatal == nil {
		select {
		case <-ctx.Done():
			s.endRound()
			return ctx.Err()
		case f := <-s.events:
			f()
			s.process(ctx)
			s.observe()
		}
	}
	s.log.Error("federation halted", "err", s.fatal)
	return s.fatal
}

// call runs f on the loop and returns its error, or the context's or the loop's end.
// Once f is queued, call waits for it to run (or for the loop to end, after which it
// never will) even if ctx is done: f writes into its caller's variables, and
// returning early would let the caller read them while the loop writes them.
func (s *Server) call(ctx context.Context, f func() error) error {
	errc := make(chan error, 1)
	select {
	case s.events <- func() { errc <- f() }:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.done:
		return status.Error(codes.Unavailable, "the aggregator is shutting down")
	}
	select {
	case err := <-errc:
		return err
	case <-s.done:
		return status.Error(codes.Unavailable, "the aggregator is shutting down")
	}
}

// post runs f on the loop later, from a timer.
func (s *Server) post(f func()) {
	go func() {
		select {
		case s.events <- f:
		case <-s.done:
		}
	}()
}

// halt stops the federation: the loop returns err after the current closure.
func (s *Server) halt(err error) {
	if s.fatal == nil {
		s.fatal = err
	}
}

// resume re-issues what a restarted aggregator owes the sites.
func (s *Server) resume(ctx context.Context) {
	// setup.json is written before the key or the vocabulary is built from the blobs
	// on disk; a crash in between leaves the phase advanced without its product.
	if s.setup.Phase() > SetupPublicKey && s.pubKey == nil {
		if err := s.buildKey(ctx); err != nil {
			s.halt(err)
			return
		}
	}
	if s.setup.Phase() == SetupDone && s.model == nil {
		if err := s.buildVocabulary(ctx); err != nil {
			s.halt(err)
			return
		}
	}
	switch {
	case s.setup.Phase() != SetupEnrolling && s.setup.Phase() != SetupDone:
		s.assignSetup(ctx, &Assign{Phase: s.setup.Phase(), Sites: s.setup.Pending()})
	case s.setup.Phase() == SetupDone && s.finished:
		s.publish(ctx, true)
	case s.setup.Phase() == SetupDone && s.round.State().Stopped:
		s.finishStopped(ctx)
	case s.setup.Phase() == SetupDone && s.model != nil && !s.round.State().Paused && !s.round.State().Stopped &&
		(s.cfg.AutoStart || s.round.State().Round > 0):
		// A federation that was training goes on; a fresh one waits for `admin start`
		// unless auto_start.
		s.stepRound(ctx, Start{})
	}
	s.process(ctx)
}

// process acts on both machines' Ready until neither asks for anything.
func (s *Server) process(ctx context.Context) {
	for s.fatal == nil {
		if rd := s.setup.Ready(); !rd.IsEmpty() {
			s.setup.Advance()
			s.onSetupReady(ctx, rd)
			continue
		}
		if rd := s.round.Ready(); !rd.IsEmpty() {
			s.round.Advance()
			s.onRoundReady(ctx, rd)
			continue
		}
		return
	}
}

// record appends an audit entry for the federation; an error means the action it
// describes must not happen.
func (s *Server) record(ctx context.Context, typ string, round uint64, site string, fields map[string]string) error {
	_, err := s.audit.Append(ctx, audit.Entry{Type: typ, Federation: s.cfg.Federation, Round: round, Site: site, Fields: fields})
	if err != nil {
		s.log.Error("audit append failed: refusing the action", "type", typ, "err", err)
		return status.Errorf(codes.Unavailable, "audit log: %v", err)
	}
	return nil
}

// mustRecord is record for actions of the loop itself: an action that cannot be
// audited halts the federation.
func (s *Server) mustRecord(ctx context.Context, typ string, round uint64, site string, fields map[string]string) bool {
	if err := s.record(ctx, typ, round, site, fields); err != nil {
		s.halt(fmt.Errorf("aggregator: %s not performed: %w", typ, err))
		return false
	}
	return true
}

func (s *Server) stepRound(ctx context.Context, m Msg) error {
	err := s.round.Step(m)
	var ref *Refused
	if errors.As(err, &ref) {
		return err
	}
	if err != nil {
		s.halt(err)
	}
	return err
}

// assign queues an assignment for a site with the next seq, persists the seq and
// wakes the site's Work streams.
func (s *Server) assign(site string, round uint64, deadline time.Time, set func(*fedclaimspb.Assignment)) {
	s.seqs[site]++
	a := &fedclaimspb.Assignment{Envelope: &fedclaimspb.Envelope{FederationId: s.cfg.Federation, RoundId: round, SiteId: site}, Seq: s.seqs[site]}
	if !deadline.IsZero() {
		a.Deadline = timestamppb.New(deadline)
	}
	set(a)
	q := append(s.outbox[site], a)
	// Only the latest assignments matter to a reconnecting site; keep the queue short.
	if len(q) > 64 {
		q = slices.Clone(q[len(q)-64:])
	}
	s.outbox[site] = q
	for ch := range s.notify[site] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// saveSeqs persists the seqs after a batch of assignments, before any is sent: a
// restarted aggregator never reuses a seq a site has seen.
func (s *Server) saveSeqs() {
	if err := s.store.writeJSON(seqsFile, s.seqs); err != nil {
		s.halt(err)
	}
}

// seedFor derives a site's local-training seed for a model version, so that the
// same configuration gives the same training whatever the round ids (which a
// restart advances).
func seedFor(seed, version uint64, site string) uint64 {
	h := sha256.New()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	binary.LittleEndian.PutUint64(b[8:], version)
	h.Write(b[:])
	h.Write([]byte(site))
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func itoa[T ~int | ~uint64 | ~uint32 | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// scheduleRefusalFlush audits, once per limiter interval, the refusals that were
// counted instead of recorded one by one.
func (s *Server) scheduleRefusalFlush(ctx context.Context) {
	s.clock.AfterFunc(s.refusals.Limits().Interval, func() {
		s.post(func() {
			s.flushRefusals(ctx)
			s.scheduleRefusalFlush(ctx)
		})
	})
}

func (s *Server) flushRefusals(ctx context.Context) {
	for _, sum := range s.refusals.Flush(s.clock.Now()) {
		if err := s.record(ctx, audit.Refusals, 0, "", sum.Fields()); err != nil {
			s.log.Error("refusal summary not audited", "peer", sum.Peer, "reason", sum.Reason, "err", err)
		}
	}
}
