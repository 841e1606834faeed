// Package netdev is the agent's NIC counter source: every interval it reads
// <root>/proc/net/dev and the link attributes under <root>/sys/class/net
// (carrier and its change counters, operstate, speed, bonding slaves) and
// emits one observation per interface, naming the PCI function of physical
// NICs.
//
// Link flaps show up here as carrier_changes; the netlink source sees them
// as events. Sample names follow /proc/net/dev's columns and node_exporter's
// netclass and bonding collectors.
package netdev

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/periodic"
	"github.com/hwheal/hwheal/pkg/sysfs"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = "netdev"

// DefaultInterval is how often the counters are read when Config.Interval
// is 0.
// A minute: readings feed trends and rates; faults come from events
// (kernel log, eBPF, netlink) the moment they happen.
const DefaultInterval = 60 * time.Second

// DefaultExcludePattern drops the loopback interface, which has no hardware.
const DefaultExcludePattern = `^lo$`

// Sample names. The rx_/tx_ counters are /proc/net/dev's columns.
const (
	SampleRxBytes          = "rx_bytes"
	SampleRxPackets        = "rx_packets"
	SampleRxErrors         = "rx_errors"
	SampleRxDropped        = "rx_dropped"
	SampleRxFIFO           = "rx_fifo"
	SampleRxFrame          = "rx_frame"
	SampleRxCompressed     = "rx_compressed"
	SampleRxMulticast      = "rx_multicast"
	SampleTxBytes          = "tx_bytes"
	SampleTxPackets        = "tx_packets"
	SampleTxErrors         = "tx_errors"
	SampleTxDropped        = "tx_dropped"
	SampleTxFIFO           = "tx_fifo"
	SampleTxCollisions     = "tx_collisions"
	SampleTxCarrier        = "tx_carrier"
	SampleTxCompressed     = "tx_compressed"
	SampleCarrier          = "carrier"            // 1 when the link has carrier
	SampleCarrierChanges   = "carrier_changes"    // link up and down transitions since boot
	SampleCarrierUpCount   = "carrier_up_count"   // transitions to up
	SampleCarrierDownCount = "carrier_down_count" // transitions to down
	SampleUp               = "up"                 // 1 when operstate is "up"
	SampleSpeedMbps        = "speed_mbps"         // absent when the driver does not know
	SampleSlavesUp         = "slaves_up"          // bonds: slaves whose MII status is up
	SampleSlavesTotal      = "slaves_total"       // bonds: enslaved interfaces
)

// Config configures the source.
type Config struct {
	// Root is where /proc and /sys are found: "/" on a host, a fixture tree
	// in tests. Empty means "/".
	Root string
	// Interval between readings; 0 means DefaultInterval.
	Interval time.Duration
	// Exclude drops interfaces whose name matches. nil means
	// DefaultExcludePattern; a custom pattern replaces it, so include "lo"
	// in it to keep skipping loopback.
	Exclude *regexp.Regexp
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error { return periodic.ValidateInterval(Name, c.Interval) }

// Source reads NIC counters periodically. It implements source.Source.
type Source struct {
	root             string
	exclude          *regexp.Regexp
	*periodic.Runner // Name, Run, Errors
}

var _ source.Source = (*Source)(nil)

// New returns a source for cfg with defaults filled in. An invalid cfg is
// reported by Run.
func New(cfg Config) *Source {
	s := &Source{root: cmp.Or(cfg.Root, "/"), exclude: cfg.Exclude}
	if s.exclude == nil {
		s.exclude = regexp.MustCompile(DefaultExcludePattern)
	}
	s.Runner = periodic.New(periodic.Loop{
		Name: Name, Interval: cfg.Interval, Default: DefaultInterval, Logger: cfg.Logger,
		Read: s.Read,
		Absent: periodic.Message{Msg: "network interfaces not available, source stopped",
			Attrs: []any{"net_dev", s.procNetDev(), "class_net", s.sysClassNet()}},
		Failed: periodic.Message{Msg: "read network interfaces"},
	})
	return s
}

func (s *Source) procNetDev() string  { return filepath.Join(s.root, "proc", "net", "dev") }
func (s *Source) sysClassNet() string { return filepath.Join(s.root, "sys", "class", "net") }

// Read takes one reading: an observation for every interface not excluded,
// sorted by name. Interfaces are the union of /proc/net/dev and
// /sys/class/net, so a tree with only one of them still yields what it has.
// A malformed line or attribute costs only that value: the observations are
// returned together with an error naming each bad file.
func (s *Source) Read(ctx context.Context) ([]*hwhealv1.Observation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var errs []error

	counters := map[string]procfs.NetDevLine{}
	procPath := s.procNetDev()
	b, err := os.ReadFile(procPath)
	procAbsent := errors.Is(err, fs.ErrNotExist)
	switch {
	case procAbsent:
	case err != nil:
		errs = append(errs, fmt.Errorf("read %s: %w", procPath, err))
	default:
		lines, perr := ParseNetDev(bytes.NewReader(b))
		if perr != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", procPath, perr))
		}
		for _, l := range lines {
			counters[l.Name] = l
		}
	}

	sysNet := s.sysClassNet()
	sysNames, err := listInterfaces(sysNet)
	sysAbsent := errors.Is(err, fs.ErrNotExist)
	if err != nil && !sysAbsent {
		errs = append(errs, err)
	}
	if procAbsent && sysAbsent {
		return nil, fmt.Errorf("neither %s nor %s: %w", procPath, sysNet, fs.ErrNotExist)
	}

	names := slices.AppendSeq(sysNames, maps.Keys(counters))
	slices.Sort(names)
	names = slices.Compact(names)

	now := timestamppb.Now()
	obs := make([]*hwhealv1.Observation, 0, len(names))
	for _, name := range names {
		if s.exclude.MatchString(name) {
			continue
		}
		var samples []*hwhealv1.Sample
		if l, ok := counters[name]; ok {
			samples = counterSamples(l)
		}
		link, err := readLink(sysNet, name)
		if err != nil {
			errs = append(errs, err)
		}
		samples = append(samples, link...)
		obs = append(obs, &hwhealv1.Observation{
			Time:   now,
			Source: Name,
			Part: &hwhealv1.Part{
				Kind:       hwhealv1.PartKind_PART_KIND_NIC,
				Name:       name,
				PciAddress: PCIAddress(s.root, name),
			},
			Samples: samples,
		})
	}
	return obs, errors.Join(errs...)
}

// listInterfaces returns the interface directories of /sys/class/net
// (links on a host, directories in some fixtures; never bonding_masters).
func listInterfaces(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func counterSamples(l procfs.NetDevLine) []*hwhealv1.Sample {
	vals := [...]struct {
		name string
		v    uint64
	}{
		{SampleRxBytes, l.RxBytes}, {SampleRxPackets, l.RxPackets}, {SampleRxErrors, l.RxErrors},
		{SampleRxDropped, l.RxDropped}, {SampleRxFIFO, l.RxFIFO}, {SampleRxFrame, l.RxFrame},
		{SampleRxCompressed, l.RxCompressed}, {SampleRxMulticast, l.RxMulticast},
		{SampleTxBytes, l.TxBytes}, {SampleTxPackets, l.TxPackets}, {SampleTxErrors, l.TxErrors},
		{SampleTxDropped, l.TxDropped}, {SampleTxFIFO, l.TxFIFO}, {SampleTxCollisions, l.TxCollisions},
		{SampleTxCarrier, l.TxCarrier}, {SampleTxCompressed, l.TxCompressed},
	}
	out := make([]*hwhealv1.Sample, len(vals))
	for i, v := range vals {
		out[i] = &hwhealv1.Sample{Name: v.name, Value: float64(v.v)}
	}
	return out
}

// readLink reads the link attributes of one interface. Attributes the
// kernel cannot give (absent, or EINVAL as speed on a link that is down) are
// left out; malformed ones are left out and reported.
func readLink(sysNet, name string) ([]*hwhealv1.Sample, error) {
	dir := filepath.Join(sysNet, name)
	var (
		out  []*hwhealv1.Sample
		errs []error
	)
	add := func(sample string, v float64) {
		out = append(out, &hwhealv1.Sample{Name: sample, Value: v})
	}
	for _, a := range [...]struct{ file, sample string }{
		{"carrier", SampleCarrier},
		{"carrier_changes", SampleCarrierChanges},
		{"carrier_up_count", SampleCarrierUpCount},
		{"carrier_down_count", SampleCarrierDownCount},
	} {
		v, ok, err := readInt(filepath.Join(dir, a.file))
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			add(a.sample, float64(v))
		}
	}
	if b, ok, err := sysfs.Attr(filepath.Join(dir, "operstate")); err != nil {
		errs = append(errs, err)
	} else if ok {
		up := 0.0
		if strings.TrimSpace(string(b)) == "up" {
			up = 1
		}
		add(SampleUp, up)
	}
	// Virtual and down links report -1 (or EINVAL): unknown, not zero.
	if v, ok, err := readInt(filepath.Join(dir, "speed")); err != nil {
		errs = append(errs, err)
	} else if ok && v >= 0 {
		add(SampleSpeedMbps, float64(v))
	}
	up, total, isBond, err := readBond(sysNet, name)
	if err != nil {
		errs = append(errs, err)
	}
	if isBond {
		add(SampleSlavesUp, float64(up))
		add(SampleSlavesTotal, float64(total))
	}
	return out, errors.Join(errs...)
}

// readBond counts a bond's slaves and those whose MII status is up, as
// node_exporter's bonding collector does.
func readBond(sysNet, bond string) (up, total int, isBond bool, err error) {
	b, ok, err := sysfs.Attr(filepath.Join(sysNet, bond, "bonding", "slaves"))
	if err != nil || !ok {
		return 0, 0, false, err
	}
	var errs []error
	for _, slave := range parseSlaves(b) {
		total++
		status, found := "", false
		// lower_<slave> on current kernels, slave_<slave> on old ones, and
		// the slave's own directory as a last resort.
		for _, p := range []string{
			filepath.Join(sysNet, bond, "lower_"+slave, "bonding_slave", "mii_status"),
			filepath.Join(sysNet, bond, "slave_"+slave, "bonding_slave", "mii_status"),
			filepath.Join(sysNet, slave, "bonding_slave", "mii_status"),
		} {
			sb, ok, err := sysfs.Attr(p)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if ok {
				status, found = strings.TrimSpace(string(sb)), true
				break
			}
		}
		// A slave released between the two reads has no status: not up.
		if found && status == "up" {
			up++
		}
	}
	return up, total, true, errors.Join(errs...)
}

func readInt(path string) (int64, bool, error) {
	b, ok, err := sysfs.Attr(path)
	if err != nil || !ok {
		return 0, false, err
	}
	v, err := parseInt(b)
	if err != nil {
		return 0, false, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, true, nil
}

// PCIAddress returns the PCI function the source reports for interface name
// below root, or "" for virtual interfaces. The inventory uses it too, so a
// NIC is named the same way in observations and in the inventory.
func PCIAddress(root, name string) string {
	return sysfs.PCIAddressOf(root, filepath.Join(root, "sys", "class", "net", name, "device"))
}
