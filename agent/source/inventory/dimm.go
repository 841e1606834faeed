package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// SMBIOS type 17 ("Memory Device", DMTF DSP0134 §7.18) offsets used here.
const (
	smbiosTypeMemoryDevice = 17
	offSize                = 0x0C // WORD, SMBIOS 2.1
	offDeviceLocator       = 0x10 // STRING
	offBankLocator         = 0x11 // STRING
	offManufacturer        = 0x17 // STRING, SMBIOS 2.3
	offSerial              = 0x18 // STRING
	offPartNumber          = 0x1A // STRING
	offExtendedSize        = 0x1C // DWORD, SMBIOS 2.7
	minLen21               = 0x15
	minLen23               = 0x1B
	minLen27               = 0x20
	mib                    = 1 << 20
	kib                    = 1 << 10
)

// ParseMemoryDevice decodes one SMBIOS type 17 structure as the kernel
// exposes it in /sys/firmware/dmi/entries/17-N/raw: the formatted area
// followed by its string set. installed is false for an empty slot (size
// 0), which yields no DIMM.
//
// The label is the device locator ("DIMM_A1"), prefixed with the bank
// locator when the firmware gives one: that is the "<bank> <device>" form
// ghes_edac uses for its DIMM labels, so memory faults and inventory name a
// module the same way.
func ParseMemoryDevice(b []byte) (dimm *hwhealv1.InventoryDimm, installed bool, err error) {
	if len(b) < 2 {
		return nil, false, errors.New("smbios: structure shorter than its header")
	}
	if b[0] != smbiosTypeMemoryDevice {
		return nil, false, fmt.Errorf("smbios: type %d, want %d", b[0], smbiosTypeMemoryDevice)
	}
	n := int(b[1])
	if n < minLen21 {
		return nil, false, fmt.Errorf("smbios: type 17 length %#x, want at least %#x", n, minLen21)
	}
	if len(b) < n {
		return nil, false, fmt.Errorf("smbios: %d bytes, structure says %d", len(b), n)
	}
	strs := smbiosStrings(b[n:])
	str := func(off int) string {
		if off >= n {
			return ""
		}
		i := int(b[off])
		if i == 0 || i > len(strs) {
			return ""
		}
		return clean(strs[i-1])
	}

	var size uint64
	switch raw := binary.LittleEndian.Uint16(b[offSize:]); {
	case raw == 0:
		return nil, false, nil
	case raw == 0xFFFF: // unknown size, but a module is there
	case raw == 0x7FFF && n >= minLen27:
		size = uint64(binary.LittleEndian.Uint32(b[offExtendedSize:])&0x7FFFFFFF) * mib
	case raw&0x8000 != 0:
		size = uint64(raw&0x7FFF) * kib
	default:
		size = uint64(raw) * mib
	}

	label := str(offDeviceLocator)
	if bank := str(offBankLocator); bank != "" {
		label = strings.TrimSpace(bank + " " + label)
	}
	d := &hwhealv1.InventoryDimm{Label: label, SizeBytes: size}
	if n >= minLen23 {
		d.Vendor = str(offManufacturer)
		d.Serial = str(offSerial)
		d.PartNumber = str(offPartNumber)
	}
	return d, true, nil
}

// smbiosStrings splits an SMBIOS string set: NUL-terminated strings ended
// by an empty one. A set cut short keeps the strings that are complete.
func smbiosStrings(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i <= 0 { // empty string ends the set; no NUL means truncated
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

// clean trims a firmware string, drops non-printable bytes and turns the
// usual placeholders into "".
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	// What firmware and ghw write into fields nobody filled in.
	switch strings.ToLower(s) {
	case "unknown", "not specified", "not available", "not provided", "n/a", "none",
		"no dimm", "to be filled by o.e.m.", "default string", "0123456789",
		"system serial number", "system product name", "system manufacturer",
		"base board serial number", "chassis serial number":
		return ""
	}
	return s
}

// entryIndex orders SMBIOS entry directories "17-0", "17-1", ... by number.
func entryIndex(dir string) int {
	_, num, _ := strings.Cut(filepath.Base(dir), "-")
	i, err := strconv.Atoi(num)
	if err != nil {
		return -1
	}
	return i
}

// smbiosDIMMs reads the type 17 entries below <root>/sys/firmware/dmi. The
// raw files are readable by root only; that is a file read, not a tool
// such as dmidecode, and the agent runs as root.
func smbiosDIMMs(root string) ([]*hwhealv1.InventoryDimm, error) {
	dirs, err := filepath.Glob(filepath.Join(root, "sys", "firmware", "dmi", "entries", "17-*"))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(dirs, func(a, b string) int { return entryIndex(a) - entryIndex(b) })
	var (
		out  []*hwhealv1.InventoryDimm
		errs []error
	)
	for _, dir := range dirs {
		raw := filepath.Join(dir, "raw")
		b, err := os.ReadFile(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", raw, err))
			continue
		}
		d, installed, err := ParseMemoryDevice(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", raw, err))
			continue
		}
		if installed {
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// edacDIMMs reads the DIMMs the EDAC driver knows: label and size, no serial.
// It is the fallback where SMBIOS is absent or unreadable; its labels are
// the ones EDAC error records carry.
func edacDIMMs(root string) []*hwhealv1.InventoryDimm {
	mc := filepath.Join(root, "sys", "devices", "system", "edac", "mc")
	var dirs []string
	for _, pattern := range []string{"mc*/dimm*", "mc*/rank*"} {
		m, _ := filepath.Glob(filepath.Join(mc, pattern))
		dirs = append(dirs, m...)
	}
	var out []*hwhealv1.InventoryDimm
	for _, dir := range dirs {
		sizeMiB, err := strconv.ParseUint(readString(filepath.Join(dir, "size")), 10, 64)
		if err != nil || sizeMiB == 0 {
			continue // no module in this slot, or not a DIMM directory
		}
		label := readString(filepath.Join(dir, "dimm_label"))
		if label == "" {
			rel, _ := filepath.Rel(mc, dir)
			label = filepath.ToSlash(rel)
		}
		out = append(out, &hwhealv1.InventoryDimm{Label: label, SizeBytes: sizeMiB * mib})
	}
	return out
}
