package inventory

import (
	"strings"
	"testing"
)

// pciIDsSample is in the PCI ID repository's format (pci.ids), with the
// entries of the fixture's A100 and a vendor whose device is not listed.
const pciIDsSample = `# comment
10de  NVIDIA Corporation
	20b0  GA100 [A100 SXM4 40GB]
		10de 134f  A100 SXM4 40GB
	20b2  GA100 [A100 SXM4 80GB]
1af4  Red Hat, Inc.
	1000  Virtio network device
C 02  Network controller
	00  Ethernet controller
C 03  Display controller
	02  3D controller
`

func TestParsePCIIDs(t *testing.T) {
	a100 := pciID{vendor: "10de", product: "20b0", class: "03"}
	a100sysfs := pciID{vendor: "10DE", product: "20B0", class: "030200"}
	unknownDev := pciID{vendor: "10de", product: "ffff", class: "03"}
	unknownVendor := pciID{vendor: "abcd", product: "0001", class: "ff"}
	got, err := parsePCIIDs(strings.NewReader(pciIDsSample), []pciID{a100, a100sysfs, unknownDev, unknownVendor})
	if err != nil {
		t.Fatal(err)
	}
	want := map[pciID]pciID{
		a100:          {vendor: "NVIDIA Corporation", product: "GA100 [A100 SXM4 40GB]", class: "Display controller"},
		a100sysfs:     {vendor: "NVIDIA Corporation", product: "GA100 [A100 SXM4 40GB]", class: "Display controller"},
		unknownDev:    {vendor: "NVIDIA Corporation", class: "Display controller"},
		unknownVendor: {},
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%v: got %+v, want %+v", id, got[id], w)
		}
	}
}

func FuzzParsePCIIDs(f *testing.F) {
	f.Add(pciIDsSample, "10de", "20b0", "03")
	f.Add("10de\n\t\n\t20b0\nC \nC 03", "10de", "20b0", "0")
	f.Fuzz(func(t *testing.T, data, vendor, product, class string) {
		id := pciID{vendor: vendor, product: product, class: class}
		got, _ := parsePCIIDs(strings.NewReader(data), []pciID{id})
		if _, ok := got[id]; !ok {
			t.Fatalf("wanted ID %v missing from the result", id)
		}
	})
}
