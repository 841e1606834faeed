package kernlog

import (
	"fmt"
	"maps"
	"os"
	"testing"
	"time"
)

// testParser fixes the clock and zone so that syslog years and local times
// do not depend on when and where the tests run.
var testNow = time.Date(2026, time.November, 23, 12, 0, 0, 0, time.UTC)

func testParser() Parser {
	return Parser{Now: func() time.Time { return testNow }, Location: time.UTC}
}

// sameRecord compares records field by field; times compare as instants
// because every parse builds its own fixed zone.
func sameRecord(a, b Record) error {
	switch {
	case a.Level != b.Level:
		return fmt.Errorf("Level %d, want %d", a.Level, b.Level)
	case a.Facility != b.Facility:
		return fmt.Errorf("Facility %d, want %d", a.Facility, b.Facility)
	case a.Seq != b.Seq:
		return fmt.Errorf("Seq %d, want %d", a.Seq, b.Seq)
	case a.Monotonic != b.Monotonic || a.HasMonotonic != b.HasMonotonic:
		return fmt.Errorf("Monotonic %v/%v, want %v/%v", a.Monotonic, a.HasMonotonic, b.Monotonic, b.HasMonotonic)
	case !a.Time.Equal(b.Time):
		return fmt.Errorf("Time %v, want %v", a.Time, b.Time)
	case a.Continuation != b.Continuation:
		return fmt.Errorf("Continuation %v, want %v", a.Continuation, b.Continuation)
	case a.Message != b.Message:
		return fmt.Errorf("Message %q, want %q", a.Message, b.Message)
	case len(a.Dict) != len(b.Dict) || !maps.Equal(a.Dict, b.Dict):
		return fmt.Errorf("Dict %v, want %v", a.Dict, b.Dict)
	}
	return nil
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
