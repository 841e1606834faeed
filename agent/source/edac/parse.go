package edac

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ParseCount parses an EDAC counter attribute ("12\n"). The kernel prints
// these as unsigned decimal numbers; anything else (a sign, hex, a second
// field) is reported rather than guessed at.
func ParseCount(b []byte) (uint64, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, errors.New("empty counter")
	}
	if s[0] == '+' {
		// ParseUint refuses a sign already; say why in the kernel's terms.
		return 0, fmt.Errorf("counter %q has a sign", s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return v, nil
}

// ParseLabel cleans a dimm_label or ch*_dimm_label attribute: the kernel
// pads it with a newline and user space (rasdaemon's label database, BIOS
// tools) may leave trailing blanks or NULs. Control characters are dropped
// so that a label is always safe to print and to use as a part name.
func ParseLabel(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, string(b))
	return strings.TrimSpace(s)
}

// dirIndex returns the number after prefix in a sysfs directory name such
// as "mc3", "csrow10" or "dimm2", or -1 when name is not prefix+digits.
func dirIndex(name, prefix string) int {
	num, ok := strings.CutPrefix(name, prefix)
	if !ok || num == "" || len(num) > 9 {
		return -1
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return -1
		}
	}
	n, _ := strconv.Atoi(num)
	return n
}

// channelFile splits a csrow attribute name such as "ch1_ce_count" into its
// channel and attribute ("ce_count", "ue_count" or "dimm_label"); ok is
// false for any other file.
func channelFile(name string) (ch int, attr string, ok bool) {
	rest, found := strings.CutPrefix(name, "ch")
	if !found {
		return 0, "", false
	}
	num, attr, found := strings.Cut(rest, "_")
	if !found {
		return 0, "", false
	}
	switch attr {
	case "ce_count", "ue_count", "dimm_label":
	default:
		return 0, "", false
	}
	ch = dirIndex("ch"+num, "ch")
	if ch < 0 {
		return 0, "", false
	}
	return ch, attr, true
}
