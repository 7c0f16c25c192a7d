package secureagg

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

func TestChunkRefused(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 3, 0)
	const values = 5000
	update := randomUpdate(1, values)
	chunks, err := parties[0].Encrypt(ctx, 4, update, cfg.WeightCap)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewAggregate(cfg, 4, values)
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(chunks[0]); err != nil {
		t.Fatal(err)
	}
	with := func(f func(h *Header)) *Chunk {
		c := *chunks[1]
		f(&c.Header)
		return &c
	}
	for _, tc := range []struct {
		name  string
		chunk *Chunk
		want  error
	}{
		{"other parameter set", with(func(h *Header) { h.Params = 99 }), ErrParams},
		{"other federation", with(func(h *Header) { h.Federation = "other" }), ErrFederation},
		{"other round", with(func(h *Header) { h.Round = 5 }), ErrRound},
		{"duplicate", chunks[0], ErrDuplicate},
		{"index beyond the model", with(func(h *Header) { h.Index = 9 }), ErrShape},
		{"other model size", with(func(h *Header) { h.Total = 3 }), ErrShape},
		{"site outside the federation", with(func(h *Header) { h.Site = 1 }), ErrSetup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := agg.Add(tc.chunk)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Add: %v, want %v", err, tc.want)
			}
			var me *MessageError
			if !errors.As(err, &me) || me.Kind != "chunk" {
				t.Fatalf("Add: %v is not a *MessageError for a chunk", err)
			}
		})
	}
	if err := agg.Add(chunks[1]); err != nil {
		t.Fatal(err)
	}
	// The other sites contribute too: a sum needs MinSites (t+1) of them.
	want := make([]float64, values)
	for j, v := range update {
		want[j] = float64(v)
	}
	for i, p := range parties[1:] {
		u := randomUpdate(uint64(10+i), values)
		addUpdate(t, agg, p, 4, u, cfg.WeightCap)
		for j, v := range u {
			want[j] += float64(v)
		}
	}
	// The refused chunks left no trace: the sum decodes to the three sites' mean.
	res := decryptAll(t, cfg, parties, agg)
	for j := range want {
		if d := math.Abs(float64(res.Mean[j]) - want[j]/3); d > 1e-5 {
			t.Fatalf("value %d: %v, want %v: a refused chunk was summed", j, res.Mean[j], want[j]/3)
		}
	}
	if math.Abs(res.Weight-3) > 1e-5 {
		t.Fatalf("weight %v, want 3", res.Weight)
	}
	if err := agg.Add(chunks[0]); !errors.Is(err, ErrSealed) {
		t.Fatalf("Add after Seal: %v, want ErrSealed", err)
	}
}

// addUpdate encrypts a site's whole update and adds every chunk to agg.
func addUpdate(t *testing.T, agg *Aggregate, p *Party, round uint64, u []float32, count float64) []*Chunk {
	t.Helper()
	chunks, err := p.Encrypt(context.Background(), round, u, count)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if err := agg.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	return chunks
}

// decryptAll seals agg and decrypts it with the first Threshold parties.
func decryptAll(t *testing.T, cfg Config, parties []*Party, agg *Aggregate) *Result {
	t.Helper()
	ctx := context.Background()
	sums := agg.Seal()
	set := cfg.Sites[:cfg.Threshold]
	dec, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties[:cfg.Threshold] {
		shares, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range shares {
			if err := dec.Add(s); err != nil {
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

func TestShareRefused(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 4, 3)
	const values = 100
	agg, err := NewAggregate(cfg, 2, values)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parties {
		chunks, err := p.Encrypt(ctx, 2, randomUpdate(uint64(i), values), 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(chunks[0]); err != nil {
			t.Fatal(err)
		}
	}
	sums := agg.Seal()
	set := cfg.Sites[:3]
	otherSet := cfg.Sites[1:]
	dec, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	share := func(p *Party, set []SiteID) *ShareChunk {
		// Forget the share afterwards, so that the one-share-per-round rule
		// does not hide the refusal under test.
		s, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		p.shared = nil
		p.mu.Unlock()
		return s[0]
	}
	first := share(parties[0], set)
	if err := dec.Add(first); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Result(ctx); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("Result with 1 of 3 shares: %v, want ErrTooFewShares", err)
	}
	roundShare := share(parties[1], set)
	roundShare.Round = 3
	if err := dec.Add(first); err != nil {
		t.Fatalf("Add of the same share again: %v, want nil (idempotent)", err)
	}
	for _, tc := range []struct {
		name  string
		share *ShareChunk
		want  error
	}{
		{"site outside the decrypting set", share(parties[3], otherSet), ErrNotInSet},
		{"made for another set", share(parties[1], otherSet), ErrNotInSet},
		{"another share for an added (site, chunk)", share(parties[0], set), ErrDuplicate},
		{"other round", roundShare, ErrRound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := dec.Add(tc.share); !errors.Is(err, tc.want) {
				t.Fatalf("Add: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := parties[3].DecryptShare(ctx, set, sums); !errors.Is(err, ErrNotInSet) {
		t.Fatalf("DecryptShare by a site outside the set: %v, want ErrNotInSet", err)
	}
	if _, err := parties[0].DecryptShare(ctx, set[:2], sums); !errors.Is(err, ErrNotInSet) {
		t.Fatalf("DecryptShare for a set smaller than t: %v, want ErrNotInSet", err)
	}
	if _, err := parties[0].DecryptShare(ctx, set, sums); err != nil {
		t.Fatal(err)
	}
	if _, err := parties[0].DecryptShare(ctx, set, sums); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second DecryptShare of a round: %v, want ErrDuplicate", err)
	}
}

// TestBelowThresholdDoesNotDecrypt: t-1 sites pooling their threshold secrets
// reconstruct a wrong key, and t-1 decryption shares of a t-set decode to noise.
func TestBelowThresholdDoesNotDecrypt(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 5, 3)
	const values = 4095
	update := randomUpdate(9, values)
	agg, err := NewAggregate(cfg, 1, values)
	if err != nil {
		t.Fatal(err)
	}
	chunks := addUpdate(t, agg, parties[4], 1, update, cfg.WeightCap)
	// Three more sites contribute, for the MinSites (t+1 = 4) a sum needs; the
	// plaintext t-1 shares must not reveal is their sum.
	sum := append([]float32(nil), update...)
	for i, p := range parties[1:4] {
		u := randomUpdate(uint64(20+i), values)
		addUpdate(t, agg, p, 1, u, cfg.WeightCap)
		for j, v := range u {
			sum[j] += v
		}
	}
	sums := agg.Seal()
	set := cfg.Sites[:3]
	dec, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties[:2] {
		shares, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Add(shares[0]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dec.Result(ctx); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("Result with t-1 shares: %v, want ErrTooFewShares", err)
	}
	if err := farFrom(decodeRaw(t, cfg, dec.acc[0]), sum); err != nil {
		t.Fatalf("t-1 shares: %v", err)
	}

	// The t-1 colluders interpolate their threshold secrets as if t-1 sufficed.
	rp := cfg.Params.rlweParams()
	points := []mhe.ShamirPublicPoint{mhe.ShamirPublicPoint(shamirPoint(cfg.Sites[0])), mhe.ShamirPublicPoint(shamirPoint(cfg.Sites[1]))}
	guess := rlwe.NewSecretKey(rp)
	for i, p := range parties[:2] {
		cmb := mhe.NewCombiner(rp, points[i], points, 2)
		part := rlwe.NewSecretKey(rp)
		if err := cmb.GenAdditiveShare(points, points[i], *p.tsk, part); err != nil {
			t.Fatal(err)
		}
		rp.RingQP().Add(guess.Value, part.Value, guess.Value)
	}
	ct := chunks[0].ct
	pt := rlwe.NewDecryptor(rp, guess).DecryptNew(ct)
	if err := farFrom(decodeRaw(t, cfg, &rlwe.Ciphertext{Element: rlwe.Element[ringPoly]{Value: []ringPoly{pt.Value}, MetaData: ct.MetaData}}), update); err != nil {
		t.Fatalf("key interpolated from t-1 threshold shares: %v", err)
	}
}

// TestAggregatorAloneCannotDecrypt: everything the aggregator holds (the
// public key, the ciphertexts and their sum) does not reveal a site's update:
// the first polynomial without any share decodes to noise.
func TestAggregatorAloneCannotDecrypt(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 3, 2)
	update := randomUpdate(3, 4095)
	chunks, err := parties[1].Encrypt(ctx, 1, update, cfg.WeightCap)
	if err != nil {
		t.Fatal(err)
	}
	if err := farFrom(decodeRaw(t, cfg, chunks[0].ct), update); err != nil {
		t.Fatalf("ciphertext without key: %v", err)
	}
	agg, err := NewAggregate(cfg, 1, len(update))
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(chunks[0]); err != nil {
		t.Fatal(err)
	}
	agg.Seal()
	dec, err := NewDecryption(agg, cfg.Sites[:2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Result(ctx); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("Result without shares: %v, want ErrTooFewShares", err)
	}
}

// TestAddBinaryMatchesAdd: the zero-copy path refuses what Add refuses and
// sums the same thing.
func TestAddBinaryMatchesAdd(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 2, 0)
	u := [][]float32{randomUpdate(1, 5000), randomUpdate(2, 5000)}
	viaAdd, err := NewAggregate(cfg, 1, 5000)
	if err != nil {
		t.Fatal(err)
	}
	viaBytes, err := NewAggregate(cfg, 1, 5000)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parties {
		chunks, err := p.Encrypt(ctx, 1, u[i], cfg.WeightCap)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			b, err := c.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := viaAdd.Add(c); err != nil {
				t.Fatal(err)
			}
			if err := viaBytes.AddBinary(b); err != nil {
				t.Fatal(err)
			}
			if err := viaBytes.AddBinary(b); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("AddBinary of a duplicate: %v, want ErrDuplicate", err)
			}
			if err := viaBytes.AddBinary(b[:len(b)-8]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("AddBinary of a truncated chunk: %v, want ErrMalformed", err)
			}
		}
	}
	a, b := viaAdd.Seal(), viaBytes.Seal()
	for i := range a {
		if !a[i].c1.Equal(&b[i].c1) || !viaAdd.sums[i].Value[0].Equal(&viaBytes.sums[i].Value[0]) {
			t.Fatalf("chunk %d: sums differ between Add and AddBinary", i)
		}
	}
}

// TestShareAddBinaryMatchesAdd: the zero-copy share path refuses what Add
// refuses and decodes the same result.
func TestShareAddBinaryMatchesAdd(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 3, 2)
	u := randomUpdate(4, 5000)
	agg, err := NewAggregate(cfg, 1, len(u))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parties { // all three: MinSites is t+1
		addUpdate(t, agg, p, 1, randomUpdate(uint64(4+i), len(u)), cfg.WeightCap)
	}
	sums := agg.Seal()
	set := cfg.Sites[:2]
	viaAdd, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	viaBytes, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties[:2] {
		shares, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range shares {
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := viaAdd.Add(s); err != nil {
				t.Fatal(err)
			}
			if err := viaBytes.AddBinary(b[:len(b)-1]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("AddBinary of a truncated share: %v, want ErrMalformed", err)
			}
			if err := viaBytes.AddBinary(b); err != nil {
				t.Fatal(err)
			}
			if err := viaBytes.AddBinary(b); err != nil {
				t.Fatalf("AddBinary of the same share again: %v, want nil (idempotent)", err)
			}
			if err := viaAdd.AddBinary(b); err != nil {
				t.Fatalf("AddBinary of a share already added by Add: %v, want nil (idempotent)", err)
			}
		}
	}
	a, err := viaAdd.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := viaBytes.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for j := range a.Mean {
		if a.Mean[j] != b.Mean[j] {
			t.Fatalf("value %d: Add gives %v, AddBinary %v", j, a.Mean[j], b.Mean[j])
		}
	}
}

// TestConcurrentAdd: sites stream their chunks concurrently, as gRPC streams
// would; the sum is the same as sequential adds, and duplicates sent
// concurrently are counted once.
func TestConcurrentAdd(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 4, 0)
	const values = 3 * 4095
	updates := make([][]float32, len(parties))
	agg, err := NewAggregate(cfg, 1, values)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(parties)*3)
	for i, p := range parties {
		updates[i] = randomUpdate(uint64(i), values)
		chunks, err := p.Encrypt(ctx, 1, updates[i], cfg.WeightCap)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // every chunk sent twice, concurrently
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, c := range chunks {
					errs <- agg.Add(c)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	var dups int
	for err := range errs {
		switch {
		case errors.Is(err, ErrDuplicate):
			dups++
		case err != nil:
			t.Fatal(err)
		}
	}
	if dups != len(parties)*3 {
		t.Fatalf("%d duplicates refused, want %d", dups, len(parties)*3)
	}
	res := decryptAll(t, cfg, parties, agg)
	for j := range values {
		var sum float64
		for i := range updates {
			sum += float64(updates[i][j])
		}
		if d := math.Abs(float64(res.Mean[j])*res.Weight - sum); d > 1e-5+4*0x1p-24 {
			t.Fatalf("value %d: sum %v, want %v", j, float64(res.Mean[j])*res.Weight, sum)
		}
	}
}

// TestParameterMismatch: chunks and shares made under another real parameter
// set are refused, on both the decoded and the wire paths.
func TestParameterMismatch(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 2, 0)
	other, err := NewParameters(PresetN13Q60)
	if err != nil {
		t.Fatal(err)
	}
	ocfg := cfg
	ocfg.Params = other
	oparties, err := SetupLocal(ocfg)
	if err != nil {
		t.Fatal(err)
	}
	u := randomUpdate(1, 100)
	foreign, err := oparties[0].Encrypt(ctx, 1, u, 1)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := foreign[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var decoded Chunk
	if err := decoded.UnmarshalBinary(wire); err != nil {
		t.Fatalf("a chunk of another valid parameter set must decode: %v", err)
	}
	agg, err := NewAggregate(cfg, 1, len(u))
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(&decoded); !errors.Is(err, ErrParams) {
		t.Fatalf("Add: %v, want ErrParams", err)
	}
	if err := agg.AddBinary(wire); !errors.Is(err, ErrParams) {
		t.Fatalf("AddBinary: %v, want ErrParams", err)
	}
	if err := parties[0].SetPublicKey(&PublicKey{Header: Header{Params: other.ID(), Federation: cfg.Federation}}); !errors.Is(err, ErrParams) {
		t.Fatalf("SetPublicKey of another parameter set: %v, want ErrParams", err)
	}
	own, err := parties[0].Encrypt(ctx, 1, u, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(own[0]); err != nil {
		t.Fatal(err)
	}
	oagg, err := NewAggregate(ocfg, 1, len(u))
	if err != nil {
		t.Fatal(err)
	}
	if err := oagg.Add(foreign[0]); err != nil {
		t.Fatal(err)
	}
	addUpdate(t, oagg, oparties[1], 1, u, 1) // MinSites is t+1 = 2
	set := cfg.Sites[:cfg.Threshold]
	agg.Seal()
	dec, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	oshares, err := oparties[0].DecryptShare(ctx, set, oagg.Seal())
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Add(oshares[0]); !errors.Is(err, ErrParams) {
		t.Fatalf("Decryption.Add of another parameter set's share: %v, want ErrParams", err)
	}
	if _, err := parties[0].DecryptShare(ctx, set, oagg.Seal()); !errors.Is(err, ErrParams) {
		t.Fatalf("DecryptShare of another parameter set's sum: %v, want ErrParams", err)
	}
}

// TestMinSites: a site refuses to help decrypt a sum of fewer contributions
// than the federation's minimum, which is at least t+1: a sum of exactly t
// updates (here 2 of a 2-of-4 federation with MinSites 3 by default) is refused,
// as is one of 3 when MinSites is 4; a sum of MinSites is decrypted.
func TestMinSites(t *testing.T) {
	ctx := context.Background()
	params, err := NewParameters(PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		minSites     int // 0: the default, t+1
		contributors int
		want         error
	}{
		{"one site", 0, 1, ErrTooFewSites},
		{"t sites", 0, 2, ErrTooFewSites},
		{"t+1 sites", 0, 3, nil},
		{"t+1 sites below a minimum of 4", 4, 3, ErrTooFewSites},
		{"all sites", 4, 4, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Params: params, Federation: "min", Sites: []SiteID{1, 2, 3, 4}, Threshold: 2, MinSites: tc.minSites}
			parties, err := SetupLocal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg = parties[0].Config()
			agg, err := NewAggregate(cfg, 1, 10)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range parties[:tc.contributors] {
				addUpdate(t, agg, p, 1, randomUpdate(uint64(i), 10), 1)
			}
			_, err = parties[1].DecryptShare(ctx, []SiteID{1, 2}, agg.Seal())
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecryptShare of a sum of %d of min %d: %v, want %v", tc.contributors, cfg.MinSites, err, tc.want)
			}
		})
	}
}

// TestShareUploadRetry: a decryption-share upload broken mid-stream is sent again
// whole; the chunks already added are accepted again without effect (Add and
// AddBinary are idempotent per site and chunk), and the result is the same as
// without the break. A different share for an added (site, chunk) stays refused.
func TestShareUploadRetry(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 3, 2)
	const values = 3 * 4095
	agg, err := NewAggregate(cfg, 1, values)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parties {
		addUpdate(t, agg, p, 1, randomUpdate(uint64(30+i), values), cfg.WeightCap)
	}
	sums := agg.Seal()
	set := cfg.Sites[:2]
	shares := make([][][]byte, len(set))
	for i, p := range parties[:2] {
		s, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range s {
			b, err := c.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			shares[i] = append(shares[i], b)
		}
	}
	clean, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	retried, err := NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for i := range shares {
		for _, b := range shares[i] {
			if err := clean.AddBinary(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Site 0's first upload stops after its first chunk; the retry sends all three,
	// the first through Add, the others from the wire.
	if err := retried.AddBinary(shares[0][0]); err != nil {
		t.Fatal(err)
	}
	if _, err := retried.Result(ctx); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("Result after a broken upload: %v, want ErrTooFewShares", err)
	}
	for k, b := range shares[0] {
		var add func() error
		if k == 0 {
			var s ShareChunk
			if err := s.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			add = func() error { return retried.Add(&s) }
		} else {
			add = func() error { return retried.AddBinary(b) }
		}
		if err := add(); err != nil {
			t.Fatalf("chunk %d of the retried upload: %v", k, err)
		}
	}
	for _, b := range shares[1] {
		for range 2 { // and site 1 sends everything twice
			if err := retried.AddBinary(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another share for a slot already added: fresh flooding noise, other bytes.
	parties[0].mu.Lock()
	parties[0].shared = nil
	parties[0].mu.Unlock()
	again, err := parties[0].DecryptShare(ctx, set, sums)
	if err != nil {
		t.Fatal(err)
	}
	other, err := again[1].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, add := range map[string]func() error{
		"Add":       func() error { return retried.Add(again[1]) },
		"AddBinary": func() error { return retried.AddBinary(other) },
	} {
		if err := add(); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("%s of another share for an added (site, chunk): %v, want ErrDuplicate", name, err)
		}
	}
	want, err := clean.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := retried.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Weight != want.Weight {
		t.Fatalf("weight %v after the retry, %v without", got.Weight, want.Weight)
	}
	for j := range want.Mean {
		if got.Mean[j] != want.Mean[j] {
			t.Fatalf("value %d: %v after the retry, %v without: a repeated share was summed twice", j, got.Mean[j], want.Mean[j])
		}
	}
}
