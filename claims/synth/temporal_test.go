package synth

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
)

func strength(v float64) *float64 { return &v }

func TestTemporalStrengthMustBeAFraction(t *testing.T) {
	for _, tc := range []struct {
		ts *float64
		ok bool
	}{
		{nil, true}, {strength(0), true}, {strength(0.5), true}, {strength(1), true},
		{strength(-0.01), false}, {strength(1.01), false}, {strength(math.NaN()), false}, {strength(math.Inf(1)), false},
	} {
		_, err := New(Config{Hospitals: 1, Patients: 5, Seed: 1, TemporalStrength: tc.ts})
		switch {
		case tc.ok && err != nil:
			t.Errorf("strength %v: %v", *tc.ts, err)
		case !tc.ok && err == nil:
			t.Errorf("strength %v accepted, want an error", *tc.ts)
		case !tc.ok && !strings.Contains(err.Error(), "TemporalStrength"):
			t.Errorf("strength %v: error %q does not name TemporalStrength", *tc.ts, err)
		}
	}
}

// Configurations written before the knob existed leave it nil; they must keep
// their bytes, and an explicit 1 must mean the same.
func TestTemporalStrengthNilIsOne(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	for i, ts := range []*float64{nil, strength(1)} {
		cfg := Config{Hospitals: 3, Patients: 120, Seed: 42, TemporalStrength: ts}
		if err := newGen(t, cfg).Write(context.Background(), dirs[i]); err != nil {
			t.Fatal(err)
		}
	}
	a, b := readTree(t, dirs[0]), readTree(t, dirs[1])
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("nil wrote %d files, 1 wrote %d", len(a), len(b))
	}
	for name, content := range a {
		if !bytes.Equal(content, b[name]) {
			t.Errorf("%s differs between a nil temporal strength and 1", name)
		}
	}
}

func TestTemporalStrengthIsDeterministic(t *testing.T) {
	for _, ts := range []float64{0, 0.4} {
		cfg := Config{Hospitals: 3, Patients: 60, Seed: 5, TemporalStrength: strength(ts)}
		g1, g2 := newGen(t, cfg), newGen(t, cfg)
		full := newGen(t, Config{Hospitals: 3, Patients: 60, Seed: 5})
		differ := 0
		for h, hosp := range g1.Hospitals() {
			for i := range hosp.Patients {
				p := g1.Patient(h, i)
				if !samePatient(p, g2.Patient(h, i)) {
					t.Fatalf("strength %g: %s patient %d differs between two generators", ts, hosp.ID, i)
				}
				if !samePatient(p, full.Patient(h, i)) {
					differ++
				}
				checkSorted(t, p)
			}
		}
		if differ == 0 {
			t.Errorf("strength %g gives the same patients as strength 1", ts)
		}
	}
}

func checkSorted(t *testing.T, p *claims.Patient) {
	t.Helper()
	for k := 1; k < len(p.Events); k++ {
		a, b := p.Events[k-1], p.Events[k]
		if a.Time > b.Time || a.Time == b.Time && a.Code >= b.Code {
			t.Fatalf("patient %d: events %d and %d out of order or repeated: %v %v", p.ID, k-1, k, a, b)
		}
	}
}

// testMonth is the month the rule tests evaluate at: mid-2018.
const testMonth = month2018 + 6

const month2018 = (2018 - 1900) * 12

// blankSim is a 70-year-old woman of hospital h with no history, at strength ts.
func blankSim(h *Hospital, ts float64) *sim {
	s := &sim{h: h, r: rand.New(rand.NewPCG(1, 2)), ts: ts, female: true, birth: testMonth - 70*12}
	for c := range s.onset {
		s.onset[c], s.prodrome[c], s.dx[c] = never, never, never
	}
	for d := range s.started {
		s.started[d] = never
	}
	return s
}

// TestOrderFreeRules evaluates each order- or recency-dependent rule on two
// histories that hold the same conditions and drugs but differ in order or timing:
// at strength 1 the rule tells them apart by its documented ratio, at 0 it must
// not, and at 0.5 it must lie halfway.
func TestOrderFreeRules(t *testing.T) {
	h := newGen(t, Config{Hospitals: 1, Patients: 1, Seed: 1}).hospitals[0]
	m := int32(testMonth)
	onset := func(c cond, ago int32) func(*sim) {
		return func(s *sim) { s.onset[c], s.dx[c] = m-ago, m-ago }
	}
	on := func(d drug, ago int32) func(*sim) {
		return func(s *sim) { s.on[d], s.started[d] = true, m-ago }
	}
	both := func(fs ...func(*sim)) func(*sim) {
		return func(s *sim) {
			for _, f := range fs {
				f(s)
			}
		}
	}
	rate := func(c cond) func(*sim) float64 { return func(s *sim) float64 { return s.rate(c, m) } }
	start := func(d drug) func(*sim) float64 { return func(s *sim) float64 { return s.startProb(d, m) } }
	for _, tc := range []struct {
		name  string
		a, b  func(*sim)
		value func(*sim) float64
		ratio float64 // a over b at strength 1; 0 for only larger
		// nonlinear marks a value the rule is one term of a non-linear combination
		// in (independent start chances), so that it is not halfway at 0.5.
		nonlinear bool
	}{
		{"heart failure: hypertension before CKD, or after", both(onset(condHTN, 60), onset(condCKD, 24)), both(onset(condHTN, 24), onset(condCKD, 60)), rate(condHF), 4, false},
		{"heart failure: new or old AF", onset(condAF, 6), onset(condAF, 60), rate(condHF), 2, false},
		{"stroke: recent or old TIA", onset(condTIA, 2), onset(condTIA, 60), rate(condStroke), 7.5, false},
		{"stroke: new or old untreated AF", onset(condAF, 6), onset(condAF, 60), rate(condStroke), 1.5, false},
		{"T2D: obesity from 30 or from 50", onset(condObesity, 40*12), onset(condObesity, 20*12), rate(condT2D), 2, false},
		{"retinopathy: 10 or 1 years of T2D", onset(condT2D, 120), onset(condT2D, 12), rate(condRetinopathy), 10, false},
		{"CKD: 10 or 1 years of hypertension", onset(condHTN, 120), onset(condHTN, 12), rate(condCKD), 2.5 / 1.6, false},
		{"depression: recent or old stroke", onset(condStroke, 12), onset(condStroke, 60), rate(condDepression), 2.5, false},
		{"dementia: recent or old stroke", onset(condStroke, 12), onset(condStroke, 60), rate(condDementia), 3 / 1.8, false},
		{"dementia: depression from 65 or from 50", onset(condDepression, 5*12), onset(condDepression, 20*12), rate(condDementia), 2.2 / 1.2, false},
		{"osteoporosis: recent or old fracture", onset(condFracture, 3), onset(condFracture, 60), rate(condOsteoporosis), 4, false},
		{"osteoporosis: long or short PPI course", on(drugPPI, 24), on(drugPPI, 3), rate(condOsteoporosis), 1.3, false},
		{"VTE: recent or old fracture", onset(condFracture, 1), onset(condFracture, 24), rate(condVTE), 10, false},
		{"death: stroke this month or two years ago", onset(condStroke, 0), onset(condStroke, 24), func(s *sim) float64 { return s.deathRate(m) }, 5, false},
		{"statin: new or old dyslipidaemia", onset(condDyslipidaemia, 1), onset(condDyslipidaemia, 24), start(drugStatin), 0.35 / 0.03, false},
		{"DOAC: new or old AF", onset(condAF, 1), onset(condAF, 24), start(drugDOAC), 0.5 / 0.02, false},
		{"PPI: new or old NSAID course", both(onset(condMSK, 24), on(drugNSAID, 1)), both(onset(condMSK, 24), on(drugNSAID, 6)), start(drugPPI), 0, true},
		{"insulin: 6 or 1 years of T2D", onset(condT2D, 72), onset(condT2D, 12), start(drugInsulin), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := func(ts float64, set func(*sim)) float64 {
				s := blankSim(h, ts)
				set(s)
				return tc.value(s)
			}
			a1, b1 := at(1, tc.a), at(1, tc.b)
			switch {
			case tc.ratio == 0 && a1 <= b1:
				t.Errorf("strength 1: %g and %g, want the first larger", a1, b1)
			case tc.ratio != 0 && math.Abs(a1/b1-tc.ratio) > 1e-9*tc.ratio:
				t.Errorf("strength 1: %g / %g = %g, want %g", a1, b1, a1/b1, tc.ratio)
			}
			a0, b0 := at(0, tc.a), at(0, tc.b)
			if a0 <= 0 || math.Abs(a0-b0) > 1e-12*a0 {
				t.Errorf("strength 0: %g and %g, want them equal and positive", a0, b0)
			}
			if tc.nonlinear {
				return
			}
			for _, x := range []struct {
				set     func(*sim)
				lo, hi  float64
				variant string
			}{{tc.a, a0, a1, "first"}, {tc.b, b0, b1, "second"}} {
				if got, want := at(0.5, x.set), (x.lo+x.hi)/2; math.Abs(got-want) > 1e-9*want {
					t.Errorf("strength 0.5, %s history: %g, want %g halfway", x.variant, got, want)
				}
			}
		})
	}
}

// TestProdromesLoseTheirTiming counts the diabetes prodrome codes (raised glucose,
// polyuria, weight loss: only prodromes write them) in the year before the first
// diabetes code. At strength 1 most of them are there; at 0 no more than chance,
// the share of each patient's visits that fall in that year.
func TestProdromesLoseTheirTiming(t *testing.T) {
	share := func(ts float64) (observed, chance float64, total int) {
		g := newGen(t, Config{Hospitals: 3, Patients: 2500, Seed: 17, TemporalStrength: strength(ts)})
		var before int
		for h, hosp := range g.Hospitals() {
			for i := range hosp.Patients {
				p := g.Patient(h, i)
				dx, ok := firstTime(p, "ICD10//E11")
				if !ok {
					continue
				}
				in := func(t int64) bool { return t >= dx-365*dayMicrosTest && t < dx }
				var visits, visitsIn, codes int
				last := int64(math.MinInt64)
				for _, e := range p.Events {
					if claims.System(e.Code) == claims.SystemVisit && e.Time != last {
						last = e.Time
						visits++
						if in(e.Time) {
							visitsIn++
						}
					}
					v := claims.Value(e.Code)
					if strings.HasPrefix(v, "R73") || strings.HasPrefix(v, "R35") || strings.HasPrefix(v, "R63") {
						codes++
						if in(e.Time) {
							before++
						}
					}
				}
				total += codes
				chance += float64(codes) * float64(visitsIn) / float64(visits)
			}
		}
		return float64(before) / float64(total), chance / float64(total), total
	}
	s1, c1, n1 := share(1)
	s0, c0, n0 := share(0)
	t.Logf("share of T2D prodrome codes in the year before the first T2D code: strength 1 %.3f of %d (chance %.3f), strength 0 %.3f of %d (chance %.3f)", s1, n1, c1, s0, n0, c0)
	if n1 < 200 || n0 < 200 {
		t.Fatalf("%d and %d prodrome codes: too few to tell", n1, n0)
	}
	if s1 < 0.5 || s1 < 2*c1 {
		t.Errorf("strength 1: %.3f of prodrome codes in the year before diagnosis (chance %.3f), want most", s1, c1)
	}
	// The binomial spread of the share is about 0.02 here.
	if s0 > c0+0.06 {
		t.Errorf("strength 0: %.3f of prodrome codes in the year before diagnosis, chance %.3f: want no more than chance", s0, c0)
	}
	// Placing keeps every code (TestPlaceProdromesKeepsCounts); the totals still
	// differ because strength 0 moves some onsets into or out of the records, and
	// only onsets within them have a recorded prodrome.
	if r := float64(n0) / float64(n1); r < 0.5 || r > 2 {
		t.Errorf("prodrome codes: %d at strength 0, %d at 1: want comparable counts", n0, n1)
	}
}

// TestPlaceProdromesKeepsCounts places held-back codes on a record and checks that
// each is placed once, on a visit, with the events left sorted.
func TestPlaceProdromesKeepsCounts(t *testing.T) {
	h := newGen(t, Config{Hospitals: 1, Patients: 1, Seed: 1}).hospitals[0]
	day := func(d int64) int64 { return d * dayMicrosTest }
	nan := float32(math.NaN())
	for _, ts := range []float64{0, 0.5} {
		s := blankSim(h, ts)
		for d := range int64(20) {
			s.events = append(s.events, claims.Event{Time: day(100 + 7*d), Code: codeOutpatient, Value: nan})
		}
		s.events = append(s.events, claims.Event{Time: day(107), Code: "ICD10//R73.9", Value: nan})
		for d := range int64(20) {
			s.moved = append(s.moved, claims.Event{Time: day(100 + 7*d), Code: "PROC//HBA1C", Value: nan})
			s.moved = append(s.moved, claims.Event{Time: day(100 + 7*d), Code: "ICD10//R73.9", Value: nan})
		}
		s.placeProdromes(h, 3)
		p := &claims.Patient{ID: 1, Events: s.events}
		checkSorted(t, p)
		visitDays := make(map[int64]bool)
		counts := make(map[string]int)
		for _, e := range s.events {
			if e.Code == codeOutpatient {
				visitDays[e.Time] = true
			}
			counts[e.Code]++
		}
		for _, e := range s.events {
			if !visitDays[e.Time] {
				t.Errorf("strength %g: %s placed on %d, not a visit", ts, e.Code, e.Time)
			}
		}
		// Twenty visits hold twenty R73.9 at most, one of them the record's own.
		if counts["PROC//HBA1C"] != 20 || counts["ICD10//R73.9"] != 20 || counts[codeOutpatient] != 20 {
			t.Errorf("strength %g: counts %v, want 20 of each", ts, counts)
		}
	}
}
