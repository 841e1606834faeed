package smart

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"github.com/hwheal/hwheal/pkg/smart"
)

// kernelTree builds a /sys laid out as Linux 6.x lays it out for a host
// with SATA, SAS, USB, NVMe (plain, two namespaces, native multipath) and
// software block devices; see the comments for what each one stands for.
func kernelTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	write := func(rel, content string) { sourcetest.WriteFile(t, filepath.Join(sys, rel), content) }
	link := func(target, rel string) {
		t.Helper()
		p := filepath.Join(sys, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	// block registers a disk at devices/<dir>/block/<name> (or
	// devices/<dir>/<name> for NVMe namespaces) with its /sys/block link.
	block := func(name, dir string, attrs map[string]string) string {
		rel := filepath.Join("devices", dir, name)
		write(filepath.Join(rel, "size"), "2000000\n")
		for k, v := range attrs {
			write(filepath.Join(rel, k), v)
		}
		link(filepath.Join("..", rel), filepath.Join("block", name))
		return rel
	}
	scsi := func(name, hctl, parent, vendor, model string, attrs map[string]string) {
		dev := filepath.Join(parent, hctl)
		write(filepath.Join("devices", dev, "vendor"), vendor+"\n")
		write(filepath.Join("devices", dev, "model"), model+"\n")
		rel := block(name, filepath.Join(dev, "block"), attrs)
		link("../..", filepath.Join(rel, "device"))
	}

	// sda: a SATA disk on the chipset's AHCI controller (libata: "ATA").
	scsi("sda", "0:0:0:0", "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0", "ATA", "WDC WD40EFRX-68N", nil)
	// sdb: a SAS disk behind an HBA.
	scsi("sdb", "1:0:0:0", "pci0000:00/0000:00:01.0/0000:03:00.0/host1/port-1:0/end_device-1:0/target1:0:0", "SEAGATE", "ST600MP0036", nil)
	// sdc: a USB stick (removable), sdd: a card reader without a card.
	scsi("sdc", "2:0:0:0", "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0", "SanDisk", "Cruzer", map[string]string{"removable": "1\n"})
	scsi("sdd", "3:0:0:0", "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host3/target3:0:0", "Generic", "SD Reader", map[string]string{"size": "0\n"})
	// sr0: an optical drive.
	scsi("sr0", "4:0:0:0", "pci0000:00/0000:00:17.0/ata2/host4/target4:0:0", "HL-DT-ST", "DVDRAM", nil)

	nvmeCtrl := func(ctrl, pci, model, serial, state string) string {
		dir := filepath.Join("pci0000:00", pci, "nvme", ctrl)
		write(filepath.Join("devices", dir, "model"), model+"\n")
		write(filepath.Join("devices", dir, "serial"), serial+"\n")
		write(filepath.Join("devices", dir, "state"), state+"\n")
		link(filepath.Join("../../devices", dir), filepath.Join("class/nvme", ctrl))
		return dir
	}
	nvmeNS := func(ctrlDir, name string) {
		rel := block(name, ctrlDir, nil)
		link("../../"+filepath.Base(ctrlDir), filepath.Join(rel, "device"))
	}
	// nvme0n1: one namespace on controller nvme0, whose char device exists.
	nvmeNS(nvmeCtrl("nvme0", "0000:00:1d.0/0000:3d:00.0", "Samsung SSD 970 EVO Plus 250GB", "S4EUNX0N123456", "live"), "nvme0n1")
	sourcetest.WriteFile(t, filepath.Join(root, "dev", "nvme0"), "")
	// nvme1n1, nvme1n2: two namespaces of controller nvme1 (no char
	// device node in this tree: the namespace is opened).
	c1 := nvmeCtrl("nvme1", "0000:00:1c.0/0000:3c:00.0", "MZWLL3T2HAJQ-00005", "S3RNNA0K000001", "live")
	nvmeNS(c1, "nvme1n2")
	nvmeNS(c1, "nvme1n1")
	// nvme2n1: a native-multipath head under the subsystem, with two
	// controllers, the first of them reconnecting; nvme2c2n1 and
	// nvme2c3n1 are its hidden path devices.
	c2 := nvmeCtrl("nvme2", "0000:00:1b.0/0000:3b:00.0", "Dual Port", "DP0001", "connecting")
	c3 := nvmeCtrl("nvme3", "0000:00:1a.0/0000:3a:00.0", "Dual Port", "DP0001", "live")
	subsys := filepath.Join("virtual", "nvme-subsystem", "nvme-subsys2")
	write(filepath.Join("devices", subsys, "model"), "Dual Port\n")
	write(filepath.Join("devices", subsys, "serial"), "DP0001\n")
	link("../../../"+c2, filepath.Join("devices", subsys, "nvme2"))
	link("../../../"+c3, filepath.Join("devices", subsys, "nvme3"))
	head := block("nvme2n1", subsys, nil)
	link("../../nvme-subsys2", filepath.Join(head, "device"))
	block("nvme2c2n1", c2, map[string]string{"hidden": "1\n"})
	block("nvme2c3n1", c3, map[string]string{"hidden": "1\n"})
	// nvme10n1: to check number order.
	nvmeNS(nvmeCtrl("nvme10", "0000:00:19.0/0000:39:00.0", "INTEL SSDPE2KX080T8", "PHLJ0000001", "live"), "nvme10n1")

	// Software and paravirtual devices.
	for _, name := range []string{"loop0", "zram0", "dm-0", "md127", "nbd0", "ram0"} {
		block(name, filepath.Join("virtual", "block"), nil)
	}
	block("vda", "pci0000:00/0000:00:04.0/virtio1", nil)
	// A software device whose name no prefix catches.
	block("mydev0", filepath.Join("virtual", "block"), nil)
	return root
}

func TestDiscover(t *testing.T) {
	root := kernelTree(t)
	disks, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	dev := func(n string) string { return filepath.Join(root, "dev", n) }
	want := []Disk{
		{Name: "nvme0n1", Protocol: smart.ProtocolNVMe, Path: dev("nvme0"), BlockPath: dev("nvme0n1"), Controller: "nvme0",
			Model: "Samsung SSD 970 EVO Plus 250GB", Serial: "S4EUNX0N123456", PCIAddress: "0000:3d:00.0"},
		{Name: "nvme1n1", Protocol: smart.ProtocolNVMe, Path: dev("nvme1n1"), BlockPath: dev("nvme1n1"), Controller: "nvme1",
			Namespaces: []string{"nvme1n2"}, Model: "MZWLL3T2HAJQ-00005", Serial: "S3RNNA0K000001", PCIAddress: "0000:3c:00.0"},
		{Name: "nvme2n1", Protocol: smart.ProtocolNVMe, Path: dev("nvme2n1"), BlockPath: dev("nvme2n1"), Controller: "nvme3",
			Model: "Dual Port", Serial: "DP0001", PCIAddress: "0000:3a:00.0"},
		{Name: "nvme10n1", Protocol: smart.ProtocolNVMe, Path: dev("nvme10n1"), BlockPath: dev("nvme10n1"), Controller: "nvme10",
			Model: "INTEL SSDPE2KX080T8", Serial: "PHLJ0000001", PCIAddress: "0000:39:00.0"},
		{Name: "sda", Protocol: smart.ProtocolATA, Path: dev("sda"), BlockPath: dev("sda"), Model: "WDC WD40EFRX-68N", PCIAddress: "0000:00:17.0"},
		{Name: "sdb", Protocol: smart.ProtocolSCSI, Path: dev("sdb"), BlockPath: dev("sdb"), Model: "ST600MP0036", PCIAddress: "0000:03:00.0"},
	}
	for i := range disks {
		disks[i].sysDir = ""
	}
	if len(disks) != len(want) {
		t.Fatalf("found %v, want %v", names(disks), names(want))
	}
	for i := range want {
		if !reflect.DeepEqual(disks[i], want[i]) {
			t.Errorf("disk %d:\n got %+v\nwant %+v", i, disks[i], want[i])
		}
	}
}

func names(ds []Disk) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

// TestDiscoverHost reads this host's real /sys: whatever it has, no
// software, optical, paravirtual or removable device is offered to a
// reader (this machine and CI have only such devices).
func TestDiscoverHost(t *testing.T) {
	if _, err := os.Stat("/sys/block"); err != nil {
		t.Skip("no /sys/block on this host")
	}
	disks, err := Discover("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		if skipName(d.Name) {
			t.Errorf("discovered %s", d.Name)
		}
		if attr(d.sysDir, "removable") == "1" {
			t.Errorf("discovered removable %s", d.Name)
		}
	}
	entries, _ := os.ReadDir("/sys/block")
	t.Logf("host block devices %d, disks read %v", len(entries), names(disks))
}

func TestDiscoverAbsent(t *testing.T) {
	_, err := Discover(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Discover on an empty root = %v, want fs.ErrNotExist", err)
	}
}

func TestRuntimeSuspended(t *testing.T) {
	root := diskTree(t, sataDisk("sda", 1), sataDisk("sdb", 2))
	sourcetest.WriteFile(t, filepath.Join(root, "sys/block/sda/device/power/runtime_status"), "suspended\n")
	sourcetest.WriteFile(t, filepath.Join(root, "sys/block/sdb/device/power/runtime_status"), "active\n")
	disks, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 2 || !runtimeSuspended(disks[0]) || runtimeSuspended(disks[1]) {
		t.Fatalf("suspended: %v", disks)
	}
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"sdaa", "nvme10n1", "sdb", "nvme1n2", "sdz", "nvme1n1", "sda", "nvme2n1", "sdab", "hda"}
	want := []string{"hda", "nvme1n1", "nvme1n2", "nvme2n1", "nvme10n1", "sda", "sdb", "sdz", "sdaa", "sdab"}
	got := slices.Clone(in)
	slices.SortFunc(got, naturalCompare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
	if strings.Join(got, " ") == strings.Join(in, " ") {
		t.Error("input already sorted")
	}
}
