package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
)

// Archetype is the kind of hospital; hospitals cycle through them so that any
// consortium of three or more is non-IID in age mix, size, case mix and coding.
type Archetype uint8

const (
	// General is a large acute-care hospital: broad ages, more strokes, heart
	// failure and fractures, detailed (5-character) coding.
	General Archetype = iota
	// CancerCentre is a referral centre: older patients, many cancers, chemotherapy.
	CancerCentre
	// Clinic is a small outpatient practice: younger patients, lifestyle diseases,
	// frequent refill visits, terse coding.
	Clinic
	nArchetypes
)

// String names a.
func (a Archetype) String() string {
	switch a {
	case General:
		return "general"
	case CancerCentre:
		return "cancer-centre"
	case Clinic:
		return "clinic"
	}
	return fmt.Sprintf("archetype(%d)", uint8(a))
}

type archetypeParams struct {
	ageMean, ageSD float64
	female         float64
	size           float64 // relative number of patients
	visits         float64 // relative visit rate
	digits         int     // longest ICD-10 code recorded, without the dot
	mix            map[cond]float64
}

var archetypes = [nArchetypes]archetypeParams{
	General: {ageMean: 56, ageSD: 21, female: 0.52, size: 1.4, visits: 1.0, digits: 5,
		mix: map[cond]float64{condStroke: 1.5, condTIA: 1.3, condHF: 1.3, condFracture: 1.5, condIHD: 1.2}},
	CancerCentre: {ageMean: 63, ageSD: 13, female: 0.5, size: 0.9, visits: 0.9, digits: 5,
		mix: map[cond]float64{condCancer: 10, condSmoking: 1.3, condCOPD: 1.3, condDepression: 1.3}},
	Clinic: {ageMean: 50, ageSD: 21, female: 0.55, size: 0.7, visits: 1.25, digits: 4,
		mix: map[cond]float64{condHTN: 1.3, condDyslipidaemia: 1.3, condT2D: 1.2, condGERD: 1.3, condMSK: 1.3,
			condObesity: 1.2, condAF: 1.3, condOsteoporosis: 1.3, condDementia: 1.2, condFracture: 0.8, condCancer: 0.5}},
}

// Hospital is one synthetic data holder. Its parameters derive from the
// generator's seed and its index only.
type Hospital struct {
	// ID names the hospital and its dataset directory ("h01").
	ID        string
	Index     int
	Archetype Archetype
	// Patients is how many patients the hospital holds.
	Patients int
	// ICDDigits is the longest ICD-10 code the hospital records, without the dot;
	// a hospital with 3 records only categories ("E11").
	ICDDigits int
	// MeanAge is the mean age of its patients when their records start.
	MeanAge float64

	p      archetypeParams
	mix    [nCond]float64
	salt   uint64
	codes  [nCond][]string // resolved prefixed codes, the hospital's coding depth applied
	later  [nCond][]string
	prod   [nCond][]string
	drugs  [nDrug][]string
	drugCW [nDrug][]float64 // cumulative substance preference
	bgICD  sampler
	bgATC  sampler
	bgProc sampler
	procs  []string

	// strength is the generator's temporal strength (Config.TemporalStrength).
	strength float64
}

func newHospital(cat *catalog, seed uint64, index, hospitals, patients int) (*Hospital, error) {
	arch := Archetype(index % int(nArchetypes))
	p := archetypes[arch]
	width := 2
	if hospitals > 99 {
		width = len(fmt.Sprint(hospitals))
	}
	h := &Hospital{
		ID:        fmt.Sprintf("h%0*d", width, index+1),
		Index:     index,
		Archetype: arch,
		ICDDigits: p.digits,
		MeanAge:   p.ageMean,
		p:         p,
		salt:      mix64(seed ^ mix64(uint64(index)+0x51f15e)),
	}
	// Every other clinic records 3-character categories only: the coding habit of
	// practices that bill by category.
	if arch == Clinic && (index/int(nArchetypes))%2 == 0 {
		h.ICDDigits = 3
	}
	h.Patients = sizeOf(index, hospitals, patients)

	r := rand.New(rand.NewPCG(h.salt, 0x4051))
	for c := range h.mix {
		m := 1.0
		if v, ok := p.mix[cond(c)]; ok {
			m = v
		}
		// Hospitals of one archetype still differ a little.
		h.mix[c] = m * math.Exp(0.15*r.NormFloat64())
	}
	for c := range conditionTable {
		def := &conditionTable[c]
		var err error
		if h.codes[c], err = h.icdCodes(cat, def.codes); err != nil {
			return nil, fmt.Errorf("condition %s: %w", def.name, err)
		}
		if h.later[c], err = h.icdCodes(cat, def.later); err != nil {
			return nil, fmt.Errorf("condition %s: %w", def.name, err)
		}
		if h.prod[c], err = h.icdCodes(cat, def.prodrome); err != nil {
			return nil, fmt.Errorf("condition %s: %w", def.name, err)
		}
	}
	for d := range drugTable {
		def := &drugTable[d]
		w := make([]float64, len(def.atc))
		var sum float64
		for k, v := range def.atc {
			code := claims.SystemATC + claims.Separator + v
			if !cat.has(code) {
				return nil, fmt.Errorf("drug %s: code %s is not in the ATC list", def.name, code)
			}
			h.drugs[d] = append(h.drugs[d], code)
			// Prescribing habits: each hospital favours some substances.
			sum += math.Exp(1.2 * r.NormFloat64())
			w[k] = sum
		}
		for k := range w {
			w[k] /= sum
		}
		h.drugCW[d] = w
	}
	for _, pr := range procedureTable {
		h.procs = append(h.procs, claims.SystemProc+claims.Separator+pr.code)
	}

	icd := pool(cat.icd, func(string) bool { return true }, backgroundExclude)
	icd = h.dedupeDepth(icd)
	common := make([]string, 0, len(commonICD))
	for _, v := range commonICD {
		common = append(common, h.depth(icdCode(v)))
	}
	// The background ranking is national (the same in every hospital, from the
	// seed alone); each hospital jitters the weights.
	national := rand.New(rand.NewPCG(mix64(seed), 0x5a7))
	h.bgICD = newSampler(rank(icd, common, national), 1.0, 0.8, r)
	atc := pool(cat.atc, func(c string) bool { return len(claims.Value(c)) == 7 }, backgroundExclude)
	common = common[:0]
	for _, v := range commonATC {
		common = append(common, claims.SystemATC+claims.Separator+v)
	}
	h.bgATC = newSampler(rank(atc, common, national), 1.0, 0.8, r)
	bgProc := h.procs[procBackground:]
	h.bgProc = newSampler(slices.Clone(bgProc), 1.0, 0.5, r)
	return h, nil
}

// sizeOf spreads hospitals*patients patients over the hospitals by archetype size,
// so that the total is exact and the mean is patients.
func sizeOf(index, hospitals, patients int) int {
	var total float64
	for i := range hospitals {
		total += archetypes[i%int(nArchetypes)].size
	}
	// Cumulative rounding keeps the sum exact.
	at := func(i int) int {
		var s float64
		for j := range i {
			s += archetypes[j%int(nArchetypes)].size
		}
		return int(math.Round(s / total * float64(hospitals*patients)))
	}
	return at(index+1) - at(index)
}

// depth applies the hospital's coding depth to a prefixed ICD-10 code.
func (h *Hospital) depth(code string) string {
	v := claims.Value(code)
	n := len(v) - strings.Count(v, ".")
	for n > h.ICDDigits {
		code, _ = claims.Parent(code)
		n--
	}
	return code
}

func (h *Hospital) icdCodes(cat *catalog, vs []string) ([]string, error) {
	var out []string
	for _, v := range vs {
		code := icdCode(v)
		if !cat.has(code) {
			return nil, fmt.Errorf("code %s is not in the ICD-10 list", code)
		}
		out = append(out, h.depth(code))
	}
	return out, nil
}

// dedupeDepth applies the coding depth to a code list and drops the duplicates it
// makes, keeping first occurrences.
func (h *Hospital) dedupeDepth(codes []string) []string {
	seen := make(map[string]bool, len(codes))
	out := codes[:0:0]
	for _, c := range codes {
		c = h.depth(c)
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// rank orders a background pool by frequency: the common codes first, then the
// rest in an order shuffled by r.
func rank(codes, common []string, r *rand.Rand) []string {
	in := make(map[string]bool, len(codes))
	for _, c := range codes {
		in[c] = true
	}
	out := make([]string, 0, len(codes))
	head := make(map[string]bool, len(common))
	for _, c := range common {
		if in[c] && !head[c] {
			head[c] = true
			out = append(out, c)
		}
	}
	rest := make([]string, 0, len(codes))
	for _, c := range codes {
		if !head[c] {
			rest = append(rest, c)
		}
	}
	r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append(out, rest...)
}

// sampler draws from a fixed list with Zipf-like weights 1/(rank+1)^s, each jittered
// by a log-normal factor of spread sigma, through binary search of the cumulative
// weights.
type sampler struct {
	codes []string
	cum   []float64
}

func newSampler(codes []string, s, sigma float64, r *rand.Rand) sampler {
	cum := make([]float64, len(codes))
	var sum float64
	for i := range codes {
		sum += math.Pow(float64(i+1), -s) * math.Exp(sigma*r.NormFloat64())
		cum[i] = sum
	}
	for i := range cum {
		cum[i] /= sum
	}
	return sampler{codes: codes, cum: cum}
}

func (s *sampler) draw(r *rand.Rand) string {
	i, _ := slices.BinarySearch(s.cum, r.Float64())
	if i >= len(s.codes) {
		i = len(s.codes) - 1
	}
	return s.codes[i]
}

// mix64 is SplitMix64's finaliser: it spreads seeds so that nearby seeds and
// indices give unrelated streams.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
