package claims

import (
	"fmt"
	"time"
)

// parseTime reads the dates and times that OMOP exports hold, as microseconds since
// the Unix epoch: "2015-03-01", "20150301", "2015-03-01 10:20", "2015-03-01
// 10:20:30", "2015-03-01T10:20:30.123456", each optionally with "Z" or a "+09:00"
// offset. Times without an offset are UTC. It parses by hand because ingestion
// spends most of its time here; time.Parse would need one attempt per layout.
func parseTime(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		if s == "" {
			return 0, fmt.Errorf("%w: empty", ErrBadTime)
		}
		return 0, fmt.Errorf("%w: %q (%s)", ErrBadTime, s, why)
	}
	var y, mo, d, i int
	var ok bool
	switch {
	case len(s) >= 10 && (s[4] == '-' || s[4] == '/') && s[7] == s[4]:
		y, ok = digits(s[0:4])
		if ok {
			mo, ok = digits(s[5:7])
		}
		if ok {
			d, ok = digits(s[8:10])
		}
		i = 10
	case len(s) == 8:
		y, ok = digits(s[0:4])
		if ok {
			mo, ok = digits(s[4:6])
		}
		if ok {
			d, ok = digits(s[6:8])
		}
		i = 8
	default:
		return bad("want YYYY-MM-DD")
	}
	if !ok || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return bad("no such date")
	}
	var h, mi, sec, us int
	offset := 0
	if i < len(s) {
		if s[i] != ' ' && s[i] != 'T' {
			return bad("want a space or T after the date")
		}
		i++
		if len(s) < i+5 || s[i+2] != ':' {
			return bad("want HH:MM after the date")
		}
		h, ok = digits(s[i : i+2])
		if ok {
			mi, ok = digits(s[i+3 : i+5])
		}
		if !ok || h > 23 || mi > 59 {
			return bad("no such time")
		}
		i += 5
		if i < len(s) && s[i] == ':' {
			if len(s) < i+3 {
				return bad("want two digits of seconds")
			}
			if sec, ok = digits(s[i+1 : i+3]); !ok || sec > 60 {
				return bad("no such second")
			}
			i += 3
			if i < len(s) && (s[i] == '.' || s[i] == ',') {
				i++
				n := 0
				for ; i < len(s) && isDigit(s[i]); i++ {
					if n < 6 {
						us = us*10 + int(s[i]-'0')
					}
					n++
				}
				if n == 0 {
					return bad("want digits after the decimal point")
				}
				for ; n < 6; n++ {
					us *= 10
				}
			}
		}
		switch {
		case i == len(s):
		case s[i] == 'Z' && i+1 == len(s):
		case (s[i] == '+' || s[i] == '-') && len(s) == i+6 && s[i+3] == ':':
			oh, ok1 := digits(s[i+1 : i+3])
			om, ok2 := digits(s[i+4 : i+6])
			if !ok1 || !ok2 || oh > 23 || om > 59 {
				return bad("no such offset")
			}
			offset = oh*3600 + om*60
			if s[i] == '-' {
				offset = -offset
			}
		default:
			return bad("unexpected text after the time")
		}
	} else if len(s) != i {
		return bad("unexpected text after the date")
	}
	return civilMicros(y, mo, d, h, mi, sec, us) - int64(offset)*1e6, nil
}

// digits parses a run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, len(s) > 0
}

func daysIn(y, m int) int {
	if m == 2 && (y%4 == 0 && (y%100 != 0 || y%400 == 0)) {
		return 29
	}
	return [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m]
}

// civilMicros converts a proleptic Gregorian UTC date and time to microseconds
// since the Unix epoch.
func civilMicros(y, m, d, h, mi, s, us int) int64 {
	days := DaysFromCivil(int64(y), int64(m), int64(d))
	return (days*86400+int64(h*3600+mi*60+s))*int64(time.Second/time.Microsecond) + int64(us)
}
