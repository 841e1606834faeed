package edac

import (
	"bufio"
	"context"
	"errors"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nodeExporterRoot unpacks node_exporter's EDAC fixture: mc0, csrow layout.
func nodeExporterRoot(t *testing.T) string {
	return ttartest.ExtractFile(t, "testdata/node_exporter_edac.ttar")
}

// dimmLayoutRoot unpacks the hand-built fixture of the dimm*/rank* layout.
func dimmLayoutRoot(t *testing.T) string {
	return ttartest.ExtractFile(t, "testdata/hwheal_dimm_layout.ttar")
}

func TestParseCount(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"0\n", 0, false},
		{"12\n", 12, false},
		{"  7  ", 7, false},
		{"18446744073709551615\n", 1<<64 - 1, false},
		{"18446744073709551616\n", 0, true},
		{"", 0, true},
		{"\n", 0, true},
		{"-1\n", 0, true},
		{"+1\n", 0, true},
		{"0x10\n", 0, true},
		{"1 2\n", 0, true},
		{"one\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := ParseCount([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseCount(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"CPU_SrcID#0_MC#0_Chan#1_DIMM#0\n", "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"},
		{"  P0 DIMM A1  \n", "P0 DIMM A1"},
		{"DIMM_A1\x00\x00\x00", "DIMM_A1"},
		{"A\tB\n", "A B"},
		{"\n", ""},
		{"", ""},
		{"\xff\xfeX", "X"},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			if got := ParseLabel([]byte(tc.in)); got != tc.want {
				t.Errorf("ParseLabel(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestChannelFile(t *testing.T) {
	tests := []struct {
		in     string
		ch     int
		attr   string
		wantOK bool
	}{
		{"ch0_ce_count", 0, "ce_count", true},
		{"ch11_dimm_label", 11, "dimm_label", true},
		{"ch1_ue_count", 1, "ue_count", true},
		{"ch1_size", 0, "", false},
		{"ce_count", 0, "", false},
		{"chx_ce_count", 0, "", false},
		{"ch_ce_count", 0, "", false},
		{"ch-1_ce_count", 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ch, attr, ok := channelFile(tc.in)
			if ok != tc.wantOK || ch != tc.ch || attr != tc.attr {
				t.Errorf("channelFile(%q) = %d, %q, %v", tc.in, ch, attr, ok)
			}
		})
	}
}

func TestDirIndex(t *testing.T) {
	tests := []struct {
		name, prefix string
		want         int
	}{
		{"mc0", "mc", 0},
		{"mc12", "mc", 12},
		{"mc", "mc", -1},
		{"mcx", "mc", -1},
		{"dimm3", "mc", -1},
		{"csrow7", "csrow", 7},
		{"mc99999999999", "mc", -1},
	}
	for _, tc := range tests {
		if got := dirIndex(tc.name, tc.prefix); got != tc.want {
			t.Errorf("dirIndex(%q, %q) = %d, want %d", tc.name, tc.prefix, got, tc.want)
		}
	}
}

// e2eLine matches one node_edac_* sample of node_exporter's e2e output.
var e2eLine = regexp.MustCompile(`^(node_edac_\w+)\{([^}]*)\} (\S+)$`)

// neLabel is how node_exporter's EDAC collector rewrites a DIMM label
// before it becomes a Prometheus label value ("#" dropped, an underscore
// before "csrow" and "channel"). Only the cross-check needs it: the agent
// keeps the label as the kernel gives it, since that is what is printed on
// error records and what a label database wrote.
func neLabel(s string) string {
	s = strings.ReplaceAll(s, "#", "")
	s = strings.ReplaceAll(s, "csrow", "_csrow")
	return strings.ReplaceAll(s, "channel", "_channel")
}

// TestNodeExporterFixture reads node_exporter's EDAC fixture and compares
// every value with what node_exporter itself reported from it.
func TestNodeExporterFixture(t *testing.T) {
	obs, err := New(Config{Root: nodeExporterRoot(t)}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	wantNames := []string{"mc0",
		"mc0csrow0channel0", "mc0csrow0channel1",
		"mc0csrow1channel0", "mc0csrow1channel1",
		"mc0csrow2channel0", "mc0csrow2channel1"}
	if got := sourcetest.Names(obs); !slices.Equal(got, wantNames) {
		t.Fatalf("observations = %q, want %q", got, wantNames)
	}
	for _, o := range obs {
		if o.GetSource() != Name || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_MEMORY || o.GetTime() == nil {
			t.Errorf("%s: source %q kind %v time %v", o.GetPart().GetName(), o.GetSource(), o.GetPart().GetKind(), o.GetTime())
		}
	}
	// DIMMs by the label node_exporter prints, and the csrow each sits in.
	dimms := map[string]*hwhealv1.Observation{}
	rowOf := map[string]string{}
	for _, o := range obs[1:] {
		n := o.GetPart().GetName()
		dimms[neLabel(n)] = o
		rowOf[neLabel(n)] = regexp.MustCompile(`csrow(\d+)`).FindStringSubmatch(n)[1]
	}
	mc := sourcetest.SampleMap(obs[0])

	f, err := os.Open("testdata/e2e-output-edac.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := 0
	ueSeen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := e2eLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("unexpected line %q", sc.Text())
		}
		want, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(m[2], ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		if labels["controller"] != "0" {
			t.Fatalf("controller %q in %q", labels["controller"], sc.Text())
		}
		check := func(what string, got map[string]float64, sample string) {
			t.Helper()
			checked++
			if g, ok := got[sample]; !ok || g != want {
				t.Errorf("%s: %s = %v (present %v), node_exporter says %v", what, sample, g, ok, want)
			}
		}
		switch m[1] {
		case "node_edac_correctable_errors_total":
			check("mc0", mc, SampleCECount)
		case "node_edac_uncorrectable_errors_total":
			check("mc0", mc, SampleUECount)
		case "node_edac_csrow_correctable_errors_total", "node_edac_csrow_uncorrectable_errors_total":
			ue := strings.Contains(m[1], "uncorrectable")
			row := labels["csrow"]
			if row == "unknown" {
				// node_exporter files the noinfo counts under csrow "unknown".
				check("mc0", mc, map[bool]string{false: SampleCENoInfoCount, true: SampleUENoInfoCount}[ue])
				continue
			}
			n := 0
			for label, o := range dimms {
				if rowOf[label] == row {
					n++
					check(label, sourcetest.SampleMap(o), map[bool]string{false: SampleCsrowCECount, true: SampleCsrowUECount}[ue])
				}
			}
			if n != 2 {
				t.Errorf("csrow %s: %d DIMMs, want its two channels", row, n)
			}
		case "node_edac_channel_correctable_errors_total", "node_edac_channel_uncorrectable_errors_total":
			o := dimms[labels["dimm_label"]]
			if o == nil {
				t.Errorf("no DIMM labelled %q", labels["dimm_label"])
				continue
			}
			if rowOf[labels["dimm_label"]] != labels["csrow"] {
				t.Errorf("%s is in csrow %s, node_exporter says %s", labels["dimm_label"], rowOf[labels["dimm_label"]], labels["csrow"])
			}
			if strings.Contains(m[1], "uncorrectable") {
				ueSeen[labels["dimm_label"]] = true
				check(labels["dimm_label"], sourcetest.SampleMap(o), SampleUECount)
			} else {
				check(labels["dimm_label"], sourcetest.SampleMap(o), SampleCECount)
			}
		default:
			t.Errorf("metric %s not cross-checked", m[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if checked != 26 {
		t.Errorf("cross-checked %d values, want all 26", checked)
	}
	// csrow2 has no ch*_ue_count: node_exporter reports none, nor do we.
	for label, o := range dimms {
		if _, ok := sourcetest.SampleMap(o)[SampleUECount]; ok != ueSeen[label] {
			t.Errorf("%s: ue_count present %v, node_exporter has one: %v", label, ok, ueSeen[label])
		}
	}
}

func TestDIMMLayout(t *testing.T) {
	root := dimmLayoutRoot(t)
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	type want struct {
		name    string
		samples map[string]float64
	}
	wants := []want{
		{"mc0", map[string]float64{SampleCECount: 7, SampleUECount: 1, SampleCENoInfoCount: 0, SampleUENoInfoCount: 0, SampleSecondsSinceReset: 86400}},
		{"CPU_SrcID#0_MC#0_Chan#0_DIMM#0", map[string]float64{SampleCECount: 5, SampleUECount: 0}},
		{"CPU_SrcID#0_MC#0_Chan#1_DIMM#0", map[string]float64{SampleCECount: 2, SampleUECount: 1}},
		{"mc1", map[string]float64{SampleCECount: 12, SampleUECount: 0, SampleCENoInfoCount: 1, SampleUENoInfoCount: 0, SampleSecondsSinceReset: 86400}},
		{"mc#1csrow#0channel#0", map[string]float64{SampleCECount: 3, SampleUECount: 0}},
		{"mc#1csrow#1channel#0", map[string]float64{SampleCECount: 0, SampleUECount: 0}},
		// rank2 and rank3 carry the same label: one module, counts summed.
		{"P0_DIMM_B1", map[string]float64{SampleCECount: 8, SampleUECount: 0}},
		// An empty label: named by its place.
		{"mc1/rank4", map[string]float64{SampleCECount: 0, SampleUECount: 0}},
	}
	if len(obs) != len(wants) {
		t.Fatalf("observations = %q", sourcetest.Names(obs))
	}
	for i, w := range wants {
		t.Run(w.name, func(t *testing.T) {
			o := obs[i]
			if o.GetPart().GetName() != w.name {
				t.Fatalf("observation %d is %q", i, o.GetPart().GetName())
			}
			if got := sourcetest.SampleMap(o); !mapsEqual(got, w.samples) {
				t.Errorf("samples = %v, want %v", got, w.samples)
			}
		})
	}
	// What the controllers could place adds up to what the DIMMs report:
	// the legacy csrow view of mc0 was not counted on top.
	for _, ctrl := range []struct {
		mc    string
		dimms []string
	}{
		{"mc0", []string{"CPU_SrcID#0_MC#0_Chan#0_DIMM#0", "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"}},
		{"mc1", []string{"mc#1csrow#0channel#0", "mc#1csrow#1channel#0", "P0_DIMM_B1", "mc1/rank4"}},
	} {
		got := sourcetest.ByName(obs)
		c := sourcetest.SampleMap(got[ctrl.mc])
		var ce, ue float64
		for _, d := range ctrl.dimms {
			ce += sourcetest.SampleMap(got[d])[SampleCECount]
			ue += sourcetest.SampleMap(got[d])[SampleUECount]
		}
		if ce != c[SampleCECount]-c[SampleCENoInfoCount] || ue != c[SampleUECount]-c[SampleUENoInfoCount] {
			t.Errorf("%s: DIMMs sum to ce %v ue %v, controller says ce %v-%v ue %v-%v", ctrl.mc, ce, ue,
				c[SampleCECount], c[SampleCENoInfoCount], c[SampleUECount], c[SampleUENoInfoCount])
		}
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestControllersInNumberOrder(t *testing.T) {
	root := t.TempDir()
	mc := filepath.Join(root, "sys/devices/system/edac/mc")
	for _, n := range []string{"mc10", "mc2", "mc1"} {
		sourcetest.WriteFile(t, filepath.Join(mc, n, "ce_count"), "0\n")
	}
	sourcetest.WriteFile(t, filepath.Join(mc, "power", "async"), "disabled\n") // not a controller
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := sourcetest.Names(obs); !slices.Equal(got, []string{"mc1", "mc2", "mc10"}) {
		t.Errorf("controllers = %q", got)
	}
}

// TestCsrowWithoutChannels: a row that lists no channel still reports its
// totals, under the row's name; a row with nothing at all is no module.
func TestCsrowWithoutChannels(t *testing.T) {
	root := t.TempDir()
	mc := filepath.Join(root, "sys/devices/system/edac/mc/mc0")
	sourcetest.WriteFile(t, filepath.Join(mc, "ce_count"), "3\n")
	sourcetest.WriteFile(t, filepath.Join(mc, "csrow0/ce_count"), "3\n")
	sourcetest.WriteFile(t, filepath.Join(mc, "csrow0/ue_count"), "1\n")
	sourcetest.WriteFile(t, filepath.Join(mc, "csrow1/size_mb"), "8192\n")
	obs, err := New(Config{Root: root}).Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := sourcetest.Names(obs); !slices.Equal(got, []string{"mc0", "mc0/csrow0"}) {
		t.Fatalf("observations = %q", got)
	}
	if s := sourcetest.SampleMap(obs[1]); !mapsEqual(s, map[string]float64{SampleCsrowCECount: 3, SampleCsrowUECount: 1}) {
		t.Errorf("mc0/csrow0 = %v", s)
	}
}

// TestCountersStayCounters: readings carry the kernel's totals, not what
// changed since the last reading.
func TestCountersStayCounters(t *testing.T) {
	root := dimmLayoutRoot(t)
	src := New(Config{Root: root})
	ce := filepath.Join(root, "sys/devices/system/edac/mc/mc0/dimm2/dimm_ce_count")
	for _, v := range []string{"2", "9", "9", "4"} { // 4: someone wrote reset_counters
		sourcetest.WriteFile(t, ce, v+"\n")
		obs, err := src.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := sourcetest.SampleMap(sourcetest.ByName(obs)["CPU_SrcID#0_MC#0_Chan#1_DIMM#0"])[SampleCECount]
		if strconv.FormatFloat(got, 'f', -1, 64) != v {
			t.Errorf("ce_count = %v after the kernel says %s", got, v)
		}
	}
}

func TestMalformedFiles(t *testing.T) {
	const mc = "sys/devices/system/edac/mc"
	tests := []struct {
		name    string
		root    func(t *testing.T) string
		modify  func(t *testing.T, root string)
		wantErr []string
		check   func(t *testing.T, got map[string]*hwhealv1.Observation, n int)
	}{
		{
			name: "non-numeric dimm_ce_count",
			root: dimmLayoutRoot,
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, mc, "mc0/dimm0/dimm_ce_count"), "five\n")
			},
			wantErr: []string{mc + "/mc0/dimm0/dimm_ce_count", `parsing "five"`},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation, n int) {
				bad := sourcetest.SampleMap(got["CPU_SrcID#0_MC#0_Chan#0_DIMM#0"])
				if _, ok := bad[SampleCECount]; ok {
					t.Error("malformed ce_count still reported")
				}
				if v, ok := bad[SampleUECount]; !ok || v != 0 {
					t.Errorf("the DIMM's ue_count was lost: %v", bad)
				}
				if s := sourcetest.SampleMap(got["CPU_SrcID#0_MC#0_Chan#1_DIMM#0"]); s[SampleCECount] != 2 || s[SampleUECount] != 1 {
					t.Errorf("the other DIMM was hurt: %v", s)
				}
				if n != 8 {
					t.Errorf("%d observations, want all 8", n)
				}
			},
		},
		{
			name: "one bad rank spoils only its module's sum",
			root: dimmLayoutRoot,
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, mc, "mc1/rank3/dimm_ce_count"), "-4\n")
			},
			wantErr: []string{mc + "/mc1/rank3/dimm_ce_count"},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation, n int) {
				s := sourcetest.SampleMap(got["P0_DIMM_B1"])
				if _, ok := s[SampleCECount]; ok {
					t.Errorf("P0_DIMM_B1 reports ce_count %v from half its ranks", s[SampleCECount])
				}
				if _, ok := s[SampleUECount]; !ok {
					t.Error("P0_DIMM_B1 lost its ue_count")
				}
				if sourcetest.SampleMap(got["mc#1csrow#0channel#0"])[SampleCECount] != 3 {
					t.Error("the next DIMM was hurt")
				}
			},
		},
		{
			name: "non-numeric controller ce_count",
			root: nodeExporterRoot,
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, mc, "mc0/ce_count"), "1 2\n")
			},
			wantErr: []string{mc + "/mc0/ce_count"},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation, n int) {
				s := sourcetest.SampleMap(got["mc0"])
				if _, ok := s[SampleCECount]; ok || s[SampleUECount] != 5 {
					t.Errorf("mc0 = %v", s)
				}
				if n != 7 {
					t.Errorf("%d observations, want all 7", n)
				}
			},
		},
		{
			name: "non-numeric channel counter",
			root: nodeExporterRoot,
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, mc, "mc0/csrow1/ch1_ce_count"), "zero\n")
			},
			wantErr: []string{mc + "/mc0/csrow1/ch1_ce_count"},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation, n int) {
				s := sourcetest.SampleMap(got["mc0csrow1channel1"])
				if _, ok := s[SampleCECount]; ok || s[SampleUECount] != 2 || s[SampleCsrowUECount] != 4 {
					t.Errorf("mc0csrow1channel1 = %v", s)
				}
				if sourcetest.SampleMap(got["mc0csrow1channel0"])[SampleUECount] != 2 {
					t.Error("its neighbour was hurt")
				}
			},
		},
		{
			name: "bad csrow total reaches only that row",
			root: nodeExporterRoot,
			modify: func(t *testing.T, root string) {
				sourcetest.WriteFile(t, filepath.Join(root, mc, "mc0/csrow0/ue_count"), "\n")
			},
			wantErr: []string{mc + "/mc0/csrow0/ue_count", "empty counter"},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation, n int) {
				if _, ok := sourcetest.SampleMap(got["mc0csrow0channel0"])[SampleCsrowUECount]; ok {
					t.Error("row 0 still has a csrow_ue_count")
				}
				if sourcetest.SampleMap(got["mc0csrow1channel0"])[SampleCsrowUECount] != 4 {
					t.Error("row 1 was hurt")
				}
			},
		},
		{
			name: "unreadable label",
			root: dimmLayoutRoot,
			modify: func(t *testing.T, root string) {
				p := filepath.Join(root, mc, "mc0/dimm2/dimm_label")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(p, 0o755); err != nil { // reading a directory fails with EISDIR
					t.Fatal(err)
				}
			},
			wantErr: []string{mc + "/mc0/dimm2/dimm_label"},
			check: func(t *testing.T, got map[string]*hwhealv1.Observation, n int) {
				s := sourcetest.SampleMap(got["mc0/dimm2"])
				if s[SampleCECount] != 2 || s[SampleUECount] != 1 {
					t.Errorf("mc0/dimm2 = %v, want its counts under its place name", s)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.root(t)
			tc.modify(t, root)
			obs := sourcetest.ReadMalformed(t, New(Config{Root: root}).Read, tc.wantErr...)
			tc.check(t, sourcetest.ByName(obs), len(obs))
		})
	}
}

func TestAbsent(t *testing.T) {
	tests := map[string]func(t *testing.T, root string){
		"no edac directory": func(t *testing.T, root string) {},
		"edac core without a driver": func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, "sys/devices/system/edac/mc"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			setup(t, root)
			obs, err := New(Config{Root: root}).Read(context.Background())
			if !errors.Is(err, fs.ErrNotExist) || len(obs) != 0 {
				t.Errorf("Read = %d observations, %v; want none and ErrNotExist", len(obs), err)
			}
		})
	}
}

// TestReadThisHost reads the real EDAC tree of the machine running the
// test and checks the controllers against sysfs.
func TestReadThisHost(t *testing.T) {
	src := New(Config{Root: "/"})
	obs, err := src.Read(context.Background())
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no EDAC memory controller on this host")
	}
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	ctrls, _ := filepath.Glob("/sys/devices/system/edac/mc/mc[0-9]*")
	n := 0
	for _, o := range obs {
		name := o.GetPart().GetName()
		if !regexp.MustCompile(`^mc\d+$`).MatchString(name) {
			continue
		}
		n++
		b, err := os.ReadFile(filepath.Join("/sys/devices/system/edac/mc", name, "ce_count"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if got := sourcetest.SampleMap(o)[SampleCECount]; got > want {
			t.Errorf("%s: ce_count %v, sysfs now says %v", name, got, want)
		}
	}
	if n != len(ctrls) {
		t.Errorf("%d controllers observed, sysfs lists %d", n, len(ctrls))
	}
	t.Logf("%d observations: %q", len(obs), sourcetest.Names(obs))
}

func TestReadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(Config{Root: nodeExporterRoot(t)}).Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Read on a cancelled context = %v", err)
	}
}

func TestRunLoop(t *testing.T) {
	sourcetest.RunLoop(t, sourcetest.Fixture{
		New: func(root string, interval time.Duration, logger *slog.Logger) sourcetest.Periodic {
			return New(Config{Root: root, Interval: interval, Logger: logger})
		},
		Good:       nodeExporterRoot,
		PerReading: 7, // mc0 and six DIMMs
		AbsentLog:  "EDAC memory controllers not available",
		Malformed: func(t *testing.T) (string, []string) {
			root := nodeExporterRoot(t)
			bad := filepath.Join(root, "sys/devices/system/edac/mc/mc0/csrow2/ch0_ce_count")
			sourcetest.WriteFile(t, bad, "many\n")
			return root, []string{bad}
		},
		MalformedMin: 14,
	})
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"0\n", "12", " 7 ", "18446744073709551615", "-1", "0x10", "", "1 2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseCount(data)
		if err != nil {
			if v != 0 {
				t.Fatalf("error %v with value %d", err, v)
			}
			return
		}
		// Whatever parses is a plain decimal number with blanks around it.
		if got := strconv.FormatUint(v, 10); strings.TrimLeft(strings.TrimSpace(string(data)), "0") != strings.TrimLeft(got, "0") {
			t.Fatalf("ParseCount(%q) = %d", data, v)
		}
	})
}

func FuzzParseLabel(f *testing.F) {
	for _, s := range []string{"CPU_SrcID#0_MC#0_Chan#1_DIMM#0\n", "DIMM_A1\x00\x00", " \t\n", "\xff", "P0 DIMM A1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := ParseLabel(data)
		if l != strings.TrimSpace(l) {
			t.Fatalf("label %q has blanks around it", l)
		}
		for _, r := range l {
			if unicode.IsControl(r) || r == unicode.ReplacementChar {
				t.Fatalf("label %q keeps %U", l, r)
			}
		}
		if len(l) > len(data) {
			t.Fatalf("label %q longer than %q", l, data)
		}
	})
}

func FuzzChannelFile(f *testing.F) {
	for _, s := range []string{"ch0_ce_count", "ch12_dimm_label", "ch1_ue_count", "ch_x", "ce_count", "ch99999999999_ce_count"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ch, attr, ok := channelFile(name)
		if !ok {
			return
		}
		num, ok := strings.CutSuffix(strings.TrimPrefix(name, "ch"), "_"+attr)
		if n, err := strconv.Atoi(num); !ok || err != nil || n != ch || ch < 0 || num[0] == '-' || num[0] == '+' {
			t.Fatalf("channelFile(%q) = %d, %q", name, ch, attr)
		}
		if attr != "ce_count" && attr != "ue_count" && attr != "dimm_label" {
			t.Fatalf("channelFile(%q) accepted attribute %q", name, attr)
		}
	})
}

func BenchmarkReadDIMMLayout(b *testing.B) {
	root := ttartest.ExtractFile(b, "testdata/hwheal_dimm_layout.ttar")
	src := New(Config{Root: root})
	for b.Loop() {
		if _, err := src.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
