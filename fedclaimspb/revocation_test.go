package fedclaimspb

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/certs"
)

// TestLoopbackRevocationLive revokes site c while its Work stream is open on a real
// mutual-TLS connection. With the guard checking revocations, the stream ends with
// PermissionDenied within the check interval and the next call on the same connection
// is refused. Without (the handshake-only check of before), the revoked site keeps
// its stream and its connection: the defect.
func TestLoopbackRevocationLive(t *testing.T) {
	const interval = 50 * time.Millisecond
	tests := []struct {
		name  string
		check bool // Guard.Revocations set
	}{
		{"checked per call", true},
		{"handshake only (the old behaviour)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *fixtureConfig) {
				c.revoked = nil
				c.guard = func(f *federationFixture, g *Guard) {
					if !tt.check {
						return
					}
					rl, err := certs.LoadRevocationList(certs.AggregatorFiles(f.dir))
					if err != nil {
						t.Fatal(err)
					}
					g.Revocations, g.RevocationCheckInterval = rl, interval
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			client := NewFederationClient(f.dial(t, certs.SiteFiles(f.dir, "c")))
			env := &Envelope{FederationId: federation, SiteId: "c"}
			enroll := func() error {
				_, err := client.Enroll(ctx, &EnrollRequest{Envelope: env})
				return err
			}
			if err := enroll(); err != nil {
				t.Fatalf("enrol before revocation: %v", err)
			}
			streamCtx, stopStream := context.WithCancel(ctx)
			defer stopStream()
			stream, err := client.Work(streamCtx, &WorkRequest{Envelope: env})
			if err != nil {
				t.Fatal(err)
			}
			if a, err := stream.Recv(); err != nil || a.Seq != 1 {
				t.Fatalf("first assignment: %v, %v", a, err)
			}
			ended := make(chan error, 1)
			go func() {
				_, err := stream.Recv()
				ended <- err
			}()
			// Site a's stream, on its own connection, must outlive c's revocation.
			aEnv := &Envelope{FederationId: federation, SiteId: "a"}
			aStream, err := NewFederationClient(f.dial(t, certs.SiteFiles(f.dir, "a"))).Work(streamCtx, &WorkRequest{Envelope: aEnv})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := aStream.Recv(); err != nil {
				t.Fatalf("site a's first assignment: %v", err)
			}
			aEnded := make(chan error, 1)
			go func() {
				_, err := aStream.Recv()
				aEnded <- err
			}()

			if err := certs.Revoke(f.dir, certs.SiteFiles(f.dir, "c").Cert); err != nil {
				t.Fatal(err)
			}
			revokedAt := time.Now()

			if !tt.check {
				select {
				case err := <-ended:
					t.Fatalf("stream ended (%v) without the per-call check", err)
				case <-time.After(10 * interval):
				}
				if err := enroll(); err != nil {
					t.Fatalf("call on the old connection: %v; the defect is that it succeeds", err)
				}
				stopStream()
				<-ended
				return
			}

			// Generous slack over the interval for a loaded machine under -race.
			select {
			case err := <-ended:
				if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "certificate revoked") {
					t.Fatalf("stream ended with %v, want PermissionDenied: certificate revoked", err)
				}
				t.Logf("stream ended %v after the revocation (interval %v)", time.Since(revokedAt).Round(time.Millisecond), interval)
			case <-time.After(interval + 5*time.Second):
				t.Fatal("the revoked site's stream is still open")
			}
			select {
			case err := <-aEnded:
				t.Fatalf("site a's stream ended with c's revocation: %v", err)
			case <-time.After(5 * interval):
			}
			err = enroll()
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "certificate revoked") {
				t.Fatalf("call on the same connection after revocation: %v, want PermissionDenied: certificate revoked", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			want := []string{
				"fedclaims://site/c /fedclaims.v1.Federation/Work",
				"fedclaims://site/c /fedclaims.v1.Federation/Enroll",
			}
			if !slices.Equal(f.refused, want) {
				t.Errorf("refusals reported %q, want %q", f.refused, want)
			}
		})
	}
}

// TestRevocationListUnreadable: a list that cannot be checked refuses calls rather
// than admit a revoked caller.
func TestRevocationListUnreadable(t *testing.T) {
	f := newFixture(t, func(c *fixtureConfig) {
		c.guard = func(f *federationFixture, g *Guard) { g.Revocations = brokenList{} }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := NewFederationClient(f.dial(t, certs.SiteFiles(f.dir, "a"))).Enroll(ctx, &EnrollRequest{Envelope: &Envelope{FederationId: federation, SiteId: "a"}})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "crl.pem: damaged") {
		t.Fatalf("enrol with an unreadable list: %v, want Unavailable", err)
	}
}

type brokenList struct{}

func (brokenList) Revoked(*x509.Certificate) (bool, error) {
	return false, errors.New("revocation list /consortium/crl.pem: damaged")
}
