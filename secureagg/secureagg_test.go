package secureagg

import (
	"math"
	"testing"
)

// TestSumWithinBound checks that the decrypted aggregate equals the plaintext
// sum within 1e-5 (the bound the parameters are chosen for) for 3, 16 and 64
// sites, up to the largest threshold a federation may have (N-1).
func TestSumWithinBound(t *testing.T) {
	const bound = 1e-5
	for _, tc := range []struct {
		name      string
		sites     int
		threshold int
		values    int
		inMemory  bool // Shamir shares handed over without the sealed relay (n² of them)
	}{
		{"3 sites 2-of-3", 3, 2, 9000, false},
		{"16 sites 11-of-16", 16, 11, 5000, false},
		{"64 sites 2-of-64", 64, 2, 4095, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup := federation
			if tc.inMemory {
				setup = federationInMemory
			}
			cfg, parties := setup(t, tc.sites, tc.threshold)
			updates := make([][]float32, tc.sites)
			counts := make([]float64, tc.sites)
			want := make([]float64, tc.values)
			for i := range updates {
				updates[i] = randomUpdate(uint64(i), tc.values)
				counts[i] = cfg.WeightCap // weight 1: the mean times n is the plain sum
				for j, v := range updates[i] {
					want[j] += float64(v)
				}
			}
			set := cfg.Sites[:cfg.Threshold]
			res := runRound(t, cfg, parties, 7, updates, counts, set)
			if got := res.Weight; math.Abs(got-float64(tc.sites)) > bound {
				t.Fatalf("weight %v, want %d", got, tc.sites)
			}
			maxErr := 0.0
			for j := range want {
				// Mean is a float32; compare the sum it implies, less float32 rounding.
				sum := float64(res.Mean[j]) * res.Weight
				maxErr = max(maxErr, math.Abs(sum-want[j]))
			}
			// float32 rounding of the mean contributes up to 2^-24 * |sum|.
			if maxErr > bound+float64(tc.sites)*0x1p-24 {
				t.Fatalf("max abs error of the sum %g exceeds %g", maxErr, bound)
			}
			t.Logf("max abs error %.3g (predicted std %.3g)", maxErr, cfg.Params.ErrorStdDev(tc.sites))
		})
	}
}
