package diskstats

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/prometheus/procfs/blockdevice"
)

// Field counts of a /proc/diskstats line (major, minor and name included):
// kernels before 4.18 write 14, 4.18 adds four discard fields (18), 5.5 two
// flush fields (20). Later kernels may append more; they are ignored.
const (
	fieldsBase    = 14
	fieldsDiscard = 18
	fieldsFlush   = 20
)

// fieldNames name the columns of a line for error messages.
var fieldNames = [fieldsFlush]string{
	"major", "minor", "device",
	"reads_completed", "reads_merged", "read_sectors", "read_time_ms",
	"writes_completed", "writes_merged", "write_sectors", "write_time_ms",
	"io_in_progress", "io_time_ms", "io_weighted_time_ms",
	"discards_completed", "discards_merged", "discard_sectors", "discard_time_ms",
	"flush_requests", "flush_time_ms",
}

// Parse reads /proc/diskstats. It returns every well-formed line, in file
// order, as procfs's blockdevice.Diskstats (IoStatsCount tells which
// optional groups are present), and an error naming each line it could not
// read.
//
// procfs has a parser of its own, but it drops a line with fewer than 14
// fields without a word and its errors do not say which line was wrong: a
// disk would silently vanish from the observations. This one is strict
// instead: a line must have 14, 18 or at least 20 fields, all numeric.
func Parse(r io.Reader) ([]blockdevice.Diskstats, error) {
	var (
		out  []blockdevice.Diskstats
		errs []error
		sc   = bufio.NewScanner(r)
	)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		d, err := parseLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func parseLine(line string) (blockdevice.Diskstats, error) {
	var d blockdevice.Diskstats
	f := strings.Fields(line)
	switch n := len(f); {
	case n < fieldsBase:
		return d, fmt.Errorf("truncated: %d fields, want at least %d", n, fieldsBase)
	case n > fieldsBase && n < fieldsDiscard, n > fieldsDiscard && n < fieldsFlush:
		return d, fmt.Errorf("device %s: %d fields, want %d, %d or %d", f[2], n, fieldsBase, fieldsDiscard, fieldsFlush)
	}
	d.IoStatsCount = min(len(f), fieldsFlush)

	major, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return d, fmt.Errorf("field major: %w", err)
	}
	minor, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return d, fmt.Errorf("field minor: %w", err)
	}
	d.MajorNumber, d.MinorNumber, d.DeviceName = uint32(major), uint32(minor), f[2]

	counters := []*uint64{
		&d.ReadIOs, &d.ReadMerges, &d.ReadSectors, &d.ReadTicks,
		&d.WriteIOs, &d.WriteMerges, &d.WriteSectors, &d.WriteTicks,
		&d.IOsInProgress, &d.IOsTotalTicks, &d.WeightedIOTicks,
		&d.DiscardIOs, &d.DiscardMerges, &d.DiscardSectors, &d.DiscardTicks,
		&d.FlushRequestsCompleted, &d.TimeSpentFlushing,
	}
	for i := 3; i < d.IoStatsCount; i++ {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return d, fmt.Errorf("device %s: field %s: %w", d.DeviceName, fieldNames[i], err)
		}
		*counters[i-3] = v
	}
	return d, nil
}
