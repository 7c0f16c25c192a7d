package site

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// partyID is a site's secureagg id in the federation's roster (secureagg.Roster:
// its position in the sorted site list, whatever order the list came in).
func partyID(r secureagg.Roster, site string) (secureagg.SiteID, error) {
	id, ok := r.ID(site)
	if !ok {
		return 0, fmt.Errorf("site %q is not in the federation's site list %v", site, r.Names())
	}
	return id, nil
}

// sealedShare is one Shamir share sealed to its recipient, ready to upload.
type sealedShare struct {
	To   string
	Blob []byte
}

// dealShares deals party's Shamir shares, one per site of the federation, each sealed
// to the recipient's share key. Every key is checked first (fedclaimspb.VerifyShareKey:
// certificate chained to the consortium CA, naming the site, signature over this
// federation, site and key), because the keys come relayed through the aggregator,
// which could otherwise swap in its own and read the shares. A missing, extra or bad
// key refuses the whole dealing: no share leaves unless every one can go safely.
// Each share goes to the site its recipient id names in the roster of sites, never
// to a position in the list as received.
func dealShares(party *secureagg.Party, federation string, sites []string, participants []*fedclaimspb.SignedKey, roots *x509.CertPool, now time.Time) ([]sealedShare, error) {
	roster, err := secureagg.NewRoster(sites)
	if err != nil {
		return nil, fmt.Errorf("dealing: federation sites: %w", err)
	}
	keys := make(map[string][]byte, len(participants))
	for _, k := range participants {
		if err := fedclaimspb.VerifyShareKey(k, federation, roots, now); err != nil {
			return nil, err
		}
		if !slices.Contains(sites, k.SiteId) {
			return nil, fmt.Errorf("%w: site %q is not in the federation", fedclaimspb.ErrShareKey, k.SiteId)
		}
		if _, dup := keys[k.SiteId]; dup {
			return nil, fmt.Errorf("%w: two keys for site %q", fedclaimspb.ErrShareKey, k.SiteId)
		}
		keys[k.SiteId] = k.PublicKey
	}
	shares, err := party.ShamirShares()
	if err != nil {
		return nil, err
	}
	if len(shares) != len(sites) {
		return nil, fmt.Errorf("dealing: %d shares for %d sites", len(shares), len(sites))
	}
	out := make([]sealedShare, len(sites))
	for i, sh := range shares {
		to := roster.Name(secureagg.SiteID(sh.Index))
		if to == "" {
			return nil, fmt.Errorf("dealing: share %d for party %d, not in the roster of %d sites", i, sh.Index, roster.Len())
		}
		pub, ok := keys[to]
		if !ok {
			return nil, fmt.Errorf("%w: no share key for site %q", fedclaimspb.ErrShareKey, to)
		}
		sealed, err := sh.Seal(pub)
		if err != nil {
			return nil, err
		}
		b, err := sealed.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out[i] = sealedShare{To: to, Blob: b}
	}
	return out, nil
}

// openShare opens a sealed Shamir share relayed from dealer to recipient. The clear
// header must name this federation, the dealer and the recipient; the seal binds the
// header (HPKE's info), so a share relayed under another dealer's or recipient's name,
// altered in any byte, or sealed to another key does not open.
func openShare(blob []byte, tk *secureagg.TransportKey, federation string, dealer, recipient secureagg.SiteID) (*secureagg.ShamirShare, error) {
	var s secureagg.SealedShamirShare
	if err := s.UnmarshalBinary(blob); err != nil {
		return nil, err
	}
	switch {
	case s.Federation != federation:
		return nil, fmt.Errorf("shamir share from party %d: federation %q, expected %q", dealer, s.Federation, federation)
	case s.Site != dealer:
		return nil, fmt.Errorf("shamir share: dealt by party %d, expected %d", s.Site, dealer)
	case s.Index != uint32(recipient):
		return nil, fmt.Errorf("shamir share from party %d: for party %d, expected %d", dealer, s.Index, recipient)
	}
	return s.Open(tk)
}
