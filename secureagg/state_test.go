package secureagg

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
)

// TestPartyStateRestores: a site that restarts from its saved state decrypts
// as before and still refuses a second share of a round it shared on.
func TestPartyStateRestores(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 3, 2)
	const values = 100
	u := randomUpdate(5, values)
	agg, err := NewAggregate(cfg, 9, values)
	if err != nil {
		t.Fatal(err)
	}
	// Every site sends the same update (MinSites is t+1 = 3): the mean is u.
	for _, p := range parties {
		chunks, err := p.Encrypt(ctx, 9, u, cfg.WeightCap)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(chunks[0]); err != nil {
			t.Fatal(err)
		}
	}
	sums := agg.Seal()
	set := cfg.Sites[:2]
	dec, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties[:2] {
		saved, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var restored Party
		if err := restored.UnmarshalBinary(saved); err != nil {
			t.Fatal(err)
		}
		again, err := restored.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(saved, again) {
			t.Fatal("restored state re-encodes differently")
		}
		shares, err := restored.DecryptShare(ctx, set, sums)
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Add(shares[0]); err != nil {
			t.Fatal(err)
		}
		saved, err = restored.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var second Party
		if err := second.UnmarshalBinary(saved); err != nil {
			t.Fatal(err)
		}
		if _, err := second.DecryptShare(ctx, set, sums); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("restored party shared twice in one round: %v", err)
		}
	}
	res, err := dec.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for j, v := range u {
		if math.Abs(float64(res.Mean[j])-float64(v)) > 1e-5 {
			t.Fatalf("value %d: %v, want %v", j, res.Mean[j], v)
		}
	}
}

func FuzzPartyState(f *testing.F) {
	_, parties := federation(f, 3, 2)
	b, err := parties[0].MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		var p Party
		if err := p.UnmarshalBinary(in); err != nil {
			return
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded state does not re-encode: %v", err)
		}
		if !bytes.Equal(in, out) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}
