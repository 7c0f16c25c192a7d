package secureagg

import (
	"fmt"
	"math"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Preset names a parameter set. The name is what configuration files carry; the
// numeric ParamsID derived from it is what every wire message carries.
type Preset string

const (
	// PresetN12Q60 is the production preset: ring degree 2^12 over the
	// conjugate-invariant ring, one 60-bit NTT-friendly prime, scale 2^51.
	// The HE standard (Albrecht et al., homomorphicencryption.org, 2018, Table 1,
	// ternary secrets) allows log2(q) <= 109 at N = 4096 for 128-bit classical
	// security; 60 bits leaves a margin of 49 bits.
	PresetN12Q60 Preset = "N12Q60"

	// PresetN13Q60 doubles the ring degree (8191 values per chunk, half as many
	// chunks and messages) with the same modulus, scale and flooding; the
	// standard allows log2(q) <= 218 at N = 8192. Ciphertexts are the same size
	// per value; encryption costs a little more per value (a longer NTT).
	PresetN13Q60 Preset = "N13Q60"
)

// ParamsID identifies a parameter set on the wire.
type ParamsID uint16

const (
	paramsN12Q60 ParamsID = 1
	paramsN13Q60 ParamsID = 2
)

// MaxSites is the largest number of sites whose updates one aggregate may hold.
// It sets the headroom between the scale and the modulus: with every site's
// weighted value bounded by SiteBound, the sum stays below 2^7 and decodes
// without wrapping around q.
const MaxSites = 64

// SiteBound bounds the magnitude of one site's weighted value in any slot
// (update value times its weight, weight at most 1). Encrypt refuses larger values,
// because their sum over MaxSites sites could wrap around the modulus and decode
// as garbage without any error.
const SiteBound = 2.0

// Parameters is a named, validated parameter set for secure aggregation: the
// lattigo CKKS parameters plus the fixed-point scale and the noise-flooding
// budget that decryption shares draw from.
type Parameters struct {
	hefloat.Parameters
	id     ParamsID
	preset Preset
	// logScale is log2 of the fixed-point scale of every encoded value.
	logScale int
	// logFloodTotal is log2 of the standard deviation of the sum of all the
	// flooding noise that one decryption adds, whatever the number of decryptors.
	logFloodTotal float64
}

type presetSpec struct {
	id            ParamsID
	logN          int
	logQ          int
	logScale      int
	logFloodTotal float64
}

// presets and presetParams are constants: the table of presets, and each
// preset's parameters, computed once (building NTT tables costs milliseconds,
// which wire decoding must not pay per message) and never modified.
var presets = map[Preset]presetSpec{
	// Flooding: 2^31 total keeps the per-value error at 2^31/2^51 = 2^-20 (about
	// 9.5e-7) standard deviation, so the largest error over 11M values stays
	// near 5.5 standard deviations, under 1e-5.
	PresetN12Q60: {id: paramsN12Q60, logN: 12, logQ: 60, logScale: 51, logFloodTotal: 31},
	PresetN13Q60: {id: paramsN13Q60, logN: 13, logQ: 60, logScale: 51, logFloodTotal: 31},
}

var presetParams = map[Preset]func() (Parameters, error){
	PresetN12Q60: sync.OnceValues(func() (Parameters, error) { return newParameters(PresetN12Q60, presets[PresetN12Q60]) }),
	PresetN13Q60: sync.OnceValues(func() (Parameters, error) { return newParameters(PresetN13Q60, presets[PresetN13Q60]) }),
}

// NewParameters returns the parameter set of a preset.
func NewParameters(preset Preset) (Parameters, error) {
	get, ok := presetParams[preset]
	if !ok {
		return Parameters{}, fmt.Errorf("secureagg: unknown parameter preset %q (known: %q, %q)", preset, PresetN12Q60, PresetN13Q60)
	}
	return get()
}

func newParameters(preset Preset, spec presetSpec) (Parameters, error) {
	hp, err := hefloat.NewParametersFromLiteral(hefloat.ParametersLiteral{
		LogN:            spec.logN,
		LogQ:            []int{spec.logQ},
		RingType:        ring.ConjugateInvariant,
		LogDefaultScale: spec.logScale,
	})
	if err != nil {
		return Parameters{}, fmt.Errorf("secureagg: preset %s: %w", preset, err)
	}
	return Parameters{Parameters: hp, id: spec.id, preset: preset, logScale: spec.logScale, logFloodTotal: spec.logFloodTotal}, nil
}

// parametersByID returns the preset a wire message names.
func parametersByID(id ParamsID) (Parameters, error) {
	for name, spec := range presets {
		if spec.id == id {
			return NewParameters(name)
		}
	}
	return Parameters{}, fmt.Errorf("%w: unknown parameter set id %d", ErrParams, id)
}

// ID returns the parameter set's wire identifier.
func (p Parameters) ID() ParamsID { return p.id }

// Preset returns the preset's name.
func (p Parameters) Preset() Preset { return p.preset }

// Slots returns the number of values one ciphertext chunk carries: N coefficients,
// the last of which holds the site's weight.
func (p Parameters) Slots() int { return p.N() - 1 }

// Chunks returns how many ciphertext chunks an update of n values takes.
func (p Parameters) Chunks(n int) int {
	if n <= 0 {
		return 1
	}
	return (n + p.Slots() - 1) / p.Slots()
}

// Scale returns the fixed-point scale of encoded values.
func (p Parameters) Scale() float64 { return math.Exp2(float64(p.logScale)) }

// FloodSigma returns the standard deviation of the smudging noise each of t
// decryptors adds to its share, so that the t shares together add FloodTotal.
func (p Parameters) FloodSigma(t int) float64 {
	if t < 1 {
		t = 1
	}
	return math.Exp2(p.logFloodTotal) / math.Sqrt(float64(t))
}

// FloodTotal returns the standard deviation of the total flooding noise in one
// decrypted aggregate.
func (p Parameters) FloodTotal() float64 { return math.Exp2(p.logFloodTotal) }

// FreshNoise returns the standard deviation of the noise of one fresh encryption
// under a collective public key of the given number of sites, per coefficient:
// var = N*var(u)*sites*var(e) + N*sites*var(s)*var(e) + var(e), with u and s
// ternary (variance 2/3) and e Gaussian.
func (p Parameters) FreshNoise(sites int) float64 {
	n := float64(p.N())
	ve := p.NoiseFreshSK() * p.NoiseFreshSK()
	vs := 2.0 / 3.0
	k := float64(sites)
	return math.Sqrt(n*vs*k*ve + n*k*vs*ve + ve)
}

// ErrorStdDev returns the standard deviation of the error of one decrypted value
// of a sum over the given number of sites: flooding plus encryption noise,
// divided by the scale.
func (p Parameters) ErrorStdDev(sites int) float64 {
	f := p.FreshNoise(sites)
	total := math.Sqrt(p.FloodTotal()*p.FloodTotal() + float64(sites)*f*f)
	return total / p.Scale()
}

// rlweParams returns the underlying RLWE parameters.
func (p Parameters) rlweParams() rlwe.Parameters { return *p.GetRLWEParameters() }
