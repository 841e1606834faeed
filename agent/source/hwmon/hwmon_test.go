package hwmon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs/sysfs"
	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// nodeExporterRoot unpacks node_exporter's hwmon chips and thermal zone.
func nodeExporterRoot(t testing.TB) string {
	return ttartest.ExtractFile(t, "testdata/node_exporter_hwmon.ttar")
}

// procfsRoot unpacks procfs's thermal zones and an NVMe drive's sensors.
func procfsRoot(t testing.TB) string {
	return ttartest.ExtractFile(t, "testdata/procfs_hwmon.ttar")
}

// chip lays out one hwmon chip the way current kernels do: the sensors in
// <device>/hwmon/hwmonN, a class link to it and a device link back.
func chip(t *testing.T, root, devPath string, n int, attrs map[string]string) {
	t.Helper()
	hw := "hwmon" + strconv.Itoa(n)
	dir := filepath.Join(root, "sys/devices", devPath, "hwmon", hw)
	for name, v := range attrs {
		sourcetest.WriteFile(t, filepath.Join(dir, name), v)
	}
	symlink(t, "../..", filepath.Join(dir, "device"))
	symlink(t, "../../devices/"+devPath+"/hwmon/"+hw, filepath.Join(root, "sys/class/hwmon", hw))
}

// zone lays out one thermal zone.
func zone(t *testing.T, root string, n int, attrs map[string]string) {
	t.Helper()
	z := "thermal_zone" + strconv.Itoa(n)
	for name, v := range attrs {
		sourcetest.WriteFile(t, filepath.Join(root, "sys/devices/virtual/thermal", z, name), v)
	}
	symlink(t, "../../devices/virtual/thermal/"+z, filepath.Join(root, "sys/class/thermal", z))
}

func TestParseMillidegrees(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"55000\n", 55, false},
		{"43850\n", 43.85, false},
		{"-44000\n", -44, false},
		{"-273150\n", -273.15, false},
		{"0\n", 0, false},
		{"65261850\n", 65261.85, false},
		{"-274000\n", 0, true}, // THERMAL_TEMP_INVALID
		{"55.0\n", 0, true},
		{"hot\n", 0, true},
		{"\n", 0, true},
		{"99999999999999999999\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := ParseMillidegrees([]byte(tc.in))
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("ParseMillidegrees(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSensorName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Core 0", "core_0"},
		{"Physical id 0", "physical_id_0"},
		{"Package id 1", "package_id_1"},
		{"Tctl", "tctl"},
		{"Composite", "composite"},
		{"  CPU  Temp (°C)  ", "cpu_temp_c"},
		{"temp-1", "temp_1"},
		{"___", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := SensorName(tc.in); got != tc.want {
			t.Errorf("SensorName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitIndexed(t *testing.T) {
	tests := []struct {
		name, prefix string
		idx          int
		attr         string
		ok           bool
	}{
		{"temp1_input", "temp", 1, "input", true},
		{"temp12_crit_alarm", "temp", 12, "crit_alarm", true},
		{"trip_point_0_temp", "trip_point_", 0, "temp", true},
		{"temp_input", "temp", 0, "", false},
		{"temp1", "temp", 0, "", false},
		{"temp1_", "temp", 0, "", false},
		{"tempx_input", "temp", 0, "", false},
		{"temp-1_input", "temp", 0, "", false},
		{"in0_input", "temp", 0, "", false},
		{"temp9999999_input", "temp", 0, "", false},
	}
	for _, tc := range tests {
		idx, attr, ok := splitIndexed(tc.name, tc.prefix)
		if idx != tc.idx || attr != tc.attr || ok != tc.ok {
			t.Errorf("splitIndexed(%q, %q) = %d, %q, %v", tc.name, tc.prefix, idx, attr, ok)
		}
	}
}

func TestSensorNames(t *testing.T) {
	tests := []struct {
		name   string
		labels map[int]string
		want   []string
	}{
		{"labels", map[int]string{1: "Package id 0", 2: "Core 0"}, []string{"package_id_0", "core_0"}},
		{"no labels", map[int]string{1: "", 3: ""}, []string{"temp1", "temp3"}},
		{"shared label", map[int]string{1: "foosensor", 2: "foosensor", 3: "bar"}, []string{"temp1", "temp2", "bar"}},
		{"label that is another sensor's name", map[int]string{1: "temp2", 2: ""}, []string{"temp1", "temp2"}},
		{"fallback meets a label", map[int]string{1: "X", 2: "x", 3: "temp1"}, []string{"temp1", "temp2", "temp3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ss []sensor
			for _, i := range slices.Sorted(maps.Keys(tc.labels)) {
				ss = append(ss, sensor{index: i, label: tc.labels[i]})
			}
			if got := sensorNames(ss); !slices.Equal(got, tc.want) {
				t.Errorf("sensorNames = %q, want %q", got, tc.want)
			}
		})
	}
}

var e2eLine = regexp.MustCompile(`^(node_\w+)\{([^}]*)\} (\S+)$`)

// TestNodeExporterFixture reads node_exporter's hwmon and thermal fixture
// and compares every temperature with what node_exporter reported from it.
func TestNodeExporterFixture(t *testing.T) {
	obs, err := New(Config{Root: nodeExporterRoot(t)}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	got := sourcetest.ByName(obs)
	// node_exporter names a chip by its device path; we name it by driver
	// and device. The chips without temperature sensors (applesmc, asus,
	// nct6779 here) have no observation.
	part := map[string]string{
		"hwmon4":                       "hwmon:hwmon4", // no name, no device
		"ieee80211_phy0_mt7996_phy0_0": "hwmon:mt7996_phy0_0/phy0",
		"ieee80211_phy0_mt7996_phy0_1": "hwmon:mt7996_phy0_1/phy0",
		"ieee80211_phy0_mt7996_phy0_2": "hwmon:mt7996_phy0_2/phy0",
		"platform_coretemp_0":          "hwmon:coretemp/coretemp.0",
		"platform_coretemp_1":          "hwmon:coretemp/coretemp.1",
	}
	wantParts := append(slices.Sorted(maps.Values(part)), "thermal:cpu-thermal/thermal_zone0")
	if n := slices.Sorted(maps.Keys(got)); !slices.Equal(n, wantParts) {
		t.Fatalf("parts = %q\nwant %q", n, wantParts)
	}
	for _, o := range obs {
		wantKind := hwhealv1.PartKind_PART_KIND_NODE
		if strings.Contains(o.GetPart().GetName(), "coretemp") || strings.Contains(o.GetPart().GetName(), "cpu-thermal") {
			wantKind = hwhealv1.PartKind_PART_KIND_CPU
		}
		if o.GetPart().GetKind() != wantKind || o.GetSource() != Name || o.GetTime() == nil {
			t.Errorf("%s: kind %v source %q", o.GetPart().GetName(), o.GetPart().GetKind(), o.GetSource())
		}
	}

	b, err := os.ReadFile("testdata/e2e-output-hwmon.txt")
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		metric string
		labels map[string]string
		value  float64
	}
	var lines []line
	labelOf := map[[2]string]string{} // chip, sensor
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		m := e2eLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("unexpected line %q", sc.Text())
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		l := line{metric: m[1], labels: map[string]string{}, value: v}
		for _, kv := range strings.Split(m[2], ",") {
			k, v, _ := strings.Cut(kv, "=")
			l.labels[k] = strings.Trim(v, `"`)
		}
		if l.metric == "node_hwmon_sensor_label" {
			labelOf[[2]string{l.labels["chip"], l.labels["sensor"]}] = l.labels["label"]
		}
		lines = append(lines, l)
	}
	// The sample prefix we expect for a sensor node_exporter names.
	prefix := func(chip, sensor string) string {
		if chip == "hwmon4" {
			return sensor // both its sensors are labelled "foosensor"
		}
		if l := labelOf[[2]string{chip, sensor}]; l != "" {
			return strings.ReplaceAll(strings.ToLower(l), " ", "_")
		}
		return sensor
	}
	checked := 0
	for _, l := range lines {
		chip, sensor := l.labels["chip"], l.labels["sensor"]
		var sample string
		switch l.metric {
		case "node_hwmon_temp_celsius":
			sample = prefix(chip, sensor) + SuffixCelsius
		case "node_hwmon_temp_crit_celsius":
			sample = prefix(chip, sensor) + SuffixCritCelsius
		case "node_hwmon_temp_max_celsius":
			sample = prefix(chip, sensor) + SuffixMaxCelsius
		case "node_hwmon_temp_crit_alarm_celsius":
			// The chip's own alarm flag: our over_crit must agree with it.
			sample = prefix(chip, sensor) + SuffixOverCrit
		case "node_hwmon_chip_names":
			if p, ok := part[chip]; ok && !strings.HasPrefix(p, "hwmon:"+l.labels["chip_name"]+"/") {
				t.Errorf("chip %s is %q, we call it %q", chip, l.labels["chip_name"], p)
			}
			continue
		case "node_hwmon_sensor_label":
			continue
		case "node_thermal_zone_temp":
			checked++
			z := got["thermal:"+l.labels["type"]+"/thermal_zone"+l.labels["zone"]]
			if g := sourcetest.SampleMap(z)[SampleZoneTemp]; g != l.value {
				t.Errorf("zone %s temp = %v, node_exporter says %v", l.labels["zone"], g, l.value)
			}
			continue
		default:
			t.Fatalf("metric %s not cross-checked", l.metric)
		}
		checked++
		o, ok := got[part[chip]]
		if !ok {
			t.Errorf("no observation of chip %s", chip)
			continue
		}
		if g, ok := sourcetest.SampleMap(o)[sample]; !ok || g != l.value {
			t.Errorf("%s %s = %v (present %v), node_exporter says %v", part[chip], sample, g, ok, l.value)
		}
	}
	if checked != 15+12+12+12+1 {
		t.Errorf("cross-checked %d values", checked)
	}
}

// TestProcfsFixture reads an NVMe drive's sensors and procfs's thermal
// zones, the zones cross-checked with procfs's own reader.
func TestProcfsFixture(t *testing.T) {
	root := procfsRoot(t)
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := []string{"hwmon:nvme/nvme0", "thermal:bcm2835_thermal/thermal_zone0", "thermal:acpitz/thermal_zone1"}
	if !slices.Equal(sourcetest.Names(obs), want) {
		t.Fatalf("parts = %q, want %q", sourcetest.Names(obs), want)
	}
	nvme := obs[0]
	if p := nvme.GetPart(); p.GetPciAddress() != "0000:01:00.0" || p.GetKind() != hwhealv1.PartKind_PART_KIND_NODE {
		t.Errorf("nvme part = %v", p)
	}
	wantNVMe := map[string]float64{
		"composite_celsius": 43.85, "composite_crit_celsius": 94.85, "composite_max_celsius": 84.85,
		"composite_over_max": 0, "composite_over_crit": 0,
		// Sensors 1, 2 and 8 have max 65261.85 °C, NVMe's "no threshold".
		"sensor_1_celsius": 43.85, "sensor_2_celsius": 45.85, "sensor_8_celsius": 43.85,
	}
	if s := sourcetest.SampleMap(nvme); !maps.Equal(s, wantNVMe) {
		t.Errorf("nvme samples = %v\nwant %v", s, wantNVMe)
	}

	fs, err := sysfs.NewFS(filepath.Join(root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	zones, err := fs.ClassThermalZoneStats()
	if err != nil {
		t.Fatalf("procfs: %v", err)
	}
	if len(zones) != 2 {
		t.Fatalf("procfs sees %d zones", len(zones))
	}
	got := sourcetest.ByName(obs)
	for _, z := range zones {
		o := got["thermal:"+z.Type+"/thermal_zone"+z.Name]
		if o == nil {
			t.Errorf("no observation of zone %s (%s)", z.Name, z.Type)
			continue
		}
		if s := sourcetest.SampleMap(o); len(s) != 1 || s[SampleZoneTemp] != float64(z.Temp)/1000 {
			t.Errorf("zone %s = %v, procfs says %d m°C", z.Name, s, z.Temp)
		}
	}
}

func TestTripPoints(t *testing.T) {
	root := t.TempDir()
	zone(t, root, 0, map[string]string{
		"type": "x86_pkg_temp\n", "temp": "96000\n",
		"trip_point_0_type": "passive\n", "trip_point_0_temp": "95000\n",
		"trip_point_1_type": "critical\n", "trip_point_1_temp": "105000\n",
	})
	zone(t, root, 1, map[string]string{
		"type": "acpitz\n", "temp": "55000\n",
		"trip_point_0_type": "critical\n", "trip_point_0_temp": "-274000\n", // disabled
		"trip_point_1_type": "active\n", "trip_point_1_temp": "60000\n",
		"trip_point_2_type": "active\n", "trip_point_2_temp": "50000\n",
		"trip_point_3_type": "hot\n", "trip_point_3_temp": "55000\n",
	})
	zone(t, root, 2, map[string]string{"type": "iwlwifi_1\n"}) // no reading: nothing to report
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	got := sourcetest.ByName(obs)
	if len(obs) != 2 {
		t.Fatalf("zones = %q", sourcetest.Names(obs))
	}
	pkg := got["thermal:x86_pkg_temp/thermal_zone0"]
	if pkg.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_CPU {
		t.Errorf("x86_pkg_temp kind %v", pkg.GetPart().GetKind())
	}
	if s, want := sourcetest.SampleMap(pkg), map[string]float64{
		SampleZoneTemp: 96, SampleZonePassiveCelsius: 95, SampleZoneOverPassive: 1,
		SampleZoneCritCelsius: 105, SampleZoneOverCrit: 0,
	}; !maps.Equal(s, want) {
		t.Errorf("x86_pkg_temp = %v, want %v", s, want)
	}
	if s, want := sourcetest.SampleMap(got["thermal:acpitz/thermal_zone1"]), map[string]float64{
		SampleZoneTemp: 55, SampleZoneHotCelsius: 55, SampleZoneOverHot: 1, SampleZoneActiveCelsius: 50,
	}; !maps.Equal(s, want) {
		t.Errorf("acpitz = %v, want %v", s, want)
	}
}

func TestThresholds(t *testing.T) {
	root := t.TempDir()
	chip(t, root, "pci0000:00/0000:00:18.3", 0, map[string]string{
		"name":        "k10temp\n",
		"temp1_label": "Tctl\n", "temp1_input": "91500\n", "temp1_max": "90000\n", "temp1_crit": "0\n",
		"temp3_label": "Tccd1\n", "temp3_input": "-5000\n", "temp3_crit": "-273150\n",
		"temp4_crit": "100000\n", // a threshold without a reading is no sensor
	})
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(obs) != 1 {
		t.Fatalf("parts = %q", sourcetest.Names(obs))
	}
	p := obs[0].GetPart()
	if p.GetName() != "hwmon:k10temp/0000:00:18.3" || p.GetKind() != hwhealv1.PartKind_PART_KIND_CPU || p.GetPciAddress() != "0000:00:18.3" {
		t.Errorf("part = %v", p)
	}
	want := map[string]float64{
		"tctl_celsius": 91.5, "tctl_max_celsius": 90, "tctl_over_max": 1, // crit 0: not set
		"tccd1_celsius": -5, // crit -273.15: not set
	}
	if s := sourcetest.SampleMap(obs[0]); !maps.Equal(s, want) {
		t.Errorf("samples = %v, want %v", s, want)
	}
}

// TestLegacyLayout: before 3.x kernels, and with some drivers still, the
// sensors and name live in the device's directory.
func TestLegacyLayout(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "sys/devices/platform/w83627ehf.656")
	for name, v := range map[string]string{"name": "w83627ehf\n", "temp1_input": "40000\n", "temp1_max": "75000\n", "fan1_input": "1200\n"} {
		sourcetest.WriteFile(t, filepath.Join(dev, name), v)
	}
	symlink(t, "../..", filepath.Join(dev, "hwmon/hwmon0/device"))
	symlink(t, "../../devices/platform/w83627ehf.656/hwmon/hwmon0", filepath.Join(root, "sys/class/hwmon/hwmon0"))
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(obs) != 1 || obs[0].GetPart().GetName() != "hwmon:w83627ehf/w83627ehf.656" {
		t.Fatalf("parts = %q", sourcetest.Names(obs))
	}
	if s, want := sourcetest.SampleMap(obs[0]), map[string]float64{"temp1_celsius": 40, "temp1_max_celsius": 75, "temp1_over_max": 0}; !maps.Equal(s, want) {
		t.Errorf("samples = %v, want %v", s, want)
	}
}

func TestMalformedFiles(t *testing.T) {
	const core0 = "sys/devices/platform/coretemp.0/hwmon/hwmon0"
	tests := []struct {
		name    string
		modify  func(t *testing.T, root string)
		wantErr []string
		check   func(t *testing.T, got map[string]map[string]float64, n int)
	}{
		{
			name: "non-numeric reading",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, core0, "temp2_input"), "warm\n")
			},
			wantErr: []string{core0 + "/temp2_input", `parsing "warm"`},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["hwmon:coretemp/coretemp.0"]
				if _, ok := s["core_0_celsius"]; ok {
					t.Error("malformed reading still reported")
				}
				if _, ok := s["core_0_over_max"]; ok {
					t.Error("over_max judged without a reading")
				}
				if s["core_0_max_celsius"] != 84 || s["core_1_celsius"] != 52 || s["physical_id_0_celsius"] != 55 {
					t.Errorf("the rest of the chip was lost: %v", s)
				}
				if got["hwmon:coretemp/coretemp.1"]["core_0_celsius"] != 54 || n != 7 {
					t.Errorf("the other chips were hurt: %d parts", n)
				}
			},
		},
		{
			name: "non-numeric threshold",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, core0, "temp3_crit"), "100 C\n")
			},
			wantErr: []string{core0 + "/temp3_crit"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["hwmon:coretemp/coretemp.0"]
				if _, ok := s["core_1_crit_celsius"]; ok {
					t.Error("malformed crit still reported")
				}
				if s["core_1_celsius"] != 52 || s["core_1_max_celsius"] != 84 {
					t.Errorf("core_1 lost its reading: %v", s)
				}
			},
		},
		{
			name: "unreadable label",
			modify: func(t *testing.T, root string) {
				p := filepath.Join(root, core0, "temp2_label")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(p, 0o755); err != nil { // reading it fails with EISDIR
					t.Fatal(err)
				}
			},
			wantErr: []string{"read ", core0 + "/temp2_label"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				if got["hwmon:coretemp/coretemp.0"]["temp2_celsius"] != 54 {
					t.Errorf("the sensor is not reported under its number: %v", got["hwmon:coretemp/coretemp.0"])
				}
			},
		},
		{
			name: "malformed zone temperature",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, "sys/devices/virtual/thermal/thermal_zone0/temp"), "12.376\n")
			},
			wantErr: []string{"thermal_zone0/temp"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				if _, ok := got["thermal:cpu-thermal/thermal_zone0"]; ok {
					t.Error("a zone with nothing readable was reported")
				}
				if n != 6 {
					t.Errorf("%d parts, want the 6 chips", n)
				}
			},
		},
		{
			name: "unknown trip type",
			modify: func(t *testing.T, root string) {
				z := filepath.Join(root, "sys/devices/virtual/thermal/thermal_zone0")
				sourcetest.WriteFile(t, filepath.Join(z, "trip_point_0_type"), "lukewarm\n")
				sourcetest.WriteFile(t, filepath.Join(z, "trip_point_0_temp"), "50000\n")
				sourcetest.WriteFile(t, filepath.Join(z, "trip_point_1_type"), "critical\n")
				sourcetest.WriteFile(t, filepath.Join(z, "trip_point_1_temp"), "90000\n")
			},
			wantErr: []string{"thermal_zone0/trip_point_0_type", `"lukewarm"`},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["thermal:cpu-thermal/thermal_zone0"]
				if s[SampleZoneCritCelsius] != 90 || s[SampleZoneTemp] != 12.376 || len(s) != 3 {
					t.Errorf("zone = %v", s)
				}
			},
		},
		{
			name: "link leaving the tree",
			modify: func(t *testing.T, root string) {
				symlink(t, "/", filepath.Join(root, "sys/class/thermal/thermal_zone9")) // exists everywhere
			},
			wantErr: []string{"sys/class/thermal/thermal_zone9 points outside"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				if n != 7 {
					t.Errorf("%d parts, want the 7 of the fixture", n)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := nodeExporterRoot(t)
			tc.modify(t, root)
			obs := sourcetest.ReadMalformed(t, New(Config{Root: root}).Read, tc.wantErr...)
			tc.check(t, sourcetest.SamplesByName(obs), len(obs))
		})
	}
}

func TestAbsent(t *testing.T) {
	tests := map[string]func(t *testing.T) string{
		"no class directories": func(t *testing.T) string { return t.TempDir() },
		"empty thermal class, chips without temperatures (a virtual machine)": func(t *testing.T) string {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "sys/class/thermal"), 0o755); err != nil {
				t.Fatal(err)
			}
			chip(t, root, "platform/nct6775.656", 0, map[string]string{"name": "nct6779\n", "fan1_input": "900\n", "in0_input": "792\n"})
			return root
		},
	}
	for name, root := range tests {
		t.Run(name, func(t *testing.T) {
			obs, err := New(Config{Root: root(t)}).Read(context.Background())
			if !errors.Is(err, fs.ErrNotExist) || len(obs) != 0 {
				t.Errorf("Read = %d observations, %v; want none and ErrNotExist", len(obs), err)
			}
		})
	}
}

// TestReadThisHost reads the real sensors of the machine running the test
// and checks every chip with a temperature against sysfs.
func TestReadThisHost(t *testing.T) {
	obs, err := New(Config{Root: "/"}).Read(context.Background())
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no hwmon temperature sensor or thermal zone on this host")
	}
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	inputs, _ := filepath.Glob("/sys/class/hwmon/hwmon*/temp*_input")
	zones, _ := filepath.Glob("/sys/class/thermal/thermal_zone*")
	chips := map[string]bool{}
	for _, in := range inputs {
		chips[filepath.Dir(in)] = true
	}
	var nChips, nZones int
	for _, o := range obs {
		if strings.HasPrefix(o.GetPart().GetName(), "hwmon:") {
			nChips++
		} else {
			nZones++
		}
		for _, s := range o.GetSamples() {
			if strings.HasSuffix(s.GetName(), "celsius") && (s.GetValue() < -100 || s.GetValue() > 200) {
				t.Errorf("%s %s = %v °C", o.GetPart().GetName(), s.GetName(), s.GetValue())
			}
		}
	}
	if nChips > len(chips) || nZones > len(zones) {
		t.Errorf("%d chips and %d zones observed, sysfs has %d and %d", nChips, nZones, len(chips), len(zones))
	}
	t.Logf("%q", sourcetest.Names(obs))
}

func TestRunLoop(t *testing.T) {
	sourcetest.RunLoop(t, sourcetest.Fixture{
		New: func(root string, interval time.Duration, logger *slog.Logger) sourcetest.Periodic {
			return New(Config{Root: root, Interval: interval, Logger: logger})
		},
		Good:       func(t *testing.T) string { return procfsRoot(t) },
		PerReading: 3,
		AbsentLog:  "no temperature sensors",
		Malformed: func(t *testing.T) (string, []string) {
			root := procfsRoot(t)
			bad := filepath.Join(root, "sys/devices/pci0000:00/0000:00:02.1/0000:01:00.0/nvme/nvme0/hwmon3/temp2_input")
			sourcetest.WriteFile(t, bad, "n/a\n")
			return root, []string{bad}
		},
		MalformedMin: 6,
	})
}

func FuzzParseMillidegrees(f *testing.F) {
	for _, s := range []string{"55000\n", "-44000", "-274000", "65261850", "55.5", "", "9223372036854775807"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseMillidegrees(data)
		if err != nil {
			if v != 0 {
				t.Fatalf("error %v with value %v", err, v)
			}
			return
		}
		if v < -273.15 || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("ParseMillidegrees(%q) = %v", data, v)
		}
	})
}

func FuzzSensorName(f *testing.F) {
	for _, s := range []string{"Core 0", "Physical id 0", "  Tctl ", "°C", "a__b", "ÄÖ 1"} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^([a-z0-9]+(_[a-z0-9]+)*)?$`)
	f.Fuzz(func(t *testing.T, label string) {
		n := SensorName(label)
		if !valid.MatchString(n) {
			t.Fatalf("SensorName(%q) = %q", label, n)
		}
		if SensorName(n) != n {
			t.Fatalf("SensorName not idempotent on %q", n)
		}
	})
}

func FuzzSplitIndexed(f *testing.F) {
	for _, s := range []string{"temp1_input", "temp12_crit_alarm", "trip_point_0_temp", "temp_x", "temp-1_input", "temp01_max"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, prefix := range []string{"temp", "trip_point_"} {
			idx, attr, ok := splitIndexed(name, prefix)
			if !ok {
				continue
			}
			num, rest, _ := strings.Cut(strings.TrimPrefix(name, prefix), "_")
			if n, err := strconv.Atoi(num); err != nil || n != idx || idx < 0 || rest != attr || attr == "" {
				t.Fatalf("splitIndexed(%q, %q) = %d, %q", name, prefix, idx, attr)
			}
		}
	})
}

// FuzzSensorNames: whatever the labels, every sensor of a chip gets its
// own sample names.
func FuzzSensorNames(f *testing.F) {
	f.Add("foosensor\nfoosensor\nbar")
	f.Add("temp2\n\nX\nx\ntemp1")
	f.Fuzz(func(t *testing.T, labels string) {
		var ss []sensor
		for i, l := range strings.Split(labels, "\n") {
			ss = append(ss, sensor{index: i + 1, label: l})
		}
		got := sensorNames(ss)
		seen := map[string]bool{}
		for _, n := range got {
			if n == "" || seen[n] {
				t.Fatalf("sensorNames(%q) = %q", labels, got)
			}
			seen[n] = true
		}
	})
}

func BenchmarkReadNodeExporterFixture(b *testing.B) {
	src := New(Config{Root: nodeExporterRoot(b)})
	for b.Loop() {
		if _, err := src.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
