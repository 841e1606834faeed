//go:build linux

package blockio

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/agent/source/diskstats"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Disks of the fixture tree (testdata/sysfs_disks.ttar: a real host's
// sysfs, from prometheus/procfs): an NVMe SSD and two SATA HDDs behind a
// SAS HBA, by device number.
const (
	devNVMe = 259<<20 | 0
	devSDV  = 65<<20 | 80
	devSDW  = 65<<20 | 96
	// The SCSI devices of sdv and sdw, below sys.
	sdvDir = "devices/pci0000:00/0000:00:03.0/0000:03:00.0/host11/port-11:0/expander-11:0/port-11:0:0/end_device-11:0:0/target11:0:7/11:0:7:0"
	sdwDir = "devices/pci0000:00/0000:00:03.0/0000:03:00.0/host11/port-11:0/expander-11:0/port-11:0:1/end_device-11:0:1/target11:0:8/11:0:8:0"
)

func disksRoot(t *testing.T) string {
	t.Helper()
	return filepath.Join(ttartest.ExtractFile(t, "testdata/sysfs_disks.ttar"), "fixtures")
}

func diskPart(name, serial, model, pci string) *hwhealv1.Part {
	return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name, Serial: serial, Model: model, PciAddress: pci}
}

// vpd80 is a SCSI Unit Serial Number page holding serial.
func vpd80(serial string) string {
	return string([]byte{0, 0x80, 0, byte(len(serial))}) + serial
}

// TestDiskParts names the fixture's disks by device number with what
// sysfs says about them, the same the diskstats source (and through it the
// SMART source and the inventory) reports for each.
func TestDiskParts(t *testing.T) {
	root := disksRoot(t)
	d := newDisks(root)
	for _, tc := range []struct {
		dev  uint32
		want *hwhealv1.Part
	}{
		{devNVMe, diskPart("nvme0n1", "2328E6EDD8A7", "CT2000P3SSD8", "0000:01:00.0")},
		{devSDV, diskPart("sdv", "ZCT0CQLK", "ST8000DM004-2CX1", "0000:03:00.0")},
		{devSDW, diskPart("sdw", "VJGRBU1X", "HUH72808CLAR8000", "0000:03:00.0")},
		{8<<20 | 16, diskPart("8:16", "", "", "")}, // not on this host
	} {
		t.Run(tc.want.GetName(), func(t *testing.T) {
			got, found := d.part(tc.dev)
			if !proto.Equal(got, tc.want) || found != (tc.want.GetSerial() != "") {
				t.Fatalf("part = %v, %v; want %v", got, found, tc.want)
			}
			if !found {
				return
			}
			model, serial, pci := diskstats.Identify(root, got.GetName())
			if got.GetModel() != model || got.GetSerial() != serial || got.GetPciAddress() != pci {
				t.Errorf("diskstats says %q %q %q", model, serial, pci)
			}
		})
	}
}

// TestDiskPartsCached: what sysfs says about a disk is read once; read
// again when another disk takes the name (a new diskseq, or where the
// kernel has none, another place in the device tree) and when a name
// that was gone appears again.
func TestDiskPartsCached(t *testing.T) {
	root := disksRoot(t)
	d := newDisks(root)
	sdv := diskPart("sdv", "ZCT0CQLK", "ST8000DM004-2CX1", "0000:03:00.0")
	check := func(step string, dev uint32, want *hwhealv1.Part) {
		t.Helper()
		if got, _ := d.part(dev); !proto.Equal(got, want) {
			t.Fatalf("%s: part = %v, want %v", step, got, want)
		}
	}
	check("first", devSDV, sdv)
	// What sysfs says changes under the same disk: not read again (a
	// disk's model and serial do not change while it is attached).
	sourcetest.WriteFile(t, filepath.Join(root, "sys", sdvDir, "model"), "OTHER\n")
	check("same disk", devSDV, sdv)

	// The drive is swapped: same name, same device number, the kernel's
	// next diskseq.
	sourcetest.WriteFile(t, filepath.Join(root, "sys", sdvDir, "vpd_pg80"), vpd80("WCT1SWAP"))
	sourcetest.WriteFile(t, filepath.Join(root, "sys", sdvDir, "block", "sdv", "diskseq"), "57\n")
	swapped := diskPart("sdv", "WCT1SWAP", "OTHER", "0000:03:00.0")
	check("swapped", devSDV, swapped)

	// A kernel without diskseq: the disk's place in the device tree tells
	// disks apart. sdv now names the disk at sdw's place.
	for _, p := range []string{sdvDir + "/block/sdv/diskseq", sdwDir + "/block/sdw/diskseq"} {
		if err := os.Remove(filepath.Join(root, "sys", p)); err != nil {
			t.Fatal(err)
		}
	}
	check("no diskseq, same place", devSDV, swapped)
	relink(t, root, "sys/dev/block/65:80", "../../"+sdwDir+"/block/sdv")
	relink(t, root, "sys/block/sdv", "../"+sdwDir+"/block/sdv")
	if err := os.MkdirAll(filepath.Join(root, "sys", sdwDir, "block", "sdv"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../11:0:8:0", filepath.Join(root, "sys", sdwDir, "block", "sdv", "device")); err != nil {
		t.Fatal(err)
	}
	check("moved", devSDV, diskPart("sdv", "VJGRBU1X", "HUH72808CLAR8000", "0000:03:00.0"))

	// Gone: named by its number; forgotten once no reading has it; read
	// afresh when the name comes back.
	if err := os.Remove(filepath.Join(root, "sys/dev/block/65:80")); err != nil {
		t.Fatal(err)
	}
	check("gone", devSDV, diskPart("65:80", "", "", ""))
	check("nvme", devNVMe, diskPart("nvme0n1", "2328E6EDD8A7", "CT2000P3SSD8", "0000:01:00.0"))
	d.retain(map[string]bool{"nvme0n1": true})
	if n := d.known(); n != 1 {
		t.Fatalf("%d disks remembered after retain, want 1", n)
	}
	sourcetest.WriteFile(t, filepath.Join(root, "sys", sdwDir, "vpd_pg80"), vpd80("ZCT2BACK"))
	relink(t, root, "sys/dev/block/65:80", "../../"+sdwDir+"/block/sdv")
	check("back", devSDV, diskPart("sdv", "ZCT2BACK", "HUH72808CLAR8000", "0000:03:00.0"))
}

func relink(t *testing.T, root, link, target string) {
	t.Helper()
	p := filepath.Join(root, link)
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestFaultNamesTheDrive: a failed request on a fixture disk is raised
// with the drive's serial, model and controller, as its observation is.
func TestFaultNamesTheDrive(t *testing.T) {
	s := New(Config{Root: disksRoot(t)})
	tr := &tracer{kernel: kernelVersion{6, 18}, ops: defaultReqOps}
	f := s.fault(tr, record{Kind: kindBTF, Error: 7, Op: 0, KtimeNs: 1, Sector: 4096, Dev: devSDW, NrSectors: 8})
	if f == nil {
		t.Fatal("not raised")
	}
	want := diskPart("sdw", "VJGRBU1X", "HUH72808CLAR8000", "0000:03:00.0")
	if !proto.Equal(f.GetPart(), want) || f.GetFaultClass() != ClassMediumError ||
		f.GetEvidence().GetCaptures()[CaptureDevice] != "sdw" || f.GetSummary() != "critical medium error on sdw at sector 4096 (READ)" {
		t.Errorf("fault %v", f)
	}
}

// BenchmarkDiskPart is naming one failed request's disk on the fixture
// tree: the cache checked against the disk's diskseq, and as baseline the
// sysfs identity read afresh (what the source would pay per request
// without the cache).
func BenchmarkDiskPart(b *testing.B) {
	root := filepath.Join(ttartest.ExtractFile(b, "testdata/sysfs_disks.ttar"), "fixtures")
	b.Run("cached", func(b *testing.B) {
		d := newDisks(root)
		b.ReportAllocs()
		for b.Loop() {
			d.part(devSDV)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		d := newDisks(root)
		b.ReportAllocs()
		for b.Loop() {
			d.retain(nil)
			d.part(devSDV)
		}
	})
}
