package site

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/tasks"
)

// decryptPolicy is the site's own rule for giving a decryption share: who it is
// and what its federation requires, whatever a task says.
type decryptPolicy struct {
	Roster    secureagg.Roster // names the ids in refusals
	Self      secureagg.SiteID
	Threshold int // size of every decrypting set: the party's threshold
	// MinSites is the fewest contributions a sum may hold: the larger of the
	// federation configuration's min_sites and the party's (normalized, so at
	// least Threshold+1).
	MinSites int
}

// decryptRequest is a decryption task with its site names mapped to party ids.
type decryptRequest struct {
	Round        uint64
	Contributors []secureagg.SiteID // sorted, distinct
	Decryptors   []secureagg.SiteID // sorted, distinct
}

// checkDecrypt decides whether the site may give its decryption share for req:
// enough contributors, the site among the decryptors, exactly Threshold of them,
// every decryptor a contributor, the round not released before (released lists the
// rounds it gave a share for; a refusal then wraps ErrReleased) and, once the
// aggregate is downloaded (sums not nil), every sum chunk of the task's round,
// summing at least MinSites sites and every contributor the task names: the sum
// itself says whose updates it holds, and the site trusts that, not the task's
// list. sums nil means the aggregate is not downloaded yet, so that everything
// that can be refused is refused before the download; an empty, non-nil sums is
// an aggregate without chunks and is refused.
func checkDecrypt(p decryptPolicy, req decryptRequest, released []uint64, sums []*secureagg.SumChunk) error {
	switch {
	case len(req.Contributors) < p.MinSites:
		return fmt.Errorf("contributors: an aggregate of %d contributors, below min_sites %d", len(req.Contributors), p.MinSites)
	case !slices.Contains(req.Decryptors, p.Self):
		return fmt.Errorf("decryptors: site not among the decryptors %v", p.Roster.NamesOf(req.Decryptors))
	case len(req.Decryptors) != p.Threshold:
		return fmt.Errorf("decryptors: %d decryptors, the threshold is %d", len(req.Decryptors), p.Threshold)
	}
	for _, d := range req.Decryptors {
		if !slices.Contains(req.Contributors, d) {
			return fmt.Errorf("decryptors: decryptor %s did not contribute", p.Roster.Name(d))
		}
	}
	if slices.Contains(released, req.Round) {
		return fmt.Errorf("round %d: %w", req.Round, ErrReleased)
	}
	if sums == nil {
		return nil
	}
	if len(sums) == 0 {
		return fmt.Errorf("aggregate: no chunks")
	}
	for i, s := range sums {
		if s.Round != req.Round || len(s.Sites) < p.MinSites || !subset(req.Contributors, s.Sites) {
			return fmt.Errorf("aggregate chunk %d of round %d sums sites %v; the task names %v for round %d, min_sites is %d",
				i, s.Round, p.Roster.NamesOf(s.Sites), p.Roster.NamesOf(req.Contributors), req.Round, p.MinSites)
		}
	}
	return nil
}

// partySpec is what a site's secureagg party was made for: the normalized
// configuration, the site's own id and the federation's site names (the roster).
// secureagg.Config holds ids only, and ids are positions in the sorted name list:
// another set of names of the same size has the same ids, so the names are kept
// beside it.
type partySpec struct {
	Config secureagg.Config
	Self   secureagg.SiteID
	Sites  []string // roster names, sorted
}

// needNewParty reports whether a key-setup request for spec needs a fresh party
// (a new secret-key share, and so a new key setup) rather than the one made for old
// (nil: none). Any difference that changes what the key material is for needs one:
// the federation, the parameter set, the site names (not only their number), the
// site's own id, the threshold, min_sites or the weight cap. A party kept from
// before a restart, for the same spec, answers again with the same share.
func needNewParty(old *partySpec, spec partySpec) bool {
	if old == nil {
		return true
	}
	o, n := old.Config, spec.Config
	return o.Federation != n.Federation ||
		o.Params.ID() != n.Params.ID() ||
		!slices.Equal(o.Sites, n.Sites) ||
		!slices.Equal(old.Sites, spec.Sites) ||
		old.Self != spec.Self ||
		o.Threshold != n.Threshold ||
		o.MinSites != n.MinSites ||
		o.WeightCap != n.WeightCap
}

// checkResend decides whether a site that already released its decryption share
// for req's round may send the kept bytes again: only the very same shares, for the
// same aggregate (aggregate: its SHA-256) and the same decrypting set. That is what
// an upload broken mid-stream asks again; a different aggregate or set for a
// released round is refused (wrapping ErrReleased), since a second share of
// another sum is what the one-share-per-round rule is there to prevent. aggregate
// nil means the aggregate is not known yet (the task names no SHA-256 and it is not
// downloaded): everything else is checked, so that a refusal comes first.
func checkResend(kept *releasedShares, req decryptRequest, aggregate []byte) error {
	switch {
	case kept == nil || kept.Round != req.Round:
		return fmt.Errorf("round %d: %w, and its share is not kept to send again", req.Round, ErrReleased)
	case len(kept.Msgs) == 0:
		return fmt.Errorf("round %d: %w, and the kept share has no chunks", req.Round, ErrReleased)
	case !slices.Equal(req.Decryptors, kept.Set):
		return fmt.Errorf("round %d: %w for decrypting set %v, asked for %v", req.Round, ErrReleased, kept.Set, req.Decryptors)
	case aggregate != nil && !bytes.Equal(aggregate, kept.Aggregate[:]):
		return fmt.Errorf("round %d: %w for aggregate %x, asked for aggregate %x", req.Round, ErrReleased, kept.Aggregate, aggregate)
	}
	return nil
}

// The patients a site's encoder is shaped by, as the audit log names them.
const (
	trainingSplit = "training_split" // the training split of the dataset's split (tasks.Splits)
	everyPatient  = "every_patient"  // a pretraining-only site's
)

// pretrainingReader is the one rule for which of a site's patients its local
// training and its code counts read: the training split of the dataset's split
// (its own when it declares one, else the hash under the site's split salt; nil
// splits is the hash), since the site's local evaluation scores the test split
// and an encoder that read a test patient's later events has read the labels it
// is scored on; or, for a pretraining-only site, which no evaluation scores, every
// patient. It returns the wrapper a dataset is read through and the set's name
// for the audit log.
func pretrainingReader(cfg Config, splits *tasks.Splits) (wrap func(claims.Reader) claims.Reader, patients string) {
	if cfg.PretrainOnly {
		return func(r claims.Reader) claims.Reader { return r }, everyPatient
	}
	if splits == nil {
		splits = tasks.HashSplits(cfg.splitSalt())
	}
	return func(r claims.Reader) claims.Reader { return tasks.NewSplitsPretrainingReader(r, splits) }, trainingSplit
}

// splitNames says whose split each of datasets is, for the audit log: one name
// when they agree ("fedclaims hash"), else "dir: split; ...". A pretraining-only
// site reads every patient whatever the split, and says so.
func splitNames(cfg Config, splits map[string]*tasks.Splits) string {
	if cfg.PretrainOnly {
		return "none (pretraining only)"
	}
	descs := make([]string, len(cfg.Data))
	for i, d := range cfg.Data {
		descs[i] = splits[d].String()
	}
	return tasks.DescribeSplits(cfg.Data, descs)
}
