package aer

import (
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
	"reflect"
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

// procfsRoot unpacks the excerpt of procfs's fixture: six PCIe functions.
func procfsRoot(t testing.TB) string {
	return ttartest.ExtractFile(t, "testdata/procfs_pci.ttar")
}

// pciFunc is one function of a hand-built tree: its path below
// /sys/devices and its attributes.
type pciFunc struct {
	path  string
	attrs map[string]string
}

// pciTree lays functions out the way the kernel does: a directory per
// function under its bridge, and a relative link in /sys/bus/pci/devices.
func pciTree(t *testing.T, funcs ...pciFunc) string {
	t.Helper()
	root := t.TempDir()
	bus := filepath.Join(root, "sys/bus/pci/devices")
	if err := os.MkdirAll(bus, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range funcs {
		dir := filepath.Join(root, "sys/devices", f.path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range f.attrs {
			sourcetest.WriteFile(t, filepath.Join(dir, name), v)
		}
		if err := os.Symlink("../../../devices/"+f.path, filepath.Join(bus, filepath.Base(f.path))); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// lnk gives a function's four link attributes as the kernel writes them.
func lnk(cur, max string, curW, maxW int) map[string]string {
	return map[string]string{
		"current_link_speed": cur + "\n", "max_link_speed": max + "\n",
		"current_link_width": strconv.Itoa(curW) + "\n", "max_link_width": strconv.Itoa(maxW) + "\n",
	}
}

func TestParseAERCounters(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]uint64
		wantErr string
	}{
		{
			name: "kernel correctable file",
			in:   "RxErr 1\nBadTLP 2\nBadDLLP 3\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\nHeaderOF 0\nTOTAL_ERR_COR 6\n",
			want: map[string]uint64{"RxErr": 1, "BadTLP": 2, "BadDLLP": 3, "Rollover": 0, "Timeout": 0, "NonFatalErr": 0, "CorrIntErr": 0, "HeaderOF": 0, "TOTAL_ERR_COR": 6},
		},
		{name: "blank lines and padding", in: "\n  RxErr   7  \n\n", want: map[string]uint64{"RxErr": 7}},
		{name: "empty", in: "", want: map[string]uint64{}},
		{name: "names the kernel adds later are kept", in: "TLPPrefixBlocked 4\n", want: map[string]uint64{"TLPPrefixBlocked": 4}},
		{name: "max count", in: "RxErr 18446744073709551615\n", want: map[string]uint64{"RxErr": math.MaxUint64}},
		{
			name:    "non-numeric count",
			in:      "RxErr 1\nBadTLP x\nBadDLLP 3\n",
			want:    map[string]uint64{"RxErr": 1, "BadDLLP": 3},
			wantErr: `line 2: BadTLP: strconv.ParseUint: parsing "x"`,
		},
		{name: "negative count", in: "RxErr -1\n", want: map[string]uint64{}, wantErr: "line 1: RxErr"},
		{name: "three fields", in: "RxErr 1 2\nTimeout 5\n", want: map[string]uint64{"Timeout": 5}, wantErr: "line 1: 3 fields"},
		{name: "name only", in: "RxErr\n", want: map[string]uint64{}, wantErr: "line 1: 1 fields"},
		{name: "name twice", in: "RxErr 1\nRxErr 2\n", want: map[string]uint64{"RxErr": 1}, wantErr: "line 2: RxErr appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAERCounters(strings.NewReader(tc.in))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ParseAERCounters: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("ParseAERCounters = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseLinkSpeed(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		known   bool
		wantErr bool
	}{
		{"8.0 GT/s PCIe\n", 8, true, false},
		{"16.0 GT/s PCIe\n", 16, true, false},
		{"2.5 GT/s PCIe", 2.5, true, false},
		{"64.0 GT/s PCIe\n", 64, true, false},
		{"2.5 GT/s\n", 2.5, true, false}, // before 4.17
		{"5 GT/s\n", 5, true, false},
		{"8 GT/s\n", 8, true, false},
		{"Unknown\n", 0, false, false},
		{"Unknown speed\n", 0, false, false},
		{"\n", 0, false, false},
		{"66 MHz PCI-X\n", 0, false, false},
		{"133 MHz PCI-X 266\n", 0, false, false},
		{"fast\n", 0, false, true},
		{"8.0 GB/s\n", 0, false, true},
		{"8.0 GT/s PCIe x16\n", 0, false, true},
		{"8.0 GT/s NVLink\n", 0, false, true},
		{"-8 GT/s\n", 0, false, true},
		{"0 GT/s\n", 0, false, true},
		{"NaN GT/s\n", 0, false, true},
		{"Inf GT/s\n", 0, false, true},
		{"x GT/s\n", 0, false, true},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, known, err := ParseLinkSpeed([]byte(tc.in))
			if got != tc.want || known != tc.known || (err != nil) != tc.wantErr {
				t.Errorf("ParseLinkSpeed(%q) = %v, %v, %v; want %v, %v, error %v", tc.in, got, known, err, tc.want, tc.known, tc.wantErr)
			}
		})
	}
}

func TestParseLinkWidth(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"16\n", 16, false},
		{"0\n", 0, false},
		{" 4 ", 4, false},
		{"x16\n", 0, true},
		{"-1\n", 0, true},
		{"\n", 0, true},
		{"4294967296\n", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseLinkWidth([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseLinkWidth(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCounterSamples(t *testing.T) {
	tests := []struct {
		name  string
		class string
		in    map[string]uint64
		want  []string // name=value in order
	}{
		{"total first, then names in order", ClassCorrectable,
			map[string]uint64{"RxErr": 1, "BadTLP": 2, "TOTAL_ERR_COR": 3},
			[]string{"correctable_total=3", "correctable_BadTLP=2", "correctable_RxErr=1"}},
		{"the only TOTAL_ERR_ line is the total", ClassNonFatal,
			map[string]uint64{"DLP": 1, "TOTAL_ERR_FATAL": 48},
			[]string{"nonfatal_total=48", "nonfatal_DLP=1"}},
		{"the class's own total wins", ClassFatal,
			map[string]uint64{"TOTAL_ERR_NONFATAL": 5, "TOTAL_ERR_FATAL": 7},
			[]string{"fatal_total=7", "fatal_TOTAL_ERR_NONFATAL=5"}},
		{"two strangers are no total", ClassFatal,
			map[string]uint64{"TOTAL_ERR_A": 1, "TOTAL_ERR_B": 2},
			[]string{"fatal_TOTAL_ERR_A=1", "fatal_TOTAL_ERR_B=2"}},
		{"no total", ClassFatal, map[string]uint64{"DLP": 0}, []string{"fatal_DLP=0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range CounterSamples(tc.class, tc.in) {
				got = append(got, s.GetName()+"="+strconv.FormatFloat(s.GetValue(), 'f', -1, 64))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("CounterSamples = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestProcfsFixture reads procfs's PCI fixture and checks every value
// against procfs's own readers of the same tree.
func TestProcfsFixture(t *testing.T) {
	root := procfsRoot(t)
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := []string{"0000:00:02.1", "0000:00:03.0", "0000:00:1f.6", "0000:01:00.0", "0000:03:00.0", "0000:a2:00.0"}
	if got := sourcetest.Names(obs); !slices.Equal(got, want) {
		t.Fatalf("functions = %q, want %q", got, want)
	}
	for _, o := range obs {
		p := o.GetPart()
		if o.GetSource() != Name || p.GetKind() != hwhealv1.PartKind_PART_KIND_PCI || p.GetPciAddress() != p.GetName() || o.GetTime() == nil {
			t.Errorf("%s: source %q kind %v pci %q", p.GetName(), o.GetSource(), p.GetKind(), p.GetPciAddress())
		}
	}
	got := sourcetest.ByName(obs)

	fs, err := sysfs.NewFS(filepath.Join(root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("links agree with procfs", func(t *testing.T) {
		devs, err := fs.PciDevices()
		if err != nil {
			t.Fatalf("procfs: %v", err)
		}
		if len(devs) != len(want) {
			t.Fatalf("procfs sees %d functions", len(devs))
		}
		for _, d := range devs {
			l := d.Location
			addr := strings.Join([]string{l.Strings()[0], l.Strings()[1], l.Strings()[2]}, ":") + "." + l.Strings()[3]
			s := sourcetest.SampleMap(got[addr])
			for _, c := range []struct {
				sample string
				want   *float64
			}{
				{SampleLinkSpeedGTs, d.CurrentLinkSpeed},
				{SampleLinkMaxSpeedGTs, d.MaxLinkSpeed},
				{SampleLinkWidth, d.CurrentLinkWidth},
				{SampleLinkMaxWidth, d.MaxLinkWidth},
			} {
				v, ok := s[c.sample]
				if ok != (c.want != nil) || ok && v != *c.want {
					t.Errorf("%s %s = %v (present %v), procfs %v", addr, c.sample, v, ok, c.want)
				}
			}
		}
	})
	t.Run("AER counters agree with procfs", func(t *testing.T) {
		// procfs reads AER through the network class: eth0 is 0000:00:1f.6.
		ac, err := fs.AerCountersByIface("eth0")
		if err != nil {
			t.Fatalf("procfs: %v", err)
		}
		s := sourcetest.SampleMap(got["0000:00:1f.6"])
		n := 0
		for class, v := range map[string]any{ClassCorrectable: ac.Correctable, ClassNonFatal: ac.NonFatal, ClassFatal: ac.Fatal} {
			rv := reflect.ValueOf(v)
			for i := range rv.NumField() {
				name := class + "_" + rv.Type().Field(i).Name
				n++
				if g, ok := s[name]; !ok || g != float64(rv.Field(i).Uint()) {
					t.Errorf("%s = %v (present %v), procfs %d", name, g, ok, rv.Field(i).Uint())
				}
			}
		}
		if n != 8+18+18 {
			t.Errorf("compared %d counters", n)
		}
		// procfs keeps no totals: they are the kernel's own lines.
		if s[SampleCorrectableTotal] != 9 || s[SampleNonFatalTotal] != 48 || s[SampleFatalTotal] != 28 {
			t.Errorf("totals = %v %v %v", s[SampleCorrectableTotal], s[SampleNonFatalTotal], s[SampleFatalTotal])
		}
	})
	t.Run("links judged against their partner", func(t *testing.T) {
		// 00:02.1 is an x8 root port with an x4 drive below it, 00:03.0 an
		// x16 root port with an x8 HBA: both trained as wide as their
		// partner allows, though below their own maximum.
		for addr, w := range map[string]struct{ capable, cur float64 }{
			"0000:00:02.1": {4, 4}, "0000:01:00.0": {4, 4},
			"0000:00:03.0": {8, 8}, "0000:03:00.0": {8, 8}, "0000:a2:00.0": {8, 8},
		} {
			s := sourcetest.SampleMap(got[addr])
			if s[SampleLinkCapableWidth] != w.capable || s[SampleLinkWidth] != w.cur ||
				s[SampleLinkDegraded] != 0 || s[SampleLinkWidthDegraded] != 0 || s[SampleLinkSpeedDegraded] != 0 {
				t.Errorf("%s = %v", addr, s)
			}
			if _, ok := s[SampleLinkDegraded]; !ok {
				t.Errorf("%s: link not judged", addr)
			}
		}
		if s := sourcetest.SampleMap(got["0000:00:02.1"]); s[SampleLinkMaxWidth] != 8 {
			t.Errorf("00:02.1 own maximum = %v, want 8", s[SampleLinkMaxWidth])
		}
		// 00:1f.6 is an integrated NIC: AER, no link.
		for name := range sourcetest.SampleMap(got["0000:00:1f.6"]) {
			if strings.HasPrefix(name, "link_") {
				t.Errorf("00:1f.6 has %s", name)
			}
		}
		// Root port totals appear where the kernel has them.
		if s := sourcetest.SampleMap(got["0000:00:03.0"]); len(s) != 9+19+19+3+9 || s[SampleRootPortCorrectableTotal] != 0 {
			t.Errorf("00:03.0 has %d samples: %v", len(s), s)
		}
	})
}

func TestLinkDegradation(t *testing.T) {
	const (
		gen3 = "8.0 GT/s PCIe"
		gen4 = "16.0 GT/s PCIe"
	)
	// want is the full set of link samples per function; absent names are
	// asserted absent.
	tests := []struct {
		name  string
		funcs []pciFunc
		want  map[string]map[string]float64
	}{
		{
			name: "GPU trained at x8 in an x16 slot",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:01.0", lnk(gen4, gen4, 8, 16)},
				{"pci0000:00/0000:00:01.0/0000:01:00.0", lnk(gen4, gen4, 8, 16)},
			},
			want: map[string]map[string]float64{
				"0000:00:01.0": {"link_speed_gts": 16, "link_max_speed_gts": 16, "link_width": 8, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 0, "link_width_degraded": 1, "link_degraded": 1},
				"0000:01:00.0": {"link_speed_gts": 16, "link_max_speed_gts": 16, "link_width": 8, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 0, "link_width_degraded": 1, "link_degraded": 1},
			},
		},
		{
			name: "Gen4 drive in a Gen3 slot runs as fast as it can",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:01.1", lnk(gen3, gen3, 4, 4)},
				{"pci0000:00/0000:00:01.1/0000:02:00.0", lnk(gen3, gen4, 4, 4)},
			},
			want: map[string]map[string]float64{
				"0000:00:01.1": {"link_speed_gts": 8, "link_max_speed_gts": 8, "link_width": 4, "link_max_width": 4, "link_capable_speed_gts": 8, "link_capable_width": 4, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
				"0000:02:00.0": {"link_speed_gts": 8, "link_max_speed_gts": 16, "link_width": 4, "link_max_width": 4, "link_capable_speed_gts": 8, "link_capable_width": 4, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
			},
		},
		{
			name: "x4 drive behind an x8 root port",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:03.1", lnk(gen3, gen3, 4, 8)},
				{"pci0000:00/0000:00:03.1/0000:04:00.0", lnk(gen3, gen3, 4, 4)},
			},
			want: map[string]map[string]float64{
				"0000:00:03.1": {"link_speed_gts": 8, "link_max_speed_gts": 8, "link_width": 4, "link_max_width": 8, "link_capable_speed_gts": 8, "link_capable_width": 4, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
				"0000:04:00.0": {"link_speed_gts": 8, "link_max_speed_gts": 8, "link_width": 4, "link_max_width": 4, "link_capable_speed_gts": 8, "link_capable_width": 4, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
			},
		},
		{
			name: "idle GPU drops its speed",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:01.0", lnk("2.5 GT/s PCIe", gen4, 16, 16)},
				{"pci0000:00/0000:00:01.0/0000:01:00.0", lnk("2.5 GT/s PCIe", gen4, 16, 16)},
				{"pci0000:00/0000:00:01.0/0000:01:00.1", lnk("2.5 GT/s PCIe", gen4, 16, 16)}, // its audio function
			},
			want: map[string]map[string]float64{
				"0000:00:01.0": {"link_speed_gts": 2.5, "link_max_speed_gts": 16, "link_width": 16, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 1, "link_width_degraded": 0, "link_degraded": 1},
				"0000:01:00.0": {"link_speed_gts": 2.5, "link_max_speed_gts": 16, "link_width": 16, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 1, "link_width_degraded": 0, "link_degraded": 1},
				"0000:01:00.1": {"link_speed_gts": 2.5, "link_max_speed_gts": 16, "link_width": 16, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 1, "link_width_degraded": 0, "link_degraded": 1},
			},
		},
		{
			name: "empty slot is down, not degraded",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:1c.0", lnk("Unknown", gen3, 0, 16)},
			},
			want: map[string]map[string]float64{
				"0000:00:1c.0": {"link_max_speed_gts": 8, "link_width": 0, "link_max_width": 16, "link_capable_speed_gts": 8, "link_capable_width": 16},
			},
		},
		{
			name: "pre-4.17 strings, no partner",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:02.0", lnk("5 GT/s", "8 GT/s", 8, 8)},
			},
			want: map[string]map[string]float64{
				"0000:00:02.0": {"link_speed_gts": 5, "link_max_speed_gts": 8, "link_width": 8, "link_max_width": 8, "link_capable_speed_gts": 8, "link_capable_width": 8, "link_speed_degraded": 1, "link_width_degraded": 0, "link_degraded": 1},
			},
		},
		{
			name: "switch ports are judged by their own maximum",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:01.0", lnk(gen3, gen4, 16, 16)},                                                 // root port
				{"pci0000:00/0000:00:01.0/0000:01:00.0", lnk(gen3, gen4, 16, 16)},                                    // switch upstream port
				{"pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0", lnk(gen4, gen4, 4, 4)},                         // downstream port
				{"pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0", lnk(gen3, gen3, 4, 4)},            // Gen3 drive
				{"pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0", map[string]string{"aer_dev_fatal": "DLP 0\n"}}, // no link files
			},
			want: map[string]map[string]float64{
				"0000:00:01.0": {"link_speed_gts": 8, "link_max_speed_gts": 16, "link_width": 16, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 1, "link_width_degraded": 0, "link_degraded": 1},
				"0000:01:00.0": {"link_speed_gts": 8, "link_max_speed_gts": 16, "link_width": 16, "link_max_width": 16, "link_capable_speed_gts": 16, "link_capable_width": 16, "link_speed_degraded": 1, "link_width_degraded": 0, "link_degraded": 1},
				"0000:02:00.0": {"link_speed_gts": 16, "link_max_speed_gts": 16, "link_width": 4, "link_max_width": 4, "link_capable_speed_gts": 16, "link_capable_width": 4, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
				"0000:03:00.0": {"link_speed_gts": 8, "link_max_speed_gts": 8, "link_width": 4, "link_max_width": 4, "link_capable_speed_gts": 8, "link_capable_width": 4, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
				"0000:02:01.0": {},
			},
		},
		{
			name: "functions without any of the files are left out",
			funcs: []pciFunc{
				{"pci0000:00/0000:00:00.0", map[string]string{"class": "0x060000\n", "vendor": "0x8086\n"}},
				{"pci0000:00/0000:00:02.0", lnk(gen3, gen3, 8, 8)},
			},
			want: map[string]map[string]float64{
				"0000:00:02.0": {"link_speed_gts": 8, "link_max_speed_gts": 8, "link_width": 8, "link_max_width": 8, "link_capable_speed_gts": 8, "link_capable_width": 8, "link_speed_degraded": 0, "link_width_degraded": 0, "link_degraded": 0},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs, err := New(Config{Root: pciTree(t, tc.funcs...)}).Read(context.Background())
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			got := sourcetest.ByName(obs)
			if len(got) != len(tc.want) {
				t.Errorf("functions = %q", sourcetest.Names(obs))
			}
			for addr, w := range tc.want {
				s := sourcetest.SampleMap(got[addr])
				for name := range s {
					if !strings.HasPrefix(name, "link_") {
						delete(s, name)
					}
				}
				if !maps.Equal(s, w) {
					t.Errorf("%s:\n got %v\nwant %v", addr, s, w)
				}
			}
		})
	}
}

func TestMalformedFiles(t *testing.T) {
	const nvme = "sys/devices/pci0000:00/0000:00:02.1/0000:01:00.0"
	tests := []struct {
		name    string
		modify  func(t *testing.T, root string)
		wantErr []string
		check   func(t *testing.T, got map[string]map[string]float64, n int)
	}{
		{
			name: "non-numeric AER count",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, nvme, "aer_dev_correctable"), "RxErr 3\nBadTLP many\nTOTAL_ERR_COR 3\n")
			},
			wantErr: []string{nvme + "/aer_dev_correctable", "line 2: BadTLP"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["0000:01:00.0"]
				if _, ok := s["correctable_BadTLP"]; ok {
					t.Error("malformed BadTLP still reported")
				}
				if s["correctable_RxErr"] != 3 || s[SampleCorrectableTotal] != 3 || s[SampleFatalTotal] != 0 || s[SampleLinkWidth] != 4 {
					t.Errorf("the rest of the function was lost: %v", s)
				}
				if n != 6 {
					t.Errorf("%d functions, want all 6", n)
				}
			},
		},
		{
			name: "malformed link speed",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, "sys/devices/pci0000:a2/0000:a2:00.0/current_link_speed"), "fast\n")
			},
			wantErr: []string{"pci0000:a2/0000:a2:00.0/current_link_speed", `"fast"`},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["0000:a2:00.0"]
				if _, ok := s[SampleLinkSpeedGTs]; ok {
					t.Error("malformed speed still reported")
				}
				if _, ok := s[SampleLinkSpeedDegraded]; ok {
					t.Error("speed judged without a speed")
				}
				if s[SampleLinkWidth] != 8 || s[SampleLinkMaxSpeedGTs] != 16 || s[SampleLinkWidthDegraded] != 0 || s[SampleFatalTotal] != 0 {
					t.Errorf("the rest of the function was lost: %v", s)
				}
			},
		},
		{
			name: "malformed link width",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, nvme, "max_link_width"), "x4\n")
			},
			wantErr: []string{nvme + "/max_link_width", `"x4"`},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["0000:01:00.0"]
				if _, ok := s[SampleLinkMaxWidth]; ok {
					t.Error("malformed width still reported")
				}
				// Its partner's maximum still bounds what the link can do.
				if s[SampleLinkWidth] != 4 || s[SampleLinkSpeedGTs] != 8 {
					t.Errorf("0000:01:00.0 = %v", s)
				}
			},
		},
		{
			name: "malformed root port total",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, "sys/devices/pci0000:00/0000:00:03.0/aer_rootport_total_err_cor"), "lots\n")
			},
			wantErr: []string{"0000:00:03.0/aer_rootport_total_err_cor", `"lots"`},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["0000:00:03.0"]
				if _, ok := s[SampleRootPortCorrectableTotal]; ok {
					t.Error("malformed total still reported")
				}
				if _, ok := s[SampleRootPortFatalTotal]; !ok {
					t.Error("the other totals were lost")
				}
			},
		},
		{
			name: "unreadable AER file",
			modify: func(t *testing.T, root string) {
				p := filepath.Join(root, nvme, "aer_dev_fatal")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(p, 0o755); err != nil { // reading it fails with EISDIR
					t.Fatal(err)
				}
			},
			wantErr: []string{"read ", nvme + "/aer_dev_fatal"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				s := got["0000:01:00.0"]
				if _, ok := s[SampleFatalTotal]; ok {
					t.Error("fatal counters from an unreadable file")
				}
				if _, ok := s[SampleNonFatalTotal]; !ok {
					t.Error("nonfatal counters lost")
				}
			},
		},
		{
			name: "link leaving the tree",
			modify: func(t *testing.T, root string) {
				if err := os.Symlink("/", filepath.Join(root, "sys/bus/pci/devices/0000:00:00.0")); err != nil { // "/" exists everywhere
					t.Fatal(err)
				}
			},
			wantErr: []string{"sys/bus/pci/devices/0000:00:00.0 points outside"},
			check: func(t *testing.T, got map[string]map[string]float64, n int) {
				if _, ok := got["0000:00:00.0"]; ok || n != 6 {
					t.Errorf("%d functions, 0000:00:00.0 present %v", n, ok)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := procfsRoot(t)
			tc.modify(t, root)
			obs := sourcetest.ReadMalformed(t, New(Config{Root: root}).Read, tc.wantErr...)
			tc.check(t, sourcetest.SamplesByName(obs), len(obs))
		})
	}
}

func TestAbsent(t *testing.T) {
	tests := map[string]func(t *testing.T) string{
		"no PCI bus": func(t *testing.T) string { return t.TempDir() },
		"conventional PCI only (a virtual machine)": func(t *testing.T) string {
			return pciTree(t,
				pciFunc{"pci0000:00/0000:00:00.0", map[string]string{"class": "0x060000\n"}},
				pciFunc{"pci0000:00/0000:00:01.0", map[string]string{"class": "0x010000\n"}})
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

// TestReadThisHost reads the real PCI tree of the machine running the test
// and checks the functions found against sysfs.
func TestReadThisHost(t *testing.T) {
	obs, err := New(Config{Root: "/"}).Read(context.Background())
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no PCI function on this host has AER counters or link attributes")
	}
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	got := sourcetest.ByName(obs)
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	for _, d := range devs {
		addr := filepath.Base(d)
		_, aerErr := os.Stat(filepath.Join(d, "aer_dev_correctable"))
		_, linkErr := os.Stat(filepath.Join(d, "max_link_speed"))
		if (aerErr == nil || linkErr == nil) != (got[addr] != nil) {
			t.Errorf("%s: has files %v, observed %v", addr, aerErr == nil || linkErr == nil, got[addr] != nil)
		}
	}
	t.Logf("%d functions: %q", len(obs), sourcetest.Names(obs))
}

func TestRunLoop(t *testing.T) {
	sourcetest.RunLoop(t, sourcetest.Fixture{
		New: func(root string, interval time.Duration, logger *slog.Logger) sourcetest.Periodic {
			return New(Config{Root: root, Interval: interval, Logger: logger})
		},
		Good:       func(t *testing.T) string { return procfsRoot(t) },
		PerReading: 6, // six functions
		AbsentLog:  "no PCIe AER counters or link attributes",
		Malformed: func(t *testing.T) (string, []string) {
			root := procfsRoot(t)
			bad := filepath.Join(root, "sys/devices/pci0000:00/0000:00:1f.6/aer_dev_fatal")
			sourcetest.WriteFile(t, bad, "DLP one\n")
			return root, []string{bad}
		},
		MalformedMin: 12,
	})
}

func FuzzParseAERCounters(f *testing.F) {
	for _, p := range []string{
		"sys/devices/pci0000:00/0000:00:1f.6/aer_dev_correctable",
		"sys/devices/pci0000:00/0000:00:1f.6/aer_dev_nonfatal",
		"sys/devices/pci0000:00/0000:00:1f.6/aer_dev_fatal",
	} {
		b, err := os.ReadFile(filepath.Join(procfsRoot(f), p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("RxErr 1 2\nBadTLP -1\nRxErr 3\nRxErr 4\n\n"))
	f.Add([]byte("TOTAL_ERR_COR 18446744073709551616\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseAERCounters(bytes.NewReader(data))
		for name := range m {
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' }) {
				t.Fatalf("bad counter name %q", name)
			}
		}
		if err == nil {
			// Without an error every non-blank line became a counter.
			n := 0
			for _, l := range strings.Split(string(data), "\n") {
				if len(strings.Fields(l)) > 0 {
					n++
				}
			}
			if n != len(m) {
				t.Fatalf("%d lines, %d counters and no error for %q", n, len(m), data)
			}
		}
		for _, class := range []string{ClassCorrectable, ClassNonFatal, ClassFatal} {
			s := CounterSamples(class, m)
			if len(s) != len(m) {
				t.Fatalf("%d counters became %d samples", len(m), len(s))
			}
			seen := map[string]bool{}
			for _, x := range s {
				if seen[x.GetName()] || !strings.HasPrefix(x.GetName(), class+"_") {
					t.Fatalf("sample %q", x.GetName())
				}
				seen[x.GetName()] = true
			}
		}
	})
}

func FuzzParseLinkSpeed(f *testing.F) {
	for _, s := range []string{"8.0 GT/s PCIe\n", "2.5 GT/s", "Unknown", "Unknown speed", "66 MHz PCI-X", "1e308 GT/s", "-0 GT/s", "0x10 GT/s"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, known, err := ParseLinkSpeed(data)
		if err != nil && known {
			t.Fatalf("error %v and a known speed %v", err, v)
		}
		if known && (v <= 0 || math.IsInf(v, 0) || math.IsNaN(v)) {
			t.Fatalf("known speed %v from %q", v, data)
		}
		if !known && v != 0 {
			t.Fatalf("unknown speed with value %v", v)
		}
		if w, err := ParseLinkWidth(data); err == nil && w > math.MaxUint32 {
			t.Fatalf("width %d", w)
		}
	})
}

func BenchmarkReadProcfsFixture(b *testing.B) {
	src := New(Config{Root: procfsRoot(b)})
	for b.Loop() {
		if _, err := src.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
