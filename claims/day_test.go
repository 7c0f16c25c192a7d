package claims

import (
	"testing"
	"time"
)

func TestDaysFromCivil(t *testing.T) {
	for _, tc := range []struct{ y, m, d int64 }{
		{1970, 1, 1}, {2000, 2, 29}, {2012, 3, 1}, {1899, 12, 31}, {1904, 2, 29}, {2022, 12, 28},
		{1600, 3, 1}, {-1, 12, 31}, {2400, 2, 29},
	} {
		want := time.Date(int(tc.y), time.Month(tc.m), int(tc.d), 0, 0, 0, 0, time.UTC).Unix() / 86400
		if tc.y < 1970 {
			want = FloorDiv(time.Date(int(tc.y), time.Month(tc.m), int(tc.d), 0, 0, 0, 0, time.UTC).Unix(), 86400)
		}
		if got := DaysFromCivil(tc.y, tc.m, tc.d); got != want {
			t.Errorf("DaysFromCivil(%d, %d, %d) = %d, want %d", tc.y, tc.m, tc.d, got, want)
		}
	}
}

func TestDay(t *testing.T) {
	for _, tc := range []struct {
		t, day int64
	}{
		{0, 0},
		{MicrosPerDay - 1, 0},
		{MicrosPerDay, 1},
		{-1, -1},
		{-MicrosPerDay, -1},
		{-MicrosPerDay - 1, -2},
		{time.Date(2015, 3, 1, 23, 59, 59, 0, time.UTC).UnixMicro(), DaysFromCivil(2015, 3, 1)},
		{time.Date(1955, 7, 4, 0, 0, 1, 0, time.UTC).UnixMicro(), DaysFromCivil(1955, 7, 4)},
	} {
		if got := Day(tc.t); got != tc.day {
			t.Errorf("Day(%d) = %d, want %d", tc.t, got, tc.day)
		}
	}
}

func TestFloorDiv(t *testing.T) {
	for _, tc := range []struct{ a, b, q int64 }{
		{7, 2, 3}, {-7, 2, -4}, {7, -2, -4}, {-7, -2, 3}, {6, 3, 2}, {-6, 3, -2}, {0, 5, 0},
	} {
		if got := FloorDiv(tc.a, tc.b); got != tc.q {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.q)
		}
	}
}
