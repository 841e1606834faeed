package diskstats

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"github.com/hwheal/hwheal/pkg/sysfs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs/blockdevice"
	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeRoot makes a root with the given /proc/diskstats content.
func writeRoot(t *testing.T, diskstats string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "diskstats"), []byte(diskstats), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []blockdevice.Diskstats
		wantErr string // substring; "" means no error
	}{
		{
			name: "pre 4.18, 14 fields",
			in:   "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n",
			want: []blockdevice.Diskstats{{
				Info:         blockdevice.Info{MajorNumber: 8, DeviceName: "sda"},
				IOStats:      blockdevice.IOStats{ReadIOs: 1, ReadMerges: 2, ReadSectors: 3, ReadTicks: 4, WriteIOs: 5, WriteMerges: 6, WriteSectors: 7, WriteTicks: 8, IOsInProgress: 9, IOsTotalTicks: 10, WeightedIOTicks: 11},
				IoStatsCount: 14,
			}},
		},
		{
			name: "4.18 discards, 18 fields",
			in:   "8 16 sdb 326552 841 9657779 84 41822 2895 1972905 5007 0 60730 67070 68851 0 1925173784 11130\n",
			want: []blockdevice.Diskstats{{
				Info:         blockdevice.Info{MajorNumber: 8, MinorNumber: 16, DeviceName: "sdb"},
				IOStats:      blockdevice.IOStats{ReadIOs: 326552, ReadMerges: 841, ReadSectors: 9657779, ReadTicks: 84, WriteIOs: 41822, WriteMerges: 2895, WriteSectors: 1972905, WriteTicks: 5007, IOsTotalTicks: 60730, WeightedIOTicks: 67070, DiscardIOs: 68851, DiscardSectors: 1925173784, DiscardTicks: 11130},
				IoStatsCount: 18,
			}},
		},
		{
			name: "5.5 flushes, 20 fields, extra fields ignored",
			in:   "254 0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 99 98\n",
			want: []blockdevice.Diskstats{{
				Info:         blockdevice.Info{MajorNumber: 254, DeviceName: "vda"},
				IOStats:      blockdevice.IOStats{ReadIOs: 1, ReadMerges: 2, ReadSectors: 3, ReadTicks: 4, WriteIOs: 5, WriteMerges: 6, WriteSectors: 7, WriteTicks: 8, IOsInProgress: 9, IOsTotalTicks: 10, WeightedIOTicks: 11, DiscardIOs: 12, DiscardMerges: 13, DiscardSectors: 14, DiscardTicks: 15, FlushRequestsCompleted: 16, TimeSpentFlushing: 17},
				IoStatsCount: 20,
			}},
		},
		{name: "blank lines skipped", in: "\n  \n", want: nil},
		{name: "truncated line", in: "   8       0 sda 25354637 34367663\n", wantErr: "line 1: truncated: 5 fields, want at least 14"},
		{name: "cut inside discards", in: "8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13\n", wantErr: "line 1: device sda: 16 fields"},
		{name: "non-numeric counter", in: "8 0 sda 1 2 3 4 5 6 x 8 9 10 11\n", wantErr: `device sda: field write_sectors: strconv.ParseUint: parsing "x"`},
		{name: "negative counter", in: "8 0 sda 1 2 3 4 5 6 7 8 -1 10 11\n", wantErr: "field io_in_progress"},
		{name: "bad major", in: "eight 0 sda 1 2 3 4 5 6 7 8 9 10 11\n", wantErr: "field major"},
		{
			name: "good lines survive a bad one",
			in:   "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 16 sdb 1 2\n8 32 sdc 1 2 3 4 5 6 7 8 9 10 11\n",
			want: []blockdevice.Diskstats{
				{Info: blockdevice.Info{MajorNumber: 8, DeviceName: "sda"}, IOStats: blockdevice.IOStats{ReadIOs: 1, ReadMerges: 2, ReadSectors: 3, ReadTicks: 4, WriteIOs: 5, WriteMerges: 6, WriteSectors: 7, WriteTicks: 8, IOsInProgress: 9, IOsTotalTicks: 10, WeightedIOTicks: 11}, IoStatsCount: 14},
				{Info: blockdevice.Info{MajorNumber: 8, MinorNumber: 32, DeviceName: "sdc"}, IOStats: blockdevice.IOStats{ReadIOs: 1, ReadMerges: 2, ReadSectors: 3, ReadTicks: 4, WriteIOs: 5, WriteMerges: 6, WriteSectors: 7, WriteTicks: 8, IOsInProgress: 9, IOsTotalTicks: 10, WeightedIOTicks: 11}, IoStatsCount: 14},
			},
			wantErr: "line 2: truncated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestParseAgreesWithProcfs checks our parser against procfs's on real
// files, where procfs's leniency does not matter.
func TestParseAgreesWithProcfs(t *testing.T) {
	procfsRoot := filepath.Join(ttartest.ExtractFile(t, "testdata/procfs_diskstats.ttar"), "fixtures")
	roots := map[string]string{
		"procfs fixture":        procfsRoot,
		"node_exporter fixture": "testdata/node_exporter",
		"this host":             "/",
	}
	for name, root := range roots {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(root, "proc", "diskstats")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Skipf("no diskstats here: %v", err)
			}
			sys := filepath.Join(root, "sys")
			if _, err := os.Stat(sys); err != nil {
				sys = t.TempDir() // procfs insists on a sys directory it does not use here
			}
			fs, err := blockdevice.NewFS(filepath.Join(root, "proc"), sys)
			if err != nil {
				t.Skipf("procfs cannot open %s: %v", root, err)
			}
			want, err := fs.ProcDiskstats()
			if err != nil {
				t.Fatalf("procfs: %v", err)
			}
			// The host's counters move between two reads; parse procfs's
			// view of the same bytes by re-reading only for fixtures.
			got, err := Parse(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Parse %s: %v", path, err)
			}
			if root == "/" {
				if len(got) != len(want) {
					t.Errorf("Parse found %d devices, procfs %d", len(got), len(want))
				}
				for i := range min(len(got), len(want)) {
					if got[i].Info != want[i].Info || got[i].IoStatsCount != want[i].IoStatsCount {
						t.Errorf("device %d: got %+v/%d, procfs %+v/%d", i, got[i].Info, got[i].IoStatsCount, want[i].Info, want[i].IoStatsCount)
					}
				}
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse and procfs differ:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// e2eMetric maps a node_exporter metric to our sample and the factor that
// turns our unit into node_exporter's.
var e2eMetric = map[string]struct {
	sample string
	factor float64
}{
	"node_disk_reads_completed_total":             {SampleReadsCompleted, 1},
	"node_disk_reads_merged_total":                {SampleReadsMerged, 1},
	"node_disk_read_bytes_total":                  {SampleReadSectors, 512},
	"node_disk_read_time_seconds_total":           {SampleReadTimeMs, 0.001},
	"node_disk_writes_completed_total":            {SampleWritesCompleted, 1},
	"node_disk_writes_merged_total":               {SampleWritesMerged, 1},
	"node_disk_written_bytes_total":               {SampleWriteSectors, 512},
	"node_disk_write_time_seconds_total":          {SampleWriteTimeMs, 0.001},
	"node_disk_io_now":                            {SampleIOInProgress, 1},
	"node_disk_io_time_seconds_total":             {SampleIOTimeMs, 0.001},
	"node_disk_io_time_weighted_seconds_total":    {SampleIOWeightedTimeMs, 0.001},
	"node_disk_discards_completed_total":          {SampleDiscardsCompleted, 1},
	"node_disk_discards_merged_total":             {SampleDiscardsMerged, 1},
	"node_disk_discarded_sectors_total":           {SampleDiscardSectors, 1},
	"node_disk_discard_time_seconds_total":        {SampleDiscardTimeMs, 0.001},
	"node_disk_flush_requests_total":              {SampleFlushRequests, 1},
	"node_disk_flush_requests_time_seconds_total": {SampleFlushTimeMs, 0.001},
}

var e2eLine = regexp.MustCompile(`^(\w+)\{device="([^"]+)"\} (\S+)$`)

// TestReadMatchesNodeExporter reads node_exporter's diskstats fixture with
// the default exclusion and compares every value with what node_exporter
// itself exported from the same file.
func TestReadMatchesNodeExporter(t *testing.T) {
	f, err := os.Open("testdata/node_exporter/e2e-output-disk.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]map[string]float64{} // device -> sample -> value in our units
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		m := e2eLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("unexpected e2e line %q", sc.Text())
		}
		metric, ok := e2eMetric[m[1]]
		if !ok {
			t.Fatalf("no mapping for %s", m[1])
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		if want[m[2]] == nil {
			want[m[2]] = map[string]float64{}
		}
		want[m[2]][metric.sample] = v / metric.factor
		lines++
	}
	if lines < 150 {
		t.Fatalf("only %d e2e lines read", lines)
	}

	obs, err := New(Config{Root: "testdata/node_exporter"}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	got := sourcetest.ByName(obs)
	gotNames, wantNames := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))
	if !slices.Equal(gotNames, wantNames) {
		t.Fatalf("devices = %v\nnode_exporter exported %v", gotNames, wantNames)
	}
	for dev, samples := range want {
		have := sourcetest.SampleMap(got[dev])
		if len(have) != len(samples) {
			t.Errorf("%s: %d samples, node_exporter has %d (%v vs %v)", dev, len(have), len(samples), have, samples)
		}
		for name, w := range samples {
			g, ok := have[name]
			if !ok {
				t.Errorf("%s: missing %s", dev, name)
				continue
			}
			if math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
				t.Errorf("%s %s = %v, node_exporter says %v", dev, name, g, w)
			}
		}
	}
}

func TestReadProcfsFixture(t *testing.T) {
	root := filepath.Join(ttartest.ExtractFile(t, "testdata/procfs_diskstats.ttar"), "fixtures")
	tests := []struct {
		name    string
		exclude *regexp.Regexp
		devices int
		check   map[string]map[string]float64 // device -> sample -> value
		absent  map[string][]string           // device -> samples that must be missing
	}{
		{
			name:    "default exclusion",
			devices: 15, // sda, dm-0..5, mmcblk0 and its partitions, vda, sr0, nvme0n1, sdb, sdc
			check: map[string]map[string]float64{
				"sda":     {SampleReadsCompleted: 25354637, SampleReadSectors: 1003346126, SampleIOWeightedTimeMs: 82621804},
				"sdb":     {SampleDiscardsCompleted: 68851, SampleDiscardSectors: 1925173784, SampleDiscardTimeMs: 11130},
				"sdc":     {SampleFlushRequests: 127, SampleFlushTimeMs: 182, SampleWritesCompleted: 2995},
				"nvme0n1": {SampleWritesMerged: 43950, SampleWriteTimeMs: 1011053},
			},
			absent: map[string][]string{
				"sda": {SampleDiscardsCompleted, SampleFlushRequests},
				"sdb": {SampleFlushRequests, SampleFlushTimeMs},
			},
		},
		{
			name:    "loop devices kept as the e2e tests configure",
			exclude: regexp.MustCompile(`^(z?ram|fd)\d+$`),
			devices: 52 - 16 - 1, // every line but ram0-15 and fd0
			check:   map[string]map[string]float64{"loop7": {SampleReadsCompleted: 0}, "sda4": {SampleWritesCompleted: 27448755}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs, err := New(Config{Root: root, Exclude: tc.exclude}).Read(context.Background())
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(obs) != tc.devices {
				names := []string{}
				for _, o := range obs {
					names = append(names, o.GetPart().GetName())
				}
				t.Errorf("%d observations, want %d: %v", len(obs), tc.devices, names)
			}
			got := sourcetest.ByName(obs)
			for dev, samples := range tc.check {
				o, ok := got[dev]
				if !ok {
					t.Errorf("no observation for %s", dev)
					continue
				}
				if o.GetSource() != Name || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_DISK || o.GetTime() == nil {
					t.Errorf("%s: bad envelope %v", dev, o)
				}
				have := sourcetest.SampleMap(o)
				for name, w := range samples {
					if g, ok := have[name]; !ok || g != w {
						t.Errorf("%s %s = %v (present %v), want %v", dev, name, g, ok, w)
					}
				}
			}
			for dev, names := range tc.absent {
				have := sourcetest.SampleMap(got[dev])
				for _, n := range names {
					if _, ok := have[n]; ok {
						t.Errorf("%s has %s, the line has no such field", dev, n)
					}
				}
			}
			// The fixture's sd[b-e] have a device directory with no identity
			// attributes: identity stays empty rather than failing.
			if p := got["sdb"].GetPart(); p.GetModel() != "" || p.GetSerial() != "" || p.GetPciAddress() != "" {
				t.Errorf("sdb identity = %v, want empty", p)
			}
		})
	}
}

// vpd80 builds a Unit Serial Number page as a drive returns it.
func vpd80(serial string) []byte {
	b := []byte{0x00, 0x80, byte(len(serial) >> 8), byte(len(serial))}
	return append(b, serial...)
}

// sysTree builds a sysfs tree below root from files (content) and links.
func sysTree(t *testing.T, root string, files map[string]string, links map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIdentity lays out sysfs the way the kernel does for an NVMe
// namespace, a SAS disk, a virtio disk, a partition and a device-mapper
// volume, with the model, serial and controller of the drives that
// node_exporter's fixtures describe (node_disk_info in e2e-output.txt).
func TestIdentity(t *testing.T) {
	root := writeRoot(t, strings.Join([]string{
		"259 0 nvme0n1 47114 4 4643973 21650 1078320 43950 39451633 1011053 0 222766 1032546",
		"8 0 sda 25354637 34367663 1003346126 18492372 28444756 11134226 505697032 63877960 0 9653880 82621804",
		"8 1 sda1 250 0 2000 36 0 0 0 0 0 36 36",
		"8 16 sdb 326552 841 9657779 84 41822 2895 1972905 5007 0 60730 67070",
		"254 0 vda 1775784 15386 32670882 8655768 6038856 20711856 213637440 2069221364 0 41614592 2077872228",
		"252 0 dm-0 59910002 0 1003337218 46229572 39231014 0 505696880 1158557800 0 11325968 1206301256",
		"",
	}, "\n"))
	nvmeCtrl := "sys/devices/pci0000:00/0000:00:01.1/0000:02:00.0/nvme/nvme0"
	sasDev := "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0"
	ataDev := "sys/devices/pci0000:00/0000:00:1f.2/ata1/host1/target1:0:0/1:0:0:0"
	sysTree(t, root, map[string]string{
		nvmeCtrl + "/model":                  "SAMSUNG EHFTF55LURSY-000Y9              \n",
		nvmeCtrl + "/serial":                 "S252B6CU1HG3M1      \n",
		nvmeCtrl + "/nvme0n1/wwid":           "eui.p3vbbiejx5aae2r3\n",
		sasDev + "/model":                    "KSDB4U86        \n",
		sasDev + "/vpd_pg80":                 string(vpd80("2160A0D5FVGG        ")),
		sasDev + "/wwid":                     "naa.7c72382b8de36a64\n",
		sasDev + "/block/sda/sda1/partition": "1\n",
		ataDev + "/model":                    "SuperMicro SSD  \n",
		ataDev + "/wwid":                     "t10.ATA     SuperMicro SSD                          SMC0E1B87ABBB16BD84E\n",
		"sys/devices/pci0000:00/0000:00:06.0/virtio3/block/vda/serial": "hwheal-vda-serial",
		"sys/devices/virtual/block/dm-0/dm/name":                       "system-root\n",
	}, map[string]string{
		"sys/block/nvme0n1":          "../devices/pci0000:00/0000:00:01.1/0000:02:00.0/nvme/nvme0/nvme0n1",
		nvmeCtrl + "/nvme0n1/device": "../../nvme0",
		nvmeCtrl + "/device":         "../../../0000:02:00.0",
		"sys/block/sda":              "../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda",
		sasDev + "/block/sda/device": "../../../0:0:0:0",
		"sys/class/block/sda1":       "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda/sda1",
		"sys/block/sdb":              "../devices/pci0000:00/0000:00:1f.2/ata1/host1/target1:0:0/1:0:0:0/block/sdb",
		ataDev + "/block/sdb/device": "../../../1:0:0:0",
		"sys/block/vda":              "../devices/pci0000:00/0000:00:06.0/virtio3/block/vda",
		"sys/devices/pci0000:00/0000:00:06.0/virtio3/block/vda/device": "../../../virtio3",
		"sys/block/dm-0": "../devices/virtual/block/dm-0",
	})

	obs, err := New(Config{Root: root, Exclude: regexp.MustCompile(`^$`)}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	got := sourcetest.ByName(obs)
	want := map[string]*hwhealv1.Part{
		"nvme0n1": {Model: "SAMSUNG EHFTF55LURSY-000Y9", Serial: "S252B6CU1HG3M1", PciAddress: "0000:02:00.0"},
		"sda":     {Model: "KSDB4U86", Serial: "2160A0D5FVGG", PciAddress: "0000:3b:00.0"},
		"sda1":    {Model: "KSDB4U86", Serial: "2160A0D5FVGG", PciAddress: "0000:3b:00.0"},
		// No serial attribute and no VPD page: the WWID names the drive.
		"sdb":  {Model: "SuperMicro SSD", Serial: "t10.ATA     SuperMicro SSD                          SMC0E1B87ABBB16BD84E", PciAddress: "0000:00:1f.2"},
		"vda":  {Serial: "hwheal-vda-serial", PciAddress: "0000:00:06.0"},
		"dm-0": {},
	}
	for dev, w := range want {
		t.Run(dev, func(t *testing.T) {
			p := got[dev].GetPart()
			if p == nil {
				t.Fatalf("no observation for %s", dev)
			}
			if p.GetName() != dev || p.GetModel() != w.Model || p.GetSerial() != w.Serial || p.GetPciAddress() != w.PciAddress {
				t.Errorf("part = {name %q model %q serial %q pci %q}, want {model %q serial %q pci %q}",
					p.GetName(), p.GetModel(), p.GetSerial(), p.GetPciAddress(), w.Model, w.Serial, w.PciAddress)
			}
		})
	}
}

func TestPCIAddressStaysInRoot(t *testing.T) {
	// A link that climbs out of the fixture root must not lend the host's
	// PCI path to a fixture device.
	root := t.TempDir()
	sysTree(t, root, nil, map[string]string{
		"sys/block/sdz/device": "/sys/devices/pci0000:00/0000:00:02.0/virtio1",
	})
	if got := sysfs.PCIAddressOf(root, filepath.Join(root, "sys/block/sdz/device")); got != "" {
		t.Errorf("PCIAddressOf followed a link out of root: %q", got)
	}
}

func TestParseVPD80(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr bool
	}{
		{"padded serial", vpd80("  S3Z9NB0K123456  "), "S3Z9NB0K123456", false},
		{"zero padding and control bytes dropped", append(vpd80("AB\x00\x01CD"), 'x'), "ABCD", false},
		{"empty page", vpd80(""), "", false},
		{"short header", []byte{0, 0x80}, "", true},
		{"length beyond data", []byte{0, 0x80, 0, 9, 'a'}, "", true},
		{"other page", []byte{0, 0x83, 0, 1, 'a'}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVPD80(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseVPD80(%q) = %q, %v; want %q, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestReadThisHost reads the real /proc/diskstats and /sys of the machine
// running the test.
func TestReadThisHost(t *testing.T) {
	if _, err := os.Stat("/proc/diskstats"); err != nil {
		t.Skipf("no /proc/diskstats on this host: %v", err)
	}
	obs, err := New(Config{Root: "/", Exclude: regexp.MustCompile(`^$`)}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(obs) == 0 {
		t.Skip("this host lists no block devices")
	}
	for _, o := range obs {
		p := o.GetPart()
		if len(o.GetSamples()) < 11 {
			t.Errorf("%s: %d samples", p.GetName(), len(o.GetSamples()))
		}
		// Where the kernel puts the device under a PCI function, we must
		// have found one on that path.
		resolved, err := filepath.EvalSymlinks(filepath.Join("/sys/block", p.GetName(), "device"))
		if err == nil && regexp.MustCompile(`/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]/`).MatchString(resolved+"/") {
			if p.GetPciAddress() == "" || !strings.Contains(resolved, "/"+p.GetPciAddress()) {
				t.Errorf("%s: PCI address %q, device is at %s", p.GetName(), p.GetPciAddress(), resolved)
			}
		}
		if b, err := os.ReadFile(filepath.Join("/sys/block", p.GetName(), "serial")); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" && p.GetSerial() != s {
				t.Errorf("%s: serial %q, sysfs says %q", p.GetName(), p.GetSerial(), s)
			}
		}
		t.Logf("%s model=%q serial=%q pci=%q", p.GetName(), p.GetModel(), p.GetSerial(), p.GetPciAddress())
	}
}

func TestReadErrorNamesFile(t *testing.T) {
	root := writeRoot(t, "8 0 sda 1 2 3 4 5 6 7 8 9 10 eleven\n")
	_, err := New(Config{Root: root}).Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "proc", "diskstats")) || !strings.Contains(err.Error(), "io_weighted_time_ms") {
		t.Errorf("Read error = %v, want the file and field named", err)
	}
	if _, err := New(Config{Root: t.TempDir()}).Read(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v, want ErrNotExist", err)
	}
}

func TestRunLoop(t *testing.T) {
	sourcetest.RunLoop(t, sourcetest.Fixture{
		New: func(root string, interval time.Duration, logger *slog.Logger) sourcetest.Periodic {
			return New(Config{Root: root, Interval: interval, Logger: logger})
		},
		Good: func(t *testing.T) string {
			return writeRoot(t, "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 16 sdb 1 2 3 4 5 6 7 8 9 10 11\n")
		},
		PerReading: 2,
		Parts:      []string{"sda", "sdb"},
		AbsentLog:  "diskstats not available",
		Malformed: func(t *testing.T) (string, []string) {
			root := writeRoot(t, "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 16 sdb 1 2 3\n")
			return root, []string{filepath.Join(root, "proc", "diskstats"), "line 2: truncated"}
		},
		MalformedMin:   2,
		MalformedParts: []string{"sda"},
	})
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/node_exporter/proc/diskstats"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("8 0 sda 1 2 3\n"))
	f.Add([]byte("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n\n"))
	f.Add([]byte("99999999999 0 x 1 2 3 4 5 6 7 8 9 10 11\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		stats, err := Parse(bytes.NewReader(data))
		for _, d := range stats {
			if c := d.IoStatsCount; c != fieldsBase && c != fieldsDiscard && c != fieldsFlush {
				t.Fatalf("accepted a line with IoStatsCount %d", c)
			}
			if d.DeviceName == "" || strings.ContainsAny(d.DeviceName, " \t\n") {
				t.Fatalf("bad device name %q", d.DeviceName)
			}
			_ = Samples(d)
		}
		if err == nil {
			// Without an error every non-blank line must have become a stat.
			n := 0
			for _, l := range strings.Split(string(data), "\n") {
				if strings.TrimSpace(l) != "" {
					n++
				}
			}
			if n != len(stats) {
				t.Fatalf("%d non-blank lines, %d stats and no error for %q", n, len(stats), data)
			}
		}
	})
}

func FuzzParseVPD80(f *testing.F) {
	f.Add(vpd80("2160A0D5FVGG"))
	f.Add([]byte{0, 0x80, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseVPD80(data)
		if err != nil && s != "" {
			t.Fatalf("error %v with serial %q", err, s)
		}
		for _, c := range []byte(s) {
			if c < ' ' || c > '~' {
				t.Fatalf("serial %q has byte %#x", s, c)
			}
		}
		if len(s) > len(data) {
			t.Fatalf("serial longer than the page")
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/node_exporter/proc/diskstats")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadThisHost is one full reading of this machine: diskstats plus
// the sysfs identity of every device.
func BenchmarkReadThisHost(b *testing.B) {
	if _, err := os.Stat("/proc/diskstats"); err != nil {
		b.Skip("no /proc/diskstats")
	}
	src := New(Config{Root: "/", Exclude: regexp.MustCompile(`^$`)})
	for b.Loop() {
		if _, err := src.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
