package secureagg

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// DP configures distributed differential privacy at the site level: each site
// clips its update to L2 norm Clip and adds Gaussian noise such that, after
// its weight is applied, its share of noise has standard deviation
// Sigma*Clip/sqrt(Sites). The sum of Sites such shares carries noise
// Sigma*Clip, the Gaussian mechanism with noise multiplier Sigma for a
// sensitivity of Clip (one site's weighted, clipped update, weight <= 1).
type DP struct {
	Clip  float64 // L2 clipping norm C
	Sigma float64 // noise multiplier
	Sites int     // number of sites the noise is split over
}

// maxNoiseSigmas is how many noise standard deviations a value may reach
// before Encrypt would refuse it; past 8 standard deviations the chance is
// about 1e-15 per value.
const maxNoiseSigmas = 8

// Validate checks the configuration, including that a clipped value plus
// maxNoiseSigmas noise standard deviations stays within SiteBound, so that
// Encrypt accepts the noisy update.
func (d DP) Validate() error {
	switch {
	case !(d.Clip > 0) || math.IsInf(d.Clip, 0):
		return fmt.Errorf("secureagg: dp: clip norm %v must be positive", d.Clip)
	case !(d.Sigma > 0) || math.IsInf(d.Sigma, 0):
		return fmt.Errorf("secureagg: dp: noise multiplier %v must be positive", d.Sigma)
	case d.Sites < 1:
		return fmt.Errorf("secureagg: dp: %d sites", d.Sites)
	}
	if peak := d.Clip * (1 + maxNoiseSigmas*d.Sigma/math.Sqrt(float64(d.Sites))); peak > SiteBound {
		return fmt.Errorf("secureagg: dp: %w: clip %v with noise multiplier %v over %d sites reaches %.3g, above the site bound %v; lower the clip norm",
			ErrRange, d.Clip, d.Sigma, d.Sites, peak, SiteBound)
	}
	return nil
}

// Clip scales update in place to L2 norm at most c and returns its norm
// before clipping.
func Clip(update []float32, c float64) float64 {
	var ss float64
	for _, v := range update {
		ss += float64(v) * float64(v)
	}
	norm := math.Sqrt(ss)
	if norm > c {
		f := c / norm
		for i, v := range update {
			update[i] = float32(float64(v) * f)
		}
	}
	return norm
}

// Apply clips update in place and adds the site's share of Gaussian noise,
// drawn from rng, for a site of the given weight (see Weight): the noise is
// divided by the weight here because Encrypt multiplies by it. It returns the
// norm before clipping. A site of weight 0 contributes nothing and gets no
// noise; its update is zeroed.
func (d DP) Apply(update []float32, weight float64, rng *rand.Rand) (float64, error) {
	if err := d.Validate(); err != nil {
		return 0, err
	}
	if !(weight >= 0 && weight <= 1) {
		return 0, fmt.Errorf("secureagg: dp: %w: weight %v outside [0, 1]", ErrRange, weight)
	}
	norm := Clip(update, d.Clip)
	if weight == 0 {
		clear(update)
		return norm, nil
	}
	std := d.Sigma * d.Clip / math.Sqrt(float64(d.Sites)) / weight
	for i := range update {
		update[i] += float32(rng.NormFloat64() * std)
	}
	return norm, nil
}

// Accountant tracks the Rényi differential privacy of the rounds released, for
// the Gaussian mechanism at a set of orders (Mironov 2017, Proposition 7:
// RDP of order alpha equal to alpha/(2 z^2) for noise multiplier z; RDP
// composes by addition).
type Accountant struct {
	dp     DP
	orders []float64
	rdp    []float64 // cumulative, per order
	rounds int
}

// DefaultOrders are the RDP orders evaluated, as in Opacus.
func DefaultOrders() []float64 {
	var o []float64
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}

// NewAccountant returns an accountant for a DP configuration.
func NewAccountant(d DP) (*Accountant, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	orders := DefaultOrders()
	return &Accountant{dp: d, orders: orders, rdp: make([]float64, len(orders))}, nil
}

// Privacy is an (epsilon, delta) guarantee and the RDP order that gave it.
type Privacy struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Order   float64 `json:"order"`
}

// NoiseMultiplier returns the noise multiplier of an aggregate to which
// contributors sites added their noise share: Sigma*sqrt(contributors/Sites),
// since each share has variance (Sigma*Clip)^2/Sites.
func (a *Accountant) NoiseMultiplier(contributors int) float64 {
	return a.dp.Sigma * math.Sqrt(float64(contributors)/float64(a.dp.Sites))
}

// Round records one released aggregate whose noise came from contributors
// sites (count only sites trusted not to reveal their noise) and returns the
// round's own guarantee and the cumulative one at delta.
func (a *Accountant) Round(contributors int, delta float64) (round, total Privacy, err error) {
	if contributors < 1 {
		return Privacy{}, Privacy{}, fmt.Errorf("secureagg: dp: %w: a round with %d noisy contributions gives no privacy", ErrTooFewShares, contributors)
	}
	z := a.NoiseMultiplier(contributors)
	step := make([]float64, len(a.orders))
	for i, o := range a.orders {
		step[i] = GaussianRDP(o, z)
		a.rdp[i] += step[i]
	}
	a.rounds++
	if round, err = epsilon(a.orders, step, delta); err != nil {
		return Privacy{}, Privacy{}, err
	}
	total, err = epsilon(a.orders, a.rdp, delta)
	return round, total, err
}

// Spent returns the cumulative guarantee at delta.
func (a *Accountant) Spent(delta float64) (Privacy, error) {
	return epsilon(a.orders, a.rdp, delta)
}

// Rounds returns the number of rounds recorded.
func (a *Accountant) Rounds() int { return a.rounds }

// GaussianRDP is the RDP of order alpha of the Gaussian mechanism with noise
// multiplier z (standard deviation over L2 sensitivity): alpha/(2 z^2).
func GaussianRDP(alpha, z float64) float64 { return alpha / (2 * z * z) }

// epsilon converts RDP curves to (epsilon, delta) with the conversion of
// Canonne, Kamath and Steinke (2020, Proposition 12), as Opacus and
// TensorFlow Privacy do:
// eps = rdp + log((alpha-1)/alpha) - (log delta + log alpha)/(alpha-1).
func epsilon(orders, rdp []float64, delta float64) (Privacy, error) {
	if !(delta > 0 && delta < 1) {
		return Privacy{}, errors.New("secureagg: dp: delta must be in (0, 1)")
	}
	best := Privacy{Epsilon: math.Inf(1), Delta: delta}
	for i, o := range orders {
		if o <= 1 {
			continue
		}
		e := rdp[i] + math.Log((o-1)/o) - (math.Log(delta)+math.Log(o))/(o-1)
		if e < best.Epsilon {
			best.Epsilon, best.Order = max(e, 0), o
		}
	}
	return best, nil
}
