// Package inventory collects the hardware inventory of a node (system,
// BIOS, board, CPU, memory and DIMMs, disks, NICs, GPUs) so that every fault
// can name a replaceable part with its serial number.
//
// It is built on github.com/jaypipes/ghw pointed at a root directory (a
// fixture tree in tests), with ghw's external tools disabled and its log
// routed into ours at debug level. Inventory only reads sysfs, procfs, the
// udev database and SMBIOS tables the kernel already holds: it never runs
// a program, never opens a device node, never writes, so it cannot wake a
// sleeping disk. A part ghw cannot read is left out with one warning; it
// never costs the rest of the inventory.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/block"
	"github.com/jaypipes/pcidb"

	"github.com/hwheal/hwheal/agent/source/diskstats"
	"github.com/hwheal/hwheal/agent/source/netdev"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Collect reads the inventory of the machine whose /sys, /proc and /run are
// below root ("" means "/"). It fails only when root is unusable or ctx is
// done; a part that cannot be read is logged at warning level and skipped.
func Collect(ctx context.Context, root string, logger *slog.Logger) (*hwhealv1.Inventory, error) {
	if root == "" {
		root = "/"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "inventory")
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("inventory: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("inventory: root %s is not a directory", root)
	}

	c := &collector{root: root, log: log}
	// ghw's own messages ("unable to read board_asset_tag") describe what a
	// host lacks, not faults: keep them, at debug level, in our log and off
	// stderr. Passing our context first also keeps GHW_* environment
	// variables from changing what is read.
	c.opts = []any{
		ctx,
		ghw.WithChroot(root),
		ghw.WithDisableTools(), // ghw would run ethtool otherwise
		ghw.WithDisableTopology(),
		ghw.WithLogger(slog.New(debugHandler{log.With("lib", "ghw").Handler()})),
	}

	inv := &hwhealv1.Inventory{}
	parts := []struct {
		name string
		fn   func(*hwhealv1.Inventory) error
	}{
		{"product", c.product},
		{"bios", c.bios},
		{"baseboard", c.baseboard},
		{"cpu", c.cpu},
		{"memory", c.memory},
		{"dimms", c.dimms},
		{"disks", c.disks},
		{"nics", c.nics},
		{"gpus", c.gpus},
	}
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := guard(p.fn, inv); err != nil {
			log.Warn("inventory part skipped", "part", p.name, "err", err)
		}
	}
	return inv, nil
}

type collector struct {
	root string
	log  *slog.Logger
	opts []any
}

// guard runs one part and turns a panic inside ghw (which parses whatever
// sysfs holds) into that part's error rather than the agent's end.
func guard(fn func(*hwhealv1.Inventory) error, inv *hwhealv1.Inventory) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(inv)
}

func (c *collector) product(inv *hwhealv1.Inventory) error {
	p, err := ghw.Product(c.opts...)
	if err != nil {
		return err
	}
	inv.SystemVendor, inv.SystemProduct, inv.SystemSerial = clean(p.Vendor), clean(p.Name), clean(p.SerialNumber)
	return nil
}

func (c *collector) bios(inv *hwhealv1.Inventory) error {
	b, err := ghw.BIOS(c.opts...)
	if err != nil {
		return err
	}
	inv.BiosVersion = clean(b.Version)
	return nil
}

func (c *collector) baseboard(inv *hwhealv1.Inventory) error {
	b, err := ghw.Baseboard(c.opts...)
	if err != nil {
		return err
	}
	inv.BoardSerial = clean(b.SerialNumber)
	return nil
}

func (c *collector) cpu(inv *hwhealv1.Inventory) error {
	info, err := ghw.CPU(c.opts...)
	if err != nil {
		return err
	}
	inv.CpuCores = info.TotalCores
	for _, p := range info.Processors {
		if m := clean(p.Model); m != "" {
			inv.CpuModel = m
			break
		}
	}
	if inv.CpuCores == 0 && inv.CpuModel == "" {
		return errors.New("no processor found")
	}
	return nil
}

func (c *collector) memory(inv *hwhealv1.Inventory) error {
	m, err := ghw.Memory(c.opts...)
	if err != nil {
		return err
	}
	// Physical is what is installed; usable (MemTotal) is less. ghw falls
	// back to usable itself where it cannot tell.
	if m.TotalPhysicalBytes > 0 {
		inv.MemoryBytes = uint64(m.TotalPhysicalBytes)
	} else if m.TotalUsableBytes > 0 {
		inv.MemoryBytes = uint64(m.TotalUsableBytes)
	}
	return nil
}

// dimms takes modules from SMBIOS (serials and part numbers) and falls back
// to EDAC's view (labels and sizes) where SMBIOS gives none. ghw has no
// memory modules on Linux.
func (c *collector) dimms(inv *hwhealv1.Inventory) error {
	ds, err := smbiosDIMMs(c.root)
	if len(ds) == 0 {
		ds = edacDIMMs(c.root)
	}
	inv.Dimms = ds
	if err != nil && len(ds) == 0 {
		return err
	}
	if err != nil {
		c.log.Debug("some SMBIOS memory entries unreadable", "err", err)
	}
	return nil
}

func (c *collector) disks(inv *hwhealv1.Inventory) error {
	b, err := ghw.Block(c.opts...)
	if err != nil {
		return err
	}
	for _, d := range b.Disks {
		if c.virtualBlock(d.Name) {
			continue // loop, zram, dm, md: not a part anyone replaces
		}
		disk := &hwhealv1.InventoryDisk{
			Name:      d.Name,
			Model:     clean(d.Model),
			Serial:    clean(d.SerialNumber),
			Wwn:       clean(d.WWN),
			Vendor:    clean(d.Vendor),
			SizeBytes: d.SizeBytes,
		}
		if d.StorageController != block.StorageControllerUnknown {
			disk.Bus = d.StorageController.String()
		}
		// Without udev data ghw knows no serial; take what the diskstats
		// source reports, so observations and inventory name the same drive.
		if disk.Model == "" || disk.Serial == "" {
			model, serial, _ := diskstats.Identify(c.root, d.Name)
			if disk.Model == "" {
				disk.Model = model
			}
			if disk.Serial == "" {
				disk.Serial = serial
			}
		}
		inv.Disks = append(inv.Disks, disk)
	}
	return nil
}

// virtualBlock reports whether a block device is software with no hardware
// behind it: /sys/block/<name> lives under /sys/devices/virtual, or the
// kernel's fixed name for such a driver says so where the tree has no links.
func (c *collector) virtualBlock(name string) bool {
	for _, prefix := range []string{"loop", "ram", "zram", "dm-", "md", "nbd"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	resolved, err := filepath.EvalSymlinks(filepath.Join(c.root, "sys", "block", name))
	if err != nil {
		return false
	}
	return strings.Contains(filepath.ToSlash(resolved), "/devices/virtual/")
}

func (c *collector) nics(inv *hwhealv1.Inventory) error {
	n, err := ghw.Network(c.opts...)
	if err != nil {
		return err
	}
	for _, nic := range n.NICs {
		out := &hwhealv1.InventoryNic{
			Name:       nic.Name,
			Mac:        nic.MACAddress,
			Virtual:    nic.IsVirtual,
			PciAddress: netdev.PCIAddress(c.root, nic.Name),
		}
		if out.PciAddress == "" && nic.PCIAddress != nil {
			out.PciAddress = *nic.PCIAddress
		}
		if out.Mac == "" {
			// ghw only reports permanent addresses (addr_assign_type 0); a
			// bond or a VF with an assigned address still has one to name.
			out.Mac = readString(filepath.Join(c.root, "sys", "class", "net", nic.Name, "address"))
		}
		inv.Nics = append(inv.Nics, out)
	}
	return nil
}

func (c *collector) gpus(inv *hwhealv1.Inventory) error {
	// ghw names GPUs from a PCI ID database it parses whole (tens of
	// thousands of entries, ~13 MB of allocations: more than the rest of
	// the agent's start-up). Give it an empty one and look up the few IDs
	// found in the host's pci.ids in one streaming pass instead.
	empty := &pcidb.PCIDB{Classes: map[string]*pcidb.Class{}, Vendors: map[string]*pcidb.Vendor{}, Products: map[string]*pcidb.Product{}}
	g, err := ghw.GPU(append(c.opts, ghw.WithPCIDB(empty))...)
	if err != nil {
		return err
	}
	var ids []pciID
	for _, card := range g.GraphicsCards {
		gpu := &hwhealv1.InventoryPci{Address: card.Address}
		id := pciID{}
		if d := card.DeviceInfo; d != nil {
			if d.Vendor != nil {
				id.vendor = d.Vendor.ID
			}
			if d.Product != nil {
				id.product = d.Product.ID
			}
			if d.Class != nil {
				id.class = d.Class.ID
			}
			gpu.Driver = d.Driver
		} else {
			c.pciFromSysfs(gpu)
			id = pciID{vendor: gpu.Vendor, product: gpu.Product, class: gpu.ClassName}
		}
		gpu.Vendor, gpu.Product, gpu.ClassName = id.vendor, id.product, id.class
		ids = append(ids, id)
		inv.Gpus = append(inv.Gpus, gpu)
	}
	if len(ids) == 0 {
		return nil
	}
	names := c.pciNames(ids)
	for i, id := range ids {
		n := names[id]
		inv.Gpus[i].Vendor = nameOrID(n.vendor, id.vendor)
		inv.Gpus[i].Product = nameOrID(n.product, id.product)
		inv.Gpus[i].ClassName = nameOrID(n.class, id.class)
	}
	return nil
}

// pciNames looks ids up in the host's pci.ids (below root) in one pass,
// keeping only what was asked for; IDs stand in for names where the file
// or an entry is missing. The inventory never fetches one.
func (c *collector) pciNames(ids []pciID) map[pciID]pciID {
	for _, p := range []string{"usr/share/hwdata/pci.ids", "usr/share/misc/pci.ids"} {
		f, err := os.Open(filepath.Join(c.root, p))
		if err != nil {
			continue
		}
		defer f.Close()
		names, err := parsePCIIDs(f, ids)
		if err != nil {
			c.log.Debug("PCI ID database unreadable, GPUs listed by ID", "path", f.Name(), "err", err)
		}
		return names
	}
	c.log.Debug("no PCI ID database, GPUs listed by ID")
	return nil
}

// pciFromSysfs fills a device ghw could not describe (it gives up on all
// PCI devices when one lacks a modalias) from its own sysfs attributes.
func (c *collector) pciFromSysfs(p *hwhealv1.InventoryPci) {
	dir := filepath.Join(c.root, "sys", "bus", "pci", "devices", p.Address)
	p.Vendor = strings.TrimPrefix(readString(filepath.Join(dir, "vendor")), "0x")
	p.Product = strings.TrimPrefix(readString(filepath.Join(dir, "device")), "0x")
	p.ClassName = strings.TrimPrefix(readString(filepath.Join(dir, "class")), "0x")
	if target, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
		p.Driver = filepath.Base(target)
	}
}

func nameOrID(name, id string) string {
	if n := clean(name); n != "" {
		return n
	}
	return id
}

// readString reads a small sysfs attribute, "" when it cannot be read.
func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// debugHandler passes every record on at debug level: ghw's warnings are
// about what a host lacks and would otherwise flood an operator's log.
type debugHandler struct{ h slog.Handler }

func (d debugHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return debugHandler{d.h.WithAttrs(attrs)}
}

func (d debugHandler) WithGroup(name string) slog.Handler {
	return debugHandler{d.h.WithGroup(name)}
}
