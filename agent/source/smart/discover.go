package smart

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hwheal/hwheal/agent/source/diskstats"
	"github.com/hwheal/hwheal/pkg/smart"
	"github.com/hwheal/hwheal/pkg/sysfs"
)

// Disk is one drive the source reads: a whole disk under /sys/block that
// is real hardware, or for NVMe one controller (named after its first
// namespace, since its health log is the controller's).
type Disk struct {
	// Name is the kernel's name of the block device: "sda", "nvme0n1".
	Name string
	// Protocol is what sysfs says the drive speaks: ATA for a SCSI disk
	// whose vendor is "ATA" (libata, or a SATA drive behind a SAS HBA's
	// translation layer), NVMe, SCSI for other SCSI disks (SAS, USB
	// bridges, RAID volumes); "" when sysfs does not say.
	Protocol smart.Protocol
	// Path is the device node the native reader opens: <root>/dev/sda, or
	// for NVMe the controller's character device <root>/dev/nvme0 where it
	// exists (the admin commands go to the controller), else the namespace.
	Path string
	// BlockPath is the block device node, <root>/dev/<Name>. smartctl gets
	// this one: given an NVMe namespace it identifies that namespace
	// rather than all of them (NSID FFFFFFFFh), which drives without
	// namespace management reject with an entry in their error log.
	BlockPath string
	// Controller is the NVMe controller ("nvme0"), "" for other disks.
	Controller string
	// Namespaces are the other NVMe namespaces of the same controller,
	// which one reading covers.
	Namespaces []string
	// What sysfs says about the drive, read without a command to it.
	Model, Serial, PCIAddress string
	// sysDir is the disk's directory under <root>/sys/block.
	sysDir string
}

// skipPrefixes are block devices that are no drive with SMART: software
// devices (loop, ram, zram, device mapper, md, nbd, rbd, drbd, bcache,
// zvols), optical and floppy drives, paravirtual disks (virtio, Xen) and
// devices whose health is not SMART (MMC/SD, persistent memory, MTD).
var skipPrefixes = []string{
	"loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "rbd", "drbd", "bcache",
	"zd", "vd", "xvd", "mmcblk", "pmem", "mtdblock", "ubiblock", "nullb",
}

var (
	nvmeNamespaceRe = regexp.MustCompile(`^nvme(\d+)n(\d+)$`)
	nvmePathRe      = regexp.MustCompile(`^nvme\d+c\d+n\d+$`) // hidden multipath path device
	nvmeCtrlRe      = regexp.MustCompile(`^nvme\d+$`)
	nvmeSubsysRe    = regexp.MustCompile(`^nvme-subsys\d+$`)
)

// Discover lists the drives below <root>/sys/block that the source reads,
// in natural name order (nvme2n1 before nvme10n1, sdz before sdaa). It
// reads only sysfs, so it never sends a command to a drive.
// An absent /sys/block is an error wrapping fs.ErrNotExist.
func Discover(root string) ([]Disk, error) {
	block := filepath.Join(root, "sys", "block")
	entries, err := os.ReadDir(block)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	resolvedRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("resolve root %s: %w", root, err)
	}
	type cand struct {
		d     Disk
		group string // NVMe: what namespaces read as one drive share
	}
	var cands []cand
	for _, e := range entries {
		name := e.Name()
		if skipName(name) {
			continue
		}
		dir := filepath.Join(block, name)
		d, ok := classify(root, resolvedRoot, dir, name)
		if !ok {
			continue
		}
		c := cand{d: d}
		if d.Protocol == smart.ProtocolNVMe {
			c.group = cmp.Or(d.Controller, nvmeGroup(resolvedRoot, dir), name)
		}
		cands = append(cands, c)
	}
	slices.SortFunc(cands, func(a, b cand) int { return naturalCompare(a.d.Name, b.d.Name) })
	// One NVMe controller's health log is read once, named after its first
	// namespace, the others listed.
	var disks []Disk
	first := map[string]int{}
	for _, c := range cands {
		if c.group != "" {
			if i, ok := first[c.group]; ok {
				disks[i].Namespaces = append(disks[i].Namespaces, c.d.Name)
				continue
			}
			first[c.group] = len(disks)
		}
		disks = append(disks, c.d)
	}
	return disks, nil
}

func skipName(name string) bool {
	if nvmePathRe.MatchString(name) {
		return true
	}
	for _, p := range skipPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// classify reads one /sys/block entry; ok is false for what the source
// does not read.
func classify(root, resolvedRoot, dir, name string) (Disk, bool) {
	if attr(dir, "hidden") == "1" || attr(dir, "removable") == "1" {
		// Hidden: an NVMe multipath path, read through its head. Removable:
		// card readers and sticks, which have no SMART and may have no
		// medium.
		return Disk{}, false
	}
	if size := attr(dir, "size"); size == "0" {
		return Disk{}, false // no medium
	}
	isNVMe := nvmeNamespaceRe.MatchString(name)
	if !isNVMe {
		// Software block devices live under /sys/devices/virtual; so do
		// NVMe multipath heads, which are real drives.
		if resolved, err := filepath.EvalSymlinks(dir); err == nil &&
			strings.Contains(filepath.ToSlash(resolved), "/devices/virtual/") {
			return Disk{}, false
		}
	}
	d := Disk{
		Name:      name,
		BlockPath: filepath.Join(root, "dev", name),
		sysDir:    dir,
	}
	d.Path = d.BlockPath
	d.Model, d.Serial, d.PCIAddress = diskstats.Identify(root, name)
	switch {
	case isNVMe:
		d.Protocol = smart.ProtocolNVMe
		d.Controller = nvmeController(resolvedRoot, dir)
		if d.PCIAddress == "" && d.Controller != "" {
			// A multipath head hangs off the subsystem, a virtual device;
			// the controller read through is on the PCI bus.
			d.PCIAddress = sysfs.PCIAddressOf(root, filepath.Join(root, "sys", "class", "nvme", d.Controller))
		}
		if d.Controller != "" {
			if _, err := os.Stat(filepath.Join(root, "dev", d.Controller)); err == nil {
				d.Path = filepath.Join(root, "dev", d.Controller)
			}
		}
	case strings.TrimSpace(attr(filepath.Join(dir, "device"), "vendor")) == "ATA":
		d.Protocol = smart.ProtocolATA
	case attr(filepath.Join(dir, "device"), "vendor") != "":
		d.Protocol = smart.ProtocolSCSI
	}
	return d, true
}

// nvmeController finds the controller of an NVMe namespace: the device
// link names it ("nvme0"), or, for a native-multipath head, names the
// subsystem, whose controllers are listed in its directory; the lowest
// numbered live one is taken. "" when sysfs does not say.
func nvmeController(resolvedRoot, dir string) string {
	dev, err := sysfs.Resolve(resolvedRoot, filepath.Join(dir, "device"))
	if err != nil || dev == "" {
		return ""
	}
	base := filepath.Base(dev)
	if nvmeCtrlRe.MatchString(base) {
		return base
	}
	if !nvmeSubsysRe.MatchString(base) {
		return ""
	}
	entries, err := os.ReadDir(dev)
	if err != nil {
		return ""
	}
	var ctrls []string
	for _, e := range entries {
		if nvmeCtrlRe.MatchString(e.Name()) {
			ctrls = append(ctrls, e.Name())
		}
	}
	slices.SortFunc(ctrls, naturalCompare)
	for _, c := range ctrls {
		if s := attr(filepath.Join(dev, c), "state"); s == "" || s == "live" {
			return c
		}
	}
	if len(ctrls) > 0 {
		return ctrls[0]
	}
	return ""
}

// nvmeGroup names what namespaces without a known controller share: the
// subsystem or controller their device link resolves to.
func nvmeGroup(resolvedRoot, dir string) string {
	dev, err := sysfs.Resolve(resolvedRoot, filepath.Join(dir, "device"))
	if err != nil || dev == "" {
		return ""
	}
	return dev
}

// attr reads a sysfs attribute, "" when it is absent or unreadable.
func attr(dir, name string) string { return sysfs.String(filepath.Join(dir, name)) }

// runtimeSuspended tells whether the kernel has put the drive to sleep
// (runtime PM: for a SCSI disk, sd has spun it down with STOP UNIT). Any
// command to it, pass-through included, would resume it.
func runtimeSuspended(d Disk) bool {
	for _, p := range []string{
		filepath.Join(d.sysDir, "device", "power", "runtime_status"),
		// An NVMe controller's own PM is its PCI function's.
		filepath.Join(d.sysDir, "device", "device", "power", "runtime_status"),
	} {
		if s := sysfs.String(p); s == "suspended" || s == "suspending" {
			return true
		}
	}
	return false
}

// naturalCompare orders kernel names the way the kernel numbers them:
// numbers by value (nvme2n1 before nvme10n1), and letters after a common
// stem shorter first (sdz before sdaa); names without one alphabetically.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ai, bi := runLen(a), runLen(b)
		ra, rb := a[:ai], b[:bi]
		na, errA := strconv.ParseUint(ra, 10, 64)
		nb, errB := strconv.ParseUint(rb, 10, 64)
		if errA == nil && errB == nil {
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
		} else if ra != rb {
			n := 0
			for n < len(ra) && n < len(rb) && ra[n] == rb[n] {
				n++
			}
			if n > 0 && errA != nil && errB != nil {
				if c := cmp.Compare(len(ra), len(rb)); c != 0 {
					return c
				}
			}
			return strings.Compare(ra, rb)
		}
		a, b = a[ai:], b[bi:]
	}
	return cmp.Compare(len(a), len(b))
}

// runLen is the length of the leading run of digits or of non-digits.
func runLen(s string) int {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return i
}

// noDisks is what a host without a drive to read says.
func noDisks(root string) string {
	return fmt.Sprintf("no SATA, SAS or NVMe disk under %s (virtual, loop, md, dm, optical and removable devices are not read)",
		filepath.Join(root, "sys", "block"))
}
