package kernlog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseKmsg(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		name string
		in   string
		want Record
		err  error
	}{
		{
			name: "plain record",
			in:   "6,3964,206764307,-;nvidia-nvswitch2: open (major=510)\n",
			want: Record{Level: 6, Facility: 0, Seq: 3964, Monotonic: 206764307 * us, HasMonotonic: true, Message: "nvidia-nvswitch2: open (major=510)"},
		},
		{
			name: "no trailing newline",
			in:   "5,0,0,-;Linux version 6.18.44",
			want: Record{Level: 5, Facility: 0, Seq: 0, HasMonotonic: true, Message: "Linux version 6.18.44"},
		},
		{
			name: "dictionary lines",
			in:   "3,1234,5678,-;pcieport 0000:00:1c.0: AER: Uncorrected\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n",
			want: Record{Level: 3, Facility: 0, Seq: 1234, Monotonic: 5678 * us, HasMonotonic: true,
				Message: "pcieport 0000:00:1c.0: AER: Uncorrected",
				Dict:    map[string]string{"SUBSYSTEM": "pci", "DEVICE": "+pci:0000:00:1c.0"}},
		},
		{
			name: "escapes in message and dictionary value",
			in:   "6,90,222437,-;\\x09Trampoline\\x0aline two \\x5c end \\xe2\\x9c\\x93\n VAL=a\\x3db\n",
			want: Record{Level: 6, Facility: 0, Seq: 90, Monotonic: 222437 * us, HasMonotonic: true,
				Message: "\tTrampoline\nline two \\ end ✓", Dict: map[string]string{"VAL": "a=b"}},
		},
		{
			name: "backslash without hex is kept",
			in:   "6,1,2,-;C:\\dir \\x4 \\xZZ \\",
			want: Record{Level: 6, Facility: 0, Seq: 1, Monotonic: 2 * us, HasMonotonic: true, Message: "C:\\dir \\x4 \\xZZ \\"},
		},
		{
			name: "invalid UTF-8 becomes U+FFFD",
			in:   "6,1,2,-;bad \\xff\\xfe byte",
			want: Record{Level: 6, Facility: 0, Seq: 1, Monotonic: 2 * us, HasMonotonic: true, Message: "bad \uFFFD byte"},
		},
		{
			name: "user space write <3>",
			in:   "11,341,640497816,-;hwheal-exp-line\n",
			want: Record{Level: 3, Facility: 1, Seq: 341, Monotonic: 640497816 * us, HasMonotonic: true, Message: "hwheal-exp-line"},
		},
		{
			name: "continuation flag c",
			in:   "4,10,20,c;first part",
			want: Record{Level: 4, Facility: 0, Seq: 10, Monotonic: 20 * us, HasMonotonic: true, Continuation: true, Message: "first part"},
		},
		{
			name: "fragment flag +",
			in:   "4,11,21,+; second part",
			want: Record{Level: 4, Facility: 0, Seq: 11, Monotonic: 21 * us, HasMonotonic: true, Continuation: true, Message: " second part"},
		},
		{
			name: "caller field and future fields ignored",
			in:   "6,339,5140900,-,caller=T1,more;NET: Registered PF_INET6 protocol family",
			want: Record{Level: 6, Facility: 0, Seq: 339, Monotonic: 5140900 * us, HasMonotonic: true, Message: "NET: Registered PF_INET6 protocol family"},
		},
		{
			name: "semicolon in message",
			in:   "6,1,1,-;a;b;c",
			want: Record{Level: 6, Facility: 0, Seq: 1, Monotonic: us, HasMonotonic: true, Message: "a;b;c"},
		},
		{
			name: "CRLF",
			in:   "6,1,1,-;crlf\r\n SUBSYSTEM=pci\r\n",
			want: Record{Level: 6, Facility: 0, Seq: 1, Monotonic: us, HasMonotonic: true, Message: "crlf", Dict: map[string]string{"SUBSYSTEM": "pci"}},
		},
		{
			name: "empty message",
			in:   "6,7,8,-;\n",
			want: Record{Level: 6, Facility: 0, Seq: 7, Monotonic: 8 * us, HasMonotonic: true, Message: ""},
		},
		{name: "empty", in: "", err: ErrEmpty},
		{name: "blank", in: " \n", err: ErrEmpty},
		{name: "no semicolon", in: "6,1,2,-", err: ErrMalformed},
		{name: "too few fields", in: "6,1,2;msg", err: ErrMalformed},
		{name: "no flags", in: "6,1,2,;msg", err: ErrMalformed},
		{name: "negative priority", in: "-6,1,2,-;msg", err: ErrMalformed},
		{name: "hex seq", in: "6,0x1,2,-;msg", err: ErrMalformed},
		{name: "spaces in header", in: "6, 1,2,-;msg", err: ErrMalformed},
		{name: "seq overflow", in: "6,18446744073709551616,2,-;msg", err: ErrMalformed},
		{name: "usec overflow", in: "6,1,9223372036854776,-;msg", err: ErrMalformed},
		{name: "line after the message is not a dictionary line", in: "6,1,2,-;msg\n6,2,3,-;next\n", err: ErrMalformed},
		{name: "too long", in: "6,1,2,-;" + strings.Repeat("x", MaxLineLen), err: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKmsg([]byte(tt.in))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseKmsg(%q) error = %v, want %v", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKmsg(%q): %v", tt.in, err)
			}
			if e := sameRecord(got, tt.want); e != nil {
				t.Errorf("ParseKmsg(%q): %v", tt.in, e)
			}
		})
	}
}

func TestParseKmsgLongestLine(t *testing.T) {
	header := "6,1,2,-;"
	in := header + strings.Repeat("x", MaxLineLen-len(header))
	r, err := ParseKmsg([]byte(in))
	if err != nil {
		t.Fatalf("line of exactly MaxLineLen: %v", err)
	}
	if len(r.Message) != MaxLineLen-len(header) {
		t.Errorf("message length %d", len(r.Message))
	}
}

func TestAppendKmsgRoundTrip(t *testing.T) {
	recs := []Record{
		{Level: 3, Facility: 0, Seq: 1, Monotonic: 1500 * time.Microsecond, HasMonotonic: true, Message: "plain"},
		{Level: 7, Facility: 1, Seq: 1 << 40, Monotonic: 3 * time.Hour, HasMonotonic: true, Message: "tab\there, newline\nthere, backslash \\x41 and ✓ and \x7f"},
		{Level: 0, Facility: 23, Seq: 5, HasMonotonic: true, Continuation: true, Message: " leading space; semicolon"},
		{Level: 6, Facility: 0, Seq: 9, HasMonotonic: true, Message: "dict", Dict: map[string]string{"SUBSYSTEM": "pci", "DEVICE": "+pci:0000:00:1c.0", "ODD": "line\nbreak \\ and = sign"}},
	}
	for _, want := range recs {
		b := AppendKmsg(nil, want)
		if bytes.Count(b, []byte{'\n'}) != 1+len(want.Dict) {
			t.Errorf("AppendKmsg wrote %q: want one line per record and dictionary entry", b)
		}
		got, err := ParseKmsg(b)
		if err != nil {
			t.Fatalf("ParseKmsg(AppendKmsg(%+v) = %q): %v", want, b, err)
		}
		if e := sameRecord(got, want); e != nil {
			t.Errorf("round trip of %q: %v", b, e)
		}
	}
}

// TestParseKmsgCorpus reads real records: gpud's kmsg captures and records
// read from /dev/kmsg of the test machine (with dictionary lines).
func TestParseKmsgCorpus(t *testing.T) {
	t.Run("gpud kmsg.1", func(t *testing.T) {
		sc := NewScanner(bytes.NewReader(readTestdata(t, "gpud_kmsg.1.log")), FormatKmsg)
		var n int
		var last uint64
		for sc.Scan() {
			r := sc.Record()
			if n == 0 && r.Seq != 3964 {
				t.Errorf("first seq %d, want 3964", r.Seq)
			}
			if n > 0 && r.Seq != last+1 {
				t.Errorf("seq %d after %d", r.Seq, last)
			}
			if r.Level != 6 || r.Facility != 0 || r.Message == "" || !r.HasMonotonic {
				t.Errorf("record %+v", r)
			}
			last = r.Seq
			n++
		}
		if n != 47 || len(sc.Skipped()) != 0 {
			t.Errorf("%d records, skipped %v; want 47, none", n, sc.Skipped())
		}
	})
	t.Run("live kmsg", func(t *testing.T) {
		sc := NewScanner(bytes.NewReader(readTestdata(t, "live_kmsg.txt")), FormatKmsg)
		bySeq := map[uint64]Record{}
		for sc.Scan() {
			bySeq[sc.Record().Seq] = sc.Record()
		}
		if len(bySeq) != 14 || len(sc.Skipped()) != 0 {
			t.Fatalf("%d records, skipped %v; want 14, none", len(bySeq), sc.Skipped())
		}
		if d := bySeq[196].Dict; d["SUBSYSTEM"] != "pci_bus" || d["DEVICE"] != "+pci_bus:0000:00" || len(d) != 2 {
			t.Errorf("seq 196 dict %v", d)
		}
		if m := bySeq[90].Message; m != "\tTrampoline variant of Tasks RCU enabled." {
			t.Errorf("seq 90 message %q", m)
		}
		if r := bySeq[341]; r.Facility != 1 || r.Level != 3 || r.Message != "hwheal-exp-line" || r.Monotonic != 640497816*time.Microsecond {
			t.Errorf("user-space record %+v", r)
		}
		if r := bySeq[0]; r.Level != 5 || r.Dict != nil || !strings.HasPrefix(r.Message, "Linux version 6.1.0") {
			t.Errorf("seq 0 %+v", r)
		}
	})
}
