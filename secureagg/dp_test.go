package secureagg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gaussianDelta is the exact privacy profile of the Gaussian mechanism with
// noise multiplier z (Balle and Wang 2018, Theorem 8; Dong, Roth and Su 2019:
// the mechanism is 1/z-GDP): delta(eps) = Phi(-eps z + 1/(2z)) - e^eps Phi(-eps z - 1/(2z)).
func gaussianDelta(eps, z float64) float64 {
	phi := func(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
	return phi(-eps*z+1/(2*z)) - math.Exp(eps)*phi(-eps*z-1/(2*z))
}

// gaussianEpsilon inverts gaussianDelta by bisection.
func gaussianEpsilon(delta, z float64) float64 {
	lo, hi := 0.0, 100.0
	for range 200 {
		mid := (lo + hi) / 2
		if gaussianDelta(mid, z) > delta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

func TestGaussianRDPPublished(t *testing.T) {
	// Mironov (2017), Proposition 7 and Table 2: the Gaussian mechanism with
	// sensitivity 1 and standard deviation sigma is (alpha, alpha/(2 sigma^2))-RDP.
	for _, tc := range []struct{ alpha, z, want float64 }{
		{2, 1, 1},
		{10, 1, 5},
		{32, 4, 1},
		{1.5, 0.5, 3},
	} {
		if got := GaussianRDP(tc.alpha, tc.z); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("GaussianRDP(%v, %v) = %v, want %v", tc.alpha, tc.z, got, tc.want)
		}
	}
	// Dong, Roth and Su (2019): 1-GDP gives delta(1) = Phi(-1/2) - e Phi(-3/2) = 0.126936.
	if got := gaussianDelta(1, 1); math.Abs(got-0.126936) > 1e-5 {
		t.Fatalf("exact Gaussian profile delta(1) at z = 1: %v, want 0.126936", got)
	}
}

// TestAccountantSoundAndTight: the RDP bound is never below the exact epsilon
// of the Gaussian mechanism (R rounds of multiplier z compose to one of
// multiplier z/sqrt(R)), and within a modest margin of it.
func TestAccountantSoundAndTight(t *testing.T) {
	const delta = 1e-5
	for _, tc := range []struct {
		sigma  float64
		sites  int
		rounds int
	}{
		{1.0, 8, 1},
		{1.0, 8, 100},
		{2.0, 4, 50},
		{5.0, 16, 1000},
	} {
		a, err := NewAccountant(DP{Clip: 0.1, Sigma: tc.sigma, Sites: tc.sites})
		if err != nil {
			t.Fatal(err)
		}
		var total Privacy
		for range tc.rounds {
			if _, total, err = a.Round(tc.sites, delta); err != nil {
				t.Fatal(err)
			}
		}
		exact := gaussianEpsilon(delta, tc.sigma/math.Sqrt(float64(tc.rounds)))
		if total.Epsilon < exact {
			t.Errorf("sigma %v, %d rounds: RDP epsilon %.4f below the exact %.4f: unsound", tc.sigma, tc.rounds, total.Epsilon, exact)
		}
		if total.Epsilon > 1.35*exact+0.05 {
			t.Errorf("sigma %v, %d rounds: RDP epsilon %.4f too loose against the exact %.4f", tc.sigma, tc.rounds, total.Epsilon, exact)
		}
	}
}

// TestAccountantCountsDropouts: with half the sites contributing, the noise
// is smaller and a round costs more privacy.
func TestAccountantCountsDropouts(t *testing.T) {
	a, err := NewAccountant(DP{Clip: 0.1, Sigma: 1, Sites: 8})
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := a.Round(8, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	half, total, err := a.Round(4, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if want := gaussianEpsilon(1e-5, math.Sqrt(0.5)); half.Epsilon < want || half.Epsilon <= full.Epsilon {
		t.Fatalf("round with 4 of 8 sites: epsilon %v, want above %v and above the full round's %v", half.Epsilon, want, full.Epsilon)
	}
	if total.Epsilon <= half.Epsilon || a.Rounds() != 2 {
		t.Fatalf("cumulative epsilon %v after 2 rounds, want above %v", total.Epsilon, half.Epsilon)
	}
	if _, _, err := a.Round(0, 1e-5); err == nil {
		t.Fatal("a round without noise was accepted")
	}
}

// TestDPNoiseThroughAggregation: clipped, noised updates summed under
// encryption carry noise of standard deviation Sigma*Clip in the sum.
func TestDPNoiseThroughAggregation(t *testing.T) {
	cfg, parties := federation(t, 4, 3)
	d := DP{Clip: 0.3, Sigma: 1, Sites: 4}
	const values = 2 * 4095
	updates := make([][]float32, 4)
	clipped := make([][]float32, 4)
	for i := range updates {
		u := randomUpdate(uint64(i), values)
		if n := Clip(u, d.Clip); n <= d.Clip {
			t.Fatalf("test update norm %v already within the clip", n)
		}
		clipped[i] = append([]float32(nil), u...)
		if _, err := d.Apply(u, 1, rand.New(rand.NewChaCha8([32]byte{byte(i)}))); err != nil {
			t.Fatal(err)
		}
		updates[i] = u
	}
	res := runRound(t, cfg, parties, 1, updates, []float64{cfg.WeightCap, cfg.WeightCap, cfg.WeightCap, cfg.WeightCap}, cfg.Sites[:3])
	var ss float64
	for j := range values {
		var sum float64
		for i := range clipped {
			sum += float64(clipped[i][j])
		}
		d := float64(res.Mean[j])*res.Weight - sum
		ss += d * d
	}
	got := math.Sqrt(ss / values)
	want := d.Sigma * d.Clip
	if math.Abs(got-want) > 0.05*want {
		t.Fatalf("noise in the decrypted sum: std %.4f, want %.4f", got, want)
	}
}

func TestDPValidate(t *testing.T) {
	for _, tc := range []struct {
		dp DP
		ok bool
	}{
		{DP{Clip: 0.5, Sigma: 1, Sites: 8}, true},
		{DP{Clip: 1, Sigma: 1, Sites: 3}, false}, // noise would exceed the site bound
		{DP{Clip: 0, Sigma: 1, Sites: 3}, false},
		{DP{Clip: 0.1, Sigma: 0, Sites: 3}, false},
		{DP{Clip: 0.1, Sigma: 1, Sites: 0}, false},
	} {
		if err := tc.dp.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.dp, err, tc.ok)
		}
	}
}

func TestClip(t *testing.T) {
	u := []float32{3, 4}
	if n := Clip(u, 1); n != 5 || math.Abs(float64(u[0])-0.6) > 1e-6 || math.Abs(float64(u[1])-0.8) > 1e-6 {
		t.Fatalf("Clip([3 4], 1) = %v (norm %v)", u, n)
	}
	v := []float32{0.3, 0.4}
	if Clip(v, 1); v[0] != 0.3 || v[1] != 0.4 {
		t.Fatalf("Clip changed an update within the norm: %v", v)
	}
}
