package baseline

import (
	"fmt"
	"math"
	"slices"

	"github.com/fedclaims/fedclaims/claims"
)

// Sample is one row of features: a patient seen at an index time, in microseconds
// since the Unix epoch like claims.Event.Time. Only events strictly before Index
// count.
type Sample struct {
	Patient *claims.Patient
	Index   int64
}

// microsPerDay converts days to claims' time unit.
const microsPerDay = 24 * 60 * 60 * 1_000_000

// Featurizer turns claims histories into the count features clinical benchmarks
// feed gradient boosting: per vocabulary code, the number of its events before the
// index date, each event also counted for every ancestor in the vocabulary
// (ICD-10 category, ATC levels, through claims.Parent); optionally the same counts
// over the last RecentDays days; age in years, z-normalised; and sex.
//
// Columns: the vocabulary in its order, then (with RecentDays > 0) the recent
// counts in the same order, then age, female, male.
type Featurizer struct {
	codes []string
	col   map[string]int32
	// RecentDays adds a block of counts restricted to the last RecentDays days
	// before the index; 0 leaves it out.
	RecentDays int
	// AgeMean and AgeStd z-normalise age; Fit sets them from training samples.
	AgeMean, AgeStd float64
}

// NewFeaturizer builds a featurizer over the given vocabulary. Each code must carry
// its system prefix ("ICD10//E11.9") and appear once.
func NewFeaturizer(codes []string, recentDays int) (*Featurizer, error) {
	f := &Featurizer{codes: slices.Clone(codes), col: make(map[string]int32, len(codes)), RecentDays: recentDays, AgeStd: 1}
	if recentDays < 0 {
		return nil, fmt.Errorf("features: recent window of %d days, want >= 0", recentDays)
	}
	for i, c := range codes {
		if claims.System(c) == "" {
			return nil, fmt.Errorf("features: vocabulary code %d %q has no system prefix (want e.g. ICD10//E11.9)", i, c)
		}
		if _, dup := f.col[c]; dup {
			return nil, fmt.Errorf("features: vocabulary code %d %q appears twice", i, c)
		}
		f.col[c] = int32(i)
	}
	return f, nil
}

func (f *Featurizer) blocks() int {
	if f.RecentDays > 0 {
		return 2
	}
	return 1
}

// NumCols returns the number of feature columns.
func (f *Featurizer) NumCols() int { return f.blocks()*len(f.codes) + 3 }

// Names returns the column names: the codes, "recent:" codes, "age", "sex//F",
// "sex//M".
func (f *Featurizer) Names() []string {
	names := slices.Clone(f.codes)
	if f.RecentDays > 0 {
		for _, c := range f.codes {
			names = append(names, "recent:"+c)
		}
	}
	return append(names, "age", "sex//F", "sex//M")
}

func ageYears(p *claims.Patient, index int64) (float64, bool) {
	if !p.HasBirth {
		return 0, false
	}
	return float64(index-p.Birth) / (365.25 * microsPerDay), true
}

// Fit sets the age normalisation from the training samples.
func (f *Featurizer) Fit(samples []Sample) error {
	var n, sum, sq float64
	for _, s := range samples {
		if a, ok := ageYears(s.Patient, s.Index); ok {
			n++
			sum += a
			sq += a * a
		}
	}
	if n == 0 {
		return fmt.Errorf("features: no sample has a birth date to normalise age with")
	}
	f.AgeMean = sum / n
	f.AgeStd = math.Sqrt(max(sq/n-f.AgeMean*f.AgeMean, 0))
	if f.AgeStd == 0 {
		f.AgeStd = 1
	}
	return nil
}

// Build returns the feature matrix, one row per sample in order. A patient without
// a birth date gets no age entry, which reads as zero: the mean age.
func (f *Featurizer) Build(samples []Sample) (*CSR, error) {
	ncols := f.NumCols()
	x := NewCSR(ncols)
	acc := make([]float32, ncols)
	var touched []int32
	// Ancestor columns per code, computed once per Build.
	lineage := map[string][]int32{}
	ageCol := int32(f.blocks() * len(f.codes))
	recentOffset := int32(len(f.codes))
	for si, s := range samples {
		if s.Patient == nil {
			return nil, fmt.Errorf("features: sample %d has no patient", si)
		}
		recentFrom := s.Index - int64(f.RecentDays)*microsPerDay
		for _, e := range s.Patient.Events {
			if e.Time >= s.Index {
				break // events are time-ordered
			}
			cols, ok := lineage[e.Code]
			if !ok {
				for c := e.Code; ; {
					if j, in := f.col[c]; in {
						cols = append(cols, j)
					}
					up, more := claims.Parent(c)
					if !more {
						break
					}
					c = up
				}
				lineage[e.Code] = cols
			}
			recent := f.RecentDays > 0 && e.Time >= recentFrom
			for _, j := range cols {
				if acc[j] == 0 {
					touched = append(touched, j)
				}
				acc[j]++
				if recent {
					k := j + recentOffset
					if acc[k] == 0 {
						touched = append(touched, k)
					}
					acc[k]++
				}
			}
		}
		if a, ok := ageYears(s.Patient, s.Index); ok {
			touched = append(touched, ageCol)
			acc[ageCol] = float32((a - f.AgeMean) / f.AgeStd)
		}
		switch s.Patient.Sex {
		case claims.SexFemale:
			touched = append(touched, ageCol+1)
			acc[ageCol+1] = 1
		case claims.SexMale:
			touched = append(touched, ageCol+2)
			acc[ageCol+2] = 1
		}
		slices.Sort(touched)
		vals := make([]float32, len(touched))
		for k, j := range touched {
			vals[k] = acc[j]
			acc[j] = 0
		}
		if err := x.AppendRow(touched, vals); err != nil {
			return nil, fmt.Errorf("features: sample %d: %w", si, err)
		}
		touched = touched[:0]
	}
	return x, nil
}
