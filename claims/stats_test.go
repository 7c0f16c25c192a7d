package claims

import (
	"context"
	"io"
	"math"
	"testing"
)

type sliceReader struct{ ps []*Patient }

func (r *sliceReader) Next(ctx context.Context) (*Patient, error) {
	if len(r.ps) == 0 {
		return nil, io.EOF
	}
	p := r.ps[0]
	r.ps = r.ps[1:]
	return p, nil
}

func (r *sliceReader) Close() error { return nil }

// visitsOn makes a patient with one visit on each of days (from 2020-01-01), the
// k-th holding the codes codes[k], and a death on the last day.
func visitsOn(id int64, days []int64, codes [][]string) *Patient {
	base := DaysFromCivil(2020, 1, 1)
	p := &Patient{ID: id}
	nan := float32(math.NaN())
	for k, d := range days {
		for i, c := range codes[k] {
			p.Events = append(p.Events, Event{Time: (base+d)*MicrosPerDay + int64(i)*60_000_000, Code: c, Value: nan})
		}
	}
	if n := len(days); n > 0 {
		p.Events = append(p.Events, Event{Time: (base+days[n-1])*MicrosPerDay + 3_600_000_000, Code: CodeDeath, Value: nan})
	}
	return p
}

func TestDescribe(t *testing.T) {
	a, b, c := "ICD10//A", "ICD10//B", "ICD10//C"
	for _, tc := range []struct {
		name     string
		patients []*Patient
		want     Description
	}{
		{"empty", nil, Description{}},
		{"one patient seen once", []*Patient{visitsOn(1, []int64{0}, [][]string{{a, b, b}})},
			Description{Patients: 1, Visits: 1, Events: 3, Codes: 2, CodesPerVisitMean: 2, CodesPerVisitMedian: 2}},
		{
			// Gaps 10, 20, 400 and 365.25; visits of 1, 2, 1, 3 and 1 codes.
			"two patients",
			[]*Patient{
				visitsOn(1, []int64{0, 10, 30, 430}, [][]string{{a}, {a, b}, {a}, {a, b, c}}),
				visitsOn(2, []int64{0, 365}, [][]string{{a}, {b}}),
			},
			Description{
				Patients: 2, Visits: 6, Events: 9, Codes: 3,
				ObservedYears:        (430*MicrosPerDay + 2*60_000_000 + 365*MicrosPerDay) / (365.25 * MicrosPerDay),
				VisitsPerPatientYear: 6 / ((430*MicrosPerDay + 2*60_000_000 + 365*MicrosPerDay) / (365.25 * MicrosPerDay)),
				CodesPerVisitMean:    9.0 / 6, CodesPerVisitMedian: 1,
				Gaps: 4, GapDaysQ1: 10, GapDaysMedian: 20, GapDaysQ3: 365, GapsUnder30: 0.5, GapsOver365: 0.25,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Describe(context.Background(), &sliceReader{tc.patients})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.ObservedYears-tc.want.ObservedYears) < 1e-12 && math.Abs(got.VisitsPerPatientYear-tc.want.VisitsPerPatientYear) < 1e-12 {
				got.ObservedYears, got.VisitsPerPatientYear = tc.want.ObservedYears, tc.want.VisitsPerPatientYear
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// Codes whose counts follow 1/rank exactly have slope -1; codes seen fewer than
// ZipfMinCount times stay out of the fit.
func TestDescribeZipfSlope(t *testing.T) {
	s := NewDescriber()
	p := &Patient{ID: 1}
	nan := float32(math.NaN())
	day := int64(0)
	for rank := 1; rank <= 12; rank++ {
		n := 1200 / rank
		if rank > 10 {
			n = ZipfMinCount - 1
		}
		for range n {
			day++
			p.Events = append(p.Events, Event{Time: day * MicrosPerDay, Code: "ICD10//X" + string(rune('A'+rank)), Value: nan})
		}
	}
	s.Add(p)
	d := s.Description()
	if d.ZipfRankFirst != 1 || d.ZipfRankLast != 10 || math.Abs(d.ZipfSlope+1) > 0.01 {
		t.Errorf("Zipf fit over ranks %d-%d, slope %.4f: want ranks 1-10, slope -1", d.ZipfRankFirst, d.ZipfRankLast, d.ZipfSlope)
	}
}
