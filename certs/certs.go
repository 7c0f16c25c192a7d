// Package certs is the consortium's public-key infrastructure: one certificate
// authority, the aggregator's server certificate, one client certificate per site and
// the coordinator's admin certificate, and the mutual-TLS configurations built on them.
//
// A party's identity is its verified certificate, never a field it sends: the role is
// the certificate's organizational unit and the id its common name, and both must agree
// with the certificate's single URI SAN, fedclaims://<role>/<id>. Keys are ECDSA P-256.
// Key material comes from crypto/rand by necessity; nothing here is seeded.
package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
)

// Role is what a certificate entitles its holder to do in a federation.
type Role string

const (
	// RoleAggregator is the consortium's aggregator, the only TLS server.
	RoleAggregator Role = "aggregator"
	// RoleSite is a hospital's site agent.
	RoleSite Role = "site"
	// RoleAdmin is the consortium coordinator's tooling.
	RoleAdmin Role = "admin"
)

func (r Role) valid() bool {
	return r == RoleAggregator || r == RoleSite || r == RoleAdmin
}

// URIScheme is the scheme of the URI SAN that names a party: fedclaims://site/<id>.
const URIScheme = "fedclaims"

// idPattern keeps ids safe as file names, URI path segments and log fields.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidID reports whether id can name a party: 1 to 63 characters of lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit.
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("id %q: want 1-63 characters of [a-z0-9._-] starting with a letter or digit", id)
	}
	return nil
}

// Identity is who a verified certificate says its holder is.
type Identity struct {
	Role Role
	ID   string
}

// String returns the identity as its URI SAN.
func (id Identity) String() string {
	return id.URI().String()
}

// URI returns fedclaims://<role>/<id>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: URIScheme, Host: string(id.Role), Path: "/" + id.ID}
}

// ErrNoIdentity reports a certificate that does not name a fedclaims party.
var ErrNoIdentity = errors.New("certificate carries no fedclaims identity")

// IdentityOf derives the holder's identity from a certificate that has already been
// verified against the consortium CA. The URI SAN, the common name and the
// organizational unit must all agree, so a certificate cannot name two parties.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrNoIdentity)
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == URIScheme {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w: %d %s:// URI SANs in %q, want 1", ErrNoIdentity, len(found), URIScheme, cert.Subject)
	}
	u := found[0]
	id := Identity{Role: Role(u.Host), ID: trimSlash(u.Path)}
	if !id.Role.valid() {
		return Identity{}, fmt.Errorf("%w: unknown role %q in %s", ErrNoIdentity, u.Host, u)
	}
	if err := ValidID(id.ID); err != nil {
		return Identity{}, fmt.Errorf("%w: %s: %w", ErrNoIdentity, u, err)
	}
	if cert.Subject.CommonName != id.ID {
		return Identity{}, fmt.Errorf("%w: common name %q disagrees with %s", ErrNoIdentity, cert.Subject.CommonName, u)
	}
	if len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != string(id.Role) {
		return Identity{}, fmt.Errorf("%w: organizational unit %q disagrees with %s", ErrNoIdentity, cert.Subject.OrganizationalUnit, u)
	}
	return id, nil
}

func trimSlash(p string) string {
	if len(p) > 0 && p[0] == '/' {
		return p[1:]
	}
	return p
}
