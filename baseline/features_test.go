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
	f, err := NewFeaturizer(vocab, FeaturesCounts, 365)
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
	// The names of saved counts models.
	names := f.Names()
	if names[0] != "ICD10//E11" || names[6] != "recent:ICD10//E11" || names[12] != "age" || names[13] != "sex//F" || names[14] != "sex//M" {
		t.Errorf("counts names %v", names)
	}
	if f0, _ := NewFeaturizer(vocab, FeaturesCounts, 0); f0.NumCols() != 6+3 {
		t.Errorf("counts without a recent window: %d columns, want 9", f0.NumCols())
	}
}

func TestFeaturesTime(t *testing.T) {
	vocab := []string{"ICD10//E11", "ICD10//E11.9", "ATC//C10AA", "ATC//C10", "ATC//C10AA05", "ICD10//I50", "ICD10//N18", "ICD10//K21", "ATC//A02BC"}
	// 365 is ignored: the time set has its own windows.
	f, err := NewFeaturizer(vocab, FeaturesTime, 365)
	if err != nil {
		t.Fatal(err)
	}
	if f.NumCols() != 5*len(vocab)+3 {
		t.Fatalf("%d columns, want %d", f.NumCols(), 5*len(vocab)+3)
	}
	index := micros(2020, 1, 1)
	p := &claims.Patient{ID: 1, Sex: claims.SexMale, Birth: micros(1950, 6, 1), HasBirth: true, Events: []claims.Event{
		{Time: micros(2015, 1, 1), Code: "ICD10//E11.9"},                      // 1826 days before
		{Time: micros(2018, 12, 31), Code: "ATC//A02BC01"},                    // 366 days: outside the 365-day window
		{Time: micros(2019, 1, 1), Code: "ATC//A02BC01"},                      // 365 days: its first day
		{Time: micros(2019, 3, 1), Code: "ICD10//E11.9"},                      // 306 days
		{Time: micros(2019, 3, 1), Code: "ATC//C10AA05"},                      // 306 days
		{Time: micros(2019, 6, 1), Code: "ICD10//E11.65"},                     // 214 days; not in the vocabulary, its category is
		{Time: micros(2019, 10, 2), Code: "ICD10//K21.9"},                     // 91 days: outside the 90-day window
		{Time: micros(2019, 10, 3), Code: "ICD10//K21.9"},                     // 90 days: its first day
		{Time: micros(2019, 11, 15), Code: "ATC//C10AA05"},                    // 47 days
		{Time: micros(2019, 12, 31) + 12*3_600_000_000, Code: "ICD10//I50.9"}, // half a day
		{Time: index, Code: "ICD10//I50.9"},                                   // on the index date: ignored
		{Time: index, Code: "ICD10//N18.3"},                                   // N18 only on and after the index: absent
		{Time: micros(2021, 1, 1), Code: "ICD10//N18.3"},
		{Time: micros(2021, 1, 1), Code: "ICD10//E11.9"},
	}}
	f.AgeMean, f.AgeStd = 60, 10
	late := &claims.Patient{ID: 3, Events: []claims.Event{{Time: index, Code: "ICD10//E11.9"}, {Time: micros(2020, 2, 1), Code: "ATC//C10AA05"}}}
	x, err := f.Build([]Sample{{p, index}, {&claims.Patient{ID: 2, Sex: claims.SexFemale}, index}, {late, index}})
	if err != nil {
		t.Fatal(err)
	}
	names := f.Names()
	col := map[string]int{}
	for j, n := range names {
		col[n] = j
	}
	age := (float64(index-p.Birth)/(365.25*microsPerDay) - 60) / 10
	tests := []struct {
		code                                  string
		count, count90, count365, first, last float64
	}{
		{"ICD10//E11", 3, 0, 2, 1826, 214},
		{"ICD10//E11.9", 2, 0, 1, 1826, 306},
		{"ATC//C10AA05", 2, 1, 2, 306, 47},
		{"ATC//C10AA", 2, 1, 2, 306, 47},
		{"ATC//C10", 2, 1, 2, 306, 47},
		{"ICD10//I50", 1, 1, 1, 0.5, 0.5},
		{"ICD10//N18", 0, 0, 0, 0, 0},
		{"ICD10//K21", 2, 1, 2, 91, 90},
		{"ATC//A02BC", 2, 0, 1, 366, 365},
	}
	want := map[int]float64{col["age"]: age, col["sex//M"]: 1}
	for _, tt := range tests {
		for k, v := range []float64{tt.count, tt.count90, tt.count365, tt.first, tt.last} {
			name := timePrefixes[k] + tt.code
			j, ok := col[name]
			if !ok {
				t.Fatalf("no column %q among %v", name, names)
			}
			want[j] = v
		}
	}
	idx, _ := x.Row(0)
	stored := map[int32]bool{}
	for _, j := range idx {
		stored[j] = true
	}
	for j := range x.NumCols {
		got := float64(x.At(0, j))
		if math.Abs(got-want[j]) > 1e-6 {
			t.Errorf("column %d (%s) = %v, want %v", j, names[j], got, want[j])
		}
		if stored[int32(j)] != (want[j] != 0) {
			t.Errorf("column %d (%s) stored %v, want stored only when nonzero", j, names[j], stored[int32(j)])
		}
	}
	if idx, _ := x.Row(1); len(idx) != 1 || int(idx[0]) != col["sex//F"] {
		t.Errorf("patient without history: columns %v, want only female (%d)", idx, col["sex//F"])
	}
	if idx, _ := x.Row(2); len(idx) != 0 {
		t.Errorf("patient with events only on and after the index: columns %v, want none", idx)
	}
	for k, want := range map[int]string{
		0: "count:ICD10//E11", len(vocab): "count90:ICD10//E11", 2 * len(vocab): "count365:ICD10//E11",
		3 * len(vocab): "days_since_first:ICD10//E11", 4*len(vocab) + 8: "days_since_last:ATC//A02BC",
		5 * len(vocab): "age", 5*len(vocab) + 1: "sex//F", 5*len(vocab) + 2: "sex//M",
	} {
		if names[k] != want {
			t.Errorf("column %d is %q, want %q", k, names[k], want)
		}
	}
}

func TestFeatureSets(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want FeatureSet
		ok   bool
	}{
		{"", FeaturesTime, true},
		{"time", FeaturesTime, true},
		{"counts", FeaturesCounts, true},
		{"count", "", false},
		{"Time", "", false},
	} {
		got, err := ParseFeatureSet(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseFeatureSet(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if f, err := NewFeaturizer([]string{"ICD10//E11"}, "", 0); err != nil || f.Set != FeaturesTime {
		t.Errorf("empty feature set: %v, %v; want the time set", f, err)
	}
	if _, err := NewFeaturizer([]string{"ICD10//E11"}, "dense", 0); err == nil || !strings.Contains(err.Error(), `"dense"`) {
		t.Errorf("unknown feature set: error %v", err)
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
		if _, err := NewFeaturizer(tt.vocab, FeaturesTime, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewFeaturizer(%v) error %v, want %q", tt.vocab, err, tt.want)
		}
	}
	if _, err := NewFeaturizer([]string{"ICD10//E11"}, FeaturesCounts, -1); err == nil {
		t.Error("a negative recent window succeeded")
	}
	f, _ := NewFeaturizer([]string{"ICD10//E11"}, FeaturesTime, 0)
	if err := f.Fit([]Sample{{&claims.Patient{}, 0}}); err == nil {
		t.Error("Fit without birth dates succeeded")
	}
}
