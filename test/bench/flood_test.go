package bench

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/pkg/kernlog"
)

func TestDue(t *testing.T) {
	tests := []struct {
		rate    float64
		elapsed time.Duration
		want    int64
	}{
		{10000, time.Second, 10000},
		{10000, 1500 * time.Microsecond, 15},
		{10000, 99 * time.Microsecond, 0},
		{0, time.Hour, 0},
		{10000, -time.Second, 0},
	}
	for _, tt := range tests {
		if got := Due(tt.rate, tt.elapsed); got != tt.want {
			t.Errorf("Due(%v, %v) = %d, want %d", tt.rate, tt.elapsed, got, tt.want)
		}
	}
}

// recorder is a writer that keeps every write as one record, and can fail
// the writes of some records.
type recorder struct {
	writes [][]byte
	fail   func(b []byte) bool
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.fail != nil && r.fail(b) {
		return 0, errors.New("refused")
	}
	r.writes = append(r.writes, bytes.Clone(b))
	return len(b), nil
}

// TestFloodWritesRecordsInOrderWithMarks: every record is one write, in
// order and without gaps, the marks are written once each at their place,
// a failed write is counted and not retried, and the counts add up.
func TestFloodWritesRecordsInOrderWithMarks(t *testing.T) {
	rec := &recorder{fail: func(b []byte) bool { return string(b) == "r7\n" }}
	var buf []byte
	r := Flood(context.Background(), rec, FloodConfig{
		Rate:     2000,
		Duration: 200 * time.Millisecond,
		Record: func(i int64) []byte {
			buf = append(buf[:0], 'r')
			buf = append(buf, []byte(itoa(i))...)
			return append(buf, '\n')
		},
		Marks: []Mark{{At: 50 * time.Millisecond, Record: []byte("m1\n")}, {At: 100 * time.Millisecond, Record: []byte("m2\n")}},
	})
	if r.Errors != 1 || r.FirstErr == nil {
		t.Errorf("errors %d (%v), want the one refused write", r.Errors, r.FirstErr)
	}
	var next int64
	var marks []string
	for _, w := range rec.writes {
		s := string(w)
		if strings.HasPrefix(s, "m") {
			marks = append(marks, s)
			continue
		}
		if next == 7 {
			next++ // refused
		}
		if want := "r" + itoa(next) + "\n"; s != want {
			t.Fatalf("write %q, want %q", s, want)
		}
		next++
	}
	if int64(len(rec.writes)-len(marks)) != r.Written {
		t.Errorf("Written = %d, %d records written", r.Written, len(rec.writes)-len(marks))
	}
	if strings.Join(marks, "") != "m1\nm2\n" {
		t.Errorf("marks written %q, want m1 then m2 once each", marks)
	}
	for i, m := range r.Marks {
		if m.At.IsZero() || m.Err != nil || m.At.Before(r.Start) {
			t.Errorf("mark %d: %+v", i, m)
		}
	}
	if !r.Marks[1].At.After(r.Marks[0].At) {
		t.Error("marks out of order")
	}
	// Paced: never more than were due by the end.
	if max := Due(2000, r.Elapsed); r.Written+r.Errors > max {
		t.Errorf("%d writes, more than the %d due in %s", r.Written+r.Errors, max, r.Elapsed)
	}
}

func TestFloodMarkAfterTheEndIsNotWritten(t *testing.T) {
	rec := &recorder{}
	r := Flood(context.Background(), rec, FloodConfig{
		Rate: 100, Duration: 20 * time.Millisecond, Record: func(int64) []byte { return []byte("x") },
		Marks: []Mark{{At: time.Hour, Record: []byte("late")}},
	})
	if !r.Marks[0].At.IsZero() {
		t.Errorf("a mark due after the flood was written: %+v", r.Marks[0])
	}
	for _, w := range rec.writes {
		if string(w) == "late" {
			t.Error("late mark written")
		}
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// record parses a record as written to /dev/kmsg ("<L>message\n") into
// what the agent's rules see.
func record(t *testing.T, b []byte) kernlog.Record {
	t.Helper()
	s := string(b)
	if !strings.HasPrefix(s, "<") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("record %q: want <level>message and one newline", s)
	}
	end := strings.IndexByte(s, '>')
	if end != 2 || s[1] < '0' || s[1] > '7' {
		t.Fatalf("record %q: level", s)
	}
	return kernlog.Record{Level: int(s[1] - '0'), Facility: 1, Message: s[end+1 : len(s)-1]}
}

// TestFloodRecordsAgainstShippedRules checks the flood's records against
// the rules the agent ships: benign ones raise nothing, the I/O error
// raises one disk.io_error on its device. If a rule changes so that this
// fails, the flood no longer measures what it says.
func TestFloodRecordsAgainstShippedRules(t *testing.T) {
	rs, err := detect.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(64) {
		b := BenignRecord(nil, 6, i*7919)
		if f := rs.Match(record(t, b)); len(f) != 0 {
			t.Errorf("benign record %q raised %v", b, f)
		}
	}
	b := IOErrorRecord(nil, 3, "sdzq", 12345)
	f := rs.Match(record(t, b))
	if len(f) != 1 || f[0].GetFaultClass() != "disk.io_error" || f[0].GetPart().GetName() != "sdzq" {
		t.Fatalf("%q raised %v, want one disk.io_error on sdzq", b, f)
	}
	if !strings.Contains(f[0].GetSummary(), "12345") {
		t.Errorf("summary %q lacks the sector", f[0].GetSummary())
	}
	// Appending reuses the buffer: what a flood of millions relies on.
	buf := make([]byte, 0, 256)
	if out := IOErrorRecord(buf, 6, "sda", 1); &out[0] != &buf[:1][0] {
		t.Error("IOErrorRecord did not append into the given buffer")
	}
}
