package inventory

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/agent/source/diskstats"
	"github.com/hwheal/hwheal/agent/source/netdev"
	"github.com/hwheal/hwheal/pkg/ttar"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// memDevice builds an SMBIOS type 17 structure the way DSP0134 §7.18 lays
// it out: formatted area of the given length, then the string set.
type memDevice struct {
	length                                int
	size                                  uint16
	extMiB                                uint32
	locator, bank, vendor, serial, partNo string
}

func (m memDevice) raw() []byte {
	b := make([]byte, m.length)
	b[0], b[1] = smbiosTypeMemoryDevice, byte(m.length)
	binary.LittleEndian.PutUint16(b[offSize:], m.size)
	if m.length >= minLen27 {
		binary.LittleEndian.PutUint32(b[offExtendedSize:], m.extMiB)
	}
	var strs []string
	set := func(off int, s string) {
		if s == "" || off >= m.length {
			return
		}
		strs = append(strs, s)
		b[off] = byte(len(strs))
	}
	set(offDeviceLocator, m.locator)
	set(offBankLocator, m.bank)
	set(offManufacturer, m.vendor)
	set(offSerial, m.serial)
	set(offPartNumber, m.partNo)
	for _, s := range strs {
		b = append(append(b, s...), 0)
	}
	if len(strs) == 0 {
		b = append(b, 0)
	}
	return append(b, 0)
}

func TestParseMemoryDevice(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		want      *hwhealv1.InventoryDimm
		installed bool
		wantErr   string
	}{
		{
			name: "SMBIOS 3.x module with bank locator",
			in: memDevice{length: 0x28, size: 0x4000, locator: "P1-DIMMA1", bank: "P0_Node0_Channel0_Dimm0",
				vendor: "Samsung", serial: "4008CB00", partNo: "M393A2K40BB2-CTD    "}.raw(),
			want:      &hwhealv1.InventoryDimm{Label: "P0_Node0_Channel0_Dimm0 P1-DIMMA1", Vendor: "Samsung", Serial: "4008CB00", PartNumber: "M393A2K40BB2-CTD", SizeBytes: 16 << 30},
			installed: true,
		},
		{
			name:      "placeholders dropped",
			in:        memDevice{length: 0x22, size: 0x2000, locator: "DIMM_A1", bank: "Not Specified", vendor: "Unknown", serial: "NO DIMM", partNo: "  "}.raw(),
			want:      &hwhealv1.InventoryDimm{Label: "DIMM_A1", SizeBytes: 8 << 30},
			installed: true,
		},
		{
			name:      "extended size",
			in:        memDevice{length: 0x28, size: 0x7FFF, extMiB: 65536, locator: "A1", serial: "S1"}.raw(),
			want:      &hwhealv1.InventoryDimm{Label: "A1", Serial: "S1", SizeBytes: 64 << 30},
			installed: true,
		},
		{
			name:      "kilobyte granularity",
			in:        memDevice{length: 0x1B, size: 0x8000 | 512, locator: "ROM"}.raw(),
			want:      &hwhealv1.InventoryDimm{Label: "ROM", SizeBytes: 512 << 10},
			installed: true,
		},
		{
			name:      "SMBIOS 2.1: no vendor or serial fields",
			in:        memDevice{length: 0x15, size: 1024, locator: "DIMM0"}.raw(),
			want:      &hwhealv1.InventoryDimm{Label: "DIMM0", SizeBytes: 1 << 30},
			installed: true,
		},
		{
			name:      "unknown size is still a module",
			in:        memDevice{length: 0x22, size: 0xFFFF, locator: "B2", serial: "X"}.raw(),
			want:      &hwhealv1.InventoryDimm{Label: "B2", Serial: "X"},
			installed: true,
		},
		{name: "empty slot", in: memDevice{length: 0x28, size: 0, locator: "DIMM_B1"}.raw(), installed: false},
		{name: "string index past the set", in: func() []byte {
			b := memDevice{length: 0x22, size: 1024, locator: "A1"}.raw()
			b[offSerial] = 9
			return b
		}(), want: &hwhealv1.InventoryDimm{Label: "A1", SizeBytes: 1 << 30}, installed: true},
		{name: "string set cut short", in: func() []byte {
			b := memDevice{length: 0x22, size: 1024, locator: "A1", serial: "SERIAL"}.raw()
			return b[:len(b)-4]
		}(), want: &hwhealv1.InventoryDimm{Label: "A1", SizeBytes: 1 << 30}, installed: true},
		{name: "other structure type", in: []byte{16, 0x17, 0, 0}, wantErr: "type 16"},
		{name: "too short for type 17", in: []byte{17, 0x10, 0, 0}, wantErr: "length 0x10"},
		{name: "shorter than its length", in: []byte{17, 0x28, 0, 0, 0, 0}, wantErr: "6 bytes, structure says 40"},
		{name: "empty", in: nil, wantErr: "shorter than its header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, installed, err := ParseMemoryDevice(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if installed != tc.installed || !proto.Equal(got, tc.want) {
				t.Errorf("got %v installed=%v, want %v installed=%v", got, installed, tc.want, tc.installed)
			}
		})
	}
}

func FuzzParseMemoryDevice(f *testing.F) {
	f.Add(memDevice{length: 0x28, size: 0x4000, locator: "P1-DIMMA1", bank: "P0", vendor: "Samsung", serial: "4008CB00", partNo: "M393A2K40BB2-CTD"}.raw())
	f.Add(memDevice{length: 0x15, size: 0x7FFF, locator: "A"}.raw())
	f.Add([]byte{17, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, installed, err := ParseMemoryDevice(data)
		if err != nil && (d != nil || installed) {
			t.Fatal("error with a result")
		}
		if installed != (d != nil) {
			t.Fatal("installed disagrees with the result")
		}
		if d != nil {
			for _, s := range []string{d.Label, d.Vendor, d.Serial, d.PartNumber} {
				if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' }) || s != strings.TrimSpace(s) {
					t.Fatalf("unclean string %q", s)
				}
			}
		}
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func extractInto(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := ttar.Extract(f, dir); err != nil {
		t.Fatal(err)
	}
}

// fixtureRoot assembles a machine from node_exporter's fixtures (DMI, sda
// with its udev record, NICs and bonds, cpuinfo, meminfo), the hand-written
// additions (a GPU) and SMBIOS memory entries built per the spec.
func fixtureRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	extractInto(t, "testdata/node_exporter_sys.ttar", root)
	extractInto(t, "testdata/node_exporter_udev.ttar", filepath.Join(root, "run"))
	extractInto(t, "testdata/hwheal_additions.ttar", root)
	for _, name := range []string{"cpuinfo", "meminfo"} {
		b, err := os.ReadFile(filepath.Join("testdata/node_exporter/proc", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "proc", name), b)
	}
	entries := filepath.Join(root, "sys/firmware/dmi/entries")
	writeFile(t, filepath.Join(entries, "17-0/raw"), memDevice{length: 0x28, size: 0x4000, locator: "A1", vendor: "Hynix", serial: "331355C1", partNo: "HMAA8GL7AMR4N-VK    "}.raw())
	writeFile(t, filepath.Join(entries, "17-1/raw"), memDevice{length: 0x28, size: 0, locator: "A2"}.raw()) // empty slot
	writeFile(t, filepath.Join(entries, "17-10/raw"), memDevice{length: 0x28, size: 0x7FFF, extMiB: 131072, locator: "B1", vendor: "Samsung", serial: "4008CB00", partNo: "M393AAG40M32-CAE"}.raw())
	writeFile(t, filepath.Join(entries, "17-2/raw"), memDevice{length: 0x28, size: 0x4000, locator: "A3", vendor: "Hynix", serial: "331355C2", partNo: "HMAA8GL7AMR4N-VK"}.raw())
	return root
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// captureStderr runs fn with file descriptor 2 redirected, since ghw's
// default logger holds the original os.Stderr.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(int(w.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, r); close(done) }()
	fn()
	if err := unix.Dup3(saved, 2, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(saved)
	w.Close()
	<-done
	r.Close()
	return out.String()
}

func TestCollectFixture(t *testing.T) {
	root := fixtureRoot(t)
	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var inv *hwhealv1.Inventory
	stderr := captureStderr(t, func() {
		var err error
		inv, err = Collect(context.Background(), root, logger)
		if err != nil {
			t.Errorf("Collect: %v", err)
		}
	})
	if stderr != "" {
		t.Errorf("Collect wrote to stderr:\n%s", stderr)
	}
	if inv == nil {
		t.FailNow()
	}

	want := &hwhealv1.Inventory{
		// sys/class/dmi/id of node_exporter's fixture.
		SystemVendor:  "Dell Inc.",
		SystemProduct: "PowerEdge R6515",
		SystemSerial:  "7N62AI2",
		BiosVersion:   "2.2.4",
		BoardSerial:   ".7N62AI2.GRTCL6944100GP.",
		// proc/cpuinfo: one package, "cpu cores: 4".
		CpuModel: "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz",
		CpuCores: 4,
		// proc/meminfo MemTotal 3742148 kB; no physical size known.
		MemoryBytes: 3742148 * 1024,
		Dimms: []*hwhealv1.InventoryDimm{
			{Label: "A1", Vendor: "Hynix", Serial: "331355C1", PartNumber: "HMAA8GL7AMR4N-VK", SizeBytes: 16 << 30},
			{Label: "A3", Vendor: "Hynix", Serial: "331355C2", PartNumber: "HMAA8GL7AMR4N-VK", SizeBytes: 16 << 30},
			{Label: "B1", Vendor: "Samsung", Serial: "4008CB00", PartNumber: "M393AAG40M32-CAE", SizeBytes: 128 << 30},
		},
		Disks: []*hwhealv1.InventoryDisk{{
			// udev/data/b8:0: ID_MODEL, ID_SERIAL_SHORT, ID_WWN_WITH_EXTENSION.
			Name: "sda", Model: "TOSHIBA_KSDB4U86", Serial: "2160A0D5FVGG", Wwn: "0x7c72382b8de36a64",
			SizeBytes: 7814037168 * 512, Bus: "SCSI",
		}},
		Nics: []*hwhealv1.InventoryNic{
			// addr_assign_type 3 everywhere: ghw gives no MAC, the address file does.
			{Name: "bond0", Mac: "01:01:01:01:01:01"},
			{Name: "dmz", Mac: "01:01:01:01:01:01"},
			{Name: "eth0", Mac: "01:01:01:01:01:01"},
			{Name: "int", Mac: "01:01:01:01:01:01"},
		},
		Gpus: []*hwhealv1.InventoryPci{{
			Address: "0000:65:00.0", Vendor: "NVIDIA Corporation", Product: "GA100 [A100 SXM4 40GB]",
			ClassName: "Display controller", Driver: "nvidia",
		}},
	}
	if !proto.Equal(inv, want) {
		t.Errorf("inventory differs\n got: %v\nwant: %v", inv, want)
	}
	// ghw's complaints about the fixture went to our log, at debug level.
	out := logs.String()
	if !strings.Contains(out, "board_asset_tag") || !strings.Contains(out, "lib=ghw") {
		t.Errorf("ghw's messages not in our log:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "lib=ghw") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("ghw message above debug: %s", line)
		}
	}
	if strings.Contains(out, "inventory part skipped") {
		t.Errorf("a part was skipped:\n%s", out)
	}
}

func TestCollectSkipsBrokenParts(t *testing.T) {
	// DMI, sda and the NICs, but no CPUs, cpuinfo, meminfo or GPU. The
	// parts ghw cannot read are skipped with one warning each and the rest
	// is still returned.
	root := t.TempDir()
	extractInto(t, "testdata/node_exporter_sys.ttar", root)
	if err := os.RemoveAll(filepath.Join(root, "sys/devices/system/cpu")); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	inv, err := Collect(context.Background(), root, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if inv.GetSystemSerial() != "7N62AI2" || len(inv.GetNics()) != 4 {
		t.Errorf("readable parts lost: %v", inv)
	}
	if inv.GetCpuCores() != 0 || inv.GetMemoryBytes() != 0 || len(inv.GetGpus()) != 0 {
		t.Errorf("unreadable parts invented: %v", inv)
	}
	out := logs.String()
	for _, part := range []string{"cpu", "memory"} {
		n := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, `msg="inventory part skipped"`) && strings.Contains(line, " part="+part+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("part %s: %d warnings, want one\n%s", part, n, out)
		}
	}
	if strings.Contains(out, "lib=ghw") {
		t.Errorf("ghw's own messages leaked above debug:\n%s", out)
	}
}

func TestCollectEDACFallback(t *testing.T) {
	root := t.TempDir()
	mc := filepath.Join(root, "sys/devices/system/edac/mc")
	writeFile(t, filepath.Join(mc, "mc0/dimm0/dimm_label"), []byte("CPU_SrcID#0_MC#0_Chan#0_DIMM#0\n"))
	writeFile(t, filepath.Join(mc, "mc0/dimm0/size"), []byte("16384\n"))
	writeFile(t, filepath.Join(mc, "mc0/dimm1/dimm_label"), []byte("CPU_SrcID#0_MC#0_Chan#0_DIMM#1\n"))
	writeFile(t, filepath.Join(mc, "mc0/dimm1/size"), []byte("0\n")) // empty slot
	writeFile(t, filepath.Join(mc, "mc1/rank0/size"), []byte("8192\n"))
	inv, err := Collect(context.Background(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []*hwhealv1.InventoryDimm{
		{Label: "CPU_SrcID#0_MC#0_Chan#0_DIMM#0", SizeBytes: 16 << 30},
		{Label: "mc1/rank0", SizeBytes: 8 << 30},
	}
	if len(inv.GetDimms()) != len(want) {
		t.Fatalf("dimms = %v, want %v", inv.GetDimms(), want)
	}
	for i := range want {
		if !proto.Equal(inv.GetDimms()[i], want[i]) {
			t.Errorf("dimm %d = %v, want %v", i, inv.GetDimms()[i], want[i])
		}
	}
}

func TestCollectErrors(t *testing.T) {
	if _, err := Collect(context.Background(), filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("Collect accepted a missing root")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Collect(ctx, t.TempDir(), nil); err == nil {
		t.Error("Collect ignored a cancelled context")
	}
}

// TestCollectThisHost takes the inventory of the machine running the test
// and checks it names disks and NICs as the observation sources do.
func TestCollectThisHost(t *testing.T) {
	var logs logBuffer
	inv, err := Collect(context.Background(), "/", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	t.Logf("inventory: %v\nwarnings: %s", inv, logs.String())
	if inv.GetCpuCores() == 0 || inv.GetCpuModel() == "" || inv.GetMemoryBytes() == 0 {
		t.Errorf("CPU or memory missing: %v", inv)
	}
	for _, d := range inv.GetDisks() {
		if resolved, err := filepath.EvalSymlinks(filepath.Join("/sys/block", d.GetName())); err == nil && strings.Contains(resolved, "/devices/virtual/") {
			t.Errorf("virtual block device %s listed as a disk", d.GetName())
		}
		if _, serial, _ := diskstats.Identify("/", d.GetName()); serial != "" && d.GetSerial() == "" {
			t.Errorf("%s: no serial, diskstats reports %q", d.GetName(), serial)
		}
	}
	if len(inv.GetNics()) == 0 {
		t.Skip("no NIC on this host")
	}
	for _, n := range inv.GetNics() {
		if n.GetName() == "lo" {
			t.Error("lo listed as a NIC")
		}
		if want := netdev.PCIAddress("/", n.GetName()); n.GetPciAddress() != want {
			t.Errorf("%s: PCI %q, netdev reports %q", n.GetName(), n.GetPciAddress(), want)
		}
		if n.GetMac() == "" {
			t.Errorf("%s: no MAC", n.GetName())
		}
	}
}

func BenchmarkCollectThisHost(b *testing.B) {
	for b.Loop() {
		if _, err := Collect(context.Background(), "/", nil); err != nil {
			b.Fatal(err)
		}
	}
}
