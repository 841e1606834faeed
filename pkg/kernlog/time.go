package kernlog

import (
	"strings"
	"time"
)

func (p Parser) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p Parser) loc() *time.Location {
	if p.Location != nil {
		return p.Location
	}
	return time.Local
}

var months = map[string]time.Month{
	"Jan": time.January, "Feb": time.February, "Mar": time.March,
	"Apr": time.April, "May": time.May, "Jun": time.June,
	"Jul": time.July, "Aug": time.August, "Sep": time.September,
	"Oct": time.October, "Nov": time.November, "Dec": time.December,
}

func startsMonth(s string) bool {
	if len(s) < 4 {
		return false
	}
	_, ok := months[s[:3]]
	return ok && (s[3] == ' ' || s[3] == 0xc2)
}

// startsISO says whether s starts with "dddd-dd-ddT".
func startsISO(s string) bool {
	return len(s) >= 11 && digitsAt(s, 0, 4) && s[4] == '-' && digitsAt(s, 5, 2) &&
		s[7] == '-' && digitsAt(s, 8, 2) && s[10] == 'T'
}

func digitsAt(s string, i, n int) bool {
	if i+n > len(s) {
		return false
	}
	for _, c := range []byte(s[i : i+n]) {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// date builds a time and reports false if the fields do not name a real
// date and time (time.Date would roll Feb 30 over into March).
func date(y int, m time.Month, d, hh, mm, ss, ns int, loc *time.Location) (time.Time, bool) {
	if m < time.January || m > time.December || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, m, d, hh, mm, ss, ns, loc)
	// Compare the calendar date only: a local time that falls in a DST gap
	// moves the hour, which is still the right instant.
	if t.Day() != d || t.Month() != m {
		return time.Time{}, false
	}
	return t, true
}

// clock parses "hh:mm:ss" at s[i:].
func clock(s string, i int) (hh, mm, ss int, ok bool) {
	if !digitsAt(s, i, 2) || i+8 > len(s) || s[i+2] != ':' || !digitsAt(s, i+3, 2) || s[i+5] != ':' || !digitsAt(s, i+6, 2) {
		return 0, 0, 0, false
	}
	return atoi(s[i : i+2]), atoi(s[i+3 : i+5]), atoi(s[i+6 : i+8]), true
}

// fraction parses ".ddd" or ",ddd" (1..9 digits) at s[i:] into
// nanoseconds; it returns i unchanged when there is none.
func fraction(s string, i int) (ns, next int, comma, ok bool) {
	if i >= len(s) || s[i] != '.' && s[i] != ',' {
		return 0, i, false, true
	}
	comma = s[i] == ','
	j := i + 1
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	n := j - i - 1
	if n == 0 || n > 9 {
		return 0, i, false, false
	}
	ns = atoi(s[i+1 : j])
	for ; n < 9; n++ {
		ns *= 10
	}
	return ns, j, comma, true
}

// endsField says whether a timestamp ending at s[i:] is followed by a space
// or the end of the line.
func endsField(s string, i int) bool {
	return i == len(s) || s[i] == ' ' || s[i] == '\t' || s[i] == 0xc2
}

// cutISO cuts an RFC 3339 / ISO 8601 timestamp:
// "2026-11-23T04:43:12[.,]123456" followed by "Z", "+00:00", "+0000" or
// "+00" (journalctl -o short-iso writes "+0800"). Without a zone the time
// is local. comma reports dmesg's ',' before the fraction.
func (p Parser) cutISO(r *Record, s string) (rest string, comma, ok bool) {
	if !startsISO(s) {
		return s, false, false
	}
	hh, mm, ss, ok := clock(s, 11)
	if !ok {
		return s, false, false
	}
	ns, i, comma, ok := fraction(s, 19)
	if !ok {
		return s, false, false
	}
	loc := p.loc()
	if i < len(s) {
		switch c := s[i]; {
		case c == 'Z':
			loc, i = time.UTC, i+1
		case c == '+' || c == '-':
			if !digitsAt(s, i+1, 2) {
				return s, false, false
			}
			off := atoi(s[i+1:i+3]) * 3600
			j := i + 3
			if j < len(s) && s[j] == ':' && digitsAt(s, j+1, 2) {
				off += atoi(s[j+1:j+3]) * 60
				j += 3
			} else if digitsAt(s, j, 2) {
				off += atoi(s[j:j+2]) * 60
				j += 2
			}
			if off >= 24*3600 {
				return s, false, false
			}
			if c == '-' {
				off = -off
			}
			loc, i = fixedZone(off), j
		}
	}
	if !endsField(s, i) {
		return s, false, false
	}
	t, ok := date(atoi(s[0:4]), time.Month(atoi(s[5:7])), atoi(s[8:10]), hh, mm, ss, ns, loc)
	if !ok {
		return s, false, false
	}
	r.Time = t
	return cutOneSpace(s[i:]), comma, true
}

func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}

// cutRFC3164 cuts "Mmm dd hh:mm:ss" with an optional fraction
// (journalctl -o short-precise) and places it in a year; see Parser.Now.
func (p Parser) cutRFC3164(r *Record, s string) (string, bool) {
	if !startsMonth(s) {
		return s, false
	}
	m := months[s[:3]]
	i := skipSpace(s, 3)
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start || i-start > 2 {
		return s, false
	}
	d := atoi(s[start:i])
	j := skipSpace(s, i)
	if j == i {
		return s, false
	}
	hh, mm, ss, ok := clock(s, j)
	if !ok {
		return s, false
	}
	ns, k, _, ok := fraction(s, j+8)
	if !ok || !endsField(s, k) {
		return s, false
	}
	t, ok := p.placeYear(m, d, hh, mm, ss, ns)
	if !ok {
		return s, false
	}
	r.Time = t
	return s[k:], true
}

// placeYear picks the year of a syslog timestamp; see Parser.Now. Feb 29
// goes back to the last leap year.
func (p Parser) placeYear(m time.Month, d, hh, mm, ss, ns int) (time.Time, bool) {
	now, loc := p.now(), p.loc()
	limit := now.Add(24 * time.Hour)
	for y := now.In(loc).Year() + 1; y >= now.In(loc).Year()-8; y-- {
		t, ok := date(y, m, d, hh, mm, ss, ns, loc)
		if ok && !t.After(limit) {
			return t, true
		}
	}
	return time.Time{}, false
}

// cutCtimeBracket cuts dmesg -T's "[Mon Nov 23 04:43:12 2026]". The
// weekday is not checked against the date and may be localised
// ("[Fr Jan  5 11:45:49 2024]"); the month must be English.
func (p Parser) cutCtimeBracket(r *Record, s string) (string, bool) {
	if len(s) < 2 || s[0] != '[' {
		return s, false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 || end > 48 {
		return s, false
	}
	f := strings.Fields(s[1:end])
	if len(f) != 5 || len(f[0]) > 12 || strings.ContainsAny(f[0], "0123456789") {
		return s, false
	}
	m, ok := months[f[1]]
	if !ok || len(f[2]) > 2 || !allDigits(f[2]) || len(f[3]) != 8 || len(f[4]) != 4 || !allDigits(f[4]) {
		return s, false
	}
	hh, mm, ss, ok := clock(f[3], 0)
	if !ok {
		return s, false
	}
	t, ok := date(atoi(f[4]), m, atoi(f[2]), hh, mm, ss, 0, p.loc())
	if !ok {
		return s, false
	}
	r.Time = t
	return cutOneSpace(s[end+1:]), true
}
