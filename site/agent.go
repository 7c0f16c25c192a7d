package site

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// Version is the agent's software version sent at enrolment when Config.Software
// is empty.
const Version = "fedclaims-site/1"

// Agent is a site agent. Run it once; it is not safe for concurrent use.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	st     *state
	audit  *audit.Log
	tls    *tls.Config
	roots  *x509.CertPool
	signer crypto.Signer
	leaf   *x509.Certificate
	tk     *secureagg.TransportKey
	now    func() time.Time

	client fedclaimspb.FederationClient
	fed    *fedclaimspb.FederationConfig
	party  *secureagg.Party

	// beat records live contact with the aggregator for `fedclaims health`.
	beat *heartbeat

	vocab      *tokenizer.Vocab
	vocabBytes []byte
	vocabSum   []byte
	data       *dataset
	// splits is each dataset's train/validation/test split (tasks.LoadSplits):
	// its own when it declares one, else the hash under the split salt.
	splits map[string]*tasks.Splits
}

// New prepares an agent: it loads the site's certificate (whose id must be
// cfg.SiteID), the consortium CA, the transport key (made on first start, 0600), the
// state a previous run left and opens the audit log. Close releases the log.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	files := certs.SiteFiles(cfg.CertsDir, cfg.SiteID)
	pair, id, err := certs.LoadPair(files)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", cfg.SiteID, err)
	}
	if id.Role != certs.RoleSite || id.ID != cfg.SiteID {
		return nil, fmt.Errorf("%w: key site_id: %q, but certificate %s names %s", ErrConfig, cfg.SiteID, files.Cert, id)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("site %s: key %s cannot sign", cfg.SiteID, files.Key)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", files.Cert, err)
		}
	}
	ca, err := certs.LoadCert(files.CA)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tlsConf, err := certs.ClientTLS(files, cfg.serverName())
	if err != nil {
		return nil, err
	}
	// A dataset that cannot be opened is a configuration error, found at start
	// rather than when the first assignment needs it.
	// So is a dataset whose own split (subject_splits.parquet) is unreadable.
	splits := make(map[string]*tasks.Splits, len(cfg.Data))
	for _, d := range cfg.Data {
		src, err := claims.Open(d, cfg.readerOptions()...)
		if err != nil {
			return nil, fmt.Errorf("%w: key data: %w", ErrConfig, err)
		}
		src.Close()
		if splits[d], err = tasks.LoadSplits(d, cfg.splitSalt()); err != nil {
			return nil, fmt.Errorf("%w: key data: %w", ErrConfig, err)
		}
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log.With("site", cfg.SiteID), st: st, tls: tlsConf, roots: roots, signer: signer, leaf: leaf, now: time.Now, splits: splits}
	if err := a.loadState(); err != nil {
		return nil, err
	}
	heads, err := a.st.auditHeads()
	if err != nil {
		return nil, err
	}
	if a.audit, err = audit.Open(cfg.AuditLogPath(), audit.Options{Actor: "site/" + cfg.SiteID, Signer: signer, RepairTorn: true, Expect: heads}); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return a, nil
}

// loadState restores what a previous run left in the state directory.
func (a *Agent) loadState() error {
	b, err := a.st.read(transportFile)
	if err != nil {
		return err
	}
	a.tk = new(secureagg.TransportKey)
	if b != nil {
		if err := a.tk.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("state %s: %w", a.st.path(transportFile), err)
		}
	} else {
		if a.tk, err = secureagg.NewTransportKey(); err != nil {
			return err
		}
		kb, err := a.tk.MarshalBinary()
		if err != nil {
			return err
		}
		if err := a.st.write(transportFile, kb, 0o600); err != nil {
			return err
		}
	}
	if b, err = a.st.read(federationFile); err != nil {
		return err
	} else if b != nil {
		a.fed = new(fedclaimspb.FederationConfig)
		if err := protojson.Unmarshal(b, a.fed); err != nil {
			return fmt.Errorf("state %s: %w", a.st.path(federationFile), err)
		}
	}
	if b, err = a.st.read(partyFile); err != nil {
		return err
	} else if b != nil {
		a.party = new(secureagg.Party)
		if err := a.party.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("state %s: %w", a.st.path(partyFile), err)
		}
	}
	if b, err = a.st.read(vocabFile); err != nil {
		return err
	} else if b != nil {
		if err := a.setVocab(b); err != nil {
			return fmt.Errorf("state %s: %w", a.st.path(vocabFile), err)
		}
	}
	return nil
}

// Close closes the audit log.
func (a *Agent) Close() error { return a.audit.Close() }

func (a *Agent) federationID() string { return a.cfg.Federation }

// errFinished ends Run cleanly: the final model is installed, or the federation
// stopped.
var errFinished = errors.New("federation finished")

// auditError marks a failed audit write: the agent stops, since it may take no
// action it cannot record.
type auditError struct{ err error }

func (e *auditError) Error() string { return "audit log: " + e.err.Error() }
func (e *auditError) Unwrap() error { return e.err }

// record appends an entry to the site's audit log before the action it records.
func (a *Agent) record(ctx context.Context, typ string, round uint64, fields map[string]string) error {
	_, err := a.audit.Append(ctx, audit.Entry{Type: typ, Federation: a.federationID(), Round: round, Site: a.cfg.SiteID, Fields: fields})
	if err != nil {
		return &auditError{err}
	}
	return nil
}

// Run connects to the aggregator and works until ctx ends, the final model is
// installed (with Config.ExitOnFinal) or the federation stops. It reconnects with
// exponential backoff and seeded jitter after any connection failure, resuming after
// the last assignment handled; it returns early only when it cannot go on: a failed
// audit write, a refusal of its certificate, a federation configuration it refuses
// (errUnsafeConfig: a threshold or min_sites secureagg.Config does not accept), or a
// state directory of another federation.
func (a *Agent) Run(ctx context.Context) error {
	conn, err := grpc.NewClient(a.cfg.Aggregator.Address, fedclaimspb.DialOptions(a.tls)...)
	if err != nil {
		return fmt.Errorf("aggregator %s: %w", a.cfg.Aggregator.Address, err)
	}
	defer conn.Close()
	a.client = fedclaimspb.NewFederationClient(conn)
	a.beat = newHeartbeat(a.cfg.StateDir, a.cfg.SiteID, a.now, func() bool { return conn.GetState() == connectivity.Ready }, a.log)
	defer a.beat.start(ctx, HeartbeatEvery)()
	jitter := rand.New(rand.NewPCG(a.cfg.Seed, jitterSeed(a.cfg.Seed, a.cfg.SiteID)))
	delay := a.cfg.Backoff.Min
	for {
		progressed, err := a.session(ctx)
		switch {
		case errors.Is(err, errFinished):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case fatal(err):
			return err
		}
		if progressed {
			delay = a.cfg.Backoff.Min
		}
		wait := delay/2 + time.Duration(jitter.Int64N(int64(delay/2)+1))
		a.log.Warn("connection to the aggregator lost; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, a.cfg.Backoff.Max)
	}
}

// fatal reports errors that reconnecting does not cure. A refusal of one piece of
// work is not among them: only a refusal of the site itself, at enrolment or when it
// opens its work stream.
func fatal(err error) bool {
	var ae *auditError
	return errors.As(err, &ae) || errors.Is(err, errForeignState) || errors.Is(err, errRefused) || errors.Is(err, errUnsafeConfig)
}

// refusedSite marks the aggregator's refusal of the site itself (its certificate,
// its place on the allow-list) as fatal.
func refusedSite(what string, err error) error {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("%s: %w: %w", what, errRefused, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// transient reports errors of the connection rather than of the work: the
// assignment is left unhandled and comes again after reconnecting.
func transient(err error) bool {
	if errors.Is(err, errLate) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

var (
	errForeignState = errors.New("state directory belongs to another federation")
	errRefused      = errors.New("refused by the aggregator")
	// errUnsafeConfig: the aggregator offers a federation configuration this site
	// refuses to take part in (a threshold or min_sites that would let the
	// aggregator and colluding sites read one site's update). Reconnecting does
	// not change it: the agent stops and says why.
	errUnsafeConfig = errors.New("federation configuration refused by this site")
	errLate         = errors.New("too late")
)

// session enrols and handles assignments until the stream breaks. progressed reports
// whether it got as far as an open work stream.
func (a *Agent) session(ctx context.Context) (progressed bool, err error) {
	if err := a.enrol(ctx); err != nil {
		return false, err
	}
	fed := a.fed.FederationId
	after, err := a.st.lastSeq(fed)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.Work(ctx, &fedclaimspb.WorkRequest{Envelope: a.envelope(0), AfterSeq: after})
	if err != nil {
		return false, refusedSite("work stream", err)
	}
	a.log.Info("work stream open", "federation", fed, "after_seq", after)
	a.beat.streamOpened(fed)
	defer a.beat.streamClosed()
	for {
		asg, err := stream.Recv()
		if err != nil {
			// A server-streaming call reports its refusal at the first receive.
			return true, refusedSite("work stream", err)
		}
		a.beat.received()
		if asg.Seq <= after {
			continue
		}
		herr := a.handle(ctx, asg)
		switch {
		case errors.Is(herr, errFinished):
			if err := a.st.setLastSeq(fed, asg.Seq, a.audit.Anchor()); err != nil {
				return true, err
			}
			return true, herr
		case herr != nil && (fatal(herr) || transient(herr) || ctx.Err() != nil):
			return true, herr
		case herr != nil:
			a.log.Error("assignment failed", "seq", asg.Seq, "round", asg.Envelope.GetRoundId(), "err", herr)
			a.acknowledge(ctx, asg, herr)
		}
		if err := a.st.setLastSeq(fed, asg.Seq, a.audit.Anchor()); err != nil {
			return true, err
		}
		after = asg.Seq
	}
}

// enrol announces the site and its signed share key and takes the federation's
// configuration, which must name this site; a changed configuration is audited.
func (a *Agent) enrol(ctx context.Context) error {
	fc, err := a.enrolAs(ctx, a.cfg.Federation)
	if err != nil {
		return err
	}
	if fc.FederationId != a.cfg.Federation {
		return fmt.Errorf("enrol: %w: this site is configured for %q, the aggregator runs %q", errForeignState, a.cfg.Federation, fc.FederationId)
	}
	if a.fed != nil && a.fed.FederationId != fc.FederationId {
		return fmt.Errorf("enrol: %w: %s holds federation %q", errForeignState, a.st.path(federationFile), a.fed.FederationId)
	}
	if a.fed != nil && proto.Equal(a.fed, fc) {
		return nil
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(fc)
	if err != nil {
		return err
	}
	if err := a.record(ctx, audit.ConfigChange, 0, map[string]string{"federation_config_sha256": audit.SHA256(b), "sites": fmt.Sprint(fc.Sites),
		"threshold": fmt.Sprint(fc.Threshold), "min_sites": fmt.Sprint(fc.MinSites), "model_preset": fc.ModelPreset, "rounds": fmt.Sprint(fc.Rounds)}); err != nil {
		return err
	}
	if err := a.st.write(federationFile, b, 0o600); err != nil {
		return err
	}
	a.fed = fc
	a.log.Info("enrolled", "federation", fc.FederationId, "sites", fc.Sites, "threshold", fc.Threshold, "min_sites", fc.MinSites)
	return nil
}

// enrolAs makes one Enroll call for federation fedID.
func (a *Agent) enrolAs(ctx context.Context, fedID string) (*fedclaimspb.FederationConfig, error) {
	key, err := fedclaimspb.SignShareKey(a.signer, a.leaf, fedID, a.tk.PublicKey())
	if err != nil {
		return nil, err
	}
	if err := a.record(ctx, audit.Enrol, 0, map[string]string{"share_key_sha256": audit.SHA256(key.PublicKey), "software": a.cfg.software()}); err != nil {
		return nil, err
	}
	env := &fedclaimspb.Envelope{FederationId: fedID, SiteId: a.cfg.SiteID}
	resp, err := a.client.Enroll(ctx, &fedclaimspb.EnrollRequest{Envelope: env, SoftwareVersion: a.cfg.software(), ShareKey: key})
	switch status.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition, codes.InvalidArgument:
		// The aggregator read the request and refused it (another federation id, a
		// share key it does not accept): asking again will not change its answer.
		return nil, fmt.Errorf("enrol: %w: %w", errRefused, err)
	default:
		return nil, refusedSite("enrol", err)
	}
	fc := resp.GetConfig()
	if err := a.checkConfig(fc); err != nil {
		a.refuse(ctx, 0, "enrolment", err)
		return nil, fmt.Errorf("enrol: %w", err)
	}
	if e := resp.Envelope; e != nil && e.SiteId != a.cfg.SiteID {
		err := fmt.Errorf("enrolment answer for site %q", e.SiteId)
		a.refuse(ctx, 0, "enrolment", err)
		return nil, fmt.Errorf("enrol: %w", err)
	}
	return fc, nil
}

// checkConfig refuses a federation configuration this site cannot take part in.
func (a *Agent) checkConfig(fc *fedclaimspb.FederationConfig) error {
	switch {
	case fc == nil:
		return errors.New("no federation configuration")
	case fc.FederationId != a.cfg.Federation:
		return fmt.Errorf("federation %q, this site is configured for %q", fc.FederationId, a.cfg.Federation)
	case fc.Threshold == 0:
		return errors.New("threshold 0: the aggregator must state the federation's threshold")
	case fc.MinSites == 0:
		return errors.New("min_sites 0: the aggregator must state the fewest contributors a sum may have")
	case a.fed != nil && a.fed.FederationId == fc.FederationId && a.party != nil &&
		!slices.Equal(slices.Sorted(slices.Values(a.fed.Sites)), slices.Sorted(slices.Values(fc.Sites))):
		return fmt.Errorf("site list changed from %v to %v after key setup", a.fed.Sites, fc.Sites)
	}
	// secureagg.Config is the one rule: 1 <= threshold <= N-1 and
	// threshold+1 <= min_sites <= N, over a valid site list.
	if _, err := secureaggConfig(fc, 0); err != nil {
		return fmt.Errorf("%w: %w", errUnsafeConfig, err)
	}
	roster, err := secureagg.NewRoster(fc.Sites)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnsafeConfig, err)
	}
	if _, err := partyID(roster, a.cfg.SiteID); err != nil {
		return err
	}
	return nil
}

// refuse audits a refusal; a failed audit write is logged, since the refusal
// itself takes no action.
func (a *Agent) refuse(ctx context.Context, round uint64, what string, reason error) {
	if err := a.record(ctx, audit.Refusal, round, map[string]string{"what": what, "reason": truncate(reason.Error())}); err != nil {
		a.log.Error("refusal not audited", "err", err)
	}
	a.log.Warn("refused", "what", what, "round", round, "reason", reason)
}

func truncate(s string) string {
	if len(s) > 512 {
		return s[:512] + "..."
	}
	return s
}

// acknowledge reports an assignment done (herr nil) or failed.
func (a *Agent) acknowledge(ctx context.Context, asg *fedclaimspb.Assignment, herr error) error {
	req := &fedclaimspb.AcknowledgeRequest{Envelope: a.envelope(asg.Envelope.GetRoundId()), AssignmentSeq: asg.Seq}
	if herr != nil {
		req.Error = truncate(herr.Error())
	}
	if _, err := a.client.Acknowledge(ctx, req); err != nil {
		if herr != nil {
			a.log.Warn("could not report a failed assignment", "seq", asg.Seq, "err", err)
		}
		return fmt.Errorf("acknowledge %d: %w", asg.Seq, err)
	}
	return nil
}

// handle does one assignment.
func (a *Agent) handle(ctx context.Context, asg *fedclaimspb.Assignment) (err error) {
	round := asg.Envelope.GetRoundId()
	want := uint64(0)
	switch asg.Task.(type) {
	case *fedclaimspb.Assignment_Train, *fedclaimspb.Assignment_Decrypt:
		want = round
		if round == 0 {
			err := errors.New("round task outside a round")
			a.refuse(ctx, round, "assignment", err)
			return err
		}
	case *fedclaimspb.Assignment_Published, *fedclaimspb.Assignment_Control:
		want = round
	}
	if err := a.checkEnvelope(asg.Envelope, want); err != nil {
		a.refuse(ctx, round, "assignment", err)
		return err
	}
	if d := asg.GetDeadline(); d != nil && want != 0 && a.now().After(d.AsTime()) {
		// A round task that arrives after its deadline (a site back from a restart
		// while the round moved on) would only be refused after the work was done.
		return fmt.Errorf("round %d: the deadline %s has passed", round, d.AsTime().Format(time.RFC3339))
	}
	if d := asg.GetDeadline(); d != nil && want != 0 {
		// Work past the deadline would be refused: stop it there.
		parent := ctx
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.AsTime())
		defer cancel()
		defer func() {
			if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("round %d: the deadline %s passed during the work: %w", round, d.AsTime().Format(time.RFC3339), errLate)
			}
		}()
	}
	log := a.log.With("seq", asg.Seq, "round", round)
	switch t := asg.Task.(type) {
	case *fedclaimspb.Assignment_KeySetup:
		log.Info("key setup", "step", t.KeySetup.Step)
		return a.keySetup(ctx, asg, t.KeySetup)
	case *fedclaimspb.Assignment_Vocabulary:
		log.Info("vocabulary counts", "k", t.Vocabulary.KFloor)
		return a.counts(ctx, asg, t.Vocabulary)
	case *fedclaimspb.Assignment_Train:
		log.Info("training round")
		return a.train(ctx, asg, t.Train)
	case *fedclaimspb.Assignment_Decrypt:
		log.Info("decryption share")
		return a.decrypt(ctx, asg, t.Decrypt)
	case *fedclaimspb.Assignment_Published:
		log.Info("published model", "final", t.Published.Final)
		return a.published(ctx, asg, t.Published)
	case *fedclaimspb.Assignment_Control:
		return a.control(ctx, asg, t.Control)
	}
	return fmt.Errorf("assignment %d: unknown task %T", asg.Seq, asg.Task)
}

func (a *Agent) control(ctx context.Context, asg *fedclaimspb.Assignment, c *fedclaimspb.Control) error {
	switch c.Action {
	case fedclaimspb.Control_ACTION_HEARTBEAT:
		return nil
	case fedclaimspb.Control_ACTION_PAUSED, fedclaimspb.Control_ACTION_RESUMED, fedclaimspb.Control_ACTION_STOPPED:
		if err := a.record(ctx, "control", asg.Envelope.GetRoundId(), map[string]string{"action": c.Action.String(), "reason": truncate(c.Reason)}); err != nil {
			return err
		}
		a.log.Info("federation control", "action", c.Action, "reason", c.Reason)
		if c.Action == fedclaimspb.Control_ACTION_STOPPED {
			return errFinished
		}
		return nil
	}
	return fmt.Errorf("unknown control action %v", c.Action)
}

func hexSum(b []byte) string { return hex.EncodeToString(b) }

// installModel writes a downloaded model into a checkpoint directory of the state
// (model.safetensors, config.json from its metadata, and the vocabulary) and loads it
// back, so that what the site trains on and evaluates is what `fedclaims eval
// --model` loads.
func (a *Agent) installModel(dir string, b []byte) (*model.Model, error) {
	return installCheckpoint(a.st.path(dir), b, a.vocabBytes)
}
