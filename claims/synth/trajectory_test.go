package synth

import (
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
)

const dayMicrosTest = int64(86400) * 1_000_000

// firstTime returns the time of the first event whose code has prefix, and false
// when there is none.
func firstTime(p *claims.Patient, prefix string) (int64, bool) {
	for _, e := range p.Events {
		if strings.HasPrefix(e.Code, prefix) {
			return e.Time, true
		}
	}
	return 0, false
}

// TestFiveHospitalsOfFiveThousand generates the consortium the issue names (5
// hospitals of 5,000 patients on average) in one streaming pass and checks that
// every default task occurs in every hospital, that the hospitals differ, and that
// the order and recency of events carry the signal the model puts there.
func TestFiveHospitalsOfFiveThousand(t *testing.T) {
	patients := 5000
	if testing.Short() {
		patients = 1500
	}
	g := newGen(t, Config{Hospitals: 5, Patients: patients, Seed: 2026})

	type hospitalStats struct {
		eligible, positive []int
		ageSum             float64
		aged               int
		cancer             int
	}
	// Heart failure after both hypertension and CKD, by which was recorded first.
	var htnFirst, htnFirstHF, ckdFirst, ckdFirstHF int
	// A DOAC started within 90 days of the first AF code, against one started in
	// the same length of time a year later among those still without one.
	var afEarly, afEarlyDOAC, afLate, afLateDOAC int
	codes := make(map[string]int) // the general hospital's code counts
	stats := make([]hospitalStats, len(g.Hospitals()))
	for hi, h := range g.Hospitals() {
		st := &stats[hi]
		st.eligible = make([]int, len(defaultTargets))
		st.positive = make([]int, len(defaultTargets))
		for i := range h.Patients {
			p := g.Patient(hi, i)
			if len(p.Events) == 0 {
				continue
			}
			if hi == 0 {
				for _, e := range p.Events {
					codes[e.Code]++
				}
			}
			for k, tg := range defaultTargets {
				e, pos := tg.label(p)
				if e {
					st.eligible[k]++
				}
				if pos {
					st.positive[k]++
				}
			}
			st.ageSum += float64(p.Events[0].Time-p.Birth) / (365.25 * float64(dayMicrosTest))
			st.aged++
			if _, ok := firstTime(p, "ICD10//C"); ok {
				st.cancer++
			}

			htn, okH := firstTime(p, "ICD10//I1")
			ckd, okC := firstTime(p, "ICD10//N18")
			// Only conditions first recorded half a year apart: conditions known
			// when the records start are recorded within weeks, in random order.
			if okH && okC && max(htn, ckd)-min(htn, ckd) > 180*dayMicrosTest {
				both := max(htn, ckd)
				hf, okF := firstTime(p, "ICD10//I50")
				after := okF && hf > both
				if okF && hf <= both {
					continue
				}
				if htn < ckd {
					htnFirst++
					if after {
						htnFirstHF++
					}
				} else {
					ckdFirst++
					if after {
						ckdFirstHF++
					}
				}
			}
			if af, ok := firstTime(p, "ICD10//I48"); ok {
				doac, okD := firstTime(p, "ATC//B01AF")
				last := p.Events[len(p.Events)-1].Time
				if okD && doac <= af {
					continue
				}
				if last >= af+90*dayMicrosTest {
					afEarly++
					if okD && doac <= af+90*dayMicrosTest {
						afEarlyDOAC++
					}
				}
				if last >= af+455*dayMicrosTest && (!okD || doac > af+365*dayMicrosTest) {
					afLate++
					if okD && doac <= af+455*dayMicrosTest {
						afLateDOAC++
					}
				}
			}
		}
	}

	for hi, h := range g.Hospitals() {
		st := stats[hi]
		for k, tg := range defaultTargets {
			t.Logf("%s %-13s %-17s %4d / %5d = %.4f", h.ID, h.Archetype, tg.name, st.positive[k], st.eligible[k],
				float64(st.positive[k])/float64(max(st.eligible[k], 1)))
			if st.positive[k] == 0 {
				t.Errorf("%s (%s, %d patients): no incident %s among %d eligible", h.ID, h.Archetype, h.Patients, tg.name, st.eligible[k])
			}
		}
	}

	meanAge := func(i int) float64 { return stats[i].ageSum / float64(stats[i].aged) }
	cancer := func(i int) float64 { return float64(stats[i].cancer) / float64(stats[i].aged) }
	t.Logf("mean age at first record: general %.1f, cancer centre %.1f, clinic %.1f", meanAge(0), meanAge(1), meanAge(2))
	t.Logf("patients with a cancer code: general %.3f, cancer centre %.3f, clinic %.3f", cancer(0), cancer(1), cancer(2))
	if !(meanAge(1) > meanAge(0) && meanAge(0) > meanAge(2)) {
		t.Errorf("mean ages %.1f (general), %.1f (cancer centre), %.1f (clinic): want cancer centre > general > clinic", meanAge(0), meanAge(1), meanAge(2))
	}
	if cancer(1) < 2*cancer(0) {
		t.Errorf("cancer codes in %.3f of the cancer centre's patients and %.3f of the general hospital's: want at least twice", cancer(1), cancer(0))
	}

	rare := 0
	for _, n := range codes {
		if n < 10 {
			rare++
		}
	}
	t.Logf("general hospital: %d distinct codes, %d of them seen fewer than 10 times", len(codes), rare)
	if len(codes) < 3000 || rare < len(codes)/5 {
		t.Errorf("general hospital: %d distinct codes, %d seen fewer than 10 times: want thousands with a long tail", len(codes), rare)
	}

	rate := func(a, b int) float64 { return float64(a) / float64(max(b, 1)) }
	t.Logf("heart failure after HTN then CKD: %d/%d = %.3f; after CKD then HTN: %d/%d = %.3f",
		htnFirstHF, htnFirst, rate(htnFirstHF, htnFirst), ckdFirstHF, ckdFirst, rate(ckdFirstHF, ckdFirst))
	t.Logf("DOAC within 90 days of AF: %d/%d = %.3f; in days 365-455: %d/%d = %.3f",
		afEarlyDOAC, afEarly, rate(afEarlyDOAC, afEarly), afLateDOAC, afLate, rate(afLateDOAC, afLate))
	if testing.Short() {
		return
	}
	if rate(htnFirstHF, htnFirst) < 1.3*rate(ckdFirstHF, ckdFirst) {
		t.Errorf("heart failure follows HTN-then-CKD in %.3f and CKD-then-HTN in %.3f: the order should matter", rate(htnFirstHF, htnFirst), rate(ckdFirstHF, ckdFirst))
	}
	if rate(afEarlyDOAC, afEarly) < 3*rate(afLateDOAC, afLate) {
		t.Errorf("DOAC starts in %.3f of new AF within 90 days and %.3f a year on: recency should matter", rate(afEarlyDOAC, afEarly), rate(afLateDOAC, afLate))
	}
}
