package diskstats

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// identity is what sysfs says about the drive behind a block device.
type identity struct {
	model, serial, pciAddress string
}

// pciAddrRe matches a PCI function address as sysfs names device
// directories ("0000:3b:00.0"; domains may be wider than 4 digits).
var pciAddrRe = regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// maxAttr bounds a sysfs attribute read: attributes are at most a page.
const maxAttr = 4096

// readAttr returns a sysfs attribute with surrounding white space removed,
// or "" when it cannot be read. Identity is best effort: a missing model
// file must not cost us the counters.
func readAttr(path string) string {
	b, err := readRaw(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readRaw(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxAttr))
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
	id.model = readAttr(filepath.Join(devDir, "model"))
	id.serial = firstNonEmpty(
		func() string { return readAttr(filepath.Join(devDir, "serial")) }, // NVMe controller, MMC
		func() string { return readAttr(filepath.Join(dir, "serial")) },    // virtio-blk
		func() string { // SCSI and SATA behind libata
			b, err := readRaw(filepath.Join(devDir, "vpd_pg80"))
			if err != nil {
				return ""
			}
			s, _ := ParseVPD80(b)
			return s
		},
		// No serial number: the world-wide id still names exactly one drive.
		func() string { return readAttr(filepath.Join(devDir, "wwid")) },
		func() string { return readAttr(filepath.Join(dir, "wwid")) },
	)
	id.pciAddress = pciAddressOf(root, devDir)
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

// pciAddressOf resolves a sysfs device link and returns the PCI function
// closest to the device on its path (the controller a disk hangs off), or ""
// when the path has none (virtual devices) or leaves root.
func pciAddressOf(root, link string) string {
	resolved, err := filepath.EvalSymlinks(link)
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(root, resolved)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return ""
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if pciAddrRe.MatchString(parts[i]) {
			return parts[i]
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
