// Package edac is the agent's memory error counter source: every interval
// it reads the EDAC memory controllers under
// <root>/sys/devices/system/edac/mc and emits one observation per memory
// controller (its totals, including the errors EDAC could not place) and
// one per DIMM, named by the DIMM's label so that a technician knows which
// module to pull.
//
// Two sysfs layouts exist. Kernels since 3.5 list every module as
// mcN/dimmM (or mcN/rankM for chip-select based drivers) with dimm_label,
// dimm_location, dimm_ce_count and dimm_ue_count; older kernels, and newer
// ones built with EDAC_LEGACY_SYSFS, list chip-select rows as
// mcN/csrowR with per-channel ch*_ce_count and ch*_dimm_label. Where a
// controller has both, the csrow view is the legacy emulation of the same
// modules and is ignored, so no error is counted twice.
//
// Counters stay counters: the kernel's totals since the driver loaded (or
// since reset_counters was written; seconds_since_reset says when). Rates
// are computed downstream.
package edac

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/periodic"
	"github.com/hwheal/hwheal/pkg/sysfs"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = "edac"

// DefaultInterval is how often the counters are read when Config.Interval
// is 0.
const DefaultInterval = 60 * time.Second

// Sample names.
const (
	// Errors of a DIMM (or, on the controller's observation, of the whole
	// controller).
	SampleCECount = "ce_count"
	SampleUECount = "ue_count"
	// Controller only: errors EDAC counted but could not place on a DIMM.
	SampleCENoInfoCount = "ce_noinfo_count"
	SampleUENoInfoCount = "ue_noinfo_count"
	// Controller only: seconds since the counters were last zeroed, so that
	// a drop in a counter can be told from a wrap.
	SampleSecondsSinceReset = "seconds_since_reset"
	// csrow layout only: the totals of the chip-select row(s) the DIMM sits
	// in. The legacy layout has no per-channel UE counter, so an
	// uncorrectable error is only placed on a row; every DIMM of that row
	// is a suspect.
	SampleCsrowCECount = "csrow_ce_count"
	SampleCsrowUECount = "csrow_ue_count"
)

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

// Source reads EDAC counters periodically. It implements source.Source.
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
		Absent: periodic.Message{Msg: "EDAC memory controllers not available, source stopped", Attrs: []any{"path", s.Dir()}},
		Failed: periodic.Message{Msg: "read EDAC counters", Attrs: []any{"path", s.Dir()}},
	})
	return s
}

// Dir is the directory of memory controllers the source reads.
func (s *Source) Dir() string {
	return filepath.Join(s.root, "sys", "devices", "system", "edac", "mc")
}

// Read takes one reading: for every memory controller in number order, an
// observation of the controller followed by one per DIMM. DIMMs that share
// a label are one module (the ranks of a dual-rank DIMM, or the rows a
// label database gave the same slot name) and are summed into one
// observation. A malformed attribute costs only that sample: the rest is
// returned together with an error naming each bad file.
func (s *Source) Read(ctx context.Context) ([]*hwhealv1.Observation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := s.Dir()
	ctrls, err := listIndexed(dir, "mc")
	if err != nil {
		return nil, err
	}
	if len(ctrls) == 0 {
		return nil, fmt.Errorf("no memory controller in %s: %w", dir, fs.ErrNotExist)
	}
	var (
		errs  []error
		now   = timestamppb.Now()
		obs   []*hwhealv1.Observation
		dimms = map[string]*hwhealv1.Observation{} // by part name, across controllers
		sums  = map[string]*counters{}
	)
	for _, mc := range ctrls {
		mcDir := filepath.Join(dir, mc)
		ctrl, err := readController(mcDir)
		if err != nil {
			errs = append(errs, err)
		}
		obs = append(obs, &hwhealv1.Observation{
			Time:    now,
			Source:  Name,
			Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: mc},
			Samples: ctrl.samples(),
		})
		mods, err := readDIMMs(mc, mcDir)
		if err != nil {
			errs = append(errs, err)
		}
		for _, m := range mods {
			if c, ok := sums[m.name]; ok {
				c.add(m.counters)
				continue
			}
			c := m.counters
			sums[m.name] = &c
			o := &hwhealv1.Observation{
				Time:   now,
				Source: Name,
				Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: m.name},
			}
			dimms[m.name] = o
			obs = append(obs, o)
		}
	}
	for name, o := range dimms {
		o.Samples = sums[name].samples()
	}
	return obs, errors.Join(errs...)
}

// state says what became of one counter attribute.
type state uint8

const (
	absent state = iota // no such file, or the kernel gives no value
	good
	bad // present but unreadable or malformed: the error says which file
)

// value is one counter as read.
type value struct {
	v     uint64
	state state
}

// merge sums two readings of the same counter. A bad member spoils the
// sum: reporting only the good half would under-count silently.
func (a value) merge(b value) value {
	switch {
	case a.state == bad || b.state == bad:
		return value{state: bad}
	case a.state == absent:
		return b
	case b.state == absent:
		return a
	}
	return value{v: a.v + b.v, state: good}
}

// counters holds the values an observation can carry, in sample order.
type counters struct {
	ce, ue, ceNoInfo, ueNoInfo, sinceReset, csrowCE, csrowUE value
}

func (c *counters) add(o counters) {
	c.ce = c.ce.merge(o.ce)
	c.ue = c.ue.merge(o.ue)
	c.ceNoInfo = c.ceNoInfo.merge(o.ceNoInfo)
	c.ueNoInfo = c.ueNoInfo.merge(o.ueNoInfo)
	c.csrowCE = c.csrowCE.merge(o.csrowCE)
	c.csrowUE = c.csrowUE.merge(o.csrowUE)
	// Seconds since reset belongs to controllers, which are never merged.
}

func (c *counters) samples() []*hwhealv1.Sample {
	var out []*hwhealv1.Sample
	for _, kv := range [...]struct {
		name string
		v    value
	}{
		{SampleCECount, c.ce},
		{SampleUECount, c.ue},
		{SampleCENoInfoCount, c.ceNoInfo},
		{SampleUENoInfoCount, c.ueNoInfo},
		{SampleSecondsSinceReset, c.sinceReset},
		{SampleCsrowCECount, c.csrowCE},
		{SampleCsrowUECount, c.csrowUE},
	} {
		if kv.v.state == good {
			out = append(out, &hwhealv1.Sample{Name: kv.name, Value: float64(kv.v.v)})
		}
	}
	return out
}

// module is one DIMM (or rank, or csrow channel) as the kernel lists it.
type module struct {
	name string
	counters
}

func readController(dir string) (counters, error) {
	var (
		c    counters
		errs []error
	)
	for _, f := range [...]struct {
		file string
		dst  *value
	}{
		{"ce_count", &c.ce},
		{"ue_count", &c.ue},
		{"ce_noinfo_count", &c.ceNoInfo},
		{"ue_noinfo_count", &c.ueNoInfo},
		{"seconds_since_reset", &c.sinceReset},
	} {
		v, err := readCount(filepath.Join(dir, f.file))
		if err != nil {
			errs = append(errs, err)
		}
		*f.dst = v
	}
	return c, errors.Join(errs...)
}

// readDIMMs lists the modules of controller mc: dimm*/rank* where the
// kernel has them, else the channels of the csrows.
func readDIMMs(mc, dir string) ([]module, error) {
	var errs []error
	entries, err := listIndexed(dir, "dimm")
	if err != nil {
		errs = append(errs, err)
	}
	ranks, err := listIndexed(dir, "rank")
	if err != nil {
		errs = append(errs, err)
	}
	entries = append(entries, ranks...)
	if len(entries) > 0 {
		out := make([]module, 0, len(entries))
		for _, e := range entries {
			m, err := readDIMM(mc, dir, e)
			if err != nil {
				errs = append(errs, err)
			}
			out = append(out, m)
		}
		return out, errors.Join(errs...)
	}
	rows, err := listIndexed(dir, "csrow")
	if err != nil {
		errs = append(errs, err)
	}
	var out []module
	for _, row := range rows {
		mods, err := readCsrow(mc, filepath.Join(dir, row))
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, mods...)
	}
	return out, errors.Join(errs...)
}

// readDIMM reads mcN/dimmM (or rankM). Its name is the label, or
// "mcN/dimmM" when the label is empty.
func readDIMM(mc, mcDir, entry string) (module, error) {
	dir := filepath.Join(mcDir, entry)
	var errs []error
	m := module{name: mc + "/" + entry}
	label, err := readLabel(filepath.Join(dir, "dimm_label"))
	if err != nil {
		errs = append(errs, err)
	}
	if label != "" {
		m.name = label
	}
	if m.ce, err = readCount(filepath.Join(dir, "dimm_ce_count")); err != nil {
		errs = append(errs, err)
	}
	if m.ue, err = readCount(filepath.Join(dir, "dimm_ue_count")); err != nil {
		errs = append(errs, err)
	}
	return m, errors.Join(errs...)
}

// readCsrow reads the channels of one chip-select row. Channel k is named
// by chK_dimm_label, or "mcN/csrowR/chK" without one. The kernel has no
// per-channel UE counter (node_exporter's fixtures do); where chK_ue_count
// exists it is read.
func readCsrow(mc, dir string) ([]module, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // the row went away between two reads
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var channels []int
	for _, e := range entries {
		if ch, _, ok := channelFile(e.Name()); ok && !slices.Contains(channels, ch) {
			channels = append(channels, ch)
		}
	}
	slices.Sort(channels)

	var errs []error
	rowCE, err := readCount(filepath.Join(dir, "ce_count"))
	if err != nil {
		errs = append(errs, err)
	}
	rowUE, err := readCount(filepath.Join(dir, "ue_count"))
	if err != nil {
		errs = append(errs, err)
	}
	row := filepath.Base(dir)
	if len(channels) == 0 {
		// A row whose channels the driver does not list still has its
		// totals; the row is then the smallest thing they can be placed on.
		if rowCE.state == absent && rowUE.state == absent {
			return nil, errors.Join(errs...)
		}
		return []module{{name: mc + "/" + row, counters: counters{csrowCE: rowCE, csrowUE: rowUE}}}, errors.Join(errs...)
	}
	out := make([]module, 0, len(channels))
	for _, ch := range channels {
		prefix := fmt.Sprintf("ch%d_", ch)
		m := module{name: fmt.Sprintf("%s/%s/ch%d", mc, row, ch)}
		label, err := readLabel(filepath.Join(dir, prefix+"dimm_label"))
		if err != nil {
			errs = append(errs, err)
		}
		if label != "" {
			m.name = label
		}
		if m.ce, err = readCount(filepath.Join(dir, prefix+"ce_count")); err != nil {
			errs = append(errs, err)
		}
		if m.ue, err = readCount(filepath.Join(dir, prefix+"ue_count")); err != nil {
			errs = append(errs, err)
		}
		m.csrowCE, m.csrowUE = rowCE, rowUE
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

// listIndexed returns the entries of dir named prefix+number that are
// directories (or links to them), in number order.
func listIndexed(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if dirIndex(e.Name(), prefix) < 0 {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.SortFunc(out, func(a, b string) int { return dirIndex(a, prefix) - dirIndex(b, prefix) })
	return out, nil
}

func readCount(path string) (value, error) {
	b, ok, err := sysfs.Attr(path)
	if err != nil {
		return value{state: bad}, err
	}
	if !ok {
		return value{}, nil
	}
	v, err := ParseCount(b)
	if err != nil {
		return value{state: bad}, fmt.Errorf("parse %s: %w", path, err)
	}
	return value{v: v, state: good}, nil
}

func readLabel(path string) (string, error) {
	b, ok, err := sysfs.Attr(path)
	if err != nil || !ok {
		return "", err
	}
	return ParseLabel(b), nil
}
