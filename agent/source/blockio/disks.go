package blockio

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hwheal/hwheal/agent/source/diskstats"
	"github.com/hwheal/hwheal/pkg/sysfs"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// disks names the disks behind kernel device numbers and what sysfs says
// about each: model, serial number and controller, read with the helper
// the diskstats, SMART and inventory sources use (diskstats.Identify), so
// that one disk carries one serial in every source. The outlier rules
// group disks by model, and a fault must name the drive to pull.
//
// What sysfs says about a disk is read once per disk, not per request or
// interval: a disk is told from the next one under the same name by its
// diskseq (a number the kernel never gives two disks while it runs) or,
// on kernels without one, by its place in the device tree. Disks that
// are gone are forgotten (retain).
type disks struct {
	root string

	mu     sync.Mutex
	byName map[string]diskID
}

// diskID is what sysfs said about one disk.
type diskID struct {
	gen                       string // diskseq, else the sysfs device path
	model, serial, pciAddress string
}

func newDisks(root string) *disks {
	return &disks{root: root, byName: map[string]diskID{}}
}

// part names the disk of kernel device number dev (major<<20 | minor) by
// its /sys/dev/block link, with its identity; a disk that is gone is named
// "MAJ:MIN" alone, and found is false.
func (d *disks) part(dev uint32) (p *hwhealv1.Part, found bool) {
	mm := fmt.Sprintf("%d:%d", dev>>20, dev&(1<<20-1))
	link := filepath.Join(d.root, "sys", "dev", "block", mm)
	target, err := os.Readlink(link)
	if err != nil {
		return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: mm}, false
	}
	name := filepath.Base(target)
	gen := sysfs.String(filepath.Join(link, "diskseq"))
	if gen == "" {
		gen = target
	}
	d.mu.Lock()
	id, ok := d.byName[name]
	d.mu.Unlock()
	if !ok || id.gen != gen {
		// Read outside the lock: a slow sysfs read holds up no other
		// disk's request. Two readers of one new disk both read it, and
		// agree.
		id = diskID{gen: gen}
		id.model, id.serial, id.pciAddress = diskstats.Identify(d.root, name)
		d.mu.Lock()
		d.byName[name] = id
		d.mu.Unlock()
	}
	return &hwhealv1.Part{
		Kind:       hwhealv1.PartKind_PART_KIND_DISK,
		Name:       name,
		Serial:     id.serial,
		Model:      id.model,
		PciAddress: id.pciAddress,
	}, true
}

// retain forgets every disk not named in keep.
func (d *disks) retain(keep map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name := range d.byName {
		if !keep[name] {
			delete(d.byName, name)
		}
	}
}

// known is the number of disks remembered.
func (d *disks) known() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byName)
}
