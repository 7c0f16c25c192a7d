package site

import (
	"context"
	"testing"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// consortium makes a consortium directory with certificates for sites.
func consortium(t testing.TB, sites ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Init(dir, certs.Options{Consortium: "test", Sites: sites}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hospital encodes n synthetic patients of one hospital with a vocabulary built
// from their own counts, as a site's data and a federated vocabulary would be.
func hospital(t testing.TB, n int, seed uint64) (*tokenizer.Vocab, []model.Sequence) {
	t.Helper()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: n, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	c := tokenizer.NewCounter()
	r := g.Reader(0)
	for {
		p, err := r.Next(context.Background())
		if err != nil {
			break
		}
		c.Add(p)
	}
	r.Close()
	table, err := c.Table(2)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.New(table, 2)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tokenizer.NewEncoder(v, 32)
	if err != nil {
		t.Fatal(err)
	}
	seqs, _, err := model.ReadSequences(context.Background(), g.Reader(0), enc)
	if err != nil {
		t.Fatal(err)
	}
	return v, seqs
}

// tinyModel is an encoder small enough to train in milliseconds.
func tinyModel(t testing.TB, vocab int, seed uint64) *model.Model {
	t.Helper()
	m, err := model.New(model.Config{Vocab: vocab, Hidden: 16, Layers: 1, Heads: 2, MaxLen: 32, Segments: 3, LNEps: 1e-5}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rosterIDs returns the secureagg ids of a federation's sites.
func rosterIDs(t testing.TB, sites []string) []secureagg.SiteID {
	t.Helper()
	r, err := secureagg.NewRoster(sites)
	if err != nil {
		t.Fatal(err)
	}
	return r.IDs()
}
