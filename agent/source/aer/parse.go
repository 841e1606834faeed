package aer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseAERCounters parses one of a PCI device's aer_dev_correctable,
// aer_dev_nonfatal or aer_dev_fatal attributes: one "NAME count" line per
// error bit the kernel knows (RxErr, BadTLP, ..., CmpltTO, MalfTLP, ...)
// and a TOTAL_ERR_COR / TOTAL_ERR_NONFATAL / TOTAL_ERR_FATAL line. Names
// are returned as the kernel wrote them; the set grows with the kernel, so
// none is assumed.
//
// Every well-formed line is returned; each bad line (not two fields, a
// count that is not an unsigned decimal, a name seen twice) is named by
// number in the error.
func ParseAERCounters(r io.Reader) (map[string]uint64, error) {
	var (
		out  = map[string]uint64{}
		errs []error
		sc   = bufio.NewScanner(r)
	)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
			continue
		case len(f) != 2:
			errs = append(errs, fmt.Errorf("line %d: %d fields, want \"NAME count\"", n, len(f)))
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %w", n, f[0], err))
			continue
		}
		if _, dup := out[f[0]]; dup {
			errs = append(errs, fmt.Errorf("line %d: %s appears twice", n, f[0]))
			continue
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// ParseLinkSpeed parses current_link_speed or max_link_speed into GT/s.
// The kernel writes "8.0 GT/s PCIe" (since 4.17), "8 GT/s" or "2.5 GT/s"
// before that, "Unknown" or "Unknown speed" when the link is down or the
// speed is reserved, and "66 MHz PCI-X" style strings for conventional
// buses. known is false for the last two: there is no PCIe speed to report,
// and that is not an error.
func ParseLinkSpeed(b []byte) (gts float64, known bool, err error) {
	s := strings.TrimSpace(string(b))
	if s == "" || strings.HasPrefix(s, "Unknown") {
		return 0, false, nil
	}
	f := strings.Fields(s)
	if len(f) >= 2 && f[1] == "MHz" {
		return 0, false, nil
	}
	if len(f) < 2 || f[1] != "GT/s" || len(f) > 3 || len(f) == 3 && f[2] != "PCIe" {
		return 0, false, fmt.Errorf("link speed %q is not \"N GT/s [PCIe]\"", s)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, false, fmt.Errorf("link speed %q: %w", s, err)
	}
	if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false, fmt.Errorf("link speed %q out of range", s)
	}
	return v, true, nil
}

// ParseLinkWidth parses current_link_width or max_link_width: the number
// of lanes. The kernel writes 0 for a link that is down.
func ParseLinkWidth(b []byte) (uint64, error) {
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("link width %q: %w", s, err)
	}
	return v, nil
}

// parseCount parses a single-number counter attribute such as
// aer_rootport_total_err_cor.
func parseCount(b []byte) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
