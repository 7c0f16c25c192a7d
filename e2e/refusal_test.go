package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// refusals returns the aggregator's audited refusals.
func refusals(t *testing.T, ra *runningAggregator) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for _, e := range auditEntries(t, ra.auditPath()) {
		if e.Type == audit.Refusal {
			out = append(out, e)
		}
	}
	return out
}

// Only a site certificate of this consortium, unrevoked and allow-listed, reaches
// the Federation service; only an admin certificate reaches Admin. A refused caller
// is not enrolled, and the refusals that reach the aggregator (rather than failing
// in the TLS handshake) are audited.
func TestRefusedCallers(t *testing.T) {
	sites := []string{"h01", "h02", "h03"}
	pki := consortium(t, sites...)
	if _, err := certs.IssueSite(pki, pki, "h09", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	other := consortium(t, "h01")
	ra := startAggregator(t, aggregatorConfig(t, pki, sites))
	if err := certs.Revoke(pki, certs.SiteFiles(pki, "h03").Cert); err != nil {
		t.Fatal(err)
	}

	caPEM, err := os.ReadFile(certs.SiteFiles(pki, "h01").CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	noCert := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "127.0.0.1"}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	enroll := func(tc *tls.Config, f certs.Files, id string) error {
		c := fedclaimspb.NewFederationClient(dial(t, ra.addr, tc))
		_, err := c.Enroll(ctx, enrollRequest(t, f, "e2e", id))
		return err
	}

	// The control: a good site enrols, so the refusals below are the server's.
	h01 := certs.SiteFiles(pki, "h01")
	if err := enroll(clientTLS(t, h01), h01, "h01"); err != nil {
		t.Fatalf("allow-listed site h01: %v", err)
	}

	tests := []struct {
		name    string
		call    func() error
		codes   []codes.Code
		audited string // the certificate id a refusal entry names; "" when the handshake fails
	}{
		{"certificate of another CA", func() error {
			f := certs.SiteFiles(other, "h01")
			return enroll(clientTLS(t, f), f, "h01")
		}, []codes.Code{codes.Unavailable, codes.Unauthenticated}, ""},
		{"no client certificate", func() error {
			return enroll(noCert, h01, "h01")
		}, []codes.Code{codes.Unavailable, codes.Unauthenticated}, ""},
		{"revoked site", func() error {
			f := certs.SiteFiles(pki, "h03")
			return enroll(clientTLS(t, f), f, "h03")
		}, []codes.Code{codes.Unavailable, codes.Unauthenticated}, ""},
		{"site not allow-listed", func() error {
			f := certs.SiteFiles(pki, "h09")
			return enroll(clientTLS(t, f), f, "h09")
		}, []codes.Code{codes.PermissionDenied}, "h09"},
		{"admin certificate on the site service", func() error {
			c := fedclaimspb.NewFederationClient(dial(t, ra.addr, clientTLS(t, certs.AdminFiles(pki))))
			s, err := c.Work(ctx, &fedclaimspb.WorkRequest{Envelope: &fedclaimspb.Envelope{FederationId: "e2e"}})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, []codes.Code{codes.PermissionDenied}, "admin"},
		{"site certificate on the admin service", func() error {
			c := fedclaimspb.NewAdminClient(dial(t, ra.addr, clientTLS(t, h01)))
			_, err := c.Status(ctx, &fedclaimspb.StatusRequest{Envelope: &fedclaimspb.Envelope{FederationId: "e2e"}})
			return err
		}, []codes.Code{codes.PermissionDenied}, "h01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(refusals(t, ra))
			err := tt.call()
			if err == nil {
				t.Fatal("the call was accepted")
			}
			if c := status.Code(err); !slices.Contains(tt.codes, c) {
				t.Fatalf("refused with %v (%v), want one of %v", c, err, tt.codes)
			}
			after := refusals(t, ra)
			if tt.audited == "" {
				if len(after) != before {
					t.Errorf("a handshake failure reached the audit log: %+v", after[before:])
				}
				return
			}
			if len(after) != before+1 {
				t.Fatalf("%d refusals audited, want 1", len(after)-before)
			}
			if e := after[before]; !strings.Contains(e.Fields["caller"], tt.audited) {
				t.Errorf("refusal entry names caller %q, want %s", e.Fields["caller"], tt.audited)
			}
		})
	}

	// Nobody but h01 enrolled.
	st, err := fedclaimspb.NewAdminClient(dial(t, ra.addr, clientTLS(t, certs.AdminFiles(pki)))).
		Status(ctx, &fedclaimspb.StatusRequest{Envelope: &fedclaimspb.Envelope{FederationId: "e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.GetSites() {
		if s.GetEnrolled() != (s.GetSiteId() == "h01") {
			t.Errorf("site %s enrolled = %v", s.GetSiteId(), s.GetEnrolled())
		}
		if s.GetSiteId() == "h09" {
			t.Error("the status lists h09, which is not allow-listed")
		}
	}
}

// A message whose envelope disagrees with the caller's certificate or with the
// aggregator's state is refused, and the refusal is audited with the certificate's
// identity, not the one the message claims.
func TestEnvelopeMismatchRefusedAndAudited(t *testing.T) {
	sites := []string{"h01", "h02", "h03"}
	pki := consortium(t, sites...)
	ra := startAggregator(t, aggregatorConfig(t, pki, sites))
	h01 := certs.SiteFiles(pki, "h01")
	fc := fedclaimspb.NewFederationClient(dial(t, ra.addr, clientTLS(t, h01)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	env := func(fed string, round uint64, site string) *fedclaimspb.Envelope {
		return &fedclaimspb.Envelope{FederationId: fed, RoundId: round, SiteId: site}
	}
	tests := []struct {
		name string
		code codes.Code
		call func() error
	}{
		{"enrol claiming another site", codes.PermissionDenied, func() error {
			req := enrollRequest(t, h01, "e2e", "h01")
			req.Envelope = env("e2e", 0, "h02")
			_, err := fc.Enroll(ctx, req)
			return err
		}},
		{"enrol in a round that is not open", codes.FailedPrecondition, func() error {
			req := enrollRequest(t, h01, "e2e", "h01")
			req.Envelope = env("e2e", 7, "h01")
			_, err := fc.Enroll(ctx, req)
			return err
		}},
		{"enrol in another federation", codes.FailedPrecondition, func() error {
			req := enrollRequest(t, h01, "e2e", "h01")
			req.Envelope = env("elsewhere", 0, "h01")
			_, err := fc.Enroll(ctx, req)
			return err
		}},
		{"work stream for another site", codes.PermissionDenied, func() error {
			s, err := fc.Work(ctx, &fedclaimspb.WorkRequest{Envelope: env("e2e", 0, "h02")})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}},
		{"upload as another site", codes.PermissionDenied, func() error {
			u, err := fc.Upload(ctx)
			if err != nil {
				return err
			}
			err = u.Send(&fedclaimspb.UploadRequest{Envelope: env("e2e", 1, "h02"), Part: &fedclaimspb.UploadRequest_Header{
				Header: &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: 1}}})
			if err == nil {
				_, err = u.CloseAndRecv()
			}
			return err
		}},
		{"upload into a round that is not open", codes.FailedPrecondition, func() error {
			u, err := fc.Upload(ctx)
			if err != nil {
				return err
			}
			err = u.Send(&fedclaimspb.UploadRequest{Envelope: env("e2e", 3, "h01"), Part: &fedclaimspb.UploadRequest_Header{
				Header: &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: 1}}})
			if err == nil {
				_, err = u.CloseAndRecv()
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(refusals(t, ra))
			err := tt.call()
			if status.Code(err) != tt.code {
				t.Fatalf("got %v (%v), want %v", status.Code(err), err, tt.code)
			}
			after := refusals(t, ra)
			if len(after) != before+1 {
				t.Fatalf("%d refusals audited, want 1", len(after)-before)
			}
			e := after[before]
			if e.Site != "h01" || !strings.Contains(e.Fields["caller"], "h01") {
				t.Errorf("refusal audited for site %q caller %q, want the certificate's h01", e.Site, e.Fields["caller"])
			}
			if e.Fields["reason"] == "" {
				t.Error("refusal entry without a reason")
			}
		})
	}
}
