package baseline

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/claims"
)

func micros(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMicro()
}

func TestFeaturesCounts(t *testing.T) {
	vocab := []string{"ICD10//E11", "ICD10//E11.9", "ATC//C10AA", "ATC//C10", "ATC//C10AA05", "ICD10//I50"}
	f, err := NewFeaturizer(vocab, 365)
	if err != nil {
		t.Fatal(err)
	}
	p := &claims.Patient{ID: 1, Sex: claims.SexFemale, Birth: micros(1950, 6, 1), HasBirth: true, Events: []claims.Event{
		{Time: micros(2015, 1, 1), Code: "ICD10//E11.9"},
		{Time: micros(2019, 3, 1), Code: "ICD10//E11.9"},
		{Time: micros(2019, 3, 1), Code: "ATC//C10AA05"},
		{Time: micros(2019, 6, 1), Code: "ICD10//E11.65"}, // not in the vocabulary; its category is
		{Time: micros(2020, 1, 1), Code: "ICD10//I50.9"},  // on the index date: excluded
		{Time: micros(2021, 1, 1), Code: "ICD10//I50.9"},
	}}
	index := micros(2020, 1, 1)
	samples := []Sample{{p, index}, {&claims.Patient{ID: 2, Sex: claims.SexMale}, index}}
	f.AgeMean, f.AgeStd = 60, 10
	x, err := f.Build(samples)
	if err != nil {
		t.Fatal(err)
	}
	if x.NumCols != 2*6+3 || x.Rows() != 2 {
		t.Fatalf("shape %dx%d, want 2x15", x.Rows(), x.NumCols)
	}
	age := (float64(index-p.Birth)/(365.25*microsPerDay) - 60) / 10
	want := map[int]float32{
		0: 3, 1: 2, // E11 counts E11.9 twice and E11.65 once; E11.9 itself twice
		2: 1, 3: 1, 4: 1, // C10AA05 and its ATC ancestors
		6 + 0: 2, 6 + 1: 1, 6 + 2: 1, 6 + 3: 1, 6 + 4: 1, // the last 365 days: 2019 events
		12: float32(age), 13: 1,
	}
	for j := range x.NumCols {
		if got := x.At(0, j); math.Abs(float64(got-want[j])) > 1e-6 {
			t.Errorf("row 0 column %d (%s) = %v, want %v", j, f.Names()[j], got, want[j])
		}
	}
	if idx, _ := x.Row(1); len(idx) != 1 || idx[0] != 14 {
		t.Errorf("patient without history: columns %v, want only male (14)", idx)
	}
}

func TestFeaturesErrors(t *testing.T) {
	for _, tt := range []struct {
		vocab []string
		want  string
	}{
		{[]string{"E11"}, "no system prefix"},
		{[]string{"ICD10//E11", "ICD10//E11"}, "appears twice"},
	} {
		if _, err := NewFeaturizer(tt.vocab, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewFeaturizer(%v) error %v, want %q", tt.vocab, err, tt.want)
		}
	}
	f, _ := NewFeaturizer([]string{"ICD10//E11"}, 0)
	if err := f.Fit([]Sample{{&claims.Patient{}, 0}}); err == nil {
		t.Error("Fit without birth dates succeeded")
	}
}
