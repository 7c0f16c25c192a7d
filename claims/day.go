package claims

// MicrosPerDay is the length of a UTC day in Event.Time units.
const MicrosPerDay = 86_400_000_000

// Day returns the UTC day, counted from 1970-01-01, that time t (microseconds since
// the Unix epoch) falls on. Times before 1970 are negative and round down, so that a
// day before 1970 starts at its midnight as every other day does.
func Day(t int64) int64 { return FloorDiv(t, MicrosPerDay) }

// FloorDiv is a/b rounded toward negative infinity; Go's / rounds toward zero, which
// would put the times just before 1970 on day 0. b must not be zero.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// DaysFromCivil returns the days from 1970-01-01 to the proleptic Gregorian date
// y-m-d, in integer arithmetic (Howard Hinnant's days_from_civil).
func DaysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
