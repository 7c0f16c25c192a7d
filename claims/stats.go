package claims

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
)

// Description is the shape of a dataset's histories: how often patients are seen,
// how much a visit records, how far apart visits fall and how skewed the codes are.
// It is what one compares a synthetic dataset with a real one on. A visit is the
// events of one patient on one UTC day (see Day); MEDS_BIRTH, MEDS_DEATH, GENDER//
// and MEDS_OBSERVATION_END events are facts about the patient, not findings of a
// visit, and are left out of every figure.
type Description struct {
	Patients int64 `json:"patients"`
	// Visits and Events count all patients' visits and their events.
	Visits int64 `json:"visits"`
	Events int64 `json:"events"`
	// Codes is the number of distinct codes.
	Codes int `json:"codes"`
	// ObservedYears sums, over the patients seen on two days or more, the years
	// from their first event to their last; VisitsPerPatientYear divides those
	// patients' visits by it. Patients seen once have no span to divide by.
	ObservedYears        float64 `json:"observed_years"`
	VisitsPerPatientYear float64 `json:"visits_per_patient_year"`
	// CodesPerVisit counts the distinct codes of a visit.
	CodesPerVisitMean   float64 `json:"codes_per_visit_mean"`
	CodesPerVisitMedian float64 `json:"codes_per_visit_median"`
	// Gaps are the days between a patient's consecutive visits; quartiles are
	// nearest-rank, the shares are of all gaps.
	Gaps          int64   `json:"gaps"`
	GapDaysQ1     float64 `json:"gap_days_q1"`
	GapDaysMedian float64 `json:"gap_days_median"`
	GapDaysQ3     float64 `json:"gap_days_q3"`
	GapsUnder30   float64 `json:"gaps_under_30_days"`
	GapsOver365   float64 `json:"gaps_over_365_days"`
	// ZipfSlope is the least-squares slope of log(count) against log(rank) over
	// the codes ranked ZipfRankFirst to ZipfRankLast by event count: every code
	// seen at least ZipfMinCount times, since below that counts are ties of a few
	// events and flatten the tail into steps. Zero, with ranks 0, when fewer than
	// two codes qualify. A Zipf law has slope -1.
	ZipfSlope     float64 `json:"zipf_slope"`
	ZipfRankFirst int     `json:"zipf_rank_first"`
	ZipfRankLast  int     `json:"zipf_rank_last"`
}

// ZipfMinCount is the fewest events a code needs to enter Description's Zipf fit.
const ZipfMinCount = 5

// Describer accumulates a Description one patient at a time, in memory that grows
// with the distinct codes, visit sizes and gaps, not with the patients.
type Describer struct {
	d                      Description
	codes                  map[string]int64
	perVisit               map[int]int64 // distinct codes of a visit -> visits
	gaps                   map[int64]int64
	spanned                int64 // visits of the patients seen on two days or more
	codesInVisits          int64
	gapsUnder30, gapsOver1 int64
	day                    []string
}

// NewDescriber returns an empty Describer.
func NewDescriber() *Describer {
	return &Describer{codes: make(map[string]int64), perVisit: make(map[int]int64), gaps: make(map[int64]int64)}
}

// Add counts patient p, whose events are sorted by time as Patient requires.
func (s *Describer) Add(p *Patient) {
	s.d.Patients++
	visits := 0
	var first, last, prevDay int64
	flush := func() {
		if len(s.day) == 0 {
			return
		}
		slices.Sort(s.day)
		n := len(slices.Compact(s.day))
		s.perVisit[n]++
		s.codesInVisits += int64(n)
		s.day = s.day[:0]
	}
	for _, e := range p.Events {
		if isStatic(e.Code) {
			continue
		}
		s.d.Events++
		s.codes[e.Code]++
		d := Day(e.Time)
		if visits == 0 {
			first = e.Time
		}
		if visits == 0 || d != prevDay {
			flush()
			if visits > 0 {
				gap := d - prevDay
				s.gaps[gap]++
				if gap < 30 {
					s.gapsUnder30++
				}
				if gap > 365 {
					s.gapsOver1++
				}
			}
			visits++
			prevDay = d
		}
		last = e.Time
		s.day = append(s.day, e.Code)
	}
	flush()
	s.d.Visits += int64(visits)
	if visits >= 2 {
		s.spanned += int64(visits)
		s.d.ObservedYears += float64(last-first) / (365.25 * MicrosPerDay)
	}
}

// Description returns the figures of the patients added so far.
func (s *Describer) Description() Description {
	d := s.d
	d.Codes = len(s.codes)
	if d.ObservedYears > 0 {
		d.VisitsPerPatientYear = float64(s.spanned) / d.ObservedYears
	}
	if d.Visits > 0 {
		d.CodesPerVisitMean = float64(s.codesInVisits) / float64(d.Visits)
		d.CodesPerVisitMedian = float64(quantile(s.perVisit, d.Visits, 0.5))
	}
	for _, n := range s.gaps {
		d.Gaps += n
	}
	if d.Gaps > 0 {
		d.GapDaysQ1 = float64(quantile(s.gaps, d.Gaps, 0.25))
		d.GapDaysMedian = float64(quantile(s.gaps, d.Gaps, 0.5))
		d.GapDaysQ3 = float64(quantile(s.gaps, d.Gaps, 0.75))
		d.GapsUnder30 = float64(s.gapsUnder30) / float64(d.Gaps)
		d.GapsOver365 = float64(s.gapsOver1) / float64(d.Gaps)
	}
	counts := slices.SortedFunc(maps.Values(s.codes), func(a, b int64) int { return cmp.Compare(b, a) })
	n := 0
	for n < len(counts) && counts[n] >= ZipfMinCount {
		n++
	}
	if n >= 2 {
		var sx, sy, sxx, sxy float64
		for i, c := range counts[:n] {
			x, y := math.Log(float64(i+1)), math.Log(float64(c))
			sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		}
		k := float64(n)
		d.ZipfSlope = (k*sxy - sx*sy) / (k*sxx - sx*sx)
		d.ZipfRankFirst, d.ZipfRankLast = 1, n
	}
	return d
}

// quantile is the nearest-rank q-quantile of a histogram of total values: the
// smallest value at least a fraction q of them do not exceed.
func quantile[K cmp.Ordered](hist map[K]int64, total int64, q float64) K {
	need := int64(math.Ceil(q * float64(total)))
	var seen int64
	var v K
	for _, v = range slices.Sorted(maps.Keys(hist)) {
		seen += hist[v]
		if seen >= max(need, 1) {
			break
		}
	}
	return v
}

// Describe reads r to the end and describes what it held; see Description.
func Describe(ctx context.Context, r Reader) (Description, error) {
	s := NewDescriber()
	for {
		p, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return s.Description(), nil
		}
		if err != nil {
			return Description{}, fmt.Errorf("describe: %w", err)
		}
		s.Add(p)
	}
}
