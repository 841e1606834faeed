package diskstats

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/hwheal/hwheal/pkg/sysfs"
)

// identity is what sysfs says about the drive behind a block device.
type identity struct {
	model, serial, pciAddress string
}

// Identify returns the model, serial number and controller PCI address that
// the source reports for block device dev below root ("" where sysfs does not
// say). The inventory uses it too, so that a disk's serial in an observation
// and in the inventory always agree.
func Identify(root, dev string) (model, serial, pciAddress string) {
	id := readIdentity(root, dev)
	return id.model, id.serial, id.pciAddress
}

// readIdentity finds model, serial and PCI address of device dev below
// <root>/sys. It only reads attributes the kernel keeps in memory
// (model, serial, wwid, the cached VPD page 0x80), so it never issues a
// command to the drive and never wakes a sleeping disk.
func readIdentity(root, dev string) identity {
	sys := filepath.Join(root, "sys")
	dir := filepath.Join(sys, "block", dev)
	if _, err := os.Stat(dir); err != nil {
		// Partitions are not in /sys/block, only in /sys/class/block.
		dir = filepath.Join(sys, "class", "block", dev)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		// A partition's drive is its parent directory.
		if resolved, err := filepath.EvalSymlinks(dir); err == nil {
			dir = filepath.Dir(resolved)
		}
	}
	devDir := filepath.Join(dir, "device")

	var id identity
	id.model = sysfs.String(filepath.Join(devDir, "model"))
	id.serial = firstNonEmpty(
		func() string { return sysfs.String(filepath.Join(devDir, "serial")) }, // NVMe controller, MMC
		func() string { return sysfs.String(filepath.Join(dir, "serial")) },    // virtio-blk
		func() string { // SCSI and SATA behind libata
			b, err := sysfs.Read(filepath.Join(devDir, "vpd_pg80"))
			if err != nil {
				return ""
			}
			s, _ := ParseVPD80(b)
			return s
		},
		// No serial number: the world-wide id still names exactly one drive.
		func() string { return sysfs.String(filepath.Join(devDir, "wwid")) },
		func() string { return sysfs.String(filepath.Join(dir, "wwid")) },
	)
	id.pciAddress = sysfs.PCIAddressOf(root, devDir)
	return id
}

func firstNonEmpty(fns ...func() string) string {
	for _, fn := range fns {
		if s := fn(); s != "" {
			return s
		}
	}
	return ""
}

// ErrShortVPD is returned by ParseVPD80 for a page shorter than its header
// says.
var ErrShortVPD = errors.New("vpd page 0x80 shorter than its length field")

// ParseVPD80 returns the product serial number from a SCSI Unit Serial
// Number VPD page (0x80) as the kernel exposes it in
// /sys/block/<dev>/device/vpd_pg80: a 4-byte header (peripheral byte, page
// code 0x80, 16-bit big-endian length) followed by that many ASCII bytes,
// space padded.
func ParseVPD80(b []byte) (string, error) {
	const header = 4
	if len(b) < header {
		return "", ErrShortVPD
	}
	if b[1] != 0x80 {
		return "", errors.New("not a vpd page 0x80")
	}
	n := int(b[2])<<8 | int(b[3])
	if len(b) < header+n {
		return "", ErrShortVPD
	}
	raw := b[header : header+n]
	// Drives pad with spaces and sometimes with zero bytes; keep printable
	// ASCII only so a bad page cannot put control bytes into an id.
	var sb strings.Builder
	for _, c := range raw {
		if c >= ' ' && c <= '~' {
			sb.WriteByte(c)
		}
	}
	return strings.TrimSpace(sb.String()), nil
}
