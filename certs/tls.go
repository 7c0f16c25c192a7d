package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ServerTLS returns the aggregator's TLS configuration: TLS 1.3 only, a client
// certificate required and verified against the consortium CA, the client's identity
// checked to be a site or an admin, and the revocation list (if f.CRL names an
// existing file) consulted on every handshake, so a revocation takes effect for new
// connections without a restart. Connections already open are not affected by the
// handshake check: pass a RevocationList to proto.Guard.Revocations to check every
// call and end open streams.
func ServerTLS(f Files) (*tls.Config, error) {
	pair, id, pool, err := load(f)
	if err != nil {
		return nil, fmt.Errorf("server TLS: %w", err)
	}
	if id.Role != RoleAggregator {
		return nil, fmt.Errorf("server TLS: %s names %s, want an aggregator certificate", f.Cert, id)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, f, RoleSite, RoleAdmin)
		},
	}, nil
}

// ClientTLS returns a site's or the admin's TLS configuration for dialling the
// aggregator at serverName (a DNS name or IP in its certificate; empty means
// "localhost"): TLS 1.3 only, the server verified against the consortium CA and
// checked to hold the aggregator's certificate.
func ClientTLS(f Files, serverName string) (*tls.Config, error) {
	pair, id, pool, err := load(f)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	if id.Role != RoleSite && id.Role != RoleAdmin {
		return nil, fmt.Errorf("client TLS: %s names %s, want a site or admin certificate", f.Cert, id)
	}
	if serverName == "" {
		serverName = "localhost"
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   serverName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, f, RoleAggregator)
		},
	}, nil
}

func load(f Files) (tls.Certificate, Identity, *x509.CertPool, error) {
	ca, err := LoadCert(f.CA)
	if err != nil {
		return tls.Certificate{}, Identity{}, nil, err
	}
	pair, id, err := LoadPair(f)
	if err != nil {
		return tls.Certificate{}, Identity{}, nil, err
	}
	if err := pair.Leaf.CheckSignatureFrom(ca); err != nil {
		return tls.Certificate{}, Identity{}, nil, fmt.Errorf("%s is not signed by %s: %w", f.Cert, f.CA, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pair, id, pool, nil
}

// ErrRevoked reports a peer certificate on the consortium's revocation list.
var ErrRevoked = errors.New("certificate revoked")

// verifyPeer runs after the standard chain verification: the peer must name a party of
// one of the wanted roles and must not be revoked.
func verifyPeer(cs tls.ConnectionState, f Files, want ...Role) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return errors.New("peer presented no verified certificate")
	}
	leaf := cs.VerifiedChains[0][0]
	id, err := IdentityOf(leaf)
	if err != nil {
		return err
	}
	if !slices.Contains(want, id.Role) {
		return fmt.Errorf("peer %s: role %s not accepted here", id, id.Role)
	}
	if f.CRL == "" {
		return nil
	}
	revoked, err := Revoked(f.CRL, cs.VerifiedChains[0][len(cs.VerifiedChains[0])-1])
	if err != nil {
		return err
	}
	if revoked[leaf.SerialNumber.String()] {
		return fmt.Errorf("peer %s serial %x: %w", id, leaf.SerialNumber, ErrRevoked)
	}
	return nil
}

// ConnIdentity returns the identity of a TLS connection's verified peer.
func ConnIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("%w: peer certificate not verified", ErrNoIdentity)
	}
	return IdentityOf(cs.VerifiedChains[0][0])
}

// PeerIdentity returns the identity of a gRPC call's peer, from the certificate that
// the TLS handshake verified. It fails on a connection without TLS.
func PeerIdentity(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, fmt.Errorf("%w: no peer in context", ErrNoIdentity)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("%w: connection from %s is not TLS", ErrNoIdentity, p.Addr)
	}
	return ConnIdentity(info.State)
}
