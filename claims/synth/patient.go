package synth

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
)

// Time inside the simulation is counted in months from January 1900; visits fall on
// days 1 to 28 of a month.
const (
	never     = math.MaxInt32
	month2012 = (2012 - 1900) * 12
	// span is the months the records cover: 2012 to 2022.
	span = 11 * 12
	// prodrome dynamics, per month: a brewing condition either declares itself or
	// settles down, so a recent symptom says more than an old one.
	prodromeProgress = 0.10
	prodromeResolve  = 0.05
	dayMicros        = 86400 * 1_000_000
	// horizon is the months over which a recency rule is averaged to give its value
	// at temporal strength 0: five years, about the follow-up left after a
	// diagnosis in records that last 6.6 years on average.
	horizon = 60
	// flatYears is the duration the duration rules (which count years since onset
	// up to 15) assume at temporal strength 0: the middle of their range, since
	// conditions present when the records start are often decades old.
	flatYears = 7.5
)

// Visit codes, one per visit, at the visit's time. They are the OMOP standard
// visit concept ids, as the OMOP reader writes visits, so that synthetic and real
// datasets share visit tokens.
const (
	codeInpatient  = "VISIT//9201"
	codeOutpatient = "VISIT//9202"
	codeEmergency  = "VISIT//9203"
)

// sim is one patient's simulation: latent onsets month by month, and the visits
// that record them.
type sim struct {
	h      *Hospital
	r      *rand.Rand
	female bool
	birth  int32 // month of birth

	onset    [nCond]int32 // latent onset month, never when none
	prodrome [nCond]int32 // month the current prodrome began, never when none
	dx       [nCond]int32 // month first recorded, never when not yet
	choice   [nCond]uint8
	ckdStage uint8

	on         [nDrug]bool
	started    [nDrug]int32 // month the current course started
	substance  [nDrug]uint8
	onCount    int
	chronicDx  int
	inProdrome bool

	visit  []string
	events []claims.Event

	// ts is the temporal strength. Below 1 the prodromal codes of a visit are held
	// in pend, then in moved, and placed on visits once the record is complete.
	ts    float64
	pend  []string
	moved []claims.Event

	// Age terms of the hazards change little within a year of age: term[c] holds
	// condition c's (and term[nCond] death's) for age termYear[c]-1.
	term     [nCond + 1]float64
	termYear [nCond + 1]int32
}

// patient simulates patient i of hospital h. Everything random comes from one PCG
// stream keyed by the hospital's salt and i, so any patient can be regenerated
// alone and the output never depends on the order patients are made in.
func patient(h *Hospital, i int) *claims.Patient {
	r := rand.New(rand.NewPCG(h.salt, uint64(i)))
	s := &sim{h: h, r: r, visit: make([]string, 0, 32), ts: h.strength}
	for c := range s.onset {
		s.onset[c], s.prodrome[c], s.dx[c] = never, never, never
	}
	for d := range s.started {
		s.started[d] = never
	}
	s.female = r.Float64() < h.p.female

	age := h.p.ageMean + h.p.ageSD*r.NormFloat64()
	for age < 0 || age > 100 {
		age = h.p.ageMean + h.p.ageSD*r.NormFloat64()
	}
	// Records last 1 to 10 years, mostly long, and lie within 2012-2022.
	length := int32(12 + math.Round(108*math.Pow(r.Float64(), 0.6)))
	start := month2012 + int32(r.IntN(int(span-length+1)))
	end := start + length
	// Born at least a month before the records start, so birth precedes every event.
	s.birth = start - 1 - int32(age*12)
	birthDay := monthDay(s.birth) + int64(r.IntN(28))

	// The years before the records start, a year at a time from age 18, so that
	// older patients arrive with their histories.
	for m := s.birth + 18*12; m < start; m += 12 {
		s.step(m, min(12, start-m))
	}
	s.enrol(start)
	s.events = make([]claims.Event, 0, 64+int(length)*4)
	for m := start; m < end; m++ {
		acute := s.step(m, 1)
		if !s.month(m, acute) {
			break
		}
	}
	if s.ts < 1 {
		s.placeProdromes(h, i)
	}
	sex := claims.SexMale
	if s.female {
		sex = claims.SexFemale
	}
	// The observation end is the planned end of the record, drawn above before any
	// outcome: it says how long the patient would have been seen, and a death does
	// not move it, so that a patient who dies is known to be free of every later
	// onset (see tasks.Labeler).
	return &claims.Patient{
		ID:                int64(h.Index+1)*1_000_000_000 + int64(i),
		Sex:               sex,
		Birth:             birthDay * dayMicros,
		HasBirth:          true,
		ObservationEnd:    monthDay(end) * dayMicros,
		HasObservationEnd: true,
		Events:            s.events,
	}
}

func (s *sim) age(m int32) float64 { return float64(m-s.birth) / 12 }

// ageTerm is exp(k*(a-a0)) at the middle of the year of age a, for hazard slot c.
func (s *sim) ageTerm(c cond, k, a0, a float64) float64 {
	y := int32(a)
	if s.termYear[c] != y+1 {
		s.term[c] = math.Exp(k * (float64(y) + 0.5 - a0))
		s.termYear[c] = y + 1
	}
	return s.term[c]
}

// chance turns an expected count x into the probability of at least one event,
// 1-exp(-x), by its series where x is small, as it nearly always is.
func chance(x float64) float64 {
	if x < 0.02 {
		return x * (1 - x*(0.5-x/6))
	}
	return 1 - math.Exp(-x)
}

// has reports whether c had started by month m.
func (s *sim) has(c cond, m int32) bool { return s.onset[c] <= m }

// x is f when c had started by month m, else 1: one risk factor's multiplier.
func (s *sim) x(c cond, m int32, f float64) float64 {
	if s.onset[c] <= m {
		return f
	}
	return 1
}

// within reports whether c started no more than k months before m.
func (s *sim) within(c cond, m, k int32) bool { return s.onset[c] <= m && m-s.onset[c] <= k }

func (s *sim) years(c cond, m int32) float64 {
	if s.onset[c] > m {
		return 0
	}
	return float64(m-s.onset[c]) / 12
}

// tmix moves an order- or recency-dependent value v toward flat, its value
// without order or timing, by the temporal strength: v at 1, flat at 0.
func (s *sim) tmix(v, flat float64) float64 {
	if s.ts == 1 {
		return v // exactly, so that strength 1 is the model as it was
	}
	return flat + s.ts*(v-flat)
}

// recency is a value that depends on the months since an event: v1 up to k1
// months after it, v2 up to k2, rest later (k2 = k1 for two tiers). At temporal
// strength 0 it is its mean over the first h months after the event.
func (s *sim) recency(since int32, h float64, k1 int32, v1 float64, k2 int32, v2, rest float64) float64 {
	v := rest
	switch {
	case since <= k1:
		v = v1
	case since <= k2:
		v = v2
	}
	if s.ts == 1 {
		return v
	}
	return s.tmix(v, windowMean(h, k1, v1, k2, v2, rest))
}

// windowMean is the mean over months 0 to h-1 after an event of a value that is v1
// up to month k1, v2 up to k2 and rest later.
func windowMean(h float64, k1 int32, v1 float64, k2 int32, v2, rest float64) float64 {
	n1 := min(float64(k1+1), h)
	n2 := max(min(float64(k2+1), h)-n1, 0)
	return (v1*n1 + v2*n2 + rest*(h-n1-n2)) / h
}

// onsetRecency is recency over the months since c's onset; c must have begun.
func (s *sim) onsetRecency(c cond, m, k1 int32, v1 float64, k2 int32, v2, rest float64) float64 {
	return s.recency(m-s.onset[c], horizon, k1, v1, k2, v2, rest)
}

// courseMonths is the mean length of a course of d, at most the horizon: the span
// a rule about how long ago d was started is averaged over.
func courseMonths(d drug) float64 { return min(1/drugTable[d].stop, horizon) }

// course is a value that depends on how long the patient has been on d: early up
// to k months after the start, later after that, 0 when not on d.
func (s *sim) course(d drug, m, k int32, early, later float64) float64 {
	if !s.on[d] {
		return 0
	}
	return s.recency(m-s.started[d], courseMonths(d), k, early, k, early, later)
}

// step advances the latent state over n months from m and reports whether an acute
// condition began.
func (s *sim) step(m, n int32) (acute bool) {
	for c := range nCond {
		def := &conditionTable[c]
		if s.onset[c] != never {
			continue
		}
		if s.prodrome[c] != never {
			u := s.r.Float64()
			switch {
			case u < prodromeProgress*float64(n):
				s.onset[c] = m
				acute = acute || def.acute
			case u < (prodromeProgress+prodromeResolve)*float64(n):
				s.prodrome[c] = never
			}
			continue
		}
		rate := s.rate(c, m)
		if rate <= 0 {
			continue
		}
		p := chance(rate * s.h.mix[c] * float64(n) / 12)
		if s.r.Float64() >= p {
			continue
		}
		at := m + int32(s.r.IntN(int(n)))
		if n == 1 && len(def.prodrome) > 0 && s.r.Float64() < 0.65 {
			s.prodrome[c] = at
			continue
		}
		s.onset[c] = at
		acute = acute || (def.acute && n == 1)
	}
	if s.onset[condCKD] <= m && s.ckdStage < 6 {
		if s.ckdStage == 0 {
			s.ckdStage = 3
		}
		p := 0.004 * float64(n) * s.x(condT2D, m, 1.8) * s.x(condHTN, m, 1.4) * s.x(condHF, m, 1.4)
		if s.r.Float64() < p {
			s.ckdStage++
		}
	}
	s.inProdrome = false
	for c := range nCond {
		if s.prodrome[c] <= m && s.onset[c] == never {
			s.inProdrome = true
		}
	}
	return acute
}

// rate is the yearly hazard of c at month m given the history so far. Order and
// recency matter on purpose: hypertension that precedes kidney disease leads to
// heart failure more than the reverse; a recent TIA or untreated new atrial
// fibrillation raises stroke risk far more than an old one; depression that starts
// late in life heralds dementia. Every such rule goes through tmix, recency or
// course, so that the temporal strength can flatten it (the package documentation
// lists them).
func (s *sim) rate(c cond, m int32) float64 {
	a := s.age(m)
	switch c {
	case condHTN:
		if a < 18 {
			return 0
		}
		return 0.03 * s.ageTerm(c, 0.04, 55, a) * s.x(condObesity, m, 1.8) * s.x(condCKD, m, 1.5) * s.x(condT2D, m, 1.3)
	case condObesity:
		if a < 15 {
			return 0
		}
		if a >= 65 {
			return 0.005
		}
		return 0.012
	case condDyslipidaemia:
		if a < 20 {
			return 0
		}
		r := 0.02 * s.ageTerm(c, 0.03, 50, a) * s.x(condObesity, m, 1.6) * s.x(condT2D, m, 1.8)
		if s.female && a > 50 {
			r *= 1.3
		}
		return r
	case condSmoking:
		if a < 15 || a >= 40 {
			return 0.001
		}
		if s.female {
			return 0.012
		}
		return 0.03
	case condT2D:
		if a < 25 {
			return 0.0005
		}
		r := 0.006 * s.ageTerm(c, 0.035, 50, a) * s.x(condDyslipidaemia, m, 1.4) * s.x(condHTN, m, 1.3) * s.x(condDepression, m, 1.2)
		if s.has(condObesity, m) {
			// Obesity that started young weighs more than obesity of late onset.
			v := 2.0
			if s.age(s.onset[condObesity]) < 45 {
				v = 4
			}
			r *= s.tmix(v, 3)
		}
		if !s.female {
			r *= 1.3
		}
		if s.on[drugSteroid] {
			r *= 3
		}
		return r
	case condRetinopathy:
		if !s.has(condT2D, m) {
			return 0
		}
		r := 0.015 * s.tmix(min(s.years(condT2D, m), 15), flatYears) / 3
		if s.on[drugInsulin] {
			r *= 1.5
		}
		return r
	case condCKD:
		if a < 30 {
			return 0.0003
		}
		r := 0.002 * s.ageTerm(c, 0.06, 60, a) * s.x(condHF, m, 1.5) * s.x(condRetinopathy, m, 1.5)
		if s.has(condHTN, m) {
			r *= 1.5 + 0.1*s.tmix(min(s.years(condHTN, m), 15), flatYears)
		}
		if s.has(condT2D, m) {
			r *= 1.8 + 0.1*s.tmix(min(s.years(condT2D, m), 15), flatYears)
		}
		if s.on[drugNSAID] {
			r *= 1.5
		}
		return r
	case condIHD:
		if a < 30 {
			return 0.0002
		}
		r := 0.002 * s.ageTerm(c, 0.06, 60, a) * s.x(condHTN, m, 1.6) * s.x(condT2D, m, 1.7) * s.x(condSmoking, m, 2) * s.x(condCKD, m, 1.4)
		if s.has(condDyslipidaemia, m) {
			if s.on[drugStatin] {
				r *= 1.2
			} else {
				r *= 1.7
			}
		}
		if !s.female {
			r *= 1.8
		}
		return r
	case condAF:
		r := 0.004 * s.ageTerm(c, 0.075, 65, a) * s.x(condHTN, m, 1.5) * s.x(condObesity, m, 1.4) * s.x(condHF, m, 2.5) * s.x(condIHD, m, 1.4)
		if !s.female {
			r *= 1.3
		}
		return r
	case condHF:
		r := 0.0016 * s.ageTerm(c, 0.07, 65, a) * s.x(condIHD, m, 2.5) * s.x(condT2D, m, 1.5) * s.x(condObesity, m, 1.3)
		if s.has(condAF, m) {
			r *= s.onsetRecency(condAF, m, 12, 4, 12, 4, 2)
		}
		htn, ckd := s.has(condHTN, m), s.has(condCKD, m)
		switch {
		case htn && ckd:
			v := 1.5
			if s.onset[condHTN] < s.onset[condCKD] {
				v = 6 // the hypertensive kidney chain
			}
			r *= s.tmix(v, 3.75)
		case htn:
			r *= 1.5
		case ckd:
			r *= 1.3
		}
		if s.on[drugSGLT2] {
			r *= 0.6
		}
		return r
	case condTIA:
		r := 0.0008 * s.ageTerm(c, 0.07, 65, a) * s.x(condHTN, m, 1.6)
		if s.has(condAF, m) && !s.anticoagulated() {
			r *= 3
		}
		return r
	case condStroke:
		r := 0.0015 * s.ageTerm(c, 0.075, 65, a) * s.x(condHTN, m, 1.8) * s.x(condT2D, m, 1.5) * s.x(condSmoking, m, 1.6) * s.x(condDyslipidaemia, m, 1.2)
		switch {
		case !s.has(condAF, m):
		case s.anticoagulated():
			r *= 1.3
		default:
			r *= s.onsetRecency(condAF, m, 12, 6, 12, 6, 4)
		}
		if s.has(condTIA, m) {
			r *= s.onsetRecency(condTIA, m, 3, 15, 12, 4, 2)
		}
		if s.on[drugStatin] {
			r *= 0.8
		}
		return r
	case condDepression:
		r := 0.008 * s.x(condCancer, m, 2)
		if s.female {
			r *= 1.7
		}
		if s.has(condStroke, m) {
			r *= s.onsetRecency(condStroke, m, 24, 2.5, 24, 2.5, 1)
		}
		if a > 75 {
			r *= 1.3
		}
		return r
	case condDementia:
		if a < 55 {
			return 0.00005
		}
		r := 0.0055 * s.ageTerm(c, 0.12, 75, a) * s.x(condT2D, m, 1.4) * s.x(condHTN, m, 1.1)
		if s.female {
			r *= 1.2
		}
		if s.has(condStroke, m) {
			r *= s.onsetRecency(condStroke, m, 36, 3, 36, 3, 1.8)
		}
		if s.has(condDepression, m) {
			v := 1.2
			if s.age(s.onset[condDepression]) >= 60 {
				v = 2.2
			}
			r *= s.tmix(v, 1.7)
		}
		return r
	case condGERD:
		return 0.01 * s.ageTerm(c, 0.01, 50, a) * s.x(condObesity, m, 1.5) * s.x(condSmoking, m, 1.3)
	case condMSK:
		if a < 20 {
			return 0.002
		}
		r := 0.02 * s.ageTerm(c, 0.03, 50, a) * s.x(condObesity, m, 1.5)
		if s.female {
			r *= 1.2
		}
		return r
	case condOsteoporosis:
		if a < 45 {
			return 0.0001
		}
		r := 0.0015 * s.ageTerm(c, 0.09, 65, a) * s.x(condObesity, m, 0.7)
		if s.female {
			r *= 4
			if a > 50 {
				r *= 1.5
			}
		}
		if s.on[drugSteroid] {
			r *= 2.5
		}
		if s.has(condFracture, m) {
			r *= s.onsetRecency(condFracture, m, 6, 8, 6, 8, 2)
		}
		if s.on[drugPPI] {
			r *= s.course(drugPPI, m, 11, 1, 1.3)
		}
		return r
	case condFracture:
		if a < 50 {
			return 0.002
		}
		r := 0.002 * s.ageTerm(c, 0.07, 70, a) * s.x(condDementia, m, 2) * s.x(condStroke, m, 1.8)
		if s.female {
			r *= 1.8
		}
		if s.has(condOsteoporosis, m) {
			if s.on[drugBisphosphonate] {
				r *= 1.2
			} else {
				r *= 2
			}
		}
		return r
	case condCOPD:
		if a < 40 {
			return 0
		}
		return 0.001 * s.ageTerm(c, 0.06, 60, a) * s.x(condSmoking, m, 5)
	case condCancer:
		return 0.002 * s.ageTerm(c, 0.06, 60, a) * s.x(condSmoking, m, 1.8) * s.x(condObesity, m, 1.2)
	case condVTE:
		r := 0.0025 * s.ageTerm(c, 0.04, 60, a) * s.x(condCancer, m, 4) * s.x(condObesity, m, 1.5)
		if s.has(condFracture, m) {
			r *= s.onsetRecency(condFracture, m, 3, 10, 3, 10, 1) // immobility after a fracture
		}
		return r
	}
	return 0
}

func (s *sim) anticoagulated() bool { return s.on[drugDOAC] || s.on[drugWarfarin] }

func (s *sim) deathRate(m int32) float64 {
	r := 0.006 * s.ageTerm(nCond, 0.085, 60, s.age(m)) * s.x(condHF, m, 3) * s.x(condCancer, m, 4) * s.x(condDementia, m, 2) * s.x(condCOPD, m, 1.5)
	if s.ckdStage >= 5 {
		r *= 2
	}
	if s.has(condStroke, m) {
		r *= s.onsetRecency(condStroke, m, 1, 5, 1, 5, 1)
	}
	return r
}

// enrol settles what is known when the records start: most conditions that began
// earlier were diagnosed earlier, and many of them are already treated.
func (s *sim) enrol(start int32) {
	known := false
	for c := range nCond {
		if s.onset[c] < start && s.r.Float64() < 0.85 {
			s.diagnose(cond(c), s.onset[c])
			known = true
		}
	}
	if !known {
		return
	}
	// Judge the first treatment as if each diagnosis were new, then restore the
	// dates; courses started before the records show no start.
	saved := s.dx
	for c := range nCond {
		if s.dx[c] != never {
			s.dx[c] = start
		}
	}
	for range 2 {
		for d := range nDrug {
			if s.on[d] || drugTable[d].stop >= 0.1 {
				continue
			}
			if s.r.Float64() < s.startProb(drug(d), start) {
				s.start(drug(d), start-12)
			}
		}
	}
	s.dx = saved
}

func (s *sim) diagnose(c cond, m int32) {
	s.dx[c] = m
	def := &conditionTable[c]
	if def.chronic {
		s.chronicDx++
	}
	switch c {
	case condCancer:
		w := cancerWeightsM
		if s.female {
			w = cancerWeightsF
		}
		s.choice[c] = uint8(pick(s.r, w))
	case condDementia:
		s.choice[c] = uint8(dementiaCode(s.onset[condStroke] < s.onset[condDementia], s.r.Float64()))
	default:
		if len(def.weights) > 0 {
			s.choice[c] = uint8(pick(s.r, def.weights))
		}
	}
}

func (s *sim) start(d drug, m int32) {
	s.on[d] = true
	s.started[d] = m
	s.onCount++
	s.substance[d] = uint8(pickCum(s.r, s.h.drugCW[d]))
	switch d {
	case drugDOAC:
		s.stop(drugWarfarin)
	case drugChemo:
		if !s.on[drugAntiemetic] {
			s.start(drugAntiemetic, m)
		}
	}
}

func (s *sim) stop(d drug) {
	if s.on[d] {
		s.on[d] = false
		s.onCount--
	}
}

// month plays out one month of records and reports whether the patient is alive
// at its end.
func (s *sim) month(m int32, acute bool) bool {
	for d := range nDrug {
		if s.on[d] && s.r.Float64() < drugTable[d].stop {
			s.stop(drug(d))
		}
	}
	a := s.age(m)
	lambda := s.h.p.visits*(0.06+0.002*a) + 0.05*float64(s.chronicDx) + 0.025*float64(s.onCount)
	if s.inProdrome {
		lambda += 0.2
	}
	lambda = min(lambda, 1.5)
	n := poisson(s.r, lambda)
	if acute && n == 0 {
		n = 1
	}
	n = min(n, 8)
	var days [8]int
	var used uint32
	for k := range n {
		d := s.r.IntN(28)
		for used&(1<<d) != 0 {
			d = s.r.IntN(28)
		}
		used |= 1 << d
		days[k] = d
	}
	slices.Sort(days[:n])

	deathDay := 28
	if s.r.Float64() < chance(s.deathRate(m)/12) {
		deathDay = s.r.IntN(28)
	}
	base := monthDay(m)
	for k, d := range days[:n] {
		if d >= deathDay {
			break
		}
		kind := codeOutpatient
		if k == 0 && acute {
			kind = codeInpatient
			if s.r.Float64() < 0.3 {
				kind = codeEmergency
			}
		}
		s.record(m, (base+int64(d))*dayMicros, kind, k == 0 && acute, false)
	}
	if deathDay < 28 {
		t := (base + int64(deathDay)) * dayMicros
		if s.r.Float64() < 0.5 {
			s.record(m, t, codeInpatient, false, true)
		} else {
			s.events = append(s.events, claims.Event{Time: t, Code: claims.CodeDeath, Value: float32(math.NaN())})
		}
		return false
	}
	return true
}

// record writes one visit at time t: the visit code, the diagnoses it records, the
// prescriptions it issues, its procedures and some background codes.
func (s *sim) record(m int32, t int64, kind string, acuteVisit, dies bool) {
	r := s.r
	b := append(s.visit[:0], kind)
	s.pend = s.pend[:0]
	for c := range nCond {
		def := &conditionTable[c]
		switch {
		case s.onset[c] <= m:
			if s.dx[c] == never {
				if def.acute && !acuteVisit {
					continue // an acute event is recorded where it is treated
				}
				p := def.detect
				if def.acute {
					p = 1
				}
				if r.Float64() < p {
					s.diagnose(cond(c), m)
					b = append(b, s.code(cond(c), m))
				}
				continue
			}
			since := m - s.dx[c]
			switch {
			case def.recodeMonths == 0 || since <= int32(def.recodeMonths):
				if r.Float64() < def.recode {
					b = append(b, s.code(cond(c), m))
				}
			case len(s.h.later[c]) > 0:
				if r.Float64() < def.recode {
					later := s.h.later[c]
					b = append(b, later[int(s.choice[c])%len(later)])
				}
			}
		case s.prodrome[c] <= m:
			if r.Float64() < 0.5 {
				pr := s.h.prod[c]
				b = s.prodromal(b, pr[r.IntN(len(pr))])
			}
		}
	}
	b = s.procedures(m, b)
	b = s.prescribe(m, b)
	for range poisson(r, 0.5) {
		b = append(b, s.h.bgICD.draw(r))
	}
	for range poisson(r, 0.3) {
		b = append(b, s.h.bgATC.draw(r))
	}
	for range poisson(r, 0.3) {
		code := s.h.bgProc.draw(r)
		if s.wrongSex(code) {
			continue
		}
		b = append(b, code)
	}
	if dies {
		b = append(b, claims.CodeDeath)
	}
	slices.Sort(b)
	b = slices.Compact(b)
	nan := float32(math.NaN())
	for _, code := range b {
		s.events = append(s.events, claims.Event{Time: t, Code: code, Value: nan})
	}
	s.visit = b
	// Held-back prodromal codes merge with the visit's own as they would at
	// strength 1, so that moving them changes where they are, not how many.
	slices.Sort(s.pend)
	for _, code := range slices.Compact(s.pend) {
		if _, found := slices.BinarySearch(b, code); !found {
			s.moved = append(s.moved, claims.Event{Time: t, Code: code, Value: nan})
		}
	}
}

// prodromal adds a code that a brewing condition puts on the visit: to the visit
// itself at temporal strength 1, and below it to the codes placeProdromes moves.
func (s *sim) prodromal(b []string, code string) []string {
	if s.ts == 1 {
		return append(b, code)
	}
	s.pend = append(s.pend, code)
	return b
}

// prodromeStream keys the random stream that places prodromal codes, apart from
// the patient's own so that placing them leaves the rest of the record as it is.
const prodromeStream = 0x9d0d3

// placeProdromes puts the prodromal codes held back from the visits back on visits
// of the finished record: each stays on its own visit with probability equal to
// the temporal strength and otherwise goes to a visit drawn uniformly from the
// whole record. At strength 0 the same symptoms and tests occur as often as at 1
// (on the same simulated path) but say nothing about when the condition begins.
func (s *sim) placeProdromes(h *Hospital, i int) {
	if len(s.moved) == 0 {
		return
	}
	r := rand.New(rand.NewPCG(h.salt^prodromeStream, uint64(i)))
	type key struct {
		t    int64
		code string
	}
	present := make(map[key]bool, len(s.events))
	var visits []int64
	for _, e := range s.events {
		present[key{e.Time, e.Code}] = true
		if claims.System(e.Code) == claims.SystemVisit && (len(visits) == 0 || visits[len(visits)-1] != e.Time) {
			visits = append(visits, e.Time)
		}
	}
	for _, e := range s.moved {
		k, _ := slices.BinarySearch(visits, e.Time)
		if r.Float64() >= s.ts {
			k = r.IntN(len(visits))
		}
		// A visit records a code once: when the chosen visit has it already, the
		// next one that does not takes it, so that the count is kept.
		for range visits {
			if !present[key{visits[k], e.Code}] {
				break
			}
			k = (k + 1) % len(visits)
		}
		e.Time = visits[k]
		if present[key{e.Time, e.Code}] {
			continue // every visit has it
		}
		present[key{e.Time, e.Code}] = true
		s.events = append(s.events, e)
	}
	slices.SortFunc(s.events, func(a, b claims.Event) int {
		if a.Time != b.Time {
			return cmp.Compare(a.Time, b.Time)
		}
		return strings.Compare(a.Code, b.Code)
	})
}

func (s *sim) wrongSex(code string) bool {
	p := s.h.procs
	if s.female {
		return code == p[procBackground+13]
	}
	return code == p[procBackground+14] || code == p[procBackground+15]
}

// code is how a visit at month m records c.
func (s *sim) code(c cond, m int32) string {
	codes := s.h.codes[c]
	switch c {
	case condCKD:
		if s.r.Float64() < 0.15 {
			return codes[4] // unspecified stage
		}
		stage := max(int(s.ckdStage), 3)
		return codes[stage-3]
	case condOsteoporosis:
		if s.within(condFracture, m, 6) {
			return codes[2+int(s.choice[c])%2]
		}
		return codes[int(s.choice[c])%2]
	}
	return codes[s.choice[c]]
}

// procedures adds the tests and treatments that the patient's conditions call for.
func (s *sim) procedures(m int32, b []string) []string {
	r, p := s.r, s.h.procs
	add := func(i int, prob float64) {
		if r.Float64() < prob {
			b = append(b, p[i])
		}
	}
	// addP is add for the tests a brewing condition calls for (see prodromal).
	addP := func(i int, prob float64) {
		if r.Float64() < prob {
			b = s.prodromal(b, p[i])
		}
	}
	fresh := func(c cond) bool { return s.dx[c] == m }
	brewing := func(c cond) bool { return s.prodrome[c] <= m && s.onset[c] == never }
	known := func(c cond) bool { return s.dx[c] != never }

	if known(condT2D) {
		add(procHbA1c, 0.6)
		add(procFundus, 0.1)
	} else if brewing(condT2D) {
		addP(procHbA1c, 0.3)
		addP(procGlucose, 0.3)
	}
	if known(condRetinopathy) {
		add(procFundus, 0.4)
		add(procPhotocoag, 0.03)
	}
	if known(condDyslipidaemia) {
		add(procLipid, 0.4)
	}
	if known(condCKD) {
		add(procCreatinine, 0.6)
		add(procUrinalysis, 0.3)
		if s.ckdStage >= 6 {
			add(procDialysis, 0.9)
		}
	} else if brewing(condCKD) {
		addP(procCreatinine, 0.4)
		addP(procUrinalysis, 0.4)
	}
	if known(condHF) {
		add(procBNP, 0.4)
		add(procEcho, 0.1)
	} else if brewing(condHF) {
		addP(procBNP, 0.3)
		addP(procChestXray, 0.3)
		addP(procEcho, 0.15)
	}
	if known(condAF) {
		add(procECG, 0.3)
		add(procHolter, 0.03)
	}
	if s.on[drugWarfarin] {
		add(procINR, 0.8)
	}
	if fresh(condIHD) {
		add(procCoronaryAngio, 0.6)
		add(procPCI, 0.3)
	} else if known(condIHD) {
		add(procECG, 0.3)
	}
	if fresh(condStroke) {
		add(procCTHead, 0.9)
		add(procMRIBrain, 0.7)
		add(procThrombolysis, 0.1)
	} else if known(condStroke) && m-s.dx[condStroke] <= 6 {
		add(procRehab, 0.5)
	}
	if fresh(condTIA) {
		add(procMRIBrain, 0.5)
		add(procCarotidUS, 0.4)
	}
	if brewing(condDementia) {
		addP(procCognitive, 0.3)
		addP(procMRIBrain, 0.1)
	} else if known(condDementia) {
		add(procCognitive, 0.1)
	}
	if brewing(condOsteoporosis) {
		addP(procDXA, 0.4)
		addP(procSpineXray, 0.2)
	} else if known(condOsteoporosis) {
		add(procDXA, 0.08)
	}
	if fresh(condFracture) {
		add(procHipXray, 0.9)
		add(procFractureFixation, 0.6)
	} else if known(condFracture) && m-s.dx[condFracture] <= 3 {
		add(procRehab, 0.5)
	}
	if fresh(condCancer) {
		add(procBiopsy, 0.6)
		add(procCTChest, 0.4)
		add(procCTAbdomen, 0.4)
		add(procPET, 0.1)
	} else if known(condCancer) {
		add(procCTChest, 0.1)
		add(procCTAbdomen, 0.1)
		add(procRadiotherapy, 0.03)
	}
	if s.on[drugChemo] {
		add(procChemoInfusion, 0.8)
	}
	if fresh(condVTE) {
		add(procVenousUS, 0.7)
		add(procCTChest, 0.3)
	}
	if fresh(condGERD) {
		add(procEndoscopy, 0.3)
	}
	if fresh(condCOPD) {
		add(procSpirometry, 0.5)
	}
	return b
}

// prescribe starts the drugs the visit's findings call for and refills the ones
// the patient is on.
func (s *sim) prescribe(m int32, b []string) []string {
	for d := range nDrug {
		if !s.on[d] {
			if s.r.Float64() >= s.startProb(drug(d), m) {
				continue
			}
			s.start(drug(d), m)
		} else if s.started[d] != m && s.r.Float64() >= 0.85 {
			continue
		}
		b = append(b, s.h.drugs[d][s.substance[d]])
	}
	return b
}

// startProb is the chance that a visit at month m starts drug d. Treatment follows
// diagnosis closely (months since diagnosis matter), and some drugs follow others:
// a PPI after a new NSAID or antithrombotic, a DPP-4 inhibitor added to metformin.
// Every rule that looks at how long ago something was diagnosed or started goes
// through rec or course, which the temporal strength flattens.
func (s *sim) startProb(d drug, m int32) float64 {
	a := s.age(m)
	year := 1900 + int(m/12)
	if year < drugTable[d].since {
		return 0
	}
	known := func(c cond) bool { return s.dx[c] != never }
	// rec is recent while c was diagnosed at most k months ago, later after that,
	// and 0 when c is not known.
	rec := func(c cond, k int32, recent, later float64) float64 {
		if s.dx[c] == never {
			return 0
		}
		return s.recency(m-s.dx[c], horizon, k, recent, k, recent, later)
	}
	var p float64
	// or adds an independent chance q of starting. A zero adds nothing and is
	// skipped, since 1-(1-p) need not be p in floating point.
	or := func(q float64) {
		if q > 0 {
			p = 1 - (1-p)*(1-q)
		}
	}
	switch d {
	case drugStatin:
		or(rec(condDyslipidaemia, 3, 0.35, 0.03))
		or(rec(condIHD, 3, 0.6, 0.05))
		or(rec(condStroke, 3, 0.5, 0))
		if known(condT2D) && a >= 40 {
			or(0.02)
		}
	case drugMetformin:
		if !known(condT2D) || s.ckdStage >= 4 {
			return 0
		}
		first := 0.1
		if a < 70 {
			first = 0.4
		}
		or(rec(condT2D, 3, first, 0.03))
	case drugDPP4:
		if !known(condT2D) {
			return 0
		}
		if a >= 65 || known(condCKD) {
			or(rec(condT2D, 3, 0.35, 0.04))
		} else {
			or(0.01)
		}
		or(s.course(drugMetformin, m, 5, 0, 0.06)) // add-on after metformin
		or(rec(condRetinopathy, 3, 0.2, 0))
	case drugSGLT2:
		if known(condT2D) {
			or(0.015)
		}
		if known(condHF) && year >= 2020 {
			or(0.1)
		}
	case drugInsulin:
		// After five years of diabetes; averaged over ten, since over the usual
		// five the rule would vanish.
		if known(condT2D) {
			or(s.recency(m-s.dx[condT2D], 2*horizon, 59, 0, 59, 0, 0.01))
		}
		if known(condRetinopathy) {
			or(0.02)
		}
	case drugARB:
		or(rec(condHTN, 3, 0.4, 0.04))
		if known(condCKD) && known(condT2D) {
			or(0.05)
		}
		if known(condHF) {
			or(0.1)
		}
	case drugCCB:
		or(rec(condHTN, 3, 0.3, 0.03))
	case drugBeta:
		or(rec(condHF, 3, 0.5, 0))
		or(rec(condAF, 3, 0.3, 0))
		if known(condIHD) {
			or(0.05)
		}
	case drugLoop:
		or(rec(condHF, 3, 0.7, 0.05))
		if s.ckdStage >= 4 {
			or(0.05)
		}
	case drugMRA:
		if known(condHF) {
			or(0.05)
		}
	case drugDOAC:
		if !known(condAF) && !known(condVTE) {
			return 0
		}
		// DOACs displaced warfarin over the decade.
		era := 1.0
		switch {
		case year < 2013:
			era = 0.5
		case year < 2016:
			era = 0.8
		}
		or(rec(condVTE, 1, 0.7, 0) * era)
		if !known(condAF) {
			break
		}
		var q float64
		if s.on[drugWarfarin] {
			q = 0.01
		} else {
			f := 0.5
			if a < 55 {
				f = 0.25
			}
			q = rec(condAF, 3, f, 0.02)
		}
		// A recent stroke in atrial fibrillation calls for a DOAC whatever else.
		if known(condStroke) {
			q = s.recency(m-s.dx[condStroke], horizon, 3, 0.7, 3, 0.7, q)
		}
		or(q * era)
	case drugWarfarin:
		if s.on[drugDOAC] || !known(condAF) {
			return 0
		}
		era := 0.9
		switch {
		case year < 2013:
			era = 0.1
		case year < 2016:
			era = 0.4
		}
		or(rec(condAF, 3, 0.35, 0) * (1 - era))
	case drugAntiplatelet:
		or(rec(condIHD, 3, 0.7, 0))
		if !known(condAF) {
			or(rec(condStroke, 3, 0.6, 0))
		}
		or(rec(condTIA, 3, 0.4, 0))
		if known(condT2D) {
			or(0.005)
		}
	case drugPPI:
		or(0.0015)
		if a >= 60 {
			or(0.0015)
		}
		or(s.course(drugNSAID, m, 2, 0.25, 0))
		or(rec(condGERD, 3, 0.5, 0.03))
		if a >= 65 {
			or(max(s.course(drugAntiplatelet, m, 3, 0.15, 0), s.course(drugDOAC, m, 3, 0.15, 0), s.course(drugWarfarin, m, 3, 0.15, 0)))
		}
		or(s.course(drugSteroid, m, 3, 0.1, 0))
	case drugH2:
		or(rec(condGERD, 3, 0.15, 0))
	case drugNSAID:
		or(rec(condMSK, 3, 0.4, 0.05))
		or(rec(condFracture, 2, 0.5, 0))
	case drugSteroid:
		or(0.002)
		if known(condCOPD) {
			or(0.03)
		}
	case drugBisphosphonate:
		or(rec(condOsteoporosis, 3, 0.5, 0.03))
	case drugAntidementia:
		or(rec(condDementia, 3, 0.5, 0.03))
	case drugAntidepressant:
		or(rec(condDepression, 3, 0.5, 0.03))
	case drugInhaler:
		or(rec(condCOPD, 3, 0.6, 0.03))
	case drugChemo:
		or(rec(condCancer, 6, 0.5, 0))
	case drugOpioid:
		or(rec(condCancer, 11, 0, 0.02)) // after a year of cancer
		or(rec(condFracture, 1, 0.2, 0))
	}
	return p
}

// pick draws an index with probability proportional to w.
func pick(r *rand.Rand, w []float64) int {
	var sum float64
	for _, v := range w {
		sum += v
	}
	u := r.Float64() * sum
	for i, v := range w {
		if u < v {
			return i
		}
		u -= v
	}
	return len(w) - 1
}

// pickCum draws an index from cumulative probabilities ending in 1.
func pickCum(r *rand.Rand, cum []float64) int {
	u := r.Float64()
	for i, v := range cum {
		if u < v {
			return i
		}
	}
	return len(cum) - 1
}

// poisson draws from a Poisson distribution by Knuth's method, fine for the small
// means used here.
func poisson(r *rand.Rand, lambda float64) int {
	l := math.Exp(-lambda)
	k, p := 0, r.Float64()
	for p > l {
		k++
		p *= r.Float64()
	}
	return k
}

// monthDay is the day number (days since 1970-01-01) of the first day of month m.
func monthDay(m int32) int64 {
	y, mo := int64(1900+m/12), int64(m%12+1)
	if m < 0 {
		y, mo = int64(1900+(m-11)/12), int64((m%12+12)%12+1)
	}
	return claims.DaysFromCivil(y, mo, 1)
}
