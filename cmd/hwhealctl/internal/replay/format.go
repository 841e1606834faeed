package replay

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

// Format is an input format of `rules replay`.
type Format string

// The formats Replay reads. The kernel-log ones are pkg/kernlog's.
const (
	// FormatAuto detects the format of each file (DetectFormat) and, for a
	// kernel log, of each line.
	FormatAuto       Format = "auto"
	FormatKmsg       Format = "kmsg"
	FormatDmesg      Format = "dmesg"
	FormatDmesgCtime Format = "dmesg-ctime"
	FormatDmesgISO   Format = "dmesg-iso"
	FormatSyslog     Format = "syslog"
	FormatPlain      Format = "plain"
	// FormatSmartctl is one `smartctl --json -a` (or -x) document a file.
	FormatSmartctl Format = "smartctl-json"
	// FormatBackblaze is Backblaze Drive Stats CSV: one row per drive per
	// day.
	FormatBackblaze Format = "backblaze-csv"
)

// Formats lists every format ParseFormat accepts, for flag help.
var Formats = []Format{FormatAuto, FormatKmsg, FormatDmesg, FormatDmesgCtime, FormatDmesgISO, FormatSyslog, FormatPlain, FormatSmartctl, FormatBackblaze}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown input format %q (want %s)", s, strings.Join(names, ", "))
}

// Kernlog returns the kernel-log format f names; ok is false for the
// formats that are not kernel logs. FormatAuto is kernlog.FormatAuto: a
// file DetectFormat does not recognise is a kernel log read line by line.
func (f Format) Kernlog() (kf kernlog.Format, ok bool) {
	switch f {
	case FormatSmartctl, FormatBackblaze:
		return 0, false
	}
	kf, err := kernlog.ParseFormat(string(f))
	return kf, err == nil
}

// DetectFormat tells the format of a file from its name and its first
// bytes (head; a few KiB is enough): a JSON object with smartctl's
// "smartctl" or "json_format_version" key, or any file named *.json, is
// smartctl JSON (so that a broken or empty one gets smartctl's error, not
// a kernel-log reading); a CSV header with Backblaze's date, serial_number,
// model and failure columns is Backblaze CSV; anything else is a kernel
// log, FormatAuto, whose format is told line by line.
func DetectFormat(name string, head []byte) Format {
	h := bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if t := bytes.TrimLeft(h, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		if bytes.Contains(t, []byte(`"smartctl"`)) || bytes.Contains(t, []byte(`"json_format_version"`)) {
			return FormatSmartctl
		}
	}
	if strings.EqualFold(filepath.Ext(name), ".json") {
		return FormatSmartctl
	}
	first, _, _ := bytes.Cut(h, []byte("\n"))
	if isBackblazeHeader(strings.Split(strings.TrimRight(string(first), "\r"), ",")) {
		return FormatBackblaze
	}
	return FormatAuto
}
