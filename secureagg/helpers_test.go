package secureagg

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// federation runs the whole setup in memory: key shares, collective public
// key, and Shamir re-sharing when t < n. Every message goes through its binary
// encoding, as it would on the wire.
func federation(t testing.TB, n, threshold int) (Config, []*Party) {
	t.Helper()
	params, err := NewParameters(PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	sites := make([]SiteID, n)
	for i := range sites {
		sites[i] = SiteID(10 + 3*i)
	}
	cfg := Config{Params: params, Federation: "fed-test", Sites: sites, Threshold: threshold, WeightCap: 1000}
	parties, err := SetupLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties {
		if !p.Ready() {
			t.Fatalf("site %d not ready after setup", p.Site())
		}
	}
	return parties[0].Config(), parties
}

type binaryMessage interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTrip encodes m and decodes it into fresh.
func roundTrip[T binaryMessage](t testing.TB, m T, fresh T) T {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return fresh
}

// randomUpdate returns values uniform in [-1, 1] from a seeded source.
func randomUpdate(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eca))
	u := make([]float32, n)
	for i := range u {
		u[i] = float32(2*r.Float64() - 1)
	}
	return u
}

// runRound encrypts each site's update, aggregates, has the decrypting set
// share and combines; counts[i] is site i's sample count.
func runRound(t testing.TB, cfg Config, parties []*Party, round uint64, updates [][]float32, counts []float64, set []SiteID) *Result {
	t.Helper()
	ctx := context.Background()
	agg, err := NewAggregate(cfg, round, len(updates[0]))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parties {
		if updates[i] == nil {
			continue
		}
		chunks, err := p.Encrypt(ctx, round, updates[i], counts[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			if err := agg.Add(roundTrip(t, c, new(Chunk))); err != nil {
				t.Fatal(err)
			}
		}
	}
	sums := agg.Seal()
	dec, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties {
		if !contains(set, p.Site()) {
			continue
		}
		wire := make([]*SumChunk, len(sums))
		for i, s := range sums {
			wire[i] = roundTrip(t, s, new(SumChunk))
		}
		shares, err := p.DecryptShare(ctx, set, wire)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range shares {
			if err := dec.Add(roundTrip(t, s, new(ShareChunk))); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := dec.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func contains(set []SiteID, s SiteID) bool {
	for _, x := range set {
		if x == s {
			return true
		}
	}
	return false
}

type ringPoly = ring.Poly

// decodeRaw decodes the first polynomial of ct as if it were a plaintext and
// returns the values of its first chunk slots.
func decodeRaw(t testing.TB, cfg Config, ct *rlwe.Ciphertext) []float64 {
	t.Helper()
	ecd := hefloat.NewEncoder(cfg.Params.Parameters)
	pt := hefloat.NewPlaintext(cfg.Params.Parameters, 0)
	pt.IsBatched = false
	pt.Value = ct.Value[0]
	vals := make([]float64, cfg.Params.N())
	if err := ecd.Decode(pt, vals); err != nil {
		t.Fatal(err)
	}
	return vals
}

// farFrom returns an error when got is close to want: decryption must fail by
// far, not by a hair.
func farFrom(got []float64, want []float32) error {
	var close int
	for j, v := range want {
		if math.Abs(got[j]-float64(v)) < 0.01 {
			close++
		}
	}
	if close > len(want)/50 {
		return fmt.Errorf("%d of %d values decode within 0.01 of the plaintext", close, len(want))
	}
	return nil
}

// federationInMemory runs the same setup as federation, but hands the Shamir
// shares over directly instead of sealing and encoding each of the n² of them:
// for large federations, where that relay dominates the test's time.
func federationInMemory(t testing.TB, n, threshold int) (Config, []*Party) {
	t.Helper()
	params, err := NewParameters(PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	sites := make([]SiteID, n)
	for i := range sites {
		sites[i] = SiteID(10 + 3*i)
	}
	cfg := Config{Params: params, Federation: "fed-test", Sites: sites, Threshold: threshold, WeightCap: 1000}
	parties := make([]*Party, n)
	g, err := NewPublicKeyGen(params, cfg.Federation)
	if err != nil {
		t.Fatal(err)
	}
	var acc *PublicKeyShare
	for i, s := range sites {
		if parties[i], err = NewParty(cfg, s); err != nil {
			t.Fatal(err)
		}
		share, err := parties[i].PublicKeyShare()
		if err != nil {
			t.Fatal(err)
		}
		if acc == nil {
			acc = share
		} else if err := g.AggregateShares(acc, share, acc); err != nil {
			t.Fatal(err)
		}
	}
	pk, err := g.GenPublicKey(acc)
	if err != nil {
		t.Fatal(err)
	}
	inbox := make([][]*ShamirShare, n)
	for _, p := range parties {
		if err := p.SetPublicKey(pk); err != nil {
			t.Fatal(err)
		}
		shares, err := p.ShamirShares()
		if err != nil {
			t.Fatal(err)
		}
		for j, s := range shares {
			inbox[j] = append(inbox[j], s)
		}
	}
	for j, p := range parties {
		if err := p.SetShamirShares(inbox[j]); err != nil {
			t.Fatal(err)
		}
		if !p.Ready() {
			t.Fatalf("site %d not ready after setup", p.Site())
		}
	}
	return parties[0].Config(), parties
}
