package tokenizer

import (
	"math/rand/v2"

	"github.com/fedclaims/fedclaims/claims"
)

// RandomCutoff picks a pretraining window's end for p, so that pretraining sees
// histories cut mid-way as fine-tuning does at an index date, not only whole ones.
//
// Let d_1 < d_2 < ... < d_k be the distinct UTC days of p's events (Events sorted by
// time, as claims.Patient promises). RandomCutoff returns, each with probability 1/k,
// either the start (midnight UTC, in microseconds) of one of d_2..d_k, so that the
// window holds the visits strictly before that day, or NoCutoff, the whole history.
// A patient with at most one visit day always gets NoCutoff: there is no cut that
// leaves it a visit. The choice depends on (seed, p.ID) alone, so a site's rounds
// and restarts see the same windows; a new seed draws new ones.
//
// The days counted are those of every event, including codes the vocabulary drops,
// so a cut may leave the same tokens as a neighbouring cut; that costs a little
// spread, not correctness.
func RandomCutoff(p *claims.Patient, seed uint64) int64 {
	k := 0
	day := int64(0)
	for i := range p.Events {
		if d := claims.Day(p.Events[i].Time); k == 0 || d != day {
			k, day = k+1, d
		}
	}
	if k <= 1 {
		return NoCutoff
	}
	j := rand.New(rand.NewPCG(seed, uint64(p.ID))).IntN(k)
	if j == k-1 {
		return NoCutoff
	}
	// j-th day after the first (0-based): walk again rather than keep a slice, so
	// the pick stays allocation-light on the read path.
	n := 0
	for i := range p.Events {
		if d := claims.Day(p.Events[i].Time); n == 0 || d != day {
			n, day = n+1, d
			if n == j+2 {
				return d * claims.MicrosPerDay
			}
		}
	}
	return NoCutoff // unreachable: j+2 <= k
}
