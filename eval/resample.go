package eval

import (
	"fmt"
	"math/rand/v2"
)

// PatientResampler draws patient-level bootstrap resamples of scored rows: patients
// drawn with replacement, each with all of its rows, so that a patient with several
// rows (several index dates) counts once, as it was sampled.
//
// A stratified resampler (NewStratifiedResampler, what Score and Compare use) splits
// the patients into those with at least one positive row and those with none and
// draws each stratum with replacement to its own size. Every resample then holds
// exactly as many positive patients as the split, so none lacks positives, and none
// is ever redrawn: redrawing the resamples that happened to lack positives would
// condition the bootstrap distribution on them and bias the intervals.
type PatientResampler struct {
	// members holds each patient's rows, patients in first-seen order so that the
	// seed alone fixes a draw.
	members [][]int
	// strata holds indices into members; each stratum is drawn to its own size, in
	// this order.
	strata [][]int
	rng    *rand.Rand
}

// group returns each patient's rows, patients in first-seen order.
func group(groups []int64) [][]int {
	byPatient := map[int64]int{}
	var members [][]int
	for i, g := range groups {
		p, ok := byPatient[g]
		if !ok {
			p = len(members)
			byPatient[g] = p
			members = append(members, nil)
		}
		members[p] = append(members[p], i)
	}
	return members
}

// NewStratifiedResampler groups rows by groups[i], row i's patient id, splits the
// patients into those with any positive row (labels[i] true) and those with none, and
// draws each stratum with replacement to its own size with rng: positive patients
// first, then the others. An empty stratum draws nothing. It panics when groups and
// labels differ in length.
func NewStratifiedResampler(groups []int64, labels []bool, rng *rand.Rand) *PatientResampler {
	if len(groups) != len(labels) {
		panic(fmt.Sprintf("eval: NewStratifiedResampler: %d patient ids for %d labels", len(groups), len(labels)))
	}
	members := group(groups)
	var pos, neg []int
	for p, rows := range members {
		positive := false
		for _, i := range rows {
			positive = positive || labels[i]
		}
		if positive {
			pos = append(pos, p)
		} else {
			neg = append(neg, p)
		}
	}
	return &PatientResampler{members: members, strata: [][]int{pos, neg}, rng: rng}
}

// Draw draws one resample, calling row for each row in it, once per time its patient
// was drawn; a drawn patient's rows come together, in row order.
func (p *PatientResampler) Draw(row func(i int)) {
	for _, s := range p.strata {
		for range s {
			for _, i := range p.members[s[p.rng.IntN(len(s))]] {
				row(i)
			}
		}
	}
}

// strataSizes returns the number of patients in each stratum, in draw order.
func (p *PatientResampler) strataSizes() []int {
	n := make([]int, len(p.strata))
	for k, s := range p.strata {
		n[k] = len(s)
	}
	return n
}
