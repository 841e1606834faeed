package agent

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/aer"
	"github.com/hwheal/hwheal/agent/source/blockio"
	"github.com/hwheal/hwheal/agent/source/diskstats"
	"github.com/hwheal/hwheal/agent/source/edac"
	"github.com/hwheal/hwheal/agent/source/hwmon"
	"github.com/hwheal/hwheal/agent/source/kmsg"
	"github.com/hwheal/hwheal/agent/source/netdev"
	"github.com/hwheal/hwheal/agent/source/netlink"
	"github.com/hwheal/hwheal/agent/source/rasevent"
	"github.com/hwheal/hwheal/agent/source/smart"
)

// sourceSet is every source the agent runs, in start order. The kmsg
// source is kept by name too: its records go through the agent's rules,
// and its counters are the agent's metrics.
type sourceSet struct {
	kmsg *kmsg.Source // nil when disabled
	all  []source.Source
	// liveOnly are the sources left out because they read the running
	// kernel (eBPF, netlink) while Root is a fixture tree: what they would
	// say of this host is not what the tree describes.
	liveOnly []source.Probe
}

// builtinSources is the agent's registry of sources: one explicit list,
// built from the config, that Run starts and Inspect probes. Sources touch
// nothing until they run; those whose kernel interface is absent say so
// once and stop.
func builtinSources(cfg *Config, log *slog.Logger) sourceSet {
	interval := func(name string) time.Duration { return cfg.Intervals[name] }
	// Every source but kmsg narrows its logger with its own name.
	logger := func(string) *slog.Logger { return log }
	dcfg := diskstats.Config{Root: cfg.Root, Interval: interval("diskstats"), Logger: logger("diskstats")}
	if cfg.DiskExclude != "" {
		dcfg.Exclude = regexp.MustCompile(cfg.DiskExclude) // checked by Validate
	}
	k := kmsg.New(kmsg.Config{Root: cfg.Root, StateDir: cfg.StateDir, Logger: log.With("source", "kmsg")})
	gate := &ebpfLoadGate{}
	live := []source.Source{
		blockio.New(blockio.Config{Root: cfg.Root, Interval: interval("blockio"), Logger: logger("blockio"), LoadLock: gate}),
		rasevent.New(rasevent.Config{Interval: interval("ras"), Logger: logger("ras"), LoadLock: gate}),
		netlink.New(netlink.Config{Logger: logger("netlink")}),
	}
	all := []source.Source{
		k,
		diskstats.New(dcfg),
		netdev.New(netdev.Config{Root: cfg.Root, Interval: interval("netdev"), Logger: logger("netdev")}),
		edac.New(edac.Config{Root: cfg.Root, Interval: interval("edac"), Logger: logger("edac")}),
		aer.New(aer.Config{Root: cfg.Root, Interval: interval("aer"), Logger: logger("aer")}),
		hwmon.New(hwmon.Config{Root: cfg.Root, Interval: interval("hwmon"), Logger: logger("hwmon")}),
		smart.New(smart.Config{Root: cfg.Root, Interval: interval("smart"), Logger: logger("smart")}),
	}
	set := sourceSet{}
	if filepath.Clean(cfg.Root) == "/" {
		all = append(all, live...)
	} else {
		for _, s := range live {
			if !slices.Contains(cfg.Disable, s.Name()) {
				set.liveOnly = append(set.liveOnly, source.Probe{Source: s.Name(),
					Unavailable: fmt.Sprintf("reads the running kernel, not the tree under --root %s", cfg.Root)})
			}
		}
	}
	for _, s := range all {
		if slices.Contains(cfg.Disable, s.Name()) {
			continue
		}
		if s == source.Source(k) {
			set.kmsg = k
		}
		set.all = append(set.all, s)
	}
	return set
}

// ebpfLoadGate lets one eBPF source load its programs at a time and gives
// the memory of each load back to the OS before the next: a load parses
// the kernel's BTF for CO-RE (several MB, garbage once loaded), and two at
// once, or garbage left for the next GC cycle, would set the agent's peak
// RSS, which has to stay under 30 MB.
type ebpfLoadGate struct{ mu sync.Mutex }

func (g *ebpfLoadGate) Lock() { g.mu.Lock() }

func (g *ebpfLoadGate) Unlock() {
	debug.FreeOSMemory()
	g.mu.Unlock()
}

// SourceNames lists the names of every source the agent has, in start
// order: the values --disable and --interval take.
func SourceNames() []string {
	set := builtinSources(&Config{Root: "/"}, slog.New(slog.DiscardHandler))
	names := make([]string, len(set.all))
	for i, s := range set.all {
		names[i] = s.Name()
	}
	return names
}

// eventDriven is true of the sources that read as the kernel reports,
// with no interval to set.
func eventDriven(name string) bool { return name == "kmsg" || name == "netlink" }

// validateSources checks the names in Disable and Intervals, and the
// regular expression of DiskExclude.
func (c *Config) validateSources() error {
	if c.DiskExclude != "" {
		if _, err := regexp.Compile(c.DiskExclude); err != nil {
			return fmt.Errorf("disk-exclude: %w", err)
		}
	}
	names := SourceNames()
	for _, n := range c.Disable {
		if !slices.Contains(names, n) {
			return fmt.Errorf("disable: unknown source %q (sources: %s)", n, strings.Join(names, ", "))
		}
	}
	periodic := slices.DeleteFunc(slices.Clone(names), eventDriven)
	for n, d := range c.Intervals {
		if !slices.Contains(periodic, n) {
			return fmt.Errorf("interval: %q is not a periodic source (periodic sources: %s)", n, strings.Join(periodic, ", "))
		}
		if d < 0 {
			return fmt.Errorf("interval: %s=%v is negative", n, d)
		}
	}
	return nil
}
