package kernlog

import "fmt"

// Format is a kernel log text format.
type Format int

// The formats ParseLine and Scanner read. FormatAuto detects the format of
// every line on its own, so a file that mixes formats (a mail quoting dmesg
// and syslog) still parses.
const (
	// FormatAuto detects the format line by line.
	FormatAuto Format = iota
	// FormatKmsg is the raw /dev/kmsg record: "PRI,SEQ,USEC,FLAGS;message"
	// followed by dictionary lines that begin with a space.
	FormatKmsg
	// FormatDmesg is dmesg's default "[   12.345678] message", optionally
	// with a printk caller ("[ 1.2][  T123]"), a "<3>" priority prefix
	// (dmesg -r) or a "kern  :err   : " prefix (dmesg -x).
	FormatDmesg
	// FormatDmesgCtime is dmesg -T: "[Mon Nov 23 04:43:12 2026] message".
	FormatDmesgCtime
	// FormatDmesgISO is dmesg --time-format iso:
	// "2026-11-23T04:43:12,123456+00:00 message".
	FormatDmesgISO
	// FormatSyslog is a syslog or journal line from the kernel:
	// RFC 3164 ("Nov 23 04:43:12 host kernel: message", with or without a
	// host, with or without fractional seconds), RFC 3339 timestamps
	// (journalctl -o short-iso, rsyslog's default file format) and
	// journalctl -o short-monotonic ("[12.345678] host kernel: message").
	FormatSyslog
	// FormatPlain is a bare message with no timestamp.
	FormatPlain
)

var formatNames = [...]string{
	FormatAuto:       "auto",
	FormatKmsg:       "kmsg",
	FormatDmesg:      "dmesg",
	FormatDmesgCtime: "dmesg-ctime",
	FormatDmesgISO:   "dmesg-iso",
	FormatSyslog:     "syslog",
	FormatPlain:      "plain",
}

// String returns the name ParseFormat accepts.
func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format named s: auto, kmsg, dmesg, dmesg-ctime,
// dmesg-iso, syslog or plain.
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if s == name {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("unknown kernel log format %q (want auto, kmsg, dmesg, dmesg-ctime, dmesg-iso, syslog or plain)", s)
}

func (f Format) valid() bool { return f >= FormatAuto && f <= FormatPlain }
