package netdev

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// netDevFields is the number of counters after "name:" on a /proc/net/dev
// line: eight receive and eight transmit columns.
const netDevFields = 16

var netDevNames = [netDevFields]string{
	"rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast",
	"tx_bytes", "tx_packets", "tx_errors", "tx_dropped", "tx_fifo", "tx_collisions", "tx_carrier", "tx_compressed",
}

// ParseNetDev reads /proc/net/dev. It returns the interfaces of every
// well-formed line, in file order, as procfs's NetDevLine, and an error
// naming each line it could not read.
//
// procfs's own parser (v0.23) indexes the columns without checking how many
// there are, so a truncated line panics the reader; this one reports it.
// Header lines are recognised by their '|' column separators rather than by
// position, so a file without them loses no interface.
func ParseNetDev(r io.Reader) ([]procfs.NetDevLine, error) {
	var (
		out  []procfs.NetDevLine
		errs []error
		sc   = bufio.NewScanner(r)
	)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.Contains(line, "|") {
			continue
		}
		l, err := parseNetDevLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func parseNetDevLine(line string) (procfs.NetDevLine, error) {
	var l procfs.NetDevLine
	// The kernel refuses ':' and white space in interface names
	// (dev_valid_name), so the first colon ends the name.
	i := strings.IndexByte(line, ':')
	if i < 0 {
		return l, errors.New("no ':' after the interface name")
	}
	l.Name = strings.TrimSpace(line[:i])
	if l.Name == "" || strings.ContainsAny(l.Name, " \t") {
		return l, fmt.Errorf("bad interface name %q", l.Name)
	}
	f := strings.Fields(line[i+1:])
	if len(f) < netDevFields {
		return l, fmt.Errorf("interface %s: truncated: %d counters, want %d", l.Name, len(f), netDevFields)
	}
	dst := []*uint64{
		&l.RxBytes, &l.RxPackets, &l.RxErrors, &l.RxDropped, &l.RxFIFO, &l.RxFrame, &l.RxCompressed, &l.RxMulticast,
		&l.TxBytes, &l.TxPackets, &l.TxErrors, &l.TxDropped, &l.TxFIFO, &l.TxCollisions, &l.TxCarrier, &l.TxCompressed,
	}
	for k, p := range dst {
		v, err := strconv.ParseUint(f[k], 10, 64)
		if err != nil {
			return l, fmt.Errorf("interface %s: field %s: %w", l.Name, netDevNames[k], err)
		}
		*p = v
	}
	return l, nil
}

// parseInt parses a numeric sysfs attribute ("2\n", "-1\n").
func parseInt(b []byte) (int64, error) {
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// parseSlaves splits a bond's bonding/slaves attribute into interface names.
func parseSlaves(b []byte) []string {
	return strings.Fields(string(b))
}
