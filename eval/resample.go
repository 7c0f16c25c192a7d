package eval

import "math/rand/v2"

// PatientResampler draws patient-level bootstrap resamples of scored rows: as many
// patients as there are, drawn with replacement, each with all of its rows, so that a
// patient with several rows (several index dates) counts once, as it was sampled.
// Score's intervals and the sweep's paired test draw through it, so that both
// resample the same way.
type PatientResampler struct {
	// members holds each patient's rows, patients in first-seen order so that the
	// seed alone fixes a draw.
	members [][]int
	rng     *rand.Rand
}

// NewPatientResampler groups rows by groups[i], row i's patient id, and draws with rng.
func NewPatientResampler(groups []int64, rng *rand.Rand) *PatientResampler {
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
	return &PatientResampler{members: members, rng: rng}
}

// Draw draws one resample, calling row for each row in it, once per time its patient
// was drawn.
func (p *PatientResampler) Draw(row func(i int)) {
	for range p.members {
		for _, i := range p.members[p.rng.IntN(len(p.members))] {
			row(i)
		}
	}
}
