// Package hwmon is the agent's temperature source: every interval it reads
// the temperature sensors of the hardware monitoring chips under
// <root>/sys/class/hwmon (CPU packages and cores, NVMe drives, NICs, board
// sensors) against their crit and max thresholds, and the kernel's thermal
// zones under <root>/sys/class/thermal against their trip points. It emits
// one observation per chip and one per zone.
//
// The kernel's own throttling messages come through the kernel log, not
// here: this source says how hot a part is and how close to its limits.
package hwmon

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
	"strconv"
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
const Name = "hwmon"

// DefaultInterval is how often the sensors are read when Config.Interval
// is 0.
const DefaultInterval = 60 * time.Second

// Sample name parts. A chip's samples are "<sensor><suffix>", where
// <sensor> is the sensor's label made safe by SensorName ("core_0",
// "composite") or "tempN" when it has none or two sensors would share a
// name. A thermal zone's samples carry no sensor prefix.
const (
	SuffixCelsius     = "_celsius"      // the reading
	SuffixCritCelsius = "_crit_celsius" // the chip's critical threshold
	SuffixMaxCelsius  = "_max_celsius"  // the chip's high threshold
	SuffixOverMax     = "_over_max"     // 1 when the reading is at or above max
	SuffixOverCrit    = "_over_crit"    // 1 when the reading is at or above crit

	SampleZoneTemp = "temp_celsius"
	// The lowest trip point of each type; "over_*" is 1 when the zone is at
	// or above it. Passive trips are where the kernel starts throttling.
	SampleZoneCritCelsius    = "crit_celsius"
	SampleZoneHotCelsius     = "hot_celsius"
	SampleZonePassiveCelsius = "passive_celsius"
	SampleZoneActiveCelsius  = "active_celsius"
	SampleZoneOverCrit       = "over_crit"
	SampleZoneOverHot        = "over_hot"
	SampleZoneOverPassive    = "over_passive"
)

// cpuChips are the hwmon drivers whose chip is a CPU package.
var cpuChips = []string{"coretemp", "k10temp", "k8temp", "zenpower"}

// cpuZones are the thermal zone types that measure a CPU package.
var cpuZones = []string{"x86_pkg_temp", "cpu-thermal", "cpu_thermal"}

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

// Source reads temperatures periodically. It implements source.Source.
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
		Read: s.Read,
		Absent: periodic.Message{Msg: "no temperature sensors, source stopped",
			Attrs: []any{"class_hwmon", s.classHwmon(), "class_thermal", s.classThermal()}},
		Failed: periodic.Message{Msg: "read temperatures"},
	})
	return s
}

func (s *Source) classHwmon() string   { return filepath.Join(s.root, "sys", "class", "hwmon") }
func (s *Source) classThermal() string { return filepath.Join(s.root, "sys", "class", "thermal") }

// Read takes one reading: an observation for every hwmon chip with a
// temperature sensor, in hwmon number order, then one for every thermal
// zone. A malformed attribute costs only its samples: the rest is returned
// together with an error naming each bad file. A sensor the driver cannot
// read this time (asleep, powered down: EAGAIN, ENODATA, EIO, ...) has no
// sample and is not an error.
func (s *Source) Read(ctx context.Context) ([]*hwhealv1.Observation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(s.root)
	if err != nil {
		return nil, fmt.Errorf("resolve root %s: %w", s.root, err)
	}
	var (
		errs []error
		obs  []*hwhealv1.Observation
		now  = timestamppb.Now()
	)
	chips, hwmonErr := listIndexed(s.classHwmon(), "hwmon")
	if hwmonErr != nil && !errors.Is(hwmonErr, fs.ErrNotExist) {
		errs = append(errs, hwmonErr)
	}
	for _, c := range chips {
		o, err := readChip(root, filepath.Join(s.classHwmon(), c), c)
		if err != nil {
			errs = append(errs, err)
		}
		if o != nil {
			o.Time, o.Source = now, Name
			obs = append(obs, o)
		}
	}
	zones, thermalErr := listIndexed(s.classThermal(), "thermal_zone")
	if thermalErr != nil && !errors.Is(thermalErr, fs.ErrNotExist) {
		errs = append(errs, thermalErr)
	}
	for _, z := range zones {
		o, err := readZone(root, filepath.Join(s.classThermal(), z), z)
		if err != nil {
			errs = append(errs, err)
		}
		if o != nil {
			o.Time, o.Source = now, Name
			obs = append(obs, o)
		}
	}
	if len(obs) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("no temperature sensor under %s or %s: %w", s.classHwmon(), s.classThermal(), fs.ErrNotExist)
	}
	return obs, errors.Join(errs...)
}

// sensor is one temperature sensor of a chip.
type sensor struct {
	index               int
	label               string
	hasInput            bool // a temp*_input file exists
	input, crit, max    float64
	inOK, critOK, maxOK bool // the value was read and is meaningful
}

// readChip reads one hwmon chip; it returns nil for a chip without
// temperature sensors.
func readChip(root, link, entry string) (*hwhealv1.Observation, error) {
	dir, err := sysfs.Resolve(root, link)
	if err != nil || dir == "" {
		return nil, err
	}
	var errs []error
	devDir, _ := sysfs.Resolve(root, filepath.Join(dir, "device"))

	// Sensors live in the hwmon directory; before 3.x kernels, and with a
	// few drivers still, in the device's directory.
	sensors, err := listSensors(dir)
	if err != nil {
		errs = append(errs, err)
	}
	attrDir := dir
	if len(sensors) == 0 && devDir != "" {
		if sensors, err = listSensors(devDir); err != nil {
			errs = append(errs, err)
		}
		attrDir = devDir
	}
	if len(sensors) == 0 {
		return nil, errors.Join(errs...)
	}

	chip := entry
	for _, d := range []string{dir, devDir} {
		if d == "" {
			continue
		}
		b, ok, err := readAttr(filepath.Join(d, "name"))
		if err != nil {
			errs = append(errs, err)
		}
		if n := strings.TrimSpace(string(b)); ok && n != "" {
			chip = n
			break
		}
	}
	part := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NODE, Name: "hwmon:" + chip}
	if slices.Contains(cpuChips, chip) {
		part.Kind = hwhealv1.PartKind_PART_KIND_CPU
	}
	if devDir != "" {
		// Two chips of one driver (a coretemp per socket, an nvme per
		// drive) are told apart by their device.
		part.Name += "/" + filepath.Base(devDir)
		part.PciAddress = sysfs.PCIAddressIn(root, devDir)
	}

	for i := range sensors {
		if err := readSensor(attrDir, &sensors[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return &hwhealv1.Observation{Part: part, Samples: sensorSamples(sensors)}, errors.Join(errs...)
}

// listSensors finds the temperature sensors in dir: every tempN with an
// _input, _crit, _max or _label attribute, in index order.
func listSensors(dir string) ([]sensor, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []sensor
	for _, e := range entries {
		idx, attr, ok := splitIndexed(e.Name(), "temp")
		if !ok {
			continue
		}
		switch attr {
		case "input", "crit", "max", "label":
		default:
			continue
		}
		i := slices.IndexFunc(out, func(s sensor) bool { return s.index == idx })
		if i < 0 {
			out = append(out, sensor{index: idx})
			i = len(out) - 1
		}
		if attr == "input" {
			out[i].hasInput = true
		}
	}
	// Thresholds without a reading are not a sensor.
	out = slices.DeleteFunc(out, func(s sensor) bool { return !s.hasInput })
	slices.SortFunc(out, func(a, b sensor) int { return a.index - b.index })
	return out, nil
}

func readSensor(dir string, s *sensor) error {
	var errs []error
	prefix := filepath.Join(dir, "temp"+strconv.Itoa(s.index)+"_")
	b, ok, err := readAttr(prefix + "label")
	if err != nil {
		errs = append(errs, err)
	}
	if ok {
		s.label = strings.TrimSpace(string(b))
	}
	temp := func(attr string, dst *float64, set *bool, threshold bool) {
		b, ok, err := readAttr(prefix + attr)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			return
		}
		v, err := ParseMillidegrees(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", prefix+attr, err))
			return
		}
		if threshold && !thresholdSet(v) {
			return
		}
		*dst, *set = v, true
	}
	temp("input", &s.input, &s.inOK, false)
	temp("crit", &s.crit, &s.critOK, true)
	temp("max", &s.max, &s.maxOK, true)
	return errors.Join(errs...)
}

// sensorNames gives each sensor its sample prefix: its label made safe,
// or tempN without one. Sensors whose names would collide ("foosensor"
// twice) all fall back to tempN, which the kernel keeps unique.
func sensorNames(sensors []sensor) []string {
	names := make([]string, len(sensors))
	fallback := make([]bool, len(sensors))
	for i, s := range sensors {
		names[i] = SensorName(s.label)
		if names[i] == "" {
			names[i], fallback[i] = "temp"+strconv.Itoa(s.index), true
		}
	}
	for changed := true; changed; {
		changed = false
		count := map[string]int{}
		for _, n := range names {
			count[n]++
		}
		for i := range names {
			if count[names[i]] > 1 && !fallback[i] {
				names[i], fallback[i], changed = "temp"+strconv.Itoa(sensors[i].index), true, true
			}
		}
	}
	return names
}

func sensorSamples(sensors []sensor) []*hwhealv1.Sample {
	var out []*hwhealv1.Sample
	add := func(name string, v float64) { out = append(out, &hwhealv1.Sample{Name: name, Value: v}) }
	for i, n := range sensorNames(sensors) {
		s := sensors[i]
		if s.inOK {
			add(n+SuffixCelsius, s.input)
		}
		if s.critOK {
			add(n+SuffixCritCelsius, s.crit)
		}
		if s.maxOK {
			add(n+SuffixMaxCelsius, s.max)
		}
		if s.inOK && s.maxOK {
			add(n+SuffixOverMax, b2f(s.input >= s.max))
		}
		if s.inOK && s.critOK {
			add(n+SuffixOverCrit, b2f(s.input >= s.crit))
		}
	}
	return out
}

// tripNames maps a trip point type to its threshold and over-samples.
var tripNames = map[string]struct{ threshold, over string }{
	"critical": {SampleZoneCritCelsius, SampleZoneOverCrit},
	"hot":      {SampleZoneHotCelsius, SampleZoneOverHot},
	"passive":  {SampleZonePassiveCelsius, SampleZoneOverPassive},
	"active":   {SampleZoneActiveCelsius, ""}, // fan stages: being over one is normal
}

// readZone reads one thermal zone; it returns nil when it has nothing to
// report.
func readZone(root, link, entry string) (*hwhealv1.Observation, error) {
	dir, err := sysfs.Resolve(root, link)
	if err != nil || dir == "" {
		return nil, err
	}
	var errs []error
	typ := entry
	b, ok, err := readAttr(filepath.Join(dir, "type"))
	if err != nil {
		errs = append(errs, err)
	}
	if t := strings.TrimSpace(string(b)); ok && t != "" {
		typ = t
	}
	part := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NODE, Name: "thermal:" + typ + "/" + entry}
	if slices.Contains(cpuZones, typ) {
		part.Kind = hwhealv1.PartKind_PART_KIND_CPU
	}

	var out []*hwhealv1.Sample
	add := func(name string, v float64) { out = append(out, &hwhealv1.Sample{Name: name, Value: v}) }
	temp, tempOK := 0.0, false
	if b, ok, err := readAttr(filepath.Join(dir, "temp")); err != nil {
		errs = append(errs, err)
	} else if ok {
		if temp, err = ParseMillidegrees(b); err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", filepath.Join(dir, "temp"), err))
		} else {
			tempOK = true
			add(SampleZoneTemp, temp)
		}
	}

	trips, err := readTrips(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, typ := range []string{"critical", "hot", "passive", "active"} {
		t, ok := trips[typ]
		if !ok {
			continue
		}
		n := tripNames[typ]
		add(n.threshold, t)
		if tempOK && n.over != "" {
			add(n.over, b2f(temp >= t))
		}
	}
	if len(out) == 0 {
		return nil, errors.Join(errs...)
	}
	return &hwhealv1.Observation{Part: part, Samples: out}, errors.Join(errs...)
}

// readTrips returns the lowest valid trip temperature of each type.
func readTrips(dir string) (map[string]float64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var idx []int
	for _, e := range entries {
		if i, attr, ok := splitIndexed(e.Name(), "trip_point_"); ok && attr == "type" {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	var errs []error
	out := map[string]float64{}
	for _, i := range idx {
		prefix := filepath.Join(dir, "trip_point_"+strconv.Itoa(i)+"_")
		tb, ok, err := readAttr(prefix + "type")
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue
		}
		typ := strings.TrimSpace(string(tb))
		if _, known := tripNames[typ]; !known {
			errs = append(errs, fmt.Errorf("%stype: unknown trip type %q", prefix, typ))
			continue
		}
		vb, ok, err := readAttr(prefix + "temp")
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue
		}
		v, err := ParseMillidegrees(vb)
		if err != nil {
			// THERMAL_TEMP_INVALID (-274000) marks a disabled trip: not a
			// malformed file.
			if strings.TrimSpace(string(vb)) == "-274000" {
				continue
			}
			errs = append(errs, fmt.Errorf("parse %stemp: %w", prefix, err))
			continue
		}
		if !thresholdSet(v) {
			continue
		}
		if cur, seen := out[typ]; !seen || v < cur {
			out[typ] = v
		}
	}
	return out, errors.Join(errs...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// listIndexed returns the entries of dir named prefix+number, in number
// order. Class directories hold links; what they point at is checked by
// the reader.
func listIndexed(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	index := func(name string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
		if err != nil || !strings.HasPrefix(name, prefix) || n < 0 || strings.ContainsAny(name[len(prefix):], "+-") {
			return -1
		}
		return n
	}
	var out []string
	for _, e := range entries {
		if index(e.Name()) >= 0 {
			out = append(out, e.Name())
		}
	}
	slices.SortFunc(out, func(a, b string) int { return index(a) - index(b) })
	return out, nil
}

// readAttr reads a sysfs attribute. ok is false when the kernel has no value
// to give: the file is absent, or the driver refuses the read, as drivers
// do for sensors that are asleep, powered down or not yet sampled.
func readAttr(path string) (b []byte, ok bool, err error) {
	return sysfs.Attr(path, syscall.EAGAIN, syscall.EIO, syscall.ENXIO, syscall.ENODEV)
}
