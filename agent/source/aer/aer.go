// Package aer is the agent's PCIe error and link source: every interval it
// reads, for each PCI function under <root>/sys/bus/pci/devices, the
// kernel's Advanced Error Reporting counters (aer_dev_correctable,
// aer_dev_nonfatal, aer_dev_fatal and, on root ports,
// aer_rootport_total_err_*) and the link's trained speed and width against
// what the link can do. It emits one observation per function that has any
// of these attributes, named by its PCI address.
//
// A link is degraded when it trained below what both of its ends support:
// a Gen4 drive in a Gen3 slot, or an x4 drive behind an x8 root port, is
// running as fast as it can and is not flagged. Where the link partner
// cannot be told from the sysfs tree (the ports of a switch), the
// function's own maximum is the yardstick.
//
// The AER counters are totals since boot; rates are computed downstream.
package aer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/periodic"
	"github.com/hwheal/hwheal/pkg/sysfs"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = "aer"

// DefaultInterval is how often the counters are read when Config.Interval
// is 0.
const DefaultInterval = 60 * time.Second

// Sample names. The AER counters are "<class>_<kernel name>", such as
// "correctable_RxErr", "nonfatal_CmpltTO" or "fatal_MalfTLP", plus one
// "<class>_total" from the kernel's TOTAL_ERR_* line.
const (
	ClassCorrectable = "correctable"
	ClassNonFatal    = "nonfatal"
	ClassFatal       = "fatal"

	SampleCorrectableTotal = "correctable_total"
	SampleNonFatalTotal    = "nonfatal_total"
	SampleFatalTotal       = "fatal_total"
	// Root ports: error messages received from the hierarchy below them.
	SampleRootPortCorrectableTotal = "rootport_correctable_total"
	SampleRootPortNonFatalTotal    = "rootport_nonfatal_total"
	SampleRootPortFatalTotal       = "rootport_fatal_total"

	// The link as trained (absent while it is down) and the function's own
	// maximum, in GT/s and lanes.
	SampleLinkSpeedGTs    = "link_speed_gts"
	SampleLinkMaxSpeedGTs = "link_max_speed_gts"
	SampleLinkWidth       = "link_width"
	SampleLinkMaxWidth    = "link_max_width"
	// What the link can do: the lower of the two ends' maxima, or this
	// function's maximum where the partner is not known.
	SampleLinkCapableSpeedGTs = "link_capable_speed_gts"
	SampleLinkCapableWidth    = "link_capable_width"
	// 1 when the link trained below what it can do, 0 when not; absent
	// while the link is down or its speed unknown. Speed alone is a weak
	// signal: GPUs and ASPM drop the speed when idle. Width is not.
	SampleLinkDegraded      = "link_degraded"
	SampleLinkSpeedDegraded = "link_speed_degraded"
	SampleLinkWidthDegraded = "link_width_degraded"
)

// counterFiles maps each AER attribute to the class its samples carry.
var counterFiles = [...]struct{ file, class string }{
	{"aer_dev_correctable", ClassCorrectable},
	{"aer_dev_nonfatal", ClassNonFatal},
	{"aer_dev_fatal", ClassFatal},
}

// rootPortFiles are the single-number totals of a root port.
var rootPortFiles = [...]struct{ file, sample string }{
	{"aer_rootport_total_err_cor", SampleRootPortCorrectableTotal},
	{"aer_rootport_total_err_nonfatal", SampleRootPortNonFatalTotal},
	{"aer_rootport_total_err_fatal", SampleRootPortFatalTotal},
}

// Config configures the source.
type Config struct {
	// Root is where /sys is found: "/" on a host, a fixture tree in tests.
	// Empty means "/".
	Root string
	// Interval between readings; 0 means DefaultInterval.
	Interval time.Duration
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error { return periodic.ValidateInterval(Name, c.Interval) }

// Source reads PCIe AER counters and link state periodically. It
// implements source.Source.
type Source struct {
	root             string
	*periodic.Runner // Name, Run, Errors
}

var _ source.Source = (*Source)(nil)

// New returns a source for cfg with defaults filled in. An invalid cfg is
// reported by Run.
func New(cfg Config) *Source {
	s := &Source{root: cmp.Or(cfg.Root, "/")}
	s.Runner = periodic.New(periodic.Loop{
		Name: Name, Interval: cfg.Interval, Default: DefaultInterval, Logger: cfg.Logger,
		Read:   s.Read,
		Absent: periodic.Message{Msg: "no PCIe AER counters or link attributes, source stopped", Attrs: []any{"path", s.Dir()}},
		Failed: periodic.Message{Msg: "read PCIe AER counters", Attrs: []any{"path", s.Dir()}},
	})
	return s
}

// Dir is the directory of PCI functions the source reads.
func (s *Source) Dir() string { return filepath.Join(s.root, "sys", "bus", "pci", "devices") }

// function is one PCI function's reading.
type function struct {
	addr    string
	dir     string // resolved sysfs directory
	samples []*hwhealv1.Sample
	link    link
	present bool // any attribute this source reads exists
}

// link is what a function says about its link; zero values are unknown.
type link struct {
	speed, maxSpeed float64
	width, maxWidth uint64
	widthKnown      bool // current width read (0 is "down", not unknown)
}

// Read takes one reading: an observation for every PCI function with AER
// counters or link attributes, in address order. A malformed attribute
// costs only its samples: the rest is returned together with an error
// naming each bad file.
func (s *Source) Read(ctx context.Context) ([]*hwhealv1.Observation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := s.Dir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	// Resolved once: the partner of a function is found by its resolved
	// sysfs path, and those must lie in this tree.
	root, err := filepath.EvalSymlinks(s.root)
	if err != nil {
		return nil, fmt.Errorf("resolve root %s: %w", s.root, err)
	}
	var (
		errs  []error
		funcs []*function
		byDir = map[string]*function{}
	)
	for _, e := range entries {
		if !sysfs.IsPCIAddress(e.Name()) {
			continue
		}
		f, err := readFunction(root, filepath.Join(dir, e.Name()), e.Name())
		if err != nil {
			errs = append(errs, err)
		}
		if !f.present {
			continue
		}
		funcs = append(funcs, f)
		byDir[f.dir] = f
	}
	if len(funcs) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("no PCI function under %s has AER counters or link attributes: %w", dir, fs.ErrNotExist)
	}

	children := map[string][]*function{}
	for _, f := range funcs {
		parent := filepath.Dir(f.dir)
		children[parent] = append(children[parent], f)
	}
	now := timestamppb.Now()
	obs := make([]*hwhealv1.Observation, 0, len(funcs))
	for _, f := range funcs {
		var partner []*function
		p, hasParent := byDir[filepath.Dir(f.dir)]
		kids := children[f.dir]
		switch {
		case !hasParent && len(kids) > 0:
			partner = kids // a root port: the device below is its partner
		case hasParent && len(kids) == 0:
			partner = []*function{p} // an endpoint: the port above it
		}
		// A function both below a port and above others is a switch port;
		// which side its link is on is not in the tree, so none is assumed.
		obs = append(obs, &hwhealv1.Observation{
			Time:   now,
			Source: Name,
			Part: &hwhealv1.Part{
				Kind:       hwhealv1.PartKind_PART_KIND_PCI,
				Name:       f.addr,
				PciAddress: f.addr,
			},
			Samples: append(f.samples, linkSamples(f.link, partner)...),
		})
	}
	return obs, errors.Join(errs...)
}

// readFunction reads one function's attributes through its bus link;
// root is the resolved root, to keep the link partner inside it.
func readFunction(root, link, addr string) (*function, error) {
	f := &function{addr: addr}
	path, err := sysfs.Resolve(root, link)
	if err != nil || path == "" {
		return f, err // "": removed since the directory was listed
	}
	f.dir = path
	var errs []error
	for _, c := range counterFiles {
		p := filepath.Join(path, c.file)
		b, ok, err := readAttr(p)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue
		}
		f.present = true
		m, err := ParseAERCounters(bytes.NewReader(b))
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", p, err))
		}
		f.samples = append(f.samples, CounterSamples(c.class, m)...)
	}
	for _, rp := range rootPortFiles {
		p := filepath.Join(path, rp.file)
		b, ok, err := readAttr(p)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue
		}
		f.present = true
		v, err := parseCount(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", p, err))
			continue
		}
		f.samples = append(f.samples, &hwhealv1.Sample{Name: rp.sample, Value: float64(v)})
	}
	l, present, err := readLink(path)
	if err != nil {
		errs = append(errs, err)
	}
	f.link = l
	f.present = f.present || present
	return f, errors.Join(errs...)
}

// totalNames is the kernel's name of each class's total line.
var totalNames = map[string]string{
	ClassCorrectable: "TOTAL_ERR_COR",
	ClassNonFatal:    "TOTAL_ERR_NONFATAL",
	ClassFatal:       "TOTAL_ERR_FATAL",
}

// CounterSamples turns the parsed lines of one AER attribute into samples:
// "<class>_total" first, then "<class>_<name>" in name order. The total is
// the class's TOTAL_ERR_* line, or failing that the only TOTAL_ERR_ line
// there is: procfs's fixture gives aer_dev_nonfatal a TOTAL_ERR_FATAL line,
// and the count is still that file's total.
func CounterSamples(class string, m map[string]uint64) []*hwhealv1.Sample {
	total := totalNames[class]
	if _, ok := m[total]; !ok {
		var totals []string
		for n := range m {
			if strings.HasPrefix(n, "TOTAL_ERR_") {
				totals = append(totals, n)
			}
		}
		total = ""
		if len(totals) == 1 {
			total = totals[0]
		}
	}
	out := make([]*hwhealv1.Sample, 0, len(m))
	if total != "" {
		out = append(out, &hwhealv1.Sample{Name: class + "_total", Value: float64(m[total])})
	}
	names := make([]string, 0, len(m))
	for n := range m {
		if n != total {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, &hwhealv1.Sample{Name: class + "_" + n, Value: float64(m[n])})
	}
	return out
}

// readLink reads the four link attributes. present is true when any exists.
func readLink(dir string) (l link, present bool, err error) {
	var errs []error
	speed := func(file string, dst *float64) {
		p := filepath.Join(dir, file)
		b, ok, err := readAttr(p)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			return
		}
		present = true
		v, known, err := ParseLinkSpeed(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", p, err))
		}
		if known {
			*dst = v
		}
	}
	width := func(file string, dst *uint64) bool {
		p := filepath.Join(dir, file)
		b, ok, err := readAttr(p)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			return false
		}
		present = true
		v, err := ParseLinkWidth(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", p, err))
			return false
		}
		*dst = v
		return true
	}
	speed("current_link_speed", &l.speed)
	speed("max_link_speed", &l.maxSpeed)
	l.widthKnown = width("current_link_width", &l.width)
	width("max_link_width", &l.maxWidth)
	return l, present, errors.Join(errs...)
}

// linkSamples reports a function's link, judged against what it and its
// partner(s) can do.
func linkSamples(l link, partner []*function) []*hwhealv1.Sample {
	var out []*hwhealv1.Sample
	add := func(name string, v float64) { out = append(out, &hwhealv1.Sample{Name: name, Value: v}) }
	if l.speed > 0 {
		add(SampleLinkSpeedGTs, l.speed)
	}
	if l.maxSpeed > 0 {
		add(SampleLinkMaxSpeedGTs, l.maxSpeed)
	}
	if l.widthKnown {
		add(SampleLinkWidth, float64(l.width))
	}
	if l.maxWidth > 0 {
		add(SampleLinkMaxWidth, float64(l.maxWidth))
	}

	// The partner's best: functions sharing one link report the same
	// maxima, so the highest of them is the partner's.
	var pSpeed float64
	var pWidth uint64
	for _, p := range partner {
		pSpeed = max(pSpeed, p.link.maxSpeed)
		pWidth = max(pWidth, p.link.maxWidth)
	}
	capSpeed, capWidth := l.maxSpeed, l.maxWidth
	if pSpeed > 0 && capSpeed > 0 {
		capSpeed = min(capSpeed, pSpeed)
	}
	if pWidth > 0 && capWidth > 0 {
		capWidth = min(capWidth, pWidth)
	}
	if capSpeed > 0 {
		add(SampleLinkCapableSpeedGTs, capSpeed)
	}
	if capWidth > 0 {
		add(SampleLinkCapableWidth, float64(capWidth))
	}

	// A link that is down (width 0, speed unknown) is not degraded: empty
	// slots have root ports too.
	up := l.widthKnown && l.width > 0
	var judged, degraded bool
	if up && l.speed > 0 && capSpeed > 0 {
		judged = true
		d := l.speed < capSpeed
		degraded = degraded || d
		add(SampleLinkSpeedDegraded, b2f(d))
	}
	if up && capWidth > 0 {
		judged = true
		d := l.width < capWidth
		degraded = degraded || d
		add(SampleLinkWidthDegraded, b2f(d))
	}
	if judged {
		add(SampleLinkDegraded, b2f(degraded))
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// readAttr reads a sysfs attribute. ok is false when the kernel has no value
// to give: the file is absent, or the device refuses the read (a function
// in D3cold answers config reads with ENODEV).
func readAttr(path string) (b []byte, ok bool, err error) { return sysfs.Attr(path, syscall.ENODEV) }
