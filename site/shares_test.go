package site

import (
	"crypto"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

type dealt struct {
	sites   []string
	parties []*secureagg.Party
	tks     []*secureagg.TransportKey
	keys    []*fedclaimspb.SignedKey
	roots   *x509.CertPool
	dir     string
}

// setup makes three sites with certificates, transport keys signed under them and
// secureagg parties for a 2-of-3 federation.
func setup(t *testing.T) *dealt {
	t.Helper()
	d := &dealt{sites: []string{"a", "b", "c"}}
	d.dir = consortium(t, d.sites...)
	ca, err := certs.LoadCert(certs.SiteFiles(d.dir, "a").CA)
	if err != nil {
		t.Fatal(err)
	}
	d.roots = x509.NewCertPool()
	d.roots.AddCert(ca)
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	cfg := secureagg.Config{Params: params, Federation: "fed", Sites: rosterIDs(t, d.sites), Threshold: 2}
	for i, s := range d.sites {
		pair, _, err := certs.LoadPair(certs.SiteFiles(d.dir, s))
		if err != nil {
			t.Fatal(err)
		}
		tk, err := secureagg.NewTransportKey()
		if err != nil {
			t.Fatal(err)
		}
		k, err := fedclaimspb.SignShareKey(pair.PrivateKey.(crypto.Signer), pair.Leaf, "fed", tk.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		p, err := secureagg.NewParty(cfg, secureagg.SiteID(i))
		if err != nil {
			t.Fatal(err)
		}
		d.parties, d.tks, d.keys = append(d.parties, p), append(d.tks, tk), append(d.keys, k)
	}
	return d
}

func TestShareSealing(t *testing.T) {
	d := setup(t)
	now := time.Now()
	out, err := dealShares(d.parties[0], "fed", d.sites, d.keys, d.roots, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("%d shares for 3 sites", len(out))
	}
	toB := out[slices.IndexFunc(out, func(s sealedShare) bool { return s.To == "b" })].Blob

	t.Run("round trip", func(t *testing.T) {
		sh, err := openShare(toB, d.tks[1], "fed", 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if sh.Site != 0 || sh.Index != 1 {
			t.Fatalf("opened share header %s", sh.Header)
		}
	})
	t.Run("wrong recipient", func(t *testing.T) {
		if _, err := openShare(toB, d.tks[2], "fed", 0, 1); err == nil {
			t.Fatal("c's key opened b's share")
		}
		if _, err := openShare(toB, d.tks[2], "fed", 0, 2); err == nil {
			t.Fatal("b's share was accepted as c's")
		}
	})
	t.Run("tampered ciphertext", func(t *testing.T) {
		for _, at := range []int{len(toB) - 1, len(toB) - 40, len(toB) / 2} {
			bad := slices.Clone(toB)
			bad[at] ^= 0x01
			if _, err := openShare(bad, d.tks[1], "fed", 0, 1); err == nil {
				t.Fatalf("a share with byte %d flipped opened", at)
			}
		}
	})
	t.Run("swapped associated data", func(t *testing.T) {
		// The clear header is the seal's associated data: relabel the dealer, the
		// recipient or the federation and the share must not open, even though the
		// relabelled header is the one the recipient expects.
		for _, edit := range []struct {
			name         string
			f            func(h *secureagg.Header)
			fed          string
			dealer, recv secureagg.SiteID
		}{
			{"dealer", func(h *secureagg.Header) { h.Site = 2 }, "fed", 2, 1},
			{"recipient", func(h *secureagg.Header) { h.Index = 2 }, "fed", 0, 2},
			{"federation", func(h *secureagg.Header) { h.Federation = "other" }, "other", 0, 1},
		} {
			var s secureagg.SealedShamirShare
			if err := s.UnmarshalBinary(toB); err != nil {
				t.Fatal(err)
			}
			edit.f(&s.Header)
			bad, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			tk := d.tks[edit.recv]
			if _, err := openShare(bad, tk, edit.fed, edit.dealer, edit.recv); err == nil {
				t.Fatalf("share with the %s relabelled opened", edit.name)
			}
		}
	})
	t.Run("header must match what is expected", func(t *testing.T) {
		if _, err := openShare(toB, d.tks[1], "fed", 2, 1); err == nil {
			t.Fatal("a's share accepted as c's")
		}
		if _, err := openShare(toB, d.tks[1], "other", 0, 1); err == nil {
			t.Fatal("share accepted for another federation")
		}
	})
}

// TestShareKeysChecked: a dealer seals to no key that fails verification, and deals
// nothing when any key is missing or bad.
func TestShareKeysChecked(t *testing.T) {
	d := setup(t)
	foreign := consortium(t, "b")
	pair, _, err := certs.LoadPair(certs.SiteFiles(foreign, "b"))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := secureagg.NewTransportKey()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := fedclaimspb.SignShareKey(pair.PrivateKey.(crypto.Signer), pair.Leaf, "fed", tk.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	swapped := &fedclaimspb.SignedKey{SiteId: d.keys[1].SiteId, PublicKey: tk.PublicKey(), Certificate: d.keys[1].Certificate, Signature: d.keys[1].Signature}
	tests := []struct {
		name string
		keys []*fedclaimspb.SignedKey
		want error
	}{
		{"key from another CA", []*fedclaimspb.SignedKey{d.keys[0], forged, d.keys[2]}, fedclaimspb.ErrShareKey},
		{"key swapped by the relay", []*fedclaimspb.SignedKey{d.keys[0], swapped, d.keys[2]}, fedclaimspb.ErrShareKey},
		{"key missing", []*fedclaimspb.SignedKey{d.keys[0], d.keys[2]}, fedclaimspb.ErrShareKey},
		{"key twice", []*fedclaimspb.SignedKey{d.keys[0], d.keys[1], d.keys[1], d.keys[2]}, fedclaimspb.ErrShareKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := dealShares(d.parties[0], "fed", d.sites, tt.keys, d.roots, time.Now())
			if !errors.Is(err, tt.want) || out != nil {
				t.Fatalf("got %d shares, %v; want %v", len(out), err, tt.want)
			}
		})
	}
	if _, err := dealShares(d.parties[0], "other", d.sites, d.keys, d.roots, time.Now()); !errors.Is(err, fedclaimspb.ErrShareKey) {
		t.Fatalf("keys signed for another federation: %v", err)
	}
}

// TestDealSharesIgnoresListOrder: the site list may reach a site in any order; each
// share still goes to the site its recipient id names in the roster (the sorted
// list), which is the id the aggregator and the recipient use.
func TestDealSharesIgnoresListOrder(t *testing.T) {
	d := setup(t)
	for _, received := range [][]string{{"c", "a", "b"}, {"b", "c", "a"}, {"a", "b", "c"}} {
		out, err := dealShares(d.parties[0], "fed", received, d.keys, d.roots, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out {
			id := slices.Index(d.sites, s.To) // d.sites is sorted: its positions are the roster ids
			if _, err := openShare(s.Blob, d.tks[id], "fed", 0, secureagg.SiteID(id)); err != nil {
				t.Fatalf("list %v: the share for %s does not open with its key as party %d: %v", received, s.To, id, err)
			}
		}
	}
}
