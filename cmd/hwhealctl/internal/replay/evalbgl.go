package replay

import (
	"fmt"
	"io"
	"strings"
)

// BGLLine is one line of loghub's BlueGene/L log (BGL/BGL_2k.log): the
// alert category the log's curators gave it ("" for the lines marked
// "-", non-alert) and the message, as loghub's structured CSV splits it
// (Label Timestamp Date Node Time NodeRepeat Type Component Level
// Content).
type BGLLine struct {
	Alert     string // KERNDTLB, APPSEV, ...; "" for a non-alert line
	Component string // KERNEL, APP, MMCS, ...
	Level     string // INFO, FATAL, ...
	Content   string
	Row       int
}

// ReadBGL reads a BGL log and calls fn for each line. Every non-blank
// line must have loghub's ten fields, the first an alert tag or "-" and
// the second a unix time. Input starting with gzip's magic is
// decompressed. name names the input in errors.
func ReadBGL(r io.Reader, name string, fn func(BGLLine) error) error {
	return scanLines(r, name, func(line string, row int) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		f := strings.SplitN(line, " ", 10)
		if len(f) < 10 {
			return fmt.Errorf("%s: line %d: %d of BGL's 10 space-separated fields", name, row, len(f))
		}
		if !isAlertTag(f[0]) || !allDigits(f[1]) {
			return fmt.Errorf("%s: line %d: %q %q is not an alert tag (or -) and a unix time", name, row, clip(f[0]), clip(f[1]))
		}
		alert := f[0]
		if alert == "-" {
			alert = ""
		}
		return fn(BGLLine{Alert: alert, Component: f[7], Level: f[8], Content: f[9], Row: row})
	})
}

func isAlertTag(s string) bool {
	if s == "-" {
		return true
	}
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
