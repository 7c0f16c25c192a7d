package aggregator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// maxSetupBlob bounds a setup blob (a key share, a sealed Shamir share, a count
// table), which the aggregator reads whole.
const maxSetupBlob = 64 << 20

// allow admits only allow-listed sites to the Federation service; any admin
// certificate of the consortium may use Admin.
func (s *Server) allow(_ context.Context, id certs.Identity, _ string) error {
	if id.Role == certs.RoleSite {
		if _, ok := s.roster.ID(id.ID); !ok {
			return status.Errorf(codes.PermissionDenied, "site %q is not allow-listed in federation %q", id.ID, s.cfg.Federation)
		}
	}
	return nil
}

// refused audits a call refused before it reached a handler.
func (s *Server) refused(ctx context.Context, method string, id certs.Identity, err error) {
	s.metrics.refusal()
	site := ""
	if id.Role == certs.RoleSite && certs.ValidID(id.ID) == nil {
		site = id.ID
	}
	who := "unauthenticated"
	if id.Role != "" {
		who = id.String()
	}
	if aerr := s.record(ctx, audit.Refusal, 0, site, map[string]string{"method": method, "caller": who, "reason": trim(status.Convert(err).Message())}); aerr != nil {
		s.log.Error("refusal not audited", "method", method, "err", aerr)
	}
	s.log.Warn("call refused", "method", method, "caller", who, "err", err)
}

// refuse audits a refused message and returns err, the status to send. Repeated
// refusals of one peer for one reason are counted, not each recorded, and audited
// as one summary per interval (audit.RefusalLimiter).
func (s *Server) refuse(ctx context.Context, round uint64, what string, err error) error {
	return s.refuseAs(ctx, round, what, "", err)
}

// refuseAs is refuse with a class that tells apart refusals of one message and
// status (which envelope field was wrong) for the rate limit; it is ours, never
// the peer's text, so that a peer cannot mint a new reason per call.
func (s *Server) refuseAs(ctx context.Context, round uint64, what, class string, err error) error {
	s.metrics.refusal()
	id, _ := fedclaimspb.Caller(ctx)
	// A throttled peer is answered as before, only not audited: ResourceExhausted
	// would read to a site as transient and make it retry in a loop.
	if d := s.refusals.Allow(s.clock.Now(), fedclaimspb.RefusalPeer(ctx, id), strings.TrimSpace(what+" "+status.Code(err).String()+" "+class)); !d.Record {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if aerr := s.record(ctx, audit.Refusal, round, id.ID, map[string]string{"message": what, "caller": id.String(), "reason": trim(status.Convert(err).Message())}); aerr != nil {
		return aerr
	}
	s.log.Warn("message refused", "message", what, "caller", id.String(), "err", err)
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func trim(s string) string {
	if len(s) > 512 {
		return s[:512]
	}
	return s
}

// snapshot is what a handler reads of the loop's state before acting outside it.
type snapshot struct {
	round uint64
	phase Phase
	cur   *roundIO
	// The machines' answers for this site and round (and, for a setup blob, its
	// step), asked once at the start, before a byte of the body is read.
	admitUpload error
	admitShare  error
	hasShared   bool
	admitStep   error
}

func (s *Server) snapshot(ctx context.Context, site string, kind fedclaimspb.BlobKind) (snapshot, error) {
	var sn snapshot
	err := s.call(ctx, func() error {
		r := s.round.State().Round
		sn = snapshot{round: r, phase: s.round.Phase(), cur: s.cur,
			admitUpload: s.round.AdmitUpload(site, r), admitShare: s.round.AdmitShare(site, r), hasShared: s.round.HasShared(site, r),
			admitStep: s.setup.AdmitStep(site, setupPhaseOf(kind))}
		s.lastSeen[site] = s.clock.Now()
		return nil
	})
	return sn, err
}

// checkEnv checks an envelope against the caller's certificate for round, auditing
// a refusal.
func (s *Server) checkEnv(ctx context.Context, env *fedclaimspb.Envelope, round uint64, what string) error {
	if err := fedclaimspb.CheckEnvelope(ctx, env, s.cfg.Federation, round); err != nil {
		// CheckEnvelope's messages read "envelope <field> ...": the field is the class.
		class := ""
		if f := strings.Fields(status.Convert(err).Message()); len(f) > 1 && f[0] == "envelope" {
			class = strings.Trim(f[1], ":")
		}
		return s.refuseAs(ctx, env.GetRoundId(), what, class, err)
	}
	return nil
}

// Enroll implements fedclaimspb.FederationServer.
func (s *Server) Enroll(ctx context.Context, req *fedclaimspb.EnrollRequest) (*fedclaimspb.EnrollResponse, error) {
	if err := s.checkEnv(ctx, req.GetEnvelope(), 0, "enroll"); err != nil {
		return nil, err
	}
	id, _ := fedclaimspb.Caller(ctx)
	k := req.GetShareKey()
	if err := fedclaimspb.VerifyShareKey(k, s.cfg.Federation, s.roots, s.clock.Now()); err != nil {
		return nil, s.refuse(ctx, 0, "enroll", status.Errorf(codes.InvalidArgument, "share key: %v", err))
	}
	if k.SiteId != id.ID {
		return nil, s.refuse(ctx, 0, "enroll", status.Errorf(codes.PermissionDenied, "share key of site %q sent by %s", k.SiteId, id))
	}
	b, err := proto.Marshal(k)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	err = s.call(ctx, func() error {
		if old, ok := s.keys[id.ID]; ok && !bytes.Equal(old.PublicKey, k.PublicKey) && s.setup.Phase() != SetupEnrolling {
			return s.refuse(ctx, 0, "enroll", status.Errorf(codes.FailedPrecondition,
				"site %q enrolled with another share key and setup has begun; its Shamir shares are sealed to that key", id.ID))
		}
		if err := s.record(ctx, audit.Enrol, 0, id.ID, map[string]string{"share_key_sha256": audit.SHA256(k.PublicKey), "software": trim(req.GetSoftwareVersion())}); err != nil {
			return err
		}
		if err := s.store.putBlob(enrolBlob(id.ID), b); err != nil {
			s.halt(err)
			return status.Error(codes.Internal, err.Error())
		}
		s.keys[id.ID] = k
		s.software[id.ID] = trim(req.GetSoftwareVersion())
		s.lastSeen[id.ID] = s.clock.Now()
		if err := s.setup.Step(Enrolled{Site: id.ID}); err != nil {
			return status.Error(codes.PermissionDenied, err.Error())
		}
		if err := s.saveSetup(); err != nil {
			s.halt(err)
			return status.Error(codes.Internal, err.Error())
		}
		s.log.Info("site enrolled", "site", id.ID)
		if s.cfg.AutoStart && s.setup.Phase() == SetupEnrolling && s.setup.AllEnrolled() {
			if err := s.record(ctx, audit.ConfigChange, 0, "", map[string]string{"action": "start", "by": "auto_start"}); err != nil {
				return err
			}
			return s.setup.Step(Begin{})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &fedclaimspb.EnrollResponse{Envelope: &fedclaimspb.Envelope{FederationId: s.cfg.Federation, SiteId: id.ID}, Config: s.federationConfig()}, nil
}

func (s *Server) federationConfig() *fedclaimspb.FederationConfig {
	return &fedclaimspb.FederationConfig{
		FederationId: s.cfg.Federation, Sites: s.sites, Threshold: uint32(s.cfg.Threshold), MinSites: uint32(s.cfg.MinSites),
		SecureaggPreset: s.cfg.SecureAgg.Preset, ModelPreset: s.cfg.Model.Preset, Rounds: uint32(s.cfg.Rounds),
		Seed: s.cfg.Model.Seed, WeightCap: s.cfg.SecureAgg.WeightCap,
	}
}

// Work implements fedclaimspb.FederationServer: it sends the site's assignments after
// after_seq, then each new one as it is queued, until the site hangs up.
func (s *Server) Work(req *fedclaimspb.WorkRequest, stream fedclaimspb.Federation_WorkServer) error {
	ctx := stream.Context()
	id, _ := fedclaimspb.Caller(ctx)
	if err := s.checkEnv(ctx, req.GetEnvelope(), req.GetEnvelope().GetRoundId(), "work"); err != nil {
		return err
	}
	wake := make(chan struct{}, 1)
	if err := s.call(ctx, func() error {
		if s.notify[id.ID] == nil {
			s.notify[id.ID] = map[chan struct{}]bool{}
		}
		s.notify[id.ID][wake] = true
		s.online[id.ID]++
		s.metrics.setOnline(s.countOnline())
		s.lastSeen[id.ID] = s.clock.Now()
		return nil
	}); err != nil {
		return err
	}
	defer s.post(func() {
		delete(s.notify[id.ID], wake)
		s.online[id.ID]--
		s.metrics.setOnline(s.countOnline())
		s.lastSeen[id.ID] = s.clock.Now()
	})
	s.log.Info("site online", "site", id.ID, "after_seq", req.GetAfterSeq())
	after := req.GetAfterSeq()
	for {
		var batch []*fedclaimspb.Assignment
		if err := s.call(ctx, func() error {
			for _, a := range s.outbox[id.ID] {
				if a.Seq > after {
					batch = append(batch, a)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		for _, a := range batch {
			if err := stream.Send(a); err != nil {
				return err
			}
			after = a.Seq
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.done:
			return status.Error(codes.Unavailable, "the aggregator is shutting down")
		}
	}
}

func (s *Server) countOnline() int {
	n := 0
	for _, c := range s.online {
		if c > 0 {
			n++
		}
	}
	return n
}

// Upload implements fedclaimspb.FederationServer. It reads the header, asks the machines
// whether the upload is expected now, and only then reads its chunks, each within
// the idle timeout.
func (s *Server) Upload(stream fedclaimspb.Federation_UploadServer) error {
	ctx := stream.Context()
	id, _ := fedclaimspb.Caller(ctx)
	if !s.uploads.acquire(id.ID) {
		return s.refuse(ctx, 0, "upload", status.Errorf(codes.ResourceExhausted, "site %q already has %d uploads open", id.ID, maxUploadsPerSite))
	}
	defer s.uploads.release(id.ID)
	// At most maxUploads streams are read at once, whatever the number of sites: the
	// others wait, their data held by gRPC's flow control, not in our buffers.
	select {
	case s.uploadGate <- struct{}{}:
		defer func() { <-s.uploadGate }()
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	in := s.receive(ctx, stream)
	first, err := in.next(nil)
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return s.refuse(ctx, first.GetEnvelope().GetRoundId(), "upload", status.Error(codes.InvalidArgument, "the first upload message is not a header"))
	}
	sn, err := s.snapshot(ctx, id.ID, hdr.Kind)
	if err != nil {
		return err
	}
	env := first.GetEnvelope()
	round := uint64(0)
	if hdr.Kind == fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE || hdr.Kind == fedclaimspb.BlobKind_BLOB_KIND_DECRYPTION_SHARE {
		round = sn.round
	}
	what := "upload " + hdr.Kind.String()
	if err := s.checkEnv(ctx, env, round, what); err != nil {
		return err
	}
	// A round's upload ends with the round, so that no stream keeps a finished
	// round's aggregate alive.
	var ended <-chan struct{}
	if sn.cur != nil && round != 0 {
		ended = sn.cur.ended
	}
	// Every later message must carry the same envelope as the header.
	next := func() (*fedclaimspb.Chunk, error) {
		m, err := in.next(ended)
		if err != nil {
			return nil, err
		}
		if !proto.Equal(m.GetEnvelope(), env) {
			return nil, s.refuse(ctx, round, what, status.Errorf(codes.PermissionDenied, "chunk envelope %s differs from the header's %s", m.GetEnvelope().Describe(), env.Describe()))
		}
		return m.GetChunk(), nil
	}
	r := fedclaimspb.NewBlobReader(next, hdr.Size, hdr.GetSha256())
	switch hdr.Kind {
	case fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE:
		err = s.uploadUpdate(ctx, id.ID, sn, hdr, r)
	case fedclaimspb.BlobKind_BLOB_KIND_DECRYPTION_SHARE:
		err = s.uploadShare(ctx, id.ID, sn, r)
	case fedclaimspb.BlobKind_BLOB_KIND_PUBLIC_KEY_SHARE, fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE, fedclaimspb.BlobKind_BLOB_KIND_COUNT_TABLE:
		err = s.uploadSetup(ctx, id.ID, sn, hdr, r)
	default:
		err = s.refuse(ctx, round, what, status.Errorf(codes.InvalidArgument, "sites do not upload %s", hdr.Kind))
	}
	if err != nil {
		return err
	}
	s.metrics.received(r.Size())
	return stream.SendAndClose(&fedclaimspb.UploadResponse{Envelope: &fedclaimspb.Envelope{FederationId: s.cfg.Federation, RoundId: round, SiteId: id.ID}, Size: r.Size(), Sha256: r.Sum()})
}

// inbound receives an upload stream's messages on its own goroutine, so that the
// handler can give up on a silent sender: gRPC's Recv takes no deadline, and only
// the handler's return ends the stream.
type inbound struct {
	s    *Server
	ctx  context.Context
	msgs chan recvd
}

type recvd struct {
	m   *fedclaimspb.UploadRequest
	err error
}

// receive starts the receiving goroutine; it ends when the stream does, which the
// handler's return guarantees.
func (s *Server) receive(ctx context.Context, stream fedclaimspb.Federation_UploadServer) *inbound {
	in := &inbound{s: s, ctx: ctx, msgs: make(chan recvd)}
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case in.msgs <- recvd{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return in
}

// next returns the next message, or an error once upload_idle_timeout passes
// without one or ended (the round's end) is closed.
func (in *inbound) next(ended <-chan struct{}) (*fedclaimspb.UploadRequest, error) {
	idle := make(chan struct{})
	stop := in.s.clock.AfterFunc(in.s.cfg.UploadIdleTimeout, func() { close(idle) })
	defer stop()
	select {
	case r := <-in.msgs:
		return r.m, r.err
	case <-idle:
		return nil, status.Errorf(codes.DeadlineExceeded, "upload: nothing received for %v (upload_idle_timeout)", in.s.cfg.UploadIdleTimeout)
	case <-ended:
		return nil, status.Error(codes.Aborted, "upload: the round ended")
	case <-in.ctx.Done():
		return nil, status.FromContextError(in.ctx.Err()).Err()
	}
}

// blobErr turns a failed blob read into a status, auditing protocol violations.
func (s *Server) blobErr(ctx context.Context, round uint64, what string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, fedclaimspb.ErrBlob) || errors.Is(err, secureagg.ErrMalformed) {
		return s.refuse(ctx, round, what, status.Error(codes.InvalidArgument, err.Error()))
	}
	var me *secureagg.MessageError
	if errors.As(err, &me) {
		return s.refuse(ctx, round, what, status.Error(codes.FailedPrecondition, err.Error()))
	}
	return status.Error(codes.Internal, err.Error())
}

// uploadUpdate adds an encrypted update's chunks into the round's sum as they arrive.
func (s *Server) uploadUpdate(ctx context.Context, site string, sn snapshot, hdr *fedclaimspb.UploadHeader, r *fedclaimspb.BlobReader) error {
	what := "encrypted update"
	if sn.cur == nil || sn.cur.id != sn.round {
		return s.refuse(ctx, sn.round, what, status.Errorf(codes.FailedPrecondition, "round %d is not collecting updates (%s)", sn.round, sn.phase))
	}
	if sn.admitUpload != nil {
		return s.refuse(ctx, sn.round, what, status.Error(codes.FailedPrecondition, sn.admitUpload.Error()))
	}
	party, _ := s.roster.ID(site)
	agg := sn.cur.agg
	have := make([]bool, agg.Total())
	for {
		c, err := r.NextChunk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.blobErr(ctx, sn.round, what, err)
		}
		var ch secureagg.Chunk
		if err := ch.UnmarshalBinary(c.Data); err != nil {
			return s.blobErr(ctx, sn.round, what, err)
		}
		if ch.Site != party || ch.Round != sn.round || ch.Index != c.Index {
			return s.refuse(ctx, sn.round, what, status.Errorf(codes.PermissionDenied,
				"chunk %d carries secureagg header %s; site %q is party %d in round %d", c.Index, ch.Header, site, party, sn.round))
		}
		// A retried upload finds the chunks that reached the sum before the first
		// attempt broke off; they stay, and are not added twice.
		if err := agg.Add(&ch); err != nil && !errors.Is(err, secureagg.ErrDuplicate) {
			return s.blobErr(ctx, sn.round, what, err)
		}
		have[ch.Index] = true
	}
	if i := slices.Index(have, false); i >= 0 {
		return s.refuse(ctx, sn.round, what, status.Errorf(codes.InvalidArgument, "update ends without chunk %d of %d", i, len(have)))
	}
	return s.call(ctx, func() error {
		if err := s.record(ctx, audit.Upload, sn.round, site, map[string]string{
			"kind": "encrypted_update", "sha256": hexOf(r.Sum()), "bytes": itoa(r.Size()), "chunks": itoa(len(have)),
			"assignment_seq": itoa(hdr.AssignmentSeq), "train_loss": fmt.Sprintf("%.6g", hdr.GetUpdate().GetTrainLoss()),
		}); err != nil {
			return err
		}
		var digest [32]byte
		copy(digest[:], r.Sum())
		if err := s.stepRound(ctx, Uploaded{Site: site, Round: sn.round, Digest: digest}); err != nil {
			return s.refuse(ctx, sn.round, what, status.Error(codes.FailedPrecondition, err.Error()))
		}
		if s.cur != nil && s.cur.id == sn.round {
			s.cur.bytes += r.Size()
			s.cur.losses[site] = hdr.GetUpdate().GetTrainLoss()
		}
		s.metrics.contribution()
		return nil
	})
}

// uploadShare adds a decryption share into the round's decryption. It is
// idempotent per (round, site, chunk): a retry after a broken stream re-sends the
// same bytes, which the decryption holds once (secureagg.Decryption.Add), and a
// retry of a share already accepted is answered again.
func (s *Server) uploadShare(ctx context.Context, site string, sn snapshot, r *fedclaimspb.BlobReader) error {
	what := "decryption share"
	if sn.cur == nil || sn.cur.dec == nil {
		return s.refuse(ctx, sn.round, what, status.Errorf(codes.FailedPrecondition, "round %d is not decrypting (%s)", sn.round, sn.phase))
	}
	if sn.admitShare != nil && !sn.hasShared {
		return s.refuse(ctx, sn.round, what, status.Error(codes.FailedPrecondition, sn.admitShare.Error()))
	}
	party, _ := s.roster.ID(site)
	n := 0
	for {
		c, err := r.NextChunk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.blobErr(ctx, sn.round, what, err)
		}
		var sh secureagg.ShareChunk
		if err := sh.UnmarshalBinary(c.Data); err != nil {
			return s.blobErr(ctx, sn.round, what, err)
		}
		if sh.Site != party || sh.Round != sn.round {
			return s.refuse(ctx, sn.round, what, status.Errorf(codes.PermissionDenied, "share chunk %d carries secureagg header %s; site %q is party %d", c.Index, sh.Header, site, party))
		}
		if err := sn.cur.dec.Add(&sh); err != nil {
			return s.blobErr(ctx, sn.round, what, err)
		}
		n++
	}
	if n != sn.cur.agg.Total() {
		return s.refuse(ctx, sn.round, what, status.Errorf(codes.InvalidArgument, "%d share chunks, the aggregate has %d", n, sn.cur.agg.Total()))
	}
	if sn.hasShared {
		return nil // every chunk identical to the share already accepted
	}
	return s.call(ctx, func() error {
		if err := s.record(ctx, audit.DecryptionShare, sn.round, site, map[string]string{"sha256": hexOf(r.Sum()), "bytes": itoa(r.Size())}); err != nil {
			return err
		}
		if err := s.stepRound(ctx, Share{Site: site, Round: sn.round}); err != nil {
			return s.refuse(ctx, sn.round, what, status.Error(codes.FailedPrecondition, err.Error()))
		}
		return nil
	})
}

// uploadSetup stores a setup blob and steps the setup machine.
func (s *Server) uploadSetup(ctx context.Context, site string, sn snapshot, hdr *fedclaimspb.UploadHeader, r *fedclaimspb.BlobReader) error {
	what := "upload " + hdr.Kind.String()
	if hdr.Size > maxSetupBlob {
		return s.refuse(ctx, 0, what, status.Errorf(codes.InvalidArgument, "%d bytes, more than the %d a setup blob may have", hdr.Size, maxSetupBlob))
	}
	phase := setupPhaseOf(hdr.Kind)
	// Asked before reading (snapshot): a blob nobody expects is never buffered.
	if sn.admitStep != nil {
		return s.refuse(ctx, 0, what, status.Error(codes.FailedPrecondition, sn.admitStep.Error()))
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return s.blobErr(ctx, 0, what, err)
	}
	party, _ := s.roster.ID(site)
	var (
		name  string
		field = map[string]string{"sha256": hexOf(r.Sum()), "bytes": itoa(r.Size())}
	)
	switch hdr.Kind {
	case fedclaimspb.BlobKind_BLOB_KIND_PUBLIC_KEY_SHARE:
		var sh secureagg.PublicKeyShare
		if err := sh.UnmarshalBinary(data); err != nil {
			return s.blobErr(ctx, 0, what, err)
		}
		if err := checkKeyShare(&sh, s.params, s.cfg.Federation, site, party); err != nil {
			return s.refuse(ctx, 0, what, err)
		}
		name, field["step"] = pkShareBlob(site), "public key share"
	case fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE:
		to, ok := s.roster.ID(hdr.ToSiteId)
		if !ok {
			return s.refuse(ctx, 0, what, status.Errorf(codes.InvalidArgument, "to_site_id %q is not a site of the federation", hdr.ToSiteId))
		}
		var sh secureagg.SealedShamirShare
		if err := sh.UnmarshalBinary(data); err != nil {
			return s.blobErr(ctx, 0, what, err)
		}
		if sh.Params != s.params.ID() {
			return s.refuse(ctx, 0, what, status.Errorf(codes.InvalidArgument, "sealed share from site %q is of parameter set %d; the federation's is %d", site, sh.Params, s.params.ID()))
		}
		if sh.Federation != s.cfg.Federation || sh.Site != party || sh.Index != uint32(to) {
			return s.refuse(ctx, 0, what, status.Errorf(codes.PermissionDenied, "sealed share %s; site %q is party %d dealing to party %d", sh.Header, site, party, to))
		}
		name, field["step"], field["to_site"] = shamirBlob(site, hdr.ToSiteId), "shamir share", hdr.ToSiteId
	case fedclaimspb.BlobKind_BLOB_KIND_COUNT_TABLE:
		_, canon, err := parseCountTable(data, s.cfg.Vocabulary)
		if err != nil {
			return s.refuse(ctx, 0, what, status.Errorf(codes.InvalidArgument, "site %q: %v", site, err))
		}
		data, name, field["step"] = canon, countsBlob(site), "count table"
	}
	return s.call(ctx, func() error {
		if err := s.setup.AdmitStep(site, phase); err != nil {
			return s.refuse(ctx, 0, what, status.Error(codes.FailedPrecondition, err.Error()))
		}
		typ := audit.KeySetup
		if phase == SetupVocabulary {
			typ = audit.Vocabulary
		}
		if err := s.record(ctx, typ, 0, site, field); err != nil {
			return err
		}
		if err := s.store.putBlob(name, data); err != nil {
			s.halt(err)
			return status.Error(codes.Internal, err.Error())
		}
		if phase == SetupDealing {
			// A dealer's shares must all come from one dealing: a share for a
			// recipient already served starts a new dealing (the site restarted and
			// dealt afresh), which must then reach every recipient again. The set
			// lives in memory, so after an aggregator restart a pending dealer,
			// assigned the step again, sends all its shares again too.
			got := s.dealt[site]
			if got == nil || got[hdr.ToSiteId] {
				got = map[string]bool{}
				s.dealt[site] = got
			}
			got[hdr.ToSiteId] = true
			if len(got) < len(s.sites) {
				return nil // the dealer has more shares to send
			}
		}
		if err := s.setup.Step(StepDone{Site: site, Phase: phase}); err != nil {
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		return s.saveSetup()
	})
}

// Download implements fedclaimspb.FederationServer.
func (s *Server) Download(req *fedclaimspb.DownloadRequest, stream fedclaimspb.Federation_DownloadServer) error {
	ctx := stream.Context()
	id, _ := fedclaimspb.Caller(ctx)
	env := req.GetEnvelope()
	what := "download " + req.Kind.String()
	var (
		blob []byte
		msgs [][]byte
		ref  = &fedclaimspb.BlobRef{Kind: req.Kind, FromSiteId: req.FromSiteId}
		bad  error
	)
	var round uint64
	err := s.call(ctx, func() error {
		round = s.round.State().Round
		s.lastSeen[id.ID] = s.clock.Now()
		switch req.Kind {
		case fedclaimspb.BlobKind_BLOB_KIND_COLLECTIVE_PUBLIC_KEY:
			round = 0
			if s.pubKey == nil {
				bad = status.Error(codes.FailedPrecondition, "the collective key is not built yet")
			}
			blob = s.pubKey
		case fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE:
			round = 0
			name := shamirBlob(req.FromSiteId, id.ID)
			if _, ok := s.roster.ID(req.FromSiteId); !ok || !s.store.hasBlob(name) {
				bad = status.Errorf(codes.NotFound, "no share dealt by %q to %q", req.FromSiteId, id.ID)
				return nil
			}
			var err error
			if blob, err = s.store.getBlob(name); err != nil {
				return status.Error(codes.Internal, err.Error())
			}
		case fedclaimspb.BlobKind_BLOB_KIND_VOCABULARY, fedclaimspb.BlobKind_BLOB_KIND_GLOBAL_MODEL, fedclaimspb.BlobKind_BLOB_KIND_FINAL_MODEL:
			// Public within the consortium and not bound to one round: a site may
			// fetch them with the envelope of the round it is in or of none.
			if env.GetRoundId() <= round {
				round = env.GetRoundId()
			}
			switch {
			case s.model == nil:
				bad = status.Error(codes.FailedPrecondition, "no model yet: the vocabulary is not built")
			case req.Kind == fedclaimspb.BlobKind_BLOB_KIND_VOCABULARY:
				blob = s.vocab
			case req.Kind == fedclaimspb.BlobKind_BLOB_KIND_FINAL_MODEL && !s.finished:
				bad = status.Error(codes.FailedPrecondition, "the federation has not finished")
			default:
				blob = s.blob
			}
		case fedclaimspb.BlobKind_BLOB_KIND_AGGREGATE:
			if s.cur == nil || s.cur.sums == nil || s.round.Phase() != PhaseDecrypting {
				bad = status.Errorf(codes.FailedPrecondition, "round %d has no aggregate to decrypt", round)
			} else if !s.cur.decryptors[id.ID] {
				bad = status.Errorf(codes.PermissionDenied, "site %q is not in round %d's decrypting set", id.ID, round)
			} else {
				msgs = s.cur.sums
				ref.Size, ref.Sha256 = s.cur.sumSize, s.cur.sumSHA
			}
		default:
			bad = status.Errorf(codes.InvalidArgument, "sites do not download %s", req.Kind)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.checkEnv(ctx, env, round, what); err != nil {
		return err
	}
	if bad != nil {
		return s.refuse(ctx, round, what, bad)
	}
	if msgs == nil {
		ref.Size = uint64(len(blob))
		ref.Sha256 = sha(blob)
	}
	// Wait for a download slot (downloads.go) before sending anything, so that the
	// N² share relay and the N-way model download do not all buffer at once.
	release, err := s.downloads.acquire(ctx, id.ID)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	defer release()
	out := &fedclaimspb.Envelope{FederationId: s.cfg.Federation, RoundId: round, SiteId: id.ID}
	if err := stream.Send(&fedclaimspb.DownloadResponse{Envelope: out, Part: &fedclaimspb.DownloadResponse_Header{Header: ref}}); err != nil {
		return err
	}
	send := func(c *fedclaimspb.Chunk) error {
		return stream.Send(&fedclaimspb.DownloadResponse{Envelope: out, Part: &fedclaimspb.DownloadResponse_Chunk{Chunk: c}})
	}
	if msgs != nil {
		_, _, err = fedclaimspb.SendMessages(msgs, send)
	} else {
		// The blobs are never written again once made (a new model, key or share
		// is a new slice), so the chunks are slices of it, not copies.
		_, _, err = fedclaimspb.SendBytes(blob, send)
	}
	return err
}

// Acknowledge implements fedclaimspb.FederationServer.
func (s *Server) Acknowledge(ctx context.Context, req *fedclaimspb.AcknowledgeRequest) (*fedclaimspb.AcknowledgeResponse, error) {
	id, _ := fedclaimspb.Caller(ctx)
	var a *fedclaimspb.Assignment
	if err := s.call(ctx, func() error {
		for _, x := range s.outbox[id.ID] {
			if x.Seq == req.AssignmentSeq {
				a = x
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, s.refuse(ctx, req.GetEnvelope().GetRoundId(), "acknowledge", status.Errorf(codes.NotFound, "no assignment %d for site %q", req.AssignmentSeq, id.ID))
	}
	if err := s.checkEnv(ctx, req.GetEnvelope(), a.Envelope.RoundId, "acknowledge"); err != nil {
		return nil, err
	}
	err := s.call(ctx, func() error {
		s.lastSeen[id.ID] = s.clock.Now()
		fields := map[string]string{"assignment_seq": itoa(req.AssignmentSeq), "task": taskName(a)}
		if req.Error != "" {
			fields["error"] = trim(req.Error)
			s.log.Warn("site could not do an assignment", "site", id.ID, "seq", req.AssignmentSeq, "task", taskName(a), "error", req.Error)
		}
		if err := s.record(ctx, "acknowledge", a.Envelope.RoundId, id.ID, fields); err != nil {
			return err
		}
		if req.Error != "" {
			return nil
		}
		var phase SetupPhase
		switch a.GetKeySetup().GetStep() {
		case fedclaimspb.KeySetupTask_STEP_COLLECT_SHAMIR_SHARES:
			phase = SetupCollecting
		case fedclaimspb.KeySetupTask_STEP_COLLECTIVE_KEY:
			phase = SetupInstallingKey
		default:
			return nil
		}
		if s.setup.Phase() != phase || !slices.Contains(s.setup.Pending(), id.ID) {
			return nil // a repeated acknowledgement after a reconnect
		}
		if err := s.setup.Step(StepDone{Site: id.ID, Phase: phase}); err != nil {
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		return s.saveSetup()
	})
	if err != nil {
		return nil, err
	}
	return &fedclaimspb.AcknowledgeResponse{Envelope: &fedclaimspb.Envelope{FederationId: s.cfg.Federation, RoundId: a.Envelope.RoundId, SiteId: id.ID}}, nil
}

func taskName(a *fedclaimspb.Assignment) string {
	switch t := a.Task.(type) {
	case *fedclaimspb.Assignment_KeySetup:
		return "key_setup " + t.KeySetup.Step.String()
	case *fedclaimspb.Assignment_Vocabulary:
		return "vocabulary"
	case *fedclaimspb.Assignment_Train:
		return "train"
	case *fedclaimspb.Assignment_Decrypt:
		return "decrypt"
	case *fedclaimspb.Assignment_Published:
		return "published"
	case *fedclaimspb.Assignment_Control:
		return "control"
	}
	return "none"
}

func sha(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// checkKeyShare is the rule for a site's public-key share at upload: it must be of
// the federation's parameter set and federation and the sender's own. Checking the
// parameter set here, not when the key is built, names the sender instead of
// halting the aggregator at every restart.
func checkKeyShare(sh *secureagg.PublicKeyShare, params secureagg.Parameters, federation, site string, party secureagg.SiteID) error {
	switch {
	case sh.Params != params.ID():
		return status.Errorf(codes.InvalidArgument, "public-key share from site %q is of parameter set %d; the federation's %s is %d", site, sh.Params, params.Preset(), params.ID())
	case sh.Federation != federation || !slices.Equal(sh.Sites, []secureagg.SiteID{party}):
		return status.Errorf(codes.PermissionDenied, "public-key share %s of sites %v; site %q is party %d", sh.Header, sh.Sites, site, party)
	}
	return nil
}
