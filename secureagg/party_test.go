package secureagg

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestEncryptRefusesOutOfRange(t *testing.T) {
	ctx := context.Background()
	cfg, parties := federation(t, 2, 0)
	for _, tc := range []struct {
		name   string
		update []float32
		count  float64
	}{
		{"value beyond the site bound", []float32{0, 2.5}, cfg.WeightCap},
		{"NaN value", []float32{float32(math.NaN())}, 1},
		{"negative count", []float32{0}, -1},
		{"infinite count", []float32{0}, math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parties[0].Encrypt(ctx, 1, tc.update, tc.count); !errors.Is(err, ErrRange) {
				t.Fatalf("Encrypt: %v, want ErrRange", err)
			}
		})
	}
	// A large value is fine when the weight brings it under the bound.
	if _, err := parties[0].Encrypt(ctx, 1, []float32{3}, cfg.WeightCap/2); err != nil {
		t.Fatal(err)
	}
}

func TestSetupRefused(t *testing.T) {
	cfg, parties := federation(t, 3, 2)
	g, err := NewPublicKeyGen(cfg.Params, "another federation")
	if err != nil {
		t.Fatal(err)
	}
	s, err := parties[0].PublicKeyShare()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AggregateShares(s, s, g.AllocateShare()); !errors.Is(err, ErrFederation) {
		t.Fatalf("AggregateShares of another federation's share: %v, want ErrFederation", err)
	}
	own, err := NewPublicKeyGen(cfg.Params, cfg.Federation)
	if err != nil {
		t.Fatal(err)
	}
	if err := own.AggregateShares(s, s, own.AllocateShare()); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("AggregateShares of one site twice: %v, want ErrDuplicate", err)
	}
	pk, err := own.GenPublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := parties[1].SetPublicKey(pk); !errors.Is(err, ErrSetup) {
		t.Fatalf("SetPublicKey of a key missing sites: %v, want ErrSetup", err)
	}
	shamir, err := parties[0].ShamirShares()
	if err != nil {
		t.Fatal(err)
	}
	if err := parties[1].SetShamirShares(shamir[:2]); !errors.Is(err, ErrSetup) {
		t.Fatalf("SetShamirShares of shares dealt to others: %v, want ErrSetup", err)
	}
	if err := parties[1].SetShamirShares([]*ShamirShare{shamir[1]}); !errors.Is(err, ErrSetup) {
		t.Fatalf("SetShamirShares with one dealer of three: %v, want ErrSetup", err)
	}
	for _, bad := range []Config{
		{Params: cfg.Params, Federation: "f", Sites: []SiteID{1, 2}, Threshold: 3},
		{Params: cfg.Params, Federation: "f", Sites: []SiteID{1, 1}},
		{Params: cfg.Params, Federation: "", Sites: []SiteID{1}},
		{Federation: "f", Sites: []SiteID{1}},
	} {
		if _, err := NewParty(bad, 1); err == nil {
			t.Fatalf("NewParty(%+v) accepted a bad config", bad)
		}
	}
	if _, err := NewParameters("N99"); err == nil {
		t.Fatal("NewParameters accepted an unknown preset")
	}
}

// TestPartialUpload: a site whose upload stopped halfway still leaves every
// chunk decoding to the weighted mean of the sites that sent it.
func TestPartialUpload(t *testing.T) {
	ctx := context.Background()
	// Four sites, threshold 2: every chunk needs three contributions (MinSites).
	cfg, parties := federation(t, 4, 2)
	const values = 3 * 4095
	u := [][]float32{randomUpdate(1, values), randomUpdate(2, values), randomUpdate(3, values), randomUpdate(4, values)}
	counts := []float64{100, 300, 200, 600}
	agg, err := NewAggregate(cfg, 1, values)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parties {
		chunks, err := p.Encrypt(ctx, 1, u[i], counts[i])
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			chunks = chunks[:1] // site 3 drops after its first chunk
		}
		for _, c := range chunks {
			if err := agg.Add(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := agg.Contributors(); len(got) != 3 {
		t.Fatalf("contributors %v, want the three complete sites", got)
	}
	if got := agg.Partial(); len(got) != 1 || got[0] != cfg.Sites[3] {
		t.Fatalf("partial %v, want site %d", got, cfg.Sites[3])
	}
	res := decryptAll(t, cfg, parties, agg)
	for j := range values {
		var num, den float64
		for i := range parties {
			if i == 3 && j >= cfg.Params.Slots() {
				continue
			}
			w := Weight(counts[i], cfg.WeightCap)
			num += w * float64(u[i][j])
			den += w
		}
		// The sum is within 1e-5; the mean divides that error by the total weight.
		if d := math.Abs(float64(res.Mean[j]) - num/den); d > 1e-5/den {
			t.Fatalf("value %d: mean %v, want %v", j, res.Mean[j], num/den)
		}
	}
	if math.Abs(res.Count-600) > 0.1 {
		t.Fatalf("count %v, want 600 (the smallest chunk total)", res.Count)
	}
}

// TestFloodingNoiseLevel: the decrypted error has the standard deviation the
// parameters predict. Without flooding it would be orders of magnitude smaller,
// so this checks that the smudging noise is really there.
func TestFloodingNoiseLevel(t *testing.T) {
	cfg, parties := federation(t, 3, 2)
	const values = 3 * 4095
	u := [][]float32{randomUpdate(1, values), randomUpdate(2, values), randomUpdate(3, values)}
	res := runRound(t, cfg, parties, 1, u, []float64{cfg.WeightCap, cfg.WeightCap, cfg.WeightCap}, cfg.Sites[:2])
	var ss float64
	for j := range values {
		var sum float64
		for i := range u {
			sum += float64(u[i][j])
		}
		d := float64(res.Mean[j])*3 - sum
		ss += d * d
	}
	got := math.Sqrt(ss / values)
	want := cfg.Params.ErrorStdDev(3)
	// float32 rounding of the mean adds about 3*2^-25 per value.
	if got < 0.8*want || got > 1.25*want+3*0x1p-25 {
		t.Fatalf("error standard deviation %.3g, want about %.3g", got, want)
	}
}

func TestEncryptStopsOnContextAndSetup(t *testing.T) {
	cfg, parties := federation(t, 2, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := parties[0].Encrypt(ctx, 1, randomUpdate(1, 3*cfg.Params.Slots()), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Encrypt with a cancelled context: %v, want context.Canceled", err)
	}
	fresh, err := NewParty(cfg, cfg.Sites[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Encrypt(context.Background(), 1, []float32{0.5}, 1); !errors.Is(err, ErrSetup) {
		t.Fatalf("Encrypt before the public key: %v, want ErrSetup", err)
	}
	if fresh.Ready() {
		t.Fatal("a party without public key reports ready")
	}
}

// TestConfigNormalize: a threshold t needs 1 <= t <= N-1 and every sum at least
// t+1 contributions (MinSites, defaulting to t+1): with exactly t contributors
// the aggregator and t-1 colluding decryptors would subtract their own updates
// from the decrypted sum and read the remaining site's.
func TestConfigNormalize(t *testing.T) {
	params, err := NewParameters(PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                string
		sites               int
		threshold, minSites int
		wantT, wantMin      int
		wantErr             string // substring naming the field; "" for none
	}{
		{"defaults: t = N-1, min = t+1", 3, 0, 0, 2, 3, ""},
		{"min defaults to t+1", 5, 2, 0, 2, 3, ""},
		{"min above t+1", 5, 2, 4, 2, 4, ""},
		{"min = N", 5, 2, 5, 2, 5, ""},
		{"two sites, t = 1", 2, 0, 0, 1, 2, ""},
		{"two sites, t = 1 explicit", 2, 1, 2, 1, 2, ""},
		{"threshold of all sites", 3, 3, 0, 0, 0, "threshold 3"},
		{"threshold above the sites", 3, 4, 0, 0, 0, "threshold 4"},
		{"negative threshold", 3, -1, 0, 0, 0, "threshold -1"},
		{"min = t: the aggregator and t-1 sites recover an update", 3, 2, 2, 0, 0, "min sites 2 below threshold+1"},
		{"min below t", 4, 3, 2, 0, 0, "min sites 2 below threshold+1"},
		{"negative min", 4, 2, -1, 0, 0, "min sites -1"},
		{"min above the sites", 3, 2, 4, 0, 0, "min sites 4 for 3 sites"},
		{"one site", 1, 0, 0, 0, 0, "1 sites"},
		{"one site, t = 1", 1, 1, 1, 0, 0, "1 sites"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sites := make([]SiteID, tc.sites)
			for i := range sites {
				sites[i] = SiteID(i)
			}
			cfg := Config{Params: params, Federation: "f", Sites: sites, Threshold: tc.threshold, MinSites: tc.minSites}
			got, err := cfg.normalize()
			if tc.wantErr != "" {
				if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("normalize: %v, want ErrSetup naming %q", err, tc.wantErr)
				}
				if _, err := NewParty(cfg, 0); !errors.Is(err, ErrSetup) {
					t.Fatalf("NewParty: %v, want ErrSetup", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Threshold != tc.wantT || got.MinSites != tc.wantMin {
				t.Fatalf("threshold %d, min sites %d; want %d, %d", got.Threshold, got.MinSites, tc.wantT, tc.wantMin)
			}
		})
	}
}
