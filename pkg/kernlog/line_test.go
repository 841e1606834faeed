package kernlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	utc := func(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	none := func(r Record) Record { r.Level, r.Facility = -1, -1; return r }
	tests := []struct {
		name    string
		in      string
		f       Format
		want    Record
		wantFmt Format
		err     error
	}{
		// dmesg
		{name: "dmesg", in: "[   12.345678] usb 1-2: new device", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 12345678 * time.Microsecond, HasMonotonic: true, Message: "usb 1-2: new device"})},
		{name: "dmesg empty message", in: "[    0.000000] ", wantFmt: FormatDmesg,
			want: none(Record{HasMonotonic: true})},
		{name: "dmesg big uptime", in: "[4164487.114519] nvme nvme0: NVME-FC{0}: reset", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 4164487114519 * time.Microsecond, HasMonotonic: true, Message: "nvme nvme0: NVME-FC{0}: reset"})},
		{name: "dmesg millis", in: "[  12.345] x", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: sec(12.345), HasMonotonic: true, Message: "x"})},
		{name: "dmesg caller", in: "[ 1411.421320][ T2808] pcieport 0000:5f:00.0: DPC: containment event", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 1411421320 * time.Microsecond, HasMonotonic: true, Message: "pcieport 0000:5f:00.0: DPC: containment event"})},
		{name: "dmesg cpu caller", in: "[ 1419.551435][    C1] {57}[Hardware Error]: event severity: recoverable", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 1419551435 * time.Microsecond, HasMonotonic: true, Message: "{57}[Hardware Error]: event severity: recoverable"})},
		{name: "caller only", in: "[   T10] mce: [Hardware Error]: Machine check events logged", wantFmt: FormatDmesg,
			want: none(Record{Message: "mce: [Hardware Error]: Machine check events logged"})},
		{name: "dmesg -r", in: "<3>[  201.650687] sysrq: SysRq : Trigger a crash", wantFmt: FormatDmesg,
			want: Record{Level: 3, Facility: 0, Monotonic: 201650687 * time.Microsecond, HasMonotonic: true, Message: "sysrq: SysRq : Trigger a crash"}},
		{name: "dmesg -r user facility", in: "<14>[    1.500000] hello", wantFmt: FormatDmesg,
			want: Record{Level: 6, Facility: 1, Monotonic: sec(1.5), HasMonotonic: true, Message: "hello"}},
		{name: "dmesg -x", in: "kern  :err   : [    1.200000] ata1: COMRESET failed", wantFmt: FormatDmesg,
			want: Record{Level: 3, Facility: 0, Monotonic: sec(1.2), HasMonotonic: true, Message: "ata1: COMRESET failed"}},
		{name: "NBSP in timestamp", in: "[\u00a0 163.112095] nvme nvme0: frozen state error detected", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 163112095 * time.Microsecond, HasMonotonic: true, Message: "nvme nvme0: frozen state error detected"})},
		{name: "message indentation kept", in: "[    0.000000]  BIOS-e820: [mem 0x0-0x9fbff] usable", wantFmt: FormatDmesg,
			want: none(Record{HasMonotonic: true, Message: " BIOS-e820: [mem 0x0-0x9fbff] usable"})},
		{name: "dmesg whose 2nd word ends in colon is not journal", in: "[  372.573757] pcieport 0000:00:1c.0: pciehp: Slot(8): Link Down", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 372573757 * time.Microsecond, HasMonotonic: true, Message: "pcieport 0000:00:1c.0: pciehp: Slot(8): Link Down"})},
		{name: "dmesg explicit", in: "[ 5.000001] host kernel: looks like journal", f: FormatDmesg, wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 5000001 * time.Microsecond, HasMonotonic: true, Message: "host kernel: looks like journal"})},

		// dmesg -T
		{name: "ctime", in: "[Mon Nov 23 04:43:12 2026] NVRM: Xid (PCI:0000:9b:00): 119", wantFmt: FormatDmesgCtime,
			want: none(Record{Time: utc(2026, 11, 23, 4, 43, 12, 0), Message: "NVRM: Xid (PCI:0000:9b:00): 119"})},
		{name: "ctime padded day, localised weekday", in: "[Fr Jan  5 11:45:49 2024] nvme nvme0: 15/0/0 default/read/poll queues", wantFmt: FormatDmesgCtime,
			want: none(Record{Time: utc(2024, 1, 5, 11, 45, 49, 0), Message: "nvme nvme0: 15/0/0 default/read/poll queues"})},
		{name: "ctime leap day", in: "[Thu Feb 29 13:47:22 2024] pcieport 0000:00:06.0: AER", f: FormatDmesgCtime, wantFmt: FormatDmesgCtime,
			want: none(Record{Time: utc(2024, 2, 29, 13, 47, 22, 0), Message: "pcieport 0000:00:06.0: AER"})},
		{name: "ctime with -x", in: "kern  :warn  : [Sun Feb 23 16:24:18 2025] NVRM: GPU4", wantFmt: FormatDmesgCtime,
			want: Record{Level: 4, Facility: 0, Time: utc(2025, 2, 23, 16, 24, 18, 0), Message: "NVRM: GPU4"}},
		{name: "ctime impossible date is plain in auto", in: "[Mon Feb 30 04:43:12 2026] x", wantFmt: FormatPlain,
			want: none(Record{Message: "[Mon Feb 30 04:43:12 2026] x"})},
		{name: "ctime impossible date explicit", in: "[Mon Feb 30 04:43:12 2026] x", f: FormatDmesgCtime, err: ErrMalformed},

		// dmesg --time-format iso
		{name: "iso", in: "2024-11-15T05:39:15,491363+00:00 nvidia-peermem nv_get_p2p_free_callback:127 ERROR", wantFmt: FormatDmesgISO,
			want: none(Record{Time: utc(2024, 11, 15, 5, 39, 15, 491363000), Message: "nvidia-peermem nv_get_p2p_free_callback:127 ERROR"})},
		{name: "iso offset", in: "2024-11-15T05:39:15,491363-05:30 x", wantFmt: FormatDmesgISO,
			want: none(Record{Time: utc(2024, 11, 15, 11, 9, 15, 491363000), Message: "x"})},
		{name: "iso with -x", in: "kern  :warn  : 2025-01-21T02:21:33,498559+00:00 NVRM: Xid (PCI:0000:38:00): 13", wantFmt: FormatDmesgISO,
			want: Record{Level: 4, Facility: 0, Time: utc(2025, 1, 21, 2, 21, 33, 498559000), Message: "NVRM: Xid (PCI:0000:38:00): 13"}},
		{name: "iso with -x daemon facility", in: "daemon:info  : 2025-01-17T15:37:17,129413+00:00 systemd[1]: Inserted module 'autofs4'", wantFmt: FormatDmesgISO,
			want: Record{Level: 6, Facility: 3, Time: utc(2025, 1, 17, 15, 37, 17, 129413000), Message: "systemd[1]: Inserted module 'autofs4'"}},
		{name: "iso month 13", in: "2024-13-15T05:39:15,491363+00:00 x", f: FormatDmesgISO, err: ErrMalformed},

		// syslog and journal
		{name: "rfc3164 with kernel timestamp", in: "Nov 23 04:43:12 host kernel: [   12.345000] msg", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 11, 23, 4, 43, 12, 0), Monotonic: sec(12.345), HasMonotonic: true, Message: "msg"})},
		{name: "rfc3164 without host", in: "Dec 10 18:58:49 kernel: ata1.00: exception Emask 0x0", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2025, 12, 10, 18, 58, 49, 0), Message: "ata1.00: exception Emask 0x0"})},
		{name: "rfc3164 padded day", in: "Jan  4 22:34:53 begin kernel: [ 7165.207562] pcieport 0000:00:1d.0: AER", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 1, 4, 22, 34, 53, 0), Monotonic: 7165207562 * time.Microsecond, HasMonotonic: true, Message: "pcieport 0000:00:1d.0: AER"})},
		{name: "rfc3164 NBSP", in: "Jan\u00a0 8 14:50:16 x299-desktop kernel: nvme nvme0: Does", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 1, 8, 14, 50, 16, 0), Message: "nvme nvme0: Does"})},
		{name: "journal short-precise", in: "Dec 17 07:41:00.384 test01 kernel: ata7.00: exception", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2025, 12, 17, 7, 41, 0, 384000000), Message: "ata7.00: exception"})},
		{name: "syslog indentation kept", in: "Jul 27 14:41:57 combo kernel:  BIOS-e820: 0000000000000000 - 00000000000a0000 (usable)", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 7, 27, 14, 41, 57, 0), Message: " BIOS-e820: 0000000000000000 - 00000000000a0000 (usable)"})},
		{name: "rfc3339", in: "2026-11-23T04:43:12.123456+00:00 host kernel: msg", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 11, 23, 4, 43, 12, 123456000), Message: "msg"})},
		{name: "journal short-iso", in: "2025-01-02T15:20:12+0800 jmsph-pro-a800-77-123 kernel: docker0: port 1(vetha17b2cc) entered disabled state", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2025, 1, 2, 7, 20, 12, 0), Message: "docker0: port 1(vetha17b2cc) entered disabled state"})},
		{name: "rfc3339 without host", in: "2025-12-22T09:10:52+11:00 kernel: ata2.00: exception", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2025, 12, 21, 22, 10, 52, 0), Message: "ata2.00: exception"})},
		{name: "rfc3339 with caller", in: "2025-10-07T11:51:57.848497-07:00 xps-9320 kernel: [T24615] pcieport 0000:41:03.0: pciehp: Slot(3-1): Link Down", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2025, 10, 7, 18, 51, 57, 848497000), Message: "pcieport 0000:41:03.0: pciehp: Slot(3-1): Link Down"})},
		// CONFIG_PRINTK_CALLER ids after other timestamps; the first is
		// the lkml mce line (linux-edac, lore.kernel.org/r/cb484717e2600ae729b55ccfc92e807d88e5ab31.camel@web.de)
		// that used to read as syslog from a host "[T449218]".
		{name: "rfc3339 then caller", in: "2026-02-13T12:47:34.505714+01:00 [T449218] mce: [Hardware Error]: Machine check events logged", wantFmt: FormatDmesgISO,
			want: none(Record{Time: utc(2026, 2, 13, 11, 47, 34, 505714000), Message: "mce: [Hardware Error]: Machine check events logged"})},
		{name: "rfc3339 then cpu caller", in: "2026-02-13T12:47:34.123456+00:00 [   C3] mce: [Hardware Error]: CPU 3: Machine Check: 0 Bank 5", wantFmt: FormatDmesgISO,
			want: none(Record{Time: utc(2026, 2, 13, 12, 47, 34, 123456000), Message: "mce: [Hardware Error]: CPU 3: Machine Check: 0 Bank 5"})},
		{name: "iso comma then caller", in: "2026-02-13T12:47:34,123456+00:00 [T449218] mce: x", wantFmt: FormatDmesgISO,
			want: none(Record{Time: utc(2026, 2, 13, 12, 47, 34, 123456000), Message: "mce: x"})},
		{name: "rfc3339 then caller read as syslog", in: "2026-02-13T12:47:34.505714+01:00 [T449218] mce: x", f: FormatSyslog, wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 2, 13, 11, 47, 34, 505714000), Message: "mce: x"})},
		{name: "rfc3164 then caller", in: "Feb 13 12:47:34 [T449218] mce: [Hardware Error]: Machine check events logged", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 2, 13, 12, 47, 34, 0), Message: "mce: [Hardware Error]: Machine check events logged"})},
		{name: "rfc3164 kernel tag, dmesg time and caller", in: "Feb 13 12:47:34 lisa kernel: [   12.345678] [    T1] mce: x", wantFmt: FormatSyslog,
			want: none(Record{Time: utc(2026, 2, 13, 12, 47, 34, 0), Monotonic: 12345678 * time.Microsecond, HasMonotonic: true, Message: "mce: x"})},
		{name: "dmesg, space, caller", in: "[   12.345678] [    T1] mce: [Hardware Error]: Machine check events logged", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: 12345678 * time.Microsecond, HasMonotonic: true, Message: "mce: [Hardware Error]: Machine check events logged"})},
		{name: "ctime then caller", in: "[Mon Nov 23 04:43:12 2026] [  C12] mce: x", wantFmt: FormatDmesgCtime,
			want: none(Record{Time: utc(2026, 11, 23, 4, 43, 12, 0), Message: "mce: x"})},
		{name: "rfc3339 host named like a word stays syslog", in: "2026-02-13T12:47:34.505714+01:00 T449218 mce: x", wantFmt: FormatSyslog, err: ErrNotKernel},
		{name: "journal short-monotonic", in: "[   12.345678] host kernel: msg", wantFmt: FormatSyslog,
			want: none(Record{Monotonic: 12345678 * time.Microsecond, HasMonotonic: true, Message: "msg"})},
		{name: "bare kernel tag", in: "kernel: ata2: EH complete", wantFmt: FormatSyslog,
			want: none(Record{Message: "ata2: EH complete"})},
		{name: "syslog with priority", in: "<4>Nov 23 04:43:12 host kernel: warn", wantFmt: FormatSyslog,
			want: Record{Level: 4, Facility: 0, Time: utc(2026, 11, 23, 4, 43, 12, 0), Message: "warn"}},
		{name: "sshd", in: "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0", wantFmt: FormatSyslog, err: ErrNotKernel},
		{name: "program without a readable tag", in: "Jul 27 14:41:57 combo syslogd 1.4.1: restart.", wantFmt: FormatSyslog, err: ErrNotKernel},
		{name: "rfc3339 from systemd", in: "2026-11-23T04:43:12.123456+00:00 host systemd[1]: Started x", wantFmt: FormatSyslog, err: ErrNotKernel},
		{name: "journal short-monotonic from systemd", in: "[    5.123456] host systemd[1]: Started x", wantFmt: FormatSyslog, err: ErrNotKernel},
		{name: "syslog timestamp only", in: "Nov 23 04:43:12 host", wantFmt: FormatSyslog, err: ErrMalformed},
		{name: "syslog explicit on plain", in: "nvme nvme0: reset", f: FormatSyslog, wantFmt: FormatSyslog, err: ErrMalformed},

		// plain
		{name: "plain", in: "nvme nvme0: controller is down; will reset: CSTS=0xffffffff", wantFmt: FormatPlain,
			want: none(Record{Message: "nvme nvme0: controller is down; will reset: CSTS=0xffffffff"})},
		{name: "plain with priority", in: "<6>ata1: SATA link up 6.0 Gbps", wantFmt: FormatPlain,
			want: Record{Level: 6, Facility: 0, Message: "ata1: SATA link up 6.0 Gbps"}},
		{name: "plain explicit keeps timestamps", in: "[ 1.0] x", f: FormatPlain, wantFmt: FormatPlain,
			want: none(Record{Message: "[ 1.0] x"})},
		{name: "leading NULs and CRLF", in: "\x00\x00\x00[    1.000000] after crash\r\n", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: time.Second, HasMonotonic: true, Message: "after crash"})},
		{name: "invalid UTF-8", in: "[    1.000000] bad \xff\xfe byte", wantFmt: FormatDmesg,
			want: none(Record{Monotonic: time.Second, HasMonotonic: true, Message: "bad \uFFFD byte"})},
		{name: "priority only", in: "<6>", err: ErrEmpty},
		{name: "blank", in: " \t \r\n", err: ErrEmpty},
		{name: "NULs only", in: "\x00\x00", err: ErrEmpty},

		// kmsg through ParseLine
		{name: "kmsg", in: "6,339,5140900,-,caller=T1;NET: Registered PF_INET6 protocol family\n", wantFmt: FormatKmsg,
			want: Record{Level: 6, Facility: 0, Seq: 339, Monotonic: 5140900 * time.Microsecond, HasMonotonic: true, Message: "NET: Registered PF_INET6 protocol family"}},
		{name: "kmsg explicit on dmesg", in: "[ 1.0] x", f: FormatKmsg, wantFmt: FormatKmsg, err: ErrMalformed},

		// limits
		{name: "longest line", in: "[    1.000000] " + strings.Repeat("x", MaxLineLen-15), wantFmt: FormatDmesg,
			want: none(Record{Monotonic: time.Second, HasMonotonic: true, Message: strings.Repeat("x", MaxLineLen-15)})},
		{name: "too long", in: "[    1.000000] " + strings.Repeat("x", MaxLineLen-14), err: ErrTooLong},
	}
	p := testParser()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f, err := p.ParseLine(tt.in, tt.f)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseLine(%q, %v) error = %v, want %v", tt.in, tt.f, err, tt.err)
				}
				if tt.wantFmt != FormatAuto && f != tt.wantFmt {
					t.Errorf("format %v, want %v", f, tt.wantFmt)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q, %v): %v", tt.in, tt.f, err)
			}
			if f != tt.wantFmt {
				t.Errorf("format %v, want %v", f, tt.wantFmt)
			}
			if e := sameRecord(got, tt.want); e != nil {
				t.Errorf("ParseLine(%q, %v): %v", tt.in, tt.f, e)
			}
		})
	}
}

func TestParseLineUnknownFormat(t *testing.T) {
	_, _, err := ParseLine("x", Format(99))
	if err == nil || SkipReason(err) != "other" {
		t.Errorf("err = %v (%s), want an error of reason other", err, SkipReason(err))
	}
}

// TestSyslogYear checks the year placed on RFC 3164 timestamps and that
// Location applies to local timestamps.
func TestSyslogYear(t *testing.T) {
	newYear := time.Date(2027, time.January, 1, 0, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		in   string
		want time.Time
	}{
		{"december line read on new year", newYear, "Dec 31 23:59:59 h kernel: x", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"same day", newYear, "Jan  1 00:10:00 h kernel: x", time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC)},
		{"within a day ahead", newYear, "Jan  2 00:10:00 h kernel: x", time.Date(2027, 1, 2, 0, 10, 0, 0, time.UTC)},
		{"more than a day ahead", newYear, "Jan  3 00:10:00 h kernel: x", time.Date(2026, 1, 3, 0, 10, 0, 0, time.UTC)},
		{"leap day goes to the last leap year", time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), "Feb 29 12:00:00 h kernel: x", time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Parser{Now: func() time.Time { return tt.now }, Location: time.UTC}
			r, _, err := p.ParseLine(tt.in, FormatSyslog)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Time.Equal(tt.want) {
				t.Errorf("time %v, want %v", r.Time, tt.want)
			}
		})
	}
	t.Run("location", func(t *testing.T) {
		zone := time.FixedZone("UTC+2", 2*3600)
		p := Parser{Now: func() time.Time { return testNow }, Location: zone}
		for _, in := range []string{"Nov 23 04:43:12 h kernel: x", "[Mon Nov 23 04:43:12 2026] x"} {
			r, _, err := p.ParseLine(in, FormatAuto)
			if err != nil {
				t.Fatal(err)
			}
			if want := time.Date(2026, 11, 23, 2, 43, 12, 0, time.UTC); !r.Time.Equal(want) {
				t.Errorf("%q: time %v, want %v", in, r.Time, want)
			}
		}
	})
}

func TestFormatNames(t *testing.T) {
	for f := FormatAuto; f <= FormatPlain; f++ {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	if _, err := ParseFormat("journal"); err == nil {
		t.Error("ParseFormat(journal) accepted an unknown name")
	}
	if s := Format(42).String(); s != "Format(42)" {
		t.Errorf("String of an unknown format = %q", s)
	}
}

func TestSkipReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrEmpty, "empty"},
		{ErrMalformed, "malformed"},
		{ErrNotKernel, "not_kernel"},
		{ErrTooLong, "too_long"},
		{errors.New("boom"), "other"},
	}
	for _, tt := range tests {
		if got := SkipReason(tt.err); got != tt.want {
			t.Errorf("SkipReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	// The parsers wrap the sentinels with detail.
	_, _, err := ParseLine("Jun 14 15:16:01 combo sshd[1]: x", FormatAuto)
	if got := SkipReason(err); got != "not_kernel" || err.Error() == ErrNotKernel.Error() {
		t.Errorf("error %q: reason %q, want a wrapped not_kernel", err, got)
	}
}

// TestParseLineCorpus reads real files in every format and checks what was
// detected against what the files are.
func TestParseLineCorpus(t *testing.T) {
	tests := []struct {
		file    string
		format  Format
		records int
		check   func(t *testing.T, r Record)
	}{
		{"gpud_dmesg_iso.log", FormatDmesgISO, 8, func(t *testing.T, r Record) {
			if r.Time.Year() != 2024 || r.Time.Nanosecond() == 0 || !strings.HasPrefix(r.Message, "nvidia-peermem ") {
				t.Errorf("record %+v", r)
			}
		}},
		{"gpud_dmesg_x_iso.log", FormatDmesgISO, 18, func(t *testing.T, r Record) {
			if r.Level < 3 || r.Level > 7 || r.Facility != 0 && r.Facility != 3 || r.Time.Year() != 2025 {
				t.Errorf("record %+v", r)
			}
			if (r.Facility == 3) != strings.HasPrefix(r.Message, "systemd[1]: ") {
				t.Errorf("facility %d for %q", r.Facility, r.Message)
			}
			if (r.Level == 3) != strings.HasPrefix(r.Message, "ACPI Error: ") {
				t.Errorf("level %d for %q", r.Level, r.Message)
			}
		}},
		{"gpud_dmesg_ctime.log", FormatDmesgCtime, 12, func(t *testing.T, r Record) {
			if !r.Time.Equal(time.Date(2025, 2, 23, 16, 24, 18, 0, time.UTC)) || !strings.HasPrefix(r.Message, "NVRM: ") {
				t.Errorf("record %+v", r)
			}
		}},
		{"gpud_dmesg_erst.txt", FormatDmesg, 16, func(t *testing.T, r Record) {
			if r.Facility != 0 || r.Level < 0 || !r.HasMonotonic || r.Monotonic < 201*time.Second || r.Monotonic > 202*time.Second {
				t.Errorf("record %+v", r)
			}
		}},
		{"gpud_journal_short_iso.log", FormatSyslog, 11, func(t *testing.T, r Record) {
			if _, off := r.Time.Zone(); off != 8*3600 || strings.Contains(r.Message, "kernel:") {
				t.Errorf("record %+v", r)
			}
		}},
		{"gpud_kmsg.2.peermem.log", FormatKmsg, 8, func(t *testing.T, r Record) {
			if r.Seq != 3973 || r.Level != 6 {
				t.Errorf("record %+v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sc := NewScanner(bytes.NewReader(readTestdata(t, tt.file)), FormatAuto)
			sc.SetParser(testParser())
			n := 0
			for sc.Scan() {
				if sc.Format() != tt.format {
					t.Errorf("record %d read as %v, want %v", n, sc.Format(), tt.format)
				}
				tt.check(t, sc.Record())
				n++
			}
			if n != tt.records || len(sc.Skipped()) != 0 {
				t.Errorf("%d records, skipped %v; want %d, none", n, sc.Skipped(), tt.records)
			}
			// Read as the detected format, the file gives the same records.
			auto := NewScanner(bytes.NewReader(readTestdata(t, tt.file)), FormatAuto)
			explicit := NewScanner(bytes.NewReader(readTestdata(t, tt.file)), tt.format)
			auto.SetParser(testParser())
			explicit.SetParser(testParser())
			for auto.Scan() {
				if !explicit.Scan() {
					t.Fatal("explicit format read fewer records")
				}
				if e := sameRecord(explicit.Record(), auto.Record()); e != nil {
					t.Errorf("explicit %v vs auto: %v", tt.format, e)
				}
			}
		})
	}

	t.Run("loghub Linux syslog", func(t *testing.T) {
		data := readTestdata(t, "loghub_linux_2k_excerpt.log")
		var kernelLines, lines int
		for l := range strings.Lines(string(data)) {
			lines++
			if strings.Contains(l, " combo kernel: ") {
				kernelLines++
			}
		}
		sc := NewScanner(bytes.NewReader(data), FormatAuto)
		sc.SetParser(testParser())
		n := 0
		for sc.Scan() {
			r := sc.Record()
			if sc.Format() != FormatSyslog || r.Time.Month() != time.July || r.Time.Year() != 2026 {
				t.Errorf("record %+v as %v", r, sc.Format())
			}
			n++
		}
		if n != kernelLines || sc.Skipped()["not_kernel"] != uint64(lines-kernelLines) {
			t.Errorf("%d records, skipped %v; want %d records and %d not_kernel", n, sc.Skipped(), kernelLines, lines-kernelLines)
		}
	})

	t.Run("lkml quoted lines", func(t *testing.T) {
		sc := bufio.NewScanner(bytes.NewReader(readTestdata(t, "lkml_lines.jsonl")))
		sc.Buffer(nil, 1<<20)
		p := testParser()
		n := 0
		for sc.Scan() {
			var row struct {
				Line         string `json:"line"`
				HasTimestamp bool   `json:"has_timestamp"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatal(err)
			}
			n++
			r, f, err := p.ParseLine(row.Line, FormatAuto)
			if err != nil {
				t.Errorf("%q: %v", row.Line, err)
				continue
			}
			if r.Message == "" {
				t.Errorf("%q: empty message", row.Line)
			}
			// The archive's own regex saw a timestamp: we must read one.
			if row.HasTimestamp && (f == FormatPlain || !r.HasMonotonic && r.Time.IsZero()) {
				t.Errorf("%q: read as %v without a time", row.Line, f)
			}
			if !row.HasTimestamp && (r.HasMonotonic || !r.Time.IsZero()) {
				t.Errorf("%q: read a time %v/%v from a line without one", row.Line, r.Monotonic, r.Time)
			}
		}
		if n < 200 {
			t.Errorf("only %d rows", n)
		}
	})
}
