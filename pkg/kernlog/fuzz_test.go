package kernlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// corpusLines returns the lines of the real files in testdata, for seeds.
func corpusLines(tb testing.TB) []string {
	var lines []string
	for _, name := range []string{
		"gpud_kmsg.1.log", "gpud_kmsg.2.peermem.log", "live_kmsg.txt", "gpud_dmesg_iso.log",
		"gpud_journal_short_iso.log", "gpud_dmesg_x_iso.log", "gpud_dmesg_ctime.log",
		"gpud_dmesg_erst.txt", "loghub_linux_2k_excerpt.log",
	} {
		for l := range strings.Lines(string(readTestdata(tb, name))) {
			lines = append(lines, l)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(readTestdata(tb, "lkml_lines.jsonl")))
	for sc.Scan() {
		var row struct{ Line string }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, row.Line)
	}
	return lines
}

var knownReasons = map[string]bool{"empty": true, "malformed": true, "not_kernel": true, "too_long": true}

// FuzzParseKmsg: no panics; every error is one of the sentinels; a record
// that parses, written back with AppendKmsg, parses to the same record.
func FuzzParseKmsg(f *testing.F) {
	for _, name := range []string{"live_kmsg.txt", "gpud_kmsg.2.peermem.log"} {
		sc := NewScanner(bytes.NewReader(readTestdata(f, name)), FormatKmsg)
		for sc.Scan() {
			f.Add(AppendKmsg(nil, sc.Record()))
		}
	}
	for _, s := range []string{
		"6,1,2,-;\\x09tab\\x0a\\xff\\x5c", "11,341,640497816,-;hwheal\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n",
		"4,10,20,c,caller=T1;x", ";", "6,1,2,-", "6,,2,-;x", "6,1,2,-;x\n\n =\n  \n", "\x00,1,2,-;x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseKmsg(data)
		if err != nil {
			if !knownReasons[SkipReason(err)] {
				t.Fatalf("error %v is none of the sentinels", err)
			}
			return
		}
		if !utf8.ValidString(r.Message) || r.Level < 0 || r.Level > 7 || r.Facility < 0 {
			t.Fatalf("record %+v", r)
		}
		for k, v := range r.Dict {
			if !utf8.ValidString(k) || !utf8.ValidString(v) || strings.ContainsAny(k, "=\n") {
				t.Fatalf("dict entry %q=%q", k, v)
			}
		}
		b := AppendKmsg(nil, r)
		r2, err := ParseKmsg(b)
		if err != nil {
			if first, _, _ := bytes.Cut(b, []byte{'\n'}); errors.Is(err, ErrTooLong) && len(first) > MaxLineLen {
				return // escaping raw control bytes made it longer
			}
			t.Fatalf("ParseKmsg(AppendKmsg(%+v) = %q): %v", r, b, err)
		}
		if e := sameRecord(r2, r); e != nil {
			t.Fatalf("round trip through %q: %v", b, e)
		}
	})
}

// FuzzAppendKmsg builds records from fields: AppendKmsg then ParseKmsg
// gives back every field.
func FuzzAppendKmsg(f *testing.F) {
	f.Add(uint8(3), uint16(1), uint64(341), uint32(640497816), false, "hwheal-kmsg-test", "SUBSYSTEM", "pci")
	f.Add(uint8(6), uint16(0), uint64(0), uint32(0), true, "\ttab\nnl\\bs ✓", "DEVICE", "+pci:0000:00:1c.0\n")
	f.Fuzz(func(t *testing.T, lvl uint8, fac uint16, seq uint64, usec uint32, cont bool, msg, key, val string) {
		if !utf8.ValidString(msg) || !utf8.ValidString(key) || !utf8.ValidString(val) || strings.ContainsAny(key, "=\n\r") || len(msg) > 1000 {
			t.Skip()
		}
		want := Record{Level: int(lvl & 7), Facility: int(fac), Seq: seq, Monotonic: time.Duration(usec) * time.Microsecond,
			HasMonotonic: true, Continuation: cont, Message: msg}
		if key != "" {
			want.Dict = map[string]string{key: val}
		}
		b := AppendKmsg(nil, want)
		got, err := ParseKmsg(b)
		if err != nil {
			t.Fatalf("ParseKmsg(%q): %v", b, err)
		}
		if e := sameRecord(got, want); e != nil {
			t.Fatalf("%q: %v", b, e)
		}
	})
}

// FuzzParseLine: no panics; errors are sentinels; an explicit format is
// the format returned; in auto mode, reading the line again as the
// detected format gives the same result; a dmesg, dmesg -T or dmesg iso
// line built around a message gives the message and time back.
func FuzzParseLine(f *testing.F) {
	for i, l := range corpusLines(f) {
		f.Add(l, uint8(i), uint32(i*7919))
	}
	for _, l := range []string{"", "<3>", "[", "[ 1.", "[ T1]", "kern  :err   : ", "Nov 23 04:43:12", "Feb 29 00:00:00 h kernel: x",
		"2026-11-23T04:43:12,1+99:99 x", "\x00\x00[ 1.0] x\r\n", "[\u00a0\u00a0 1.0] x", "kernel:",
		// printk caller ids after each kind of timestamp
		"2026-02-13T12:47:34.505714+01:00 [T449218] mce: x", "Feb 13 12:47:34 [   C3] x", "[ 1.0] [    T1] x",
		"2026-02-13T12:47:34.5+01:00 [T1]", "Feb 13 12:47:34 h kernel: [T1] [ 2.0] x"} {
		f.Add(l, uint8(0), uint32(1))
	}
	p := testParser()
	f.Fuzz(func(t *testing.T, line string, fi uint8, n uint32) {
		format := Format(int(fi) % (int(FormatPlain) + 1))
		r, got, err := p.ParseLine(line, format)
		if format != FormatAuto && got != format {
			t.Fatalf("ParseLine(%q, %v) returned format %v", line, format, got)
		}
		if err != nil {
			if !knownReasons[SkipReason(err)] {
				t.Fatalf("error %v is none of the sentinels", err)
			}
		} else if !utf8.ValidString(r.Message) {
			t.Fatalf("message %q is not UTF-8", r.Message)
		}
		if format == FormatAuto && got != FormatAuto {
			r2, got2, err2 := p.ParseLine(line, got)
			if got2 != got || SkipReason(err2) != SkipReason(err) {
				t.Fatalf("%q: auto gave %v, %v; as %v: %v, %v", line, got, err, got, got2, err2)
			}
			if err == nil {
				if e := sameRecord(r2, r); e != nil {
					t.Fatalf("%q: auto and %v differ: %v", line, got, e)
				}
			}
		}

		// Round trips with the fuzzed string as the message.
		msg := line
		if strings.ContainsAny(msg, "\r\n") || strings.HasPrefix(msg, "[") || len(msg) > 1000 {
			return
		}
		mono := time.Duration(n)*time.Microsecond + 7*time.Second
		ts := time.Date(2020+int(n%10), time.Month(1+n%12), 1+int(n%28), int(n%24), int(n%60), int(n/7%60), int(n%1000000)*1000, time.UTC)
		for _, c := range []struct {
			line string
			f    Format
			want Record
		}{
			{fmt.Sprintf("[%5d.%06d] %s", mono/time.Second, mono%time.Second/time.Microsecond, msg), FormatDmesg,
				Record{Level: -1, Facility: -1, Monotonic: mono, HasMonotonic: true}},
			{ts.Format("2006-01-02T15:04:05,000000-07:00 ") + msg, FormatDmesgISO, Record{Level: -1, Facility: -1, Time: ts}},
			{ts.Format("[Mon Jan _2 15:04:05 2006] ") + msg, FormatDmesgCtime, Record{Level: -1, Facility: -1, Time: ts.Truncate(time.Second)}},
			{fmt.Sprintf("<%d>[%5d.%06d] %s", n%192, mono/time.Second, mono%time.Second/time.Microsecond, msg), FormatDmesg,
				Record{Level: int(n % 192 & 7), Facility: int(n % 192 >> 3), Monotonic: mono, HasMonotonic: true}},
		} {
			c.want.Message = strings.ToValidUTF8(msg, "\uFFFD")
			got, _, err := p.ParseLine(c.line, c.f)
			if err != nil {
				t.Fatalf("ParseLine(%q, %v): %v", c.line, c.f, err)
			}
			if e := sameRecord(got, c.want); e != nil {
				t.Fatalf("ParseLine(%q, %v): %v", c.line, c.f, e)
			}
		}
	})
}

// FuzzScanner: no panics and no read error on any bytes; for line formats
// the Scanner agrees with a plain split into lines fed to ParseLine, which
// checks its handling of long lines, CR and NULs.
func FuzzScanner(f *testing.F) {
	for _, name := range []string{"live_kmsg.txt", "gpud_dmesg_x_iso.log", "loghub_linux_2k_excerpt.log", "gpud_dmesg_ctime.log"} {
		f.Add(readTestdata(f, name), uint8(0))
		f.Add(readTestdata(f, name), uint8(FormatPlain))
	}
	f.Add([]byte("6,1,1,-;a\n SUB=x\n\n\x00\x00 K=v\r\n6,2,2,c;b"), uint8(FormatKmsg))
	f.Add([]byte("[ 1.0] a\r\n"+strings.Repeat("x", MaxLineLen+1)+"\r\n[ 2.0] b"), uint8(FormatDmesg))
	f.Add(bytes.Repeat([]byte{0, '\n', 0xff, '\r'}, 100), uint8(0))
	p := testParser()
	f.Fuzz(func(t *testing.T, data []byte, fi uint8) {
		format := Format(int(fi) % (int(FormatPlain) + 1))
		sc := NewScanner(bytes.NewReader(data), format)
		sc.SetParser(p)
		var recs []Record
		var nums []int
		for sc.Scan() {
			r := sc.Record()
			if !utf8.ValidString(r.Message) {
				t.Fatalf("message %q is not UTF-8", r.Message)
			}
			recs = append(recs, r)
			nums = append(nums, sc.Line())
		}
		if sc.Err() != nil {
			t.Fatalf("Err() = %v", sc.Err())
		}
		lines := strings.Split(string(data), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		var total uint64
		for reason, n := range sc.Skipped() {
			if !knownReasons[reason] {
				t.Fatalf("skip reason %q", reason)
			}
			total += n
		}
		if uint64(len(recs))+total > uint64(len(lines)) {
			t.Fatalf("%d records and %d skips from %d lines", len(recs), total, len(lines))
		}
		if format == FormatKmsg {
			return
		}
		for _, l := range lines {
			if format == FormatAuto && looksKmsg(strings.TrimLeft(strings.TrimSuffix(l, "\r"), "\x00")) {
				return // dictionary lines make records span lines
			}
		}
		var want []Record
		var wantNums []int
		skipped := map[string]uint64{}
		for i, l := range lines {
			l = strings.TrimSuffix(l, "\r")
			r, _, err := p.ParseLine(l, format)
			if err != nil {
				skipped[SkipReason(err)]++
				continue
			}
			want = append(want, r)
			wantNums = append(wantNums, i+1)
		}
		if len(recs) != len(want) {
			t.Fatalf("%d records, line by line %d", len(recs), len(want))
		}
		for i := range want {
			if e := sameRecord(recs[i], want[i]); e != nil {
				t.Fatalf("record %d: %v", i, e)
			}
			if nums[i] != wantNums[i] {
				t.Fatalf("record %d on line %d, line by line %d", i, nums[i], wantNums[i])
			}
		}
		if fmt.Sprint(skipped) != fmt.Sprint(sc.Skipped()) {
			t.Fatalf("skipped %v, line by line %v", sc.Skipped(), skipped)
		}
	})
}
