package secureagg

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

// DefaultWeightCap is the sample count at which a site's weight saturates at 1
// when Config.WeightCap is zero.
const DefaultWeightCap = 1 << 16

// Config is what all parties of a federation agree on before setup.
type Config struct {
	Params     Parameters
	Federation string
	// Sites lists every site of the federation.
	Sites []SiteID
	// Threshold t is how many sites take part in a decryption: any t sites can
	// decrypt, no coalition of the aggregator and fewer than t sites can. It
	// must be between 1 and len(Sites)-1; zero means len(Sites)-1. A threshold
	// equal to the number of sites is refused: MinSites must exceed it (below),
	// and a sum of every site's update leaves nothing for a threshold of all to
	// protect that a threshold of N-1 does not. Threshold 1 (two sites or more)
	// is allowed, but there the aggregator with any one site decrypts every
	// update: it is for tests and simulations.
	Threshold int
	// WeightCap is the sample count at which a site's weight saturates: a site
	// with count samples weighs min(1, count/WeightCap). Capping keeps the sum
	// inside the modulus and bounds one site's influence, which differential
	// privacy needs.
	WeightCap float64
	// MinSites is the fewest contributing sites a sum may have for a site to
	// help decrypt it; zero means Threshold+1. Sites check it on every sum
	// chunk. It must be at least Threshold+1 and at most len(Sites): the t
	// decrypting sites all see the decrypted sum, so with exactly t
	// contributors the aggregator and t-1 colluding decryptors subtract their
	// own updates from it and recover the remaining site's update exactly.
	MinSites int
}

// Normalize validates c and returns it with its defaults filled in and its
// sites sorted: what NewParty, NewAggregate and SetupLocal work with. A site
// calls it to refuse a federation configuration before taking part in it.
func (c Config) Normalize() (Config, error) { return c.normalize() }

// normalize validates c and fills its defaults.
func (c Config) normalize() (Config, error) {
	if c.Params.ID() == 0 {
		return c, fmt.Errorf("secureagg: %w: config has no parameter set", ErrSetup)
	}
	if len(c.Federation) == 0 || len(c.Federation) > maxFederationID {
		return c, fmt.Errorf("secureagg: %w: federation id must have 1 to %d bytes", ErrSetup, maxFederationID)
	}
	sites, err := sortedSites(c.Sites)
	if err != nil {
		return c, fmt.Errorf("secureagg: config sites: %w", err)
	}
	if len(sites) < 2 || len(sites) > MaxSites {
		return c, fmt.Errorf("secureagg: %w: sites: %d sites, want 2 to %d (a threshold t needs at least t+1 sites)", ErrSetup, len(sites), MaxSites)
	}
	c.Sites = sites
	if c.Threshold == 0 {
		c.Threshold = len(sites) - 1
	}
	if c.Threshold < 1 || c.Threshold > len(sites)-1 {
		return c, fmt.Errorf("secureagg: %w: threshold %d for %d sites, want 1 to %d: a sum must hold at least threshold+1 updates, which needs threshold+1 sites",
			ErrSetup, c.Threshold, len(sites), len(sites)-1)
	}
	if c.MinSites == 0 {
		c.MinSites = c.Threshold + 1
	}
	switch {
	case c.MinSites < c.Threshold+1:
		return c, fmt.Errorf("secureagg: %w: min sites %d below threshold+1 = %d: a sum of %d updates lets the aggregator and %d colluding decryptors subtract theirs from the decrypted sum and recover the remaining site's update",
			ErrSetup, c.MinSites, c.Threshold+1, c.Threshold, c.Threshold-1)
	case c.MinSites > len(sites):
		return c, fmt.Errorf("secureagg: %w: min sites %d for %d sites: no round could ever be decrypted", ErrSetup, c.MinSites, len(sites))
	}
	if c.WeightCap == 0 {
		c.WeightCap = DefaultWeightCap
	}
	if !(c.WeightCap > 0) || math.IsInf(c.WeightCap, 0) {
		return c, fmt.Errorf("secureagg: %w: weight cap %v", ErrSetup, c.WeightCap)
	}
	return c, nil
}

func (c Config) hasSite(id SiteID) bool {
	_, ok := slices.BinarySearch(c.Sites, id)
	return ok
}

// Party is one site's secret state: its secret-key share, its threshold share
// once re-sharing is done, and the collective public key. It is safe for
// concurrent use.
type Party struct {
	cfg  Config
	site SiteID
	sk   *rlwe.SecretKey

	mu  sync.Mutex
	tsk *mhe.ShamirSecretShare
	pk  *rlwe.PublicKey
	// shared records which chunks of the latest round this party has given a
	// decryption share for, so that it never decrypts two aggregates of one round.
	sharedRound uint64
	shared      map[uint32]bool
}

// NewParty draws a fresh secret-key share for site, from crypto/rand through
// lattigo's key generator.
func NewParty(cfg Config, site SiteID) (*Party, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if !cfg.hasSite(site) {
		return nil, fmt.Errorf("secureagg: %w: site %d is not in the federation", ErrSetup, site)
	}
	sk := rlwe.NewKeyGenerator(cfg.Params.rlweParams()).GenSecretKeyNew()
	return &Party{cfg: cfg, site: site, sk: sk}, nil
}

// Site returns the party's site id.
func (p *Party) Site() SiteID { return p.site }

// Config returns the federation configuration, normalized.
func (p *Party) Config() Config { return p.cfg }

// PublicKeyShare returns the party's share of the collective public key.
func (p *Party) PublicKeyShare() (*PublicKeyShare, error) {
	g, err := NewPublicKeyGen(p.cfg.Params, p.cfg.Federation)
	if err != nil {
		return nil, err
	}
	s := g.AllocateShare()
	g.GenShare(p.site, p.sk, s)
	return s, nil
}

// SetPublicKey installs the collective public key after checking that it was
// made for this federation from every site's share.
func (p *Party) SetPublicKey(pk *PublicKey) error {
	switch {
	case pk.Params != p.cfg.Params.ID():
		return refuse("public key", pk.Header, ErrParams)
	case pk.Federation != p.cfg.Federation:
		return refuse("public key", pk.Header, ErrFederation)
	case !slices.Equal(pk.Sites, p.cfg.Sites):
		return refuse("public key", pk.Header, fmt.Errorf("%w: made from sites %v, the federation has %v", ErrSetup, pk.Sites, p.cfg.Sites))
	}
	p.mu.Lock()
	p.pk = pk.pk
	p.mu.Unlock()
	return nil
}

// ShamirShares deals the party's Shamir shares, one per site in the order of
// Config.Sites (its own included).
func (p *Party) ShamirShares() ([]*ShamirShare, error) {
	// Unreachable: Config.normalize refuses a threshold equal to the number of sites.
	if p.cfg.Threshold == len(p.cfg.Sites) {
		return nil, nil
	}
	return NewThresholdizer(p.cfg.Params, p.cfg.Federation).GenShares(p.site, p.sk, p.cfg.Threshold, p.cfg.Sites)
}

// SetShamirShares sums the shares every site dealt to this party into its
// threshold secret. It needs exactly one share from every site.
func (p *Party) SetShamirShares(shares []*ShamirShare) error {
	// Unreachable: Config.normalize refuses a threshold equal to the number of sites.
	if p.cfg.Threshold == len(p.cfg.Sites) {
		return fmt.Errorf("secureagg: %w: threshold equals the number of sites, no re-sharing", ErrSetup)
	}
	thr := NewThresholdizer(p.cfg.Params, p.cfg.Federation)
	dealers := make([]SiteID, 0, len(shares))
	acc := thr.AllocateShare()
	for i, s := range shares {
		switch {
		case s.Params != p.cfg.Params.ID():
			return refuse("shamir share", s.Header, ErrParams)
		case s.Federation != p.cfg.Federation:
			return refuse("shamir share", s.Header, ErrFederation)
		case SiteID(s.Index) != p.site:
			return refuse("shamir share", s.Header, fmt.Errorf("%w: dealt to site %d, not %d", ErrSetup, s.Index, p.site))
		case int(s.Total) != p.cfg.Threshold:
			return refuse("shamir share", s.Header, fmt.Errorf("%w: threshold %d, want %d", ErrSetup, s.Total, p.cfg.Threshold))
		case !p.cfg.hasSite(s.Site):
			return refuse("shamir share", s.Header, fmt.Errorf("%w: dealer %d is not in the federation", ErrSetup, s.Site))
		}
		dealers = append(dealers, s.Site)
		if i == 0 {
			acc.Header = s.Header
			acc.value.Copy(s.value.Poly)
			continue
		}
		if err := thr.AggregateShares(acc, s, acc); err != nil {
			return err
		}
	}
	sorted, err := sortedSites(dealers)
	if err != nil {
		return fmt.Errorf("secureagg: shamir shares: %w", err)
	}
	if !slices.Equal(sorted, p.cfg.Sites) {
		return fmt.Errorf("secureagg: %w: shamir shares from %v, need one from each of %v", ErrSetup, sorted, p.cfg.Sites)
	}
	p.mu.Lock()
	p.tsk = &acc.value
	p.mu.Unlock()
	return nil
}

// Ready reports whether the party's setup is complete: public key installed
// and its threshold secret.
func (p *Party) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Unreachable: Config.normalize refuses a threshold equal to the number of sites.
	return p.pk != nil && (p.tsk != nil || p.cfg.Threshold == len(p.cfg.Sites))
}

func (p *Party) publicKey() (*rlwe.PublicKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pk == nil {
		return nil, fmt.Errorf("secureagg: %w: site %d has no collective public key yet", ErrSetup, p.site)
	}
	return p.pk, nil
}
