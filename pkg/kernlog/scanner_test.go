package kernlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

type scanned struct {
	recs    []Record
	formats []Format
	lines   []int
	skipped map[string]uint64
	err     error
}

func scanAll(r io.Reader, f Format) scanned {
	sc := NewScanner(r, f)
	sc.SetParser(testParser())
	var out scanned
	for sc.Scan() {
		out.recs = append(out.recs, sc.Record())
		out.formats = append(out.formats, sc.Format())
		out.lines = append(out.lines, sc.Line())
	}
	out.skipped, out.err = sc.Skipped(), sc.Err()
	return out
}

func TestScannerKmsgDictionary(t *testing.T) {
	in := " ORPHAN=dict line before any record\n" +
		"6,1,100,-;first\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n" +
		"6,2,200,c;cont start\n" +
		"6,3,201,+;cont more\n SUBSYSTEM=net\n" +
		"x,4,300,-;bad header\n SUBSYSTEM=dropped-with-it\n DEVICE=+dropped\n" +
		"4,5,400,-;last\n"
	got := scanAll(strings.NewReader(in), FormatKmsg)
	want := []Record{
		{Level: 6, Seq: 1, Monotonic: 100 * time.Microsecond, HasMonotonic: true, Message: "first", Dict: map[string]string{"SUBSYSTEM": "pci", "DEVICE": "+pci:0000:00:1c.0"}},
		{Level: 6, Seq: 2, Monotonic: 200 * time.Microsecond, HasMonotonic: true, Continuation: true, Message: "cont start"},
		{Level: 6, Seq: 3, Monotonic: 201 * time.Microsecond, HasMonotonic: true, Continuation: true, Message: "cont more", Dict: map[string]string{"SUBSYSTEM": "net"}},
		{Level: 4, Seq: 5, Monotonic: 400 * time.Microsecond, HasMonotonic: true, Message: "last"},
	}
	if len(got.recs) != len(want) {
		t.Fatalf("got %d records %+v, want %d", len(got.recs), got.recs, len(want))
	}
	for i := range want {
		if e := sameRecord(got.recs[i], want[i]); e != nil {
			t.Errorf("record %d: %v", i, e)
		}
	}
	if fmt.Sprint(got.lines) != "[2 5 6 11]" {
		t.Errorf("records start on lines %v, want [2 5 6 11]", got.lines)
	}
	// The orphan dictionary line and the bad record (with its dictionary)
	// are one skip each.
	if !maps.Equal(got.skipped, map[string]uint64{"malformed": 2}) {
		t.Errorf("skipped %v, want malformed: 2", got.skipped)
	}
}

func TestScannerAutoMixed(t *testing.T) {
	in := "6,1,100,-;kmsg record\n SUBSYSTEM=pci\n" +
		"[    1.000000] dmesg line\n" +
		"   indented plain line, not a dictionary\n" +
		"Nov 23 04:43:12 host kernel: syslog line\n" +
		"Nov 23 04:43:12 host sshd[1]: not kernel\n" +
		"\n" +
		"2026-11-23T04:43:12,000001+00:00 iso line\r\n" +
		"[Mon Nov 23 04:43:12 2026] ctime line"
	got := scanAll(strings.NewReader(in), FormatAuto)
	wantFmt := []Format{FormatKmsg, FormatDmesg, FormatPlain, FormatSyslog, FormatDmesgISO, FormatDmesgCtime}
	wantMsg := []string{"kmsg record", "dmesg line", "   indented plain line, not a dictionary", "syslog line", "iso line", "ctime line"}
	if len(got.recs) != len(wantFmt) {
		t.Fatalf("got %d records %+v", len(got.recs), got.recs)
	}
	for i := range wantFmt {
		if got.formats[i] != wantFmt[i] || got.recs[i].Message != wantMsg[i] {
			t.Errorf("record %d: %v %q, want %v %q", i, got.formats[i], got.recs[i].Message, wantFmt[i], wantMsg[i])
		}
	}
	if got.recs[0].Dict["SUBSYSTEM"] != "pci" {
		t.Errorf("kmsg record lost its dictionary: %+v", got.recs[0])
	}
	if !maps.Equal(got.skipped, map[string]uint64{"not_kernel": 1, "empty": 1}) {
		t.Errorf("skipped %v", got.skipped)
	}
}

// TestScannerLongLines feeds lines far over MaxLineLen: each is skipped and
// counted, and scanning resumes at the next line (bufio.Scanner would stop
// with ErrTooLong).
func TestScannerLongLines(t *testing.T) {
	huge := strings.Repeat("A", 100<<10)
	for _, f := range []Format{FormatKmsg, FormatAuto} {
		t.Run(f.String(), func(t *testing.T) {
			in := "6,1,1,-;one\n" +
				"6,2,2,-;" + huge + "\n" + // record too long
				"6,3,3,-;three\n" +
				" DICT=" + huge + "\n" + // dictionary line too long: dropped, record kept
				" KEPT=yes\n" +
				"6,4,4,-;" + strings.Repeat("b", MaxLineLen-8) + "\r\n" + // exactly MaxLineLen with CRLF
				"6,5,5,-;" + strings.Repeat("c", MaxLineLen-7) + "\n" + // one byte over
				"6,6,6,-;six\n" +
				huge // unterminated at EOF
			got := scanAll(strings.NewReader(in), f)
			var seqs []uint64
			for _, r := range got.recs {
				seqs = append(seqs, r.Seq)
			}
			if fmt.Sprint(seqs) != "[1 3 4 6]" {
				t.Errorf("seqs %v, want [1 3 4 6]", seqs)
			}
			if fmt.Sprint(got.lines) != "[1 3 6 8]" {
				t.Errorf("records start on lines %v, want [1 3 6 8]", got.lines)
			}
			if len(got.recs) == 4 && (got.recs[1].Dict["KEPT"] != "yes" || len(got.recs[1].Dict) != 1) {
				t.Errorf("record 3 dict %v", got.recs[1].Dict)
			}
			if !maps.Equal(got.skipped, map[string]uint64{"too_long": 4}) {
				t.Errorf("skipped %v, want too_long: 4", got.skipped)
			}
			if got.err != nil {
				t.Errorf("Err() = %v", got.err)
			}
		})
	}
}

// TestScannerGarbage interleaves good lines with random bytes, NULs and CR:
// every good line comes through in order and every bad one is counted.
func TestScannerGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var in bytes.Buffer
	const good = 300
	garbage := 0
	for i := range good {
		fmt.Fprintf(&in, "[%5d.%06d] good %d\r\n", i, i, i)
		for range rng.IntN(3) {
			n := rng.IntN(200)
			for range n {
				c := byte(rng.IntN(256))
				if c == '\n' {
					c = 0
				}
				in.WriteByte(c)
			}
			in.WriteByte('\n')
			garbage++
		}
	}
	got := scanAll(bytes.NewReader(in.Bytes()), FormatDmesg)
	if len(got.recs) != good {
		t.Fatalf("%d records, want %d", len(got.recs), good)
	}
	for i, r := range got.recs {
		if r.Message != fmt.Sprintf("good %d", i) || r.Monotonic != time.Duration(i)*time.Second+time.Duration(i)*time.Microsecond {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	var skipped uint64
	for _, n := range got.skipped {
		skipped += n
	}
	if skipped != uint64(garbage) {
		t.Errorf("skipped %v (%d), want %d garbage lines", got.skipped, skipped, garbage)
	}
}

func TestScannerReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader("[    1.000000] a\n[    2.000000] b\n"), iotest.ErrReader(boom))
	got := scanAll(r, FormatAuto)
	if len(got.recs) != 2 || !errors.Is(got.err, boom) {
		t.Errorf("records %d, Err() = %v; want 2 and %v", len(got.recs), got.err, boom)
	}
	// A reader that returns one byte at a time changes nothing.
	in := readTestdata(t, "live_kmsg.txt")
	whole := scanAll(bytes.NewReader(in), FormatKmsg)
	slow := scanAll(iotest.OneByteReader(bytes.NewReader(in)), FormatKmsg)
	if len(whole.recs) != len(slow.recs) {
		t.Fatalf("one-byte reader: %d records, want %d", len(slow.recs), len(whole.recs))
	}
	for i := range whole.recs {
		if e := sameRecord(slow.recs[i], whole.recs[i]); e != nil {
			t.Errorf("record %d: %v", i, e)
		}
	}
}
