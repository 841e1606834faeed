package inventory

import (
	"bufio"
	"io"
	"strings"
)

// pciID is a vendor, device and class ID (lower-case hex without 0x), or
// their names.
type pciID struct{ vendor, product, class string }

// parsePCIIDs reads a pci.ids file (the PCI ID repository's format:
// "vvvv  Vendor" lines, then "\tdddd  Device" lines under them, deeper
// tabs for subsystems, "C cc  Class" sections at the end) and returns the
// vendor and device names of the wanted IDs only, keyed by the wanted ID.
// It keeps nothing else, so the file's tens of thousands of entries cost
// one pass and no memory. A wanted device the file does not list still
// gets its vendor's name; a wanted class ("03") its class name.
func parsePCIIDs(r io.Reader, wanted []pciID) (map[pciID]pciID, error) {
	vendors := map[string]bool{}
	for _, id := range wanted {
		vendors[strings.ToLower(id.vendor)] = true
	}
	out := map[pciID]pciID{}
	vendorNames, classNames := map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var vendor string // the current vendor section, when it is wanted
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || line[0] == '#':
		case strings.HasPrefix(line, "C "):
			vendor = "" // device classes: no vendor sections after this
			if id, name, ok := strings.Cut(line[2:], "  "); ok {
				classNames[strings.ToLower(id)] = strings.TrimSpace(name)
			}
		case line[0] != '\t':
			id, name, ok := idLine(line)
			vendor = ""
			if ok && vendors[id] {
				vendor, vendorNames[id] = id, name
			}
		case vendor != "" && (len(line) < 2 || line[1] != '\t'):
			id, name, ok := idLine(line[1:])
			if !ok {
				continue
			}
			for _, w := range wanted {
				if strings.EqualFold(w.vendor, vendor) && strings.EqualFold(w.product, id) {
					out[w] = pciID{vendor: vendorNames[vendor], product: name}
				}
			}
		}
	}
	for _, w := range wanted {
		n, ok := out[w]
		if !ok {
			n = pciID{vendor: vendorNames[strings.ToLower(w.vendor)]}
		}
		// "03" from ghw, "030000" (class, subclass, interface) from sysfs.
		if len(w.class) >= 2 {
			n.class = classNames[strings.ToLower(w.class[:2])]
		}
		out[w] = n
	}
	return out, sc.Err()
}

// idLine splits "10de  NVIDIA Corporation" into its ID and name.
func idLine(s string) (id, name string, ok bool) {
	id, name, ok = strings.Cut(s, "  ")
	if !ok || len(id) != 4 {
		return "", "", false
	}
	return strings.ToLower(id), strings.TrimSpace(name), true
}
