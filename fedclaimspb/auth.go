package fedclaimspb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
)

// Guard is the aggregator's say in who may call what, beyond the certificate checks
// that always run.
type Guard struct {
	// Allow, when set, decides whether an authenticated caller of the right role may
	// make a call: the aggregator consults its allow-list. A non-nil error refuses the
	// call; it reaches the caller as PermissionDenied unless it is a gRPC status.
	Allow func(ctx context.Context, id certs.Identity, fullMethod string) error
	// Refused, when set, is told of every call refused before it reached a handler
	// (no identity, a revoked certificate, wrong role, not allowed) and of every
	// stream ended because its caller was revoked, so that the refusal can be
	// audited; with Refusals set, only of those the limiter records. id is zero when
	// the caller had no identity. Handshakes that fail (another CA, a certificate
	// already revoked) never become calls and are not reported here. It may be
	// called from several goroutines at once.
	Refused func(ctx context.Context, fullMethod string, id certs.Identity, err error)
	// Refusals, when set, limits what reaches Refused, so that a peer refused in a
	// loop cannot fill the disk with audit entries: per peer (RefusalPeer) and reason
	// (RefusalReason), the first refusal in each of the limiter's intervals is
	// reported and the rest are only counted, for the owner to audit from
	// Refusals.Flush; a peer refused more than the limiter's burst in an interval is
	// answered codes.ResourceExhausted, unreported, for the rest of it. Calls that
	// pass the checks are never limited. The owner may pass the same limiter to its
	// handlers' refusals, so that one burst covers both.
	Refusals *audit.RefusalLimiter
	// Now is the clock of Refusals; nil means time.Now.
	Now func() time.Time
	// Revocations, when set, is consulted on every call, not only at the TLS
	// handshake, since connections are long-lived: a caller whose certificate it
	// lists is refused with PermissionDenied "certificate revoked" (reported to
	// Refused), and a list that cannot be checked refuses every call with
	// Unavailable. A stream already open is re-checked every RevocationCheckInterval
	// and ended with PermissionDenied once its caller is revoked: its context is
	// cancelled, so a handler waiting on stream.Context() returns, and its next
	// Send or Recv fails. Use certs.LoadRevocationList(certs.AggregatorFiles(dir)).
	Revocations RevocationChecker
	// RevocationCheckInterval is how often open streams are re-checked; zero means
	// DefaultRevocationCheckInterval.
	RevocationCheckInterval time.Duration
}

// RevocationChecker says whether a verified peer certificate is revoked;
// *certs.RevocationList is one. An error means the check could not be made.
type RevocationChecker interface {
	Revoked(leaf *x509.Certificate) (bool, error)
}

// DefaultRevocationCheckInterval is how often the guard re-checks an open stream's
// caller: a revoked site loses its Work stream within seconds, at the cost of one
// stat of the revocation list per open stream per interval.
const DefaultRevocationCheckInterval = 5 * time.Second

// Kinds of refusal the guard makes, the second half of its RefusalReason.
const (
	RefusedUnauthenticated = "unauthenticated"
	RefusedUnknownService  = "unknown_service"
	RefusedRole            = "wrong_role"
	RefusedNotAllowed      = "not_allowed"
	RefusedRevoked         = "revoked"
	// RefusedUnchecked: the revocation list could not be checked.
	RefusedUnchecked = "revocation_unchecked"
)

// RefusalPeer is the key under which a caller's refusals are counted in
// Guard.Refusals: its identity (fedclaims://site/b), or for a caller without one,
// the address it called from without the port, since a peer can open connections
// from as many ports as it likes.
func RefusalPeer(ctx context.Context, id certs.Identity) string {
	if id.Role != "" {
		return id.String()
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return "addr:" + addr
}

// RefusalReason is the reason under which Guard counts a refusal: the method and the
// kind of refusal (one of the Refused* constants), never the message, which could
// give a peer a new reason per call.
func RefusalReason(fullMethod, kind string) string { return fullMethod + " " + kind }

type callerKey struct{}

// Caller returns the verified identity that the server interceptors put in a call's
// context.
func Caller(ctx context.Context) (certs.Identity, bool) {
	id, ok := ctx.Value(callerKey{}).(certs.Identity)
	return id, ok
}

// roleFor says which certificate role may call a method.
func roleFor(fullMethod string) (certs.Role, bool) {
	switch {
	case strings.HasPrefix(fullMethod, "/"+Federation_ServiceDesc.ServiceName+"/"):
		return certs.RoleSite, true
	case strings.HasPrefix(fullMethod, "/"+Admin_ServiceDesc.ServiceName+"/"):
		return certs.RoleAdmin, true
	}
	return "", false
}

// authenticate derives the caller's identity from its verified certificate, checks
// its role against the service and asks g.Allow; it returns the context carrying the
// identity, or reports the refusal to g.Refused.
func (g Guard) authenticate(ctx context.Context, fullMethod string) (context.Context, certs.Identity, *x509.Certificate, error) {
	id, leaf, kind, err := g.check(ctx, fullMethod)
	if err != nil {
		return nil, id, nil, g.refuse(ctx, fullMethod, id, kind, err)
	}
	return context.WithValue(ctx, callerKey{}, id), id, leaf, nil
}

// refuse reports a refusal to g.Refused, as g.Refusals permits, and returns the
// status to send.
func (g Guard) refuse(ctx context.Context, fullMethod string, id certs.Identity, kind string, err error) error {
	if g.Refusals != nil {
		now := time.Now
		if g.Now != nil {
			now = g.Now
		}
		d := g.Refusals.Allow(now(), RefusalPeer(ctx, id), RefusalReason(fullMethod, kind))
		if d.Throttled {
			return status.Errorf(codes.ResourceExhausted, "%s: too many refused calls; retry after %v", fullMethod, g.Refusals.Limits().Interval)
		}
		if !d.Record {
			return err
		}
	}
	if g.Refused != nil {
		g.Refused(ctx, fullMethod, id, err)
	}
	return err
}

// check returns the caller's identity and certificate, or why it is refused: the
// kind of refusal and the status.
func (g Guard) check(ctx context.Context, fullMethod string) (certs.Identity, *x509.Certificate, string, error) {
	id, err := certs.PeerIdentity(ctx)
	if err != nil {
		return certs.Identity{}, nil, RefusedUnauthenticated, status.Errorf(codes.Unauthenticated, "%s: %v", fullMethod, err)
	}
	leaf, err := certs.PeerCertificate(ctx)
	if err != nil {
		return certs.Identity{}, nil, RefusedUnauthenticated, status.Errorf(codes.Unauthenticated, "%s: %v", fullMethod, err)
	}
	if kind, err := g.revoked(fullMethod, id, leaf); err != nil {
		return id, nil, kind, err
	}
	role, ok := roleFor(fullMethod)
	if !ok {
		return id, nil, RefusedUnknownService, status.Errorf(codes.Unimplemented, "%s: unknown service", fullMethod)
	}
	if id.Role != role {
		return id, nil, RefusedRole, status.Errorf(codes.PermissionDenied, "%s: %s may not call a %s method", fullMethod, id, role)
	}
	if g.Allow != nil {
		if err := g.Allow(ctx, id, fullMethod); err != nil {
			if _, ok := status.FromError(err); ok {
				return id, nil, RefusedNotAllowed, err
			}
			return id, nil, RefusedNotAllowed, status.Errorf(codes.PermissionDenied, "%s: %s: %v", fullMethod, id, err)
		}
	}
	return id, leaf, "", nil
}

// revoked checks leaf against g.Revocations, returning the kind of refusal and the
// status when it is revoked or cannot be checked.
func (g Guard) revoked(fullMethod string, id certs.Identity, leaf *x509.Certificate) (string, error) {
	if g.Revocations == nil {
		return "", nil
	}
	revoked, err := g.Revocations.Revoked(leaf)
	if err != nil {
		return RefusedUnchecked, status.Errorf(codes.Unavailable, "%s: %s: %v", fullMethod, id, err)
	}
	if revoked {
		return RefusedRevoked, status.Errorf(codes.PermissionDenied, "%s: %s serial %x: %v", fullMethod, id, leaf.SerialNumber, certs.ErrRevoked)
	}
	return "", nil
}

// streamEnded is the cancellation cause of a stream the revocation watch ended.
type streamEnded struct{ err error }

func (e *streamEnded) Error() string { return e.err.Error() }

// watch re-checks an open stream's caller every interval until ctx ends, and ends the
// stream (cancel) once the caller is revoked or the list cannot be checked, after
// reporting the refusal.
func (g Guard) watch(ctx context.Context, cancel context.CancelCauseFunc, fullMethod string, id certs.Identity, leaf *x509.Certificate) {
	interval := g.RevocationCheckInterval
	if interval <= 0 {
		interval = DefaultRevocationCheckInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if kind, err := g.revoked(fullMethod, id, leaf); err != nil {
			g.refuse(ctx, fullMethod, id, kind, err)
			cancel(&streamEnded{err})
			return
		}
	}
}

// watchedStream is a stream the revocation watch may end: its context is cancelled,
// and Send and Recv fail with the status that ended it.
type watchedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s watchedStream) Context() context.Context { return s.ctx }

func (s watchedStream) ended() error {
	var e *streamEnded
	if errors.As(context.Cause(s.ctx), &e) {
		return e.err
	}
	return nil
}

func (s watchedStream) SendMsg(m any) error {
	if err := s.ended(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

func (s watchedStream) RecvMsg(m any) error {
	if err := s.ended(); err != nil {
		return err
	}
	return s.ServerStream.RecvMsg(m)
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }

// ServerOptions returns the options of the aggregator's gRPC server: mutual TLS with
// tlsConf (certs.ServerTLS), interceptors that authenticate every call by its
// certificate, admit only sites to Federation and only admins to Admin and put the
// identity in the context for Caller, and keepalive rules for long-lived Work streams.
// g adds the aggregator's allow-list, the per-call revocation check, refusal
// auditing and its rate limit; its zero value admits every authenticated caller of
// the right role.
func ServerOptions(tlsConf *tls.Config, g Guard) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsConf)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			ctx, _, _, err := g.authenticate(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, id, leaf, err := g.authenticate(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			if g.Revocations == nil {
				return handler(srv, identityStream{ss, ctx})
			}
			ctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			go g.watch(ctx, cancel, info.FullMethod, id, leaf)
			ws := watchedStream{ss, ctx}
			err = handler(srv, ws)
			// The handler saw its context cancelled; the caller should hear why.
			if ended := ws.ended(); ended != nil {
				return ended
			}
			return err
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// A chunk is at most MaxChunk; anything much bigger is a misbehaving peer.
		grpc.MaxRecvMsgSize(MaxChunk + 64<<10),
		// Messages in buffers of their own size, not pooled 1 MiB ones (codec.go).
		grpc.ForceServerCodecV2(Codec()),
		// Per connection, so per site: no 32 KiB read buffer of gRPC's own in front
		// of TLS's, which keeps the decrypted record already, and the write buffer
		// borrowed from a pool while writing rather than held while idle.
		grpc.ReadBufferSize(0),
		grpc.SharedWriteBuffer(true),
	}
}

// DialOptions returns the options for a site or the admin dialling the aggregator:
// mutual TLS with tlsConf (certs.ClientTLS), reconnection with exponential backoff
// capped at 30s, and keepalive pings that notice a dead aggregator.
func DialOptions(tlsConf *tls.Config) []grpc.DialOption {
	bo := backoff.DefaultConfig
	bo.MaxDelay = 30 * time.Second
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 10 * time.Second}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// CheckEnvelope checks a message's envelope against the caller's certificate and the
// receiver's state: the federation must be the receiver's, the round the one it
// expects (0 outside rounds), and for a site the site id its certificate's. It
// returns a gRPC status error (PermissionDenied for another site's id, else
// FailedPrecondition) that the caller should audit as a refusal.
func CheckEnvelope(ctx context.Context, env *Envelope, federation string, round uint64) error {
	id, ok := Caller(ctx)
	if !ok {
		var err error
		if id, err = certs.PeerIdentity(ctx); err != nil {
			return status.Errorf(codes.Unauthenticated, "envelope: %v", err)
		}
	}
	if env == nil {
		return status.Error(codes.InvalidArgument, "envelope missing")
	}
	switch id.Role {
	case certs.RoleSite:
		if env.SiteId != id.ID {
			return status.Errorf(codes.PermissionDenied, "envelope site_id %q, but the caller's certificate is %s", env.SiteId, id)
		}
	case certs.RoleAdmin:
		if env.SiteId != "" {
			return status.Errorf(codes.PermissionDenied, "envelope site_id %q from admin %s", env.SiteId, id.ID)
		}
	default:
		return status.Errorf(codes.PermissionDenied, "%s sends no envelopes here", id)
	}
	if env.FederationId != federation {
		return status.Errorf(codes.FailedPrecondition, "envelope federation_id %q, this is federation %q", env.FederationId, federation)
	}
	if env.RoundId != round {
		return status.Errorf(codes.FailedPrecondition, "envelope round_id %d, the current round is %d", env.RoundId, round)
	}
	return nil
}

// Describe formats an envelope for logs and errors.
func (e *Envelope) Describe() string {
	return fmt.Sprintf("federation %q round %d site %q", e.GetFederationId(), e.GetRoundId(), e.GetSiteId())
}
