package secureagg_test

import (
	"context"
	"fmt"

	"github.com/fedclaims/fedclaims/secureagg"
)

// One round among three sites, any two of which can decrypt. A sum must hold
// at least Threshold+1 updates (Config.MinSites, by default Threshold+1), here
// all three: with only two, the aggregator and one decrypting site could
// subtract that site's update from the mean and read the other's.
func Example() {
	ctx := context.Background()
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		panic(err)
	}
	cfg := secureagg.Config{Params: params, Federation: "example", Sites: []secureagg.SiteID{1, 2, 3}, Threshold: 2, WeightCap: 1000}
	parties, err := secureagg.SetupLocal(cfg)
	if err != nil {
		panic(err)
	}
	updates := [][]float32{{0.5, -0.25}, {0.1, 0.2}, {-0.3, 0.6}}
	counts := []float64{200, 600, 200}

	agg, err := secureagg.NewAggregate(cfg, 1, 2)
	if err != nil {
		panic(err)
	}
	for i, p := range parties {
		chunks, err := p.Encrypt(ctx, 1, updates[i], counts[i])
		if err != nil {
			panic(err)
		}
		for _, c := range chunks {
			wire, err := c.MarshalBinary()
			if err != nil {
				panic(err)
			}
			if err := agg.AddBinary(wire); err != nil {
				panic(err)
			}
		}
	}
	sums := agg.Seal()
	set := []secureagg.SiteID{1, 3}
	dec, err := secureagg.NewDecryption(agg, set)
	if err != nil {
		panic(err)
	}
	for _, p := range []*secureagg.Party{parties[0], parties[2]} {
		shares, err := p.DecryptShare(ctx, set, sums)
		if err != nil {
			panic(err)
		}
		for _, s := range shares {
			if err := dec.Add(s); err != nil {
				panic(err)
			}
		}
	}
	res, err := dec.Result(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("mean %.4f %.4f, count %.0f\n", res.Mean[0], res.Mean[1], res.Count)
	// Output: mean 0.1000 0.1900, count 1000
}
