package netdev

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func procfsRoot(t *testing.T) string {
	return filepath.Join(ttartest.ExtractFile(t, "testdata/procfs_net.ttar"), "fixtures")
}

const header = "Inter-|   Receive                                                |  Transmit\n" +
	" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"

func TestParseNetDev(t *testing.T) {
	eth0 := procfs.NetDevLine{Name: "eth0", RxBytes: 874354587, RxPackets: 1036395, TxBytes: 563352563, TxPackets: 732147}
	tests := []struct {
		name    string
		in      string
		want    []procfs.NetDevLine
		wantErr string
	}{
		{
			name: "real line",
			in:   header + "  eth0: 874354587 1036395    0    0    0     0          0         0 563352563  732147    0    0    0     0       0          0\n",
			want: []procfs.NetDevLine{eth0},
		},
		{
			name: "every column in its place",
			in:   "x: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
			want: []procfs.NetDevLine{{Name: "x", RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, RxFIFO: 5, RxFrame: 6, RxCompressed: 7, RxMulticast: 8, TxBytes: 9, TxPackets: 10, TxErrors: 11, TxDropped: 12, TxFIFO: 13, TxCollisions: 14, TxCarrier: 15, TxCompressed: 16}},
		},
		{
			name: "no space after the colon",
			in:   "eth0:874354587 1036395 0 0 0 0 0 0 563352563 732147 0 0 0 0 0 0\n",
			want: []procfs.NetDevLine{eth0},
		},
		{name: "headers only", in: header, want: nil},
		{name: "truncated line", in: header + "  eth0: 874354587 1036395    0\n", wantErr: "line 3: interface eth0: truncated: 3 counters, want 16"},
		{name: "non-numeric", in: "eth0: 1 2 3 4 5 6 7 8 9 ten 11 12 13 14 15 16\n", wantErr: `interface eth0: field tx_packets: strconv.ParseUint: parsing "ten"`},
		{name: "no colon", in: "eth0 1 2 3\n", wantErr: "line 1: no ':'"},
		{name: "empty name", in: ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: "bad interface name"},
		{
			name:    "good lines survive a bad one",
			in:      header + "a: 1 2 3\neth0: 874354587 1036395 0 0 0 0 0 0 563352563 732147 0 0 0 0 0 0\n",
			want:    []procfs.NetDevLine{eth0},
			wantErr: "line 3: interface a: truncated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetDev(strings.NewReader(tc.in))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ParseNetDev: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseNetDev = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseNetDevAgreesWithProcfs(t *testing.T) {
	for name, root := range map[string]string{"procfs fixture": procfsRoot(t), "this host": "/"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(root, "proc", "net", "dev")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Skipf("no net/dev: %v", err)
			}
			pfs, err := procfs.NewFS(filepath.Join(root, "proc"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := pfs.NetDev()
			if err != nil {
				t.Fatalf("procfs: %v", err)
			}
			got, err := ParseNetDev(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ParseNetDev: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d interfaces, procfs %d", len(got), len(want))
			}
			for _, g := range got {
				w, ok := want[g.Name]
				if !ok {
					t.Errorf("%s not in procfs's reading", g.Name)
					continue
				}
				// The host's counters move between the two reads.
				if root != "/" && g != w {
					t.Errorf("%s: got %+v, procfs %+v", g.Name, g, w)
				}
			}
		})
	}
}

func TestReadProcfsFixture(t *testing.T) {
	obs, err := New(Config{Root: procfsRoot(t)}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var names []string
	for _, o := range obs {
		names = append(names, o.GetPart().GetName())
		if o.GetSource() != Name || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_NIC || o.GetTime() == nil {
			t.Errorf("%s: bad envelope %v", o.GetPart().GetName(), o)
		}
	}
	if want := []string{"docker0", "eth0", "vethf345468"}; !slices.Equal(names, want) {
		t.Fatalf("interfaces = %v, want %v (lo skipped, sorted)", names, want)
	}
	got := sourcetest.ByName(obs)
	eth0 := sourcetest.SampleMap(got["eth0"])
	want := map[string]float64{
		SampleRxBytes: 874354587, SampleRxPackets: 1036395, SampleRxErrors: 0,
		SampleTxBytes: 563352563, SampleTxPackets: 732147, SampleTxCarrier: 0,
		SampleCarrier: 1, SampleCarrierChanges: 2, SampleCarrierUpCount: 1, SampleCarrierDownCount: 1,
		SampleUp: 1, SampleSpeedMbps: 1000,
	}
	for name, w := range want {
		if g, ok := eth0[name]; !ok || g != w {
			t.Errorf("eth0 %s = %v (present %v), want %v", name, g, ok, w)
		}
	}
	if len(eth0) != 16+6 {
		t.Errorf("eth0 has %d samples, want 16 counters and 6 link values: %v", len(eth0), eth0)
	}
	if _, ok := eth0[SampleSlavesTotal]; ok {
		t.Error("eth0 is not a bond")
	}
	if p := got["eth0"].GetPart().GetPciAddress(); p != "0000:00:1f.6" {
		t.Errorf("eth0 PCI address = %q, want 0000:00:1f.6 from its device link", p)
	}
	// docker0 is only in /proc/net/dev here: counters, no link values.
	docker := sourcetest.SampleMap(got["docker0"])
	if len(docker) != 16 || docker[SampleRxPackets] != 38 || docker[SampleTxBytes] != 438 {
		t.Errorf("docker0 = %v", docker)
	}
	if got["docker0"].GetPart().GetPciAddress() != "" {
		t.Error("docker0 has a PCI address")
	}
}

var e2eLine = regexp.MustCompile(`^(\w+)\{(?:device|master)="([^"]+)"\} (\S+)$`)

// TestReadMatchesNodeExporter reads node_exporter's sysfs fixture (bonds,
// carrier counters) and compares with what node_exporter exported from it.
func TestReadMatchesNodeExporter(t *testing.T) {
	metric := map[string]struct {
		sample string
		factor float64 // node_exporter value = ours * factor
	}{
		"node_network_carrier":                    {SampleCarrier, 1},
		"node_network_carrier_changes_total":      {SampleCarrierChanges, 1},
		"node_network_carrier_up_changes_total":   {SampleCarrierUpCount, 1},
		"node_network_carrier_down_changes_total": {SampleCarrierDownCount, 1},
		"node_network_speed_bytes":                {SampleSpeedMbps, 1e6 / 8},
		"node_network_up":                         {SampleUp, 1},
		"node_bonding_active":                     {SampleSlavesUp, 1},
		"node_bonding_slaves":                     {SampleSlavesTotal, 1},
	}
	f, err := os.Open("testdata/e2e-output-net.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := e2eLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("unexpected line %q", sc.Text())
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		if want[m[2]] == nil {
			want[m[2]] = map[string]float64{}
		}
		want[m[2]][metric[m[1]].sample] = v / metric[m[1]].factor
	}

	root := ttartest.ExtractFile(t, "testdata/node_exporter_net.ttar")
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	got := sourcetest.ByName(obs)
	if names := slices.Sorted(func(yield func(string) bool) {
		for n := range got {
			if !yield(n) {
				return
			}
		}
	}); !slices.Equal(names, []string{"bond0", "dmz", "eth0", "int"}) {
		t.Errorf("interfaces = %v", names)
	}
	for dev, samples := range want {
		have := sourcetest.SampleMap(got[dev])
		for name, w := range samples {
			if g, ok := have[name]; !ok || g != w {
				t.Errorf("%s %s = %v (present %v), node_exporter says %v", dev, name, g, ok, w)
			}
		}
	}
	// bond0's speed is -1: unknown, so no sample (node_exporter skips it too).
	if _, ok := sourcetest.SampleMap(got["bond0"])[SampleSpeedMbps]; ok {
		t.Error("bond0 has a speed sample for speed -1")
	}
	// No /proc/net/dev in this tree: no counters, and no error for that.
	if _, ok := sourcetest.SampleMap(got["eth0"])[SampleRxBytes]; ok {
		t.Error("rx_bytes without a /proc/net/dev")
	}
}

func TestMalformedFiles(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(t *testing.T, root string)
		wantErr []string
		check   func(t *testing.T, got map[string]*hwhealv1.Observation)
	}{
		{
			name: "non-numeric carrier_changes",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, "sys/class/net/eth0/carrier_changes"), "two\n")
			},
			wantErr: []string{"sys/class/net/eth0/carrier_changes", `parsing "two"`},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation) {
				s := sourcetest.SampleMap(got["eth0"])
				if _, ok := s[SampleCarrierChanges]; ok {
					t.Error("malformed carrier_changes still reported")
				}
				if s[SampleCarrierUpCount] != 1 || s[SampleRxBytes] != 874354587 {
					t.Errorf("the rest of eth0 was lost: %v", s)
				}
			},
		},
		{
			name: "truncated net/dev line",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, "proc/net/dev"), header+
					"docker0:    2568      38    0    0\n"+
					"  eth0: 874354587 1036395    0    0    0     0          0         0 563352563  732147    0    0    0     0       0          0\n")
			},
			wantErr: []string{"proc/net/dev", "line 3: interface docker0: truncated"},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation) {
				if _, ok := got["docker0"]; ok {
					t.Error("docker0 observed from a truncated line")
				}
				if sourcetest.SampleMap(got["eth0"])[SampleRxBytes] != 874354587 {
					t.Error("eth0 lost its counters")
				}
			},
		},
		{
			name: "bond slave status unreadable",
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, "sys/class/net/eth0/bonding/slaves"), "eth9 eth8\n")
				sourcetest.WriteFile(t, filepath.Join(root, "sys/class/net/eth0/lower_eth9/bonding_slave/mii_status"), "up\n")
				// eth8 was released between the two reads: no status file.
			},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation) {
				s := sourcetest.SampleMap(got["eth0"])
				if s[SampleSlavesUp] != 1 || s[SampleSlavesTotal] != 2 {
					t.Errorf("slaves = %v/%v, want 1/2", s[SampleSlavesUp], s[SampleSlavesTotal])
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := procfsRoot(t)
			tc.modify(t, root)
			obs, err := New(Config{Root: root}).Read(context.Background())
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("Read: %v", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not contain %q", err, w)
				}
			}
			tc.check(t, sourcetest.ByName(obs))
		})
	}
}

// TestReadThisHost reads the real /proc/net/dev and /sys/class/net.
func TestReadThisHost(t *testing.T) {
	obs, err := New(Config{Root: "/"}).Read(context.Background())
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no network interfaces visible: %v", err)
	}
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(obs) == 0 {
		t.Skip("this host has no interface but lo")
	}
	pciPath := regexp.MustCompile(`/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7](/|$)`)
	for _, o := range obs {
		p := o.GetPart()
		if p.GetName() == "lo" {
			t.Error("lo not skipped")
		}
		s := sourcetest.SampleMap(o)
		if _, ok := s[SampleRxBytes]; !ok {
			t.Errorf("%s: no counters", p.GetName())
		}
		resolved, err := filepath.EvalSymlinks(filepath.Join("/sys/class/net", p.GetName(), "device"))
		if err == nil && pciPath.MatchString(resolved) {
			if p.GetPciAddress() == "" || !strings.Contains(resolved, "/"+p.GetPciAddress()) {
				t.Errorf("%s: PCI address %q, device is at %s", p.GetName(), p.GetPciAddress(), resolved)
			}
		}
		t.Logf("%s pci=%q %v", p.GetName(), p.GetPciAddress(), s)
	}
}

func TestRunLoop(t *testing.T) {
	sourcetest.RunLoop(t, sourcetest.Fixture{
		New: func(root string, interval time.Duration, logger *slog.Logger) sourcetest.Periodic {
			return New(Config{Root: root, Interval: interval, Logger: logger})
		},
		Good:       procfsRoot,
		PerReading: 3, // three interfaces
		AbsentLog:  "network interfaces not available",
		Malformed: func(t *testing.T) (string, []string) {
			root := procfsRoot(t)
			sourcetest.WriteFile(t, filepath.Join(root, "sys/class/net/eth0/carrier_changes"), "NaN-ish\n")
			return root, []string{"eth0/carrier_changes"}
		},
		MalformedMin: 6,
	})
}

func FuzzParseNetDev(f *testing.F) {
	b, err := os.ReadFile("/proc/net/dev")
	if err == nil {
		f.Add(b)
	}
	f.Add([]byte(header + "  eth0: 874354587 1036395    0    0    0     0          0         0 563352563  732147    0    0    0     0       0          0\n"))
	f.Add([]byte("a: 1 2 3\n:\n::\nb:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseNetDev(bytes.NewReader(data))
		for _, l := range lines {
			if l.Name == "" || strings.ContainsAny(l.Name, " \t\n:") {
				t.Fatalf("accepted interface name %q", l.Name)
			}
		}
		if err == nil {
			n := 0
			for _, l := range strings.Split(string(data), "\n") {
				if strings.TrimSpace(l) != "" && !strings.Contains(l, "|") {
					n++
				}
			}
			if n != len(lines) {
				t.Fatalf("%d data lines, %d parsed, no error: %q", n, len(lines), data)
			}
		}
	})
}

// BenchmarkReadThisHost is one full reading of this machine's interfaces.
func BenchmarkReadThisHost(b *testing.B) {
	src := New(Config{Root: "/"})
	if _, err := src.Read(context.Background()); err != nil {
		b.Skipf("cannot read this host: %v", err)
	}
	for b.Loop() {
		if _, err := src.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
