package policy

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// window builds a recurring window as Parse would.
func window(t testing.TB, spec string, d time.Duration, zone string) *Window {
	t.Helper()
	sc, err := parseSchedule(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &Window{Name: "w", Schedule: spec, Duration: d, Location: mustLoc(t, zone), sched: sc}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestWindowContains: openings follow the zone's clock, including across
// Europe/Berlin's changes on 2026-03-29 (02:00 CET -> 03:00 CEST) and
// 2026-10-25 (03:00 CEST -> 02:00 CET); the duration is elapsed time.
func TestWindowContains(t *testing.T) {
	weeknights := window(t, "0 22 * * 1-5", 6*time.Hour, "Europe/Berlin")
	tests := []struct {
		name string
		w    *Window
		at   string
		want bool
	}{
		{"winter Friday opening, 22:00 CET", weeknights, "2026-03-27T21:00:00Z", true},
		{"a second before it", weeknights, "2026-03-27T20:59:59Z", false},
		{"04:00 CET Saturday closes it", weeknights, "2026-03-28T03:00:00Z", false},
		{"a second before closing", weeknights, "2026-03-28T02:59:59Z", true},
		{"Saturday night stays shut", weeknights, "2026-03-28T21:30:00Z", false},
		{"Sunday night of the change stays shut", weeknights, "2026-03-29T21:00:00Z", false},
		{"summer Monday: 22:00 CEST is 20:00Z", weeknights, "2026-03-30T20:00:00Z", true},
		{"summer Monday 21:59 CEST", weeknights, "2026-03-30T19:59:00Z", false},
		{"summer Tuesday 03:59 CEST", weeknights, "2026-03-31T01:59:00Z", true},
		{"summer Tuesday 04:00 CEST", weeknights, "2026-03-31T02:00:00Z", false},
		{"last summer Friday, 22:00 CEST", weeknights, "2026-10-23T20:00:00Z", true},
		{"its close at 04:00 CEST", weeknights, "2026-10-24T02:00:00Z", false},
		{"winter Monday after the change: 22:00 CET is 21:00Z", weeknights, "2026-10-26T21:00:00Z", true},
		{"winter Monday 20:30Z is 21:30 CET", weeknights, "2026-10-26T20:30:00Z", false},
		{"a time given in another zone", weeknights, "2026-12-08T16:30:00-05:00", true},

		// 02:30 does not exist in Berlin on 2026-03-29: no opening.
		{"skipped opening", window(t, "30 2 * * *", time.Hour, "Europe/Berlin"), "2026-03-29T01:45:00Z", false},
		{"the day before", window(t, "30 2 * * *", time.Hour, "Europe/Berlin"), "2026-03-28T01:45:00Z", true},
		// 02:30 happens twice on 2026-10-25: 00:30Z (CEST) and 01:30Z (CET).
		{"repeated opening, first", window(t, "30 2 * * *", 30*time.Minute, "Europe/Berlin"), "2026-10-25T00:45:00Z", true},
		{"between the two", window(t, "30 2 * * *", 30*time.Minute, "Europe/Berlin"), "2026-10-25T01:15:00Z", false},
		{"repeated opening, second", window(t, "30 2 * * *", 30*time.Minute, "Europe/Berlin"), "2026-10-25T01:45:00Z", true},
		// Elapsed time: a 3h window opening 01:00 CET on the spring night
		// closes at 05:00 CEST.
		{"elapsed duration across the change", window(t, "0 1 * * *", 3*time.Hour, "Europe/Berlin"), "2026-03-29T02:59:00Z", true},
		{"elapsed duration ends", window(t, "0 1 * * *", 3*time.Hour, "Europe/Berlin"), "2026-03-29T03:00:00Z", false},

		{"Tokyo 09:00 is 00:00Z", window(t, "0 9 * * *", time.Hour, "Asia/Tokyo"), "2026-06-01T00:30:00Z", true},
		{"Tokyo 09:00 is not 09:00Z", window(t, "0 9 * * *", time.Hour, "Asia/Tokyo"), "2026-06-01T09:30:00Z", false},
		{"a window longer than its period is always open", window(t, "0 0 * * *", 36*time.Hour, "UTC"), "2026-06-01T13:00:00Z", true},
		{"descriptor", window(t, "@daily", time.Hour, "UTC"), "2026-06-01T00:59:59Z", true},

		{"one-off: from is inside", &Window{From: utc("2026-12-20T00:00:00Z"), To: utc("2027-01-04T00:00:00Z")}, "2026-12-20T00:00:00Z", true},
		{"one-off: to is outside", &Window{From: utc("2026-12-20T00:00:00Z"), To: utc("2027-01-04T00:00:00Z")}, "2027-01-04T00:00:00Z", false},
		{"one-off: before", &Window{From: utc("2026-12-20T00:00:00Z"), To: utc("2027-01-04T00:00:00Z")}, "2026-12-19T23:59:59Z", false},
		{"zero window", &Window{}, "2026-12-20T00:00:00Z", false},
		// Built in code, not by Parse: the schedule is read when needed.
		{"hand-built", &Window{Schedule: "0 22 * * 1-5", Duration: 6 * time.Hour, Location: mustLoc(t, "Europe/Berlin")}, "2026-03-27T21:00:00Z", true},
		{"hand-built without a zone is UTC", &Window{Schedule: "0 22 * * *", Duration: time.Hour}, "2026-03-27T22:30:00Z", true},
		{"hand-built bad schedule never opens", &Window{Schedule: "0 99 * * *", Duration: time.Hour}, "2026-03-27T22:30:00Z", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.w.Contains(at); got != tc.want {
				t.Errorf("Contains(%s = %s) = %v, want %v", tc.at, at.In(tc.w.loc()), got, tc.want)
			}
		})
	}
}

func TestWindowNextOpen(t *testing.T) {
	weeknights := window(t, "0 22 * * 1-5", 6*time.Hour, "Europe/Berlin")
	oneOff := &Window{From: utc("2026-12-20T00:00:00Z"), To: utc("2027-01-04T00:00:00Z")}
	tests := []struct {
		name string
		w    *Window
		at   string
		want string // RFC 3339 in the window's zone; "" for zero
	}{
		{"open: t itself", weeknights, "2026-12-08T22:30:00+01:00", "2026-12-08T22:30:00+01:00"},
		{"Tuesday noon: tonight", weeknights, "2026-12-08T12:00:00Z", "2026-12-08T22:00:00+01:00"},
		{"Saturday: Monday", weeknights, "2026-12-05T12:00:00Z", "2026-12-07T22:00:00+01:00"},
		{"Friday 21:00Z in March: Monday in summer time", weeknights, "2026-03-28T04:00:00Z", "2026-03-30T22:00:00+02:00"},
		{"skipped 02:30: the next day's", window(t, "30 2 * * *", time.Hour, "Europe/Berlin"), "2026-03-28T12:00:00Z", "2026-03-30T02:30:00+02:00"},
		{"one-off before", oneOff, "2026-01-01T00:00:00Z", "2026-12-20T00:00:00Z"},
		{"one-off inside", oneOff, "2026-12-24T00:00:00Z", "2026-12-24T00:00:00Z"},
		{"one-off over", oneOff, "2027-01-04T00:00:00Z", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, _ := time.Parse(time.RFC3339, tc.at)
			got := tc.w.NextOpen(at)
			s := ""
			if !got.IsZero() {
				s = got.Format(time.RFC3339)
			}
			if s != tc.want {
				t.Errorf("NextOpen(%s) = %q, want %q", tc.at, s, tc.want)
			}
		})
	}
}

// TestWindowAgainstClock compares Contains and NextOpen over a year with
// a reference that knows no cron: every minute of real time whose wall
// clock in the zone matches the schedule is an opening. The zones have
// daylight-saving changes at 02:00, at midnight (Sao Paulo, 2018), by
// half an hour (Lord Howe) and none (Kolkata).
func TestWindowAgainstClock(t *testing.T) {
	type matcher func(time.Time) bool
	cases := []struct {
		spec  string
		zone  string
		d     time.Duration
		year  int
		match matcher
	}{
		{"0 22 * * 1-5", "Europe/Berlin", 6 * time.Hour, 2026, func(t time.Time) bool {
			return t.Minute() == 0 && t.Hour() == 22 && t.Weekday() >= time.Monday && t.Weekday() <= time.Friday
		}},
		{"30 2 * * *", "Europe/Berlin", 45 * time.Minute, 2026, func(t time.Time) bool { return t.Minute() == 30 && t.Hour() == 2 }},
		{"0 * * * *", "Europe/Berlin", 20 * time.Minute, 2026, func(t time.Time) bool { return t.Minute() == 0 }},
		{"15 1-3 * * 0", "America/New_York", 90 * time.Minute, 2026, func(t time.Time) bool {
			return t.Minute() == 15 && t.Hour() >= 1 && t.Hour() <= 3 && t.Weekday() == time.Sunday
		}},
		{"0 0 * * *", "America/Sao_Paulo", 2 * time.Hour, 2018, func(t time.Time) bool { return t.Minute() == 0 && t.Hour() == 0 }},
		{"0 2 1,15 * *", "Australia/Lord_Howe", 12 * time.Hour, 2026, func(t time.Time) bool {
			return t.Minute() == 0 && t.Hour() == 2 && (t.Day() == 1 || t.Day() == 15)
		}},
		{"0 12 * * 5", "Asia/Kolkata", 12 * time.Hour, 2026, func(t time.Time) bool {
			return t.Minute() == 0 && t.Hour() == 12 && t.Weekday() == time.Friday
		}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %s", tc.spec, tc.zone), func(t *testing.T) {
			w := window(t, tc.spec, tc.d, tc.zone)
			loc := w.Location
			start := time.Date(tc.year, 1, 1, 0, 0, 0, 0, time.UTC)
			end := start.AddDate(1, 0, 0)
			var opens []time.Time
			for m := start.Add(-tc.d - 24*time.Hour); m.Before(end.Add(40 * 24 * time.Hour)); m = m.Add(time.Minute) {
				if tc.match(m.In(loc)) {
					opens = append(opens, m)
				}
			}
			// Also the instants cron could never name: every odd second.
			for at := start; at.Before(end); at = at.Add(37*time.Minute + 13*time.Second) {
				for _, at := range []time.Time{at, at.Truncate(time.Minute)} {
					// The last opening at or before at.
					i := sort.Search(len(opens), func(i int) bool { return opens[i].After(at) })
					want := i > 0 && at.Before(opens[i-1].Add(tc.d))
					if got := w.Contains(at); got != want {
						t.Fatalf("Contains(%s) = %v, want %v (last opening %v)", at.In(loc), got, want, opens[max(i-1, 0)].In(loc))
					}
					next := w.NextOpen(at)
					switch {
					case want && !next.Equal(at):
						t.Fatalf("NextOpen(%s) = %s while open", at.In(loc), next)
					case !want && (i >= len(opens) || !next.Equal(opens[i])):
						t.Fatalf("NextOpen(%s) = %s, want %s", at.In(loc), next.In(loc), opens[i].In(loc))
					}
				}
			}
			if !slices.IsSorted(opensUnix(opens)) {
				t.Fatal("reference openings out of order")
			}
		})
	}
}

func opensUnix(ts []time.Time) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.Unix()
	}
	return out
}
