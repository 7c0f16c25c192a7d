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
const microsPerDay = claims.MicrosPerDay

// FeatureSet names the columns a Featurizer builds.
type FeatureSet string

const (
	// FeaturesTime, the default, gives per vocabulary code its count of events
	// before the index, its counts in the last 90 and the last 365 days, and the
	// days since its first and since its last occurrence; then age and sex. The
	// windows and the days since an occurrence say when things happened, which
	// all-time counts cannot: a model compared with the baseline must beat timing,
	// not only tallies.
	FeaturesTime FeatureSet = "time"
	// FeaturesCounts is the earlier set: per code its all-time count, optionally
	// the same counts over the last RecentDays days; then age and sex. Its column
	// names are those of the models saved before FeaturesTime existed.
	FeaturesCounts FeatureSet = "counts"
)

// DefaultFeatures is the feature set of an empty FeatureSet.
const DefaultFeatures = FeaturesTime

// TimeWindows are FeaturesTime's recent-count windows, in days.
var TimeWindows = [2]int{90, 365}

// ParseFeatureSet reads a feature set's name; the empty string is DefaultFeatures.
func ParseFeatureSet(s string) (FeatureSet, error) {
	switch FeatureSet(s) {
	case "":
		return DefaultFeatures, nil
	case FeaturesTime, FeaturesCounts:
		return FeatureSet(s), nil
	}
	return "", fmt.Errorf("features: feature set %q: want %s or %s", s, FeaturesTime, FeaturesCounts)
}

// Featurizer turns claims histories into the features clinical benchmarks feed
// gradient boosting. Every code of the vocabulary collects its own events and
// those of its descendants (an event counts for each of its ancestors in the
// vocabulary: ICD-10 category, ATC levels, through claims.Parent). Age in years is
// z-normalised; sex is two indicators.
//
// Columns, each block holding one column per code in vocabulary order:
//
//   - FeaturesTime: count (all events before the index), count90 and count365
//     (those in the last 90 and 365 days before the index), days_since_first and
//     days_since_last (index − event time, in days, of the earliest and latest
//     event before the index); then age, female, male.
//   - FeaturesCounts: the counts, then with RecentDays > 0 the counts over the last
//     RecentDays days; then age, female, male.
//
// An event counts in a window of D days when it lies in [index − D days, index).
//
// The booster has no missing values: an absent entry reads as zero, and zero has a
// bin of its own. A days-since column is therefore 0 when, and only when, the code
// never occurred before the index; for every event strictly before the index it is
// positive (fractional when event times are not midnights), so that one split at a
// tiny threshold separates "never" from "just before the index" and the other
// splits order the occurrences by recency.
type Featurizer struct {
	codes []string
	col   map[string]int32
	// Set is the feature set; see the type's documentation.
	Set FeatureSet
	// RecentDays, for FeaturesCounts, adds a block of counts restricted to the last
	// RecentDays days before the index; 0 leaves it out. FeaturesTime ignores it.
	RecentDays int
	// AgeMean and AgeStd z-normalise age; Fit sets them from training samples.
	AgeMean, AgeStd float64
}

// NewFeaturizer builds a featurizer of the feature set fs (DefaultFeatures when
// empty) over the given vocabulary. Each code must carry its system prefix
// ("ICD10//E11.9") and appear once. recentDays is FeaturesCounts' window and must
// not be negative; FeaturesTime has its windows (TimeWindows) and ignores it.
func NewFeaturizer(codes []string, fs FeatureSet, recentDays int) (*Featurizer, error) {
	fs, err := ParseFeatureSet(string(fs))
	if err != nil {
		return nil, err
	}
	if recentDays < 0 {
		return nil, fmt.Errorf("features: recent window of %d days, want >= 0", recentDays)
	}
	if fs != FeaturesCounts {
		recentDays = 0
	}
	f := &Featurizer{codes: slices.Clone(codes), col: make(map[string]int32, len(codes)), Set: fs, RecentDays: recentDays, AgeStd: 1}
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

// Per-code blocks of FeaturesTime, in column order.
const (
	blockCount = iota
	blockCount90
	blockCount365
	blockFirst
	blockLast
	timeBlocks
)

// timePrefixes name FeaturesTime's blocks.
var timePrefixes = [timeBlocks]string{"count:", "count90:", "count365:", "days_since_first:", "days_since_last:"}

func (f *Featurizer) blocks() int {
	if f.Set == FeaturesTime {
		return timeBlocks
	}
	if f.RecentDays > 0 {
		return 2
	}
	return 1
}

// NumCols returns the number of feature columns.
func (f *Featurizer) NumCols() int { return f.blocks()*len(f.codes) + 3 }

// Names returns the column names. FeaturesTime: "count:" codes, "count90:",
// "count365:", "days_since_first:", "days_since_last:" codes. FeaturesCounts: the
// codes themselves, then "recent:" codes. Both end with "age", "sex//F", "sex//M".
func (f *Featurizer) Names() []string {
	names := make([]string, 0, f.NumCols())
	if f.Set == FeaturesTime {
		for _, p := range timePrefixes {
			for _, c := range f.codes {
				names = append(names, p+c)
			}
		}
	} else {
		names = append(names, f.codes...)
		if f.RecentDays > 0 {
			for _, c := range f.codes {
				names = append(names, "recent:"+c)
			}
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
	nc := int32(len(f.codes))
	ageCol := int32(f.blocks()) * nc
	timed := f.Set == FeaturesTime
	// add counts one event in column k, noting the column's first entry.
	add := func(k int32) {
		if acc[k] == 0 {
			touched = append(touched, k)
		}
		acc[k]++
	}
	for si, s := range samples {
		if s.Patient == nil {
			return nil, fmt.Errorf("features: sample %d has no patient", si)
		}
		recentFrom := s.Index - int64(f.RecentDays)*microsPerDay
		from90 := s.Index - int64(TimeWindows[0])*microsPerDay
		from365 := s.Index - int64(TimeWindows[1])*microsPerDay
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
			if !timed {
				recent := f.RecentDays > 0 && e.Time >= recentFrom
				for _, j := range cols {
					add(j)
					if recent {
						add(j + nc)
					}
				}
				continue
			}
			// Positive for every event strictly before the index.
			days := float32(float64(s.Index-e.Time) / microsPerDay)
			for _, j := range cols {
				if acc[j] == 0 {
					// First event of this code: both days-since columns start here.
					touched = append(touched, j+blockFirst*nc, j+blockLast*nc)
					acc[j+blockFirst*nc], acc[j+blockLast*nc] = days, days
				} else {
					// Max and min rather than first and last in order, so that a
					// record out of order within the history still gives the
					// earliest and the latest event.
					acc[j+blockFirst*nc] = max(acc[j+blockFirst*nc], days)
					acc[j+blockLast*nc] = min(acc[j+blockLast*nc], days)
				}
				add(j)
				if e.Time >= from90 {
					add(j + blockCount90*nc)
				}
				if e.Time >= from365 {
					add(j + blockCount365*nc)
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
