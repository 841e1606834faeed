package replay

import "regexp"

// CatalogEntry labels the kernel log lines it matches: Category names
// them in the report; Fault says whether they are a hardware fault the
// rules should raise (the others are events a node monitor reports but
// no part is at fault for, counted with the benign lines in rows of their
// own so that a fault raised on them shows). Source says where the
// reading comes from.
type CatalogEntry struct {
	Category string
	Fault    bool
	Match    *regexp.Regexp
	Source   string
}

// GPUDCatalog is how saved kernel logs (gpud's test data: dmesg in its
// time formats, raw /dev/kmsg, pstore dumps) are labeled, independently
// of hwheal's rules: NVIDIA's Xid catalog, and the kernel-message
// matchers gpud's components run on the same logs (gpud commit
// 4a8de33a3f02e207f39e9023d67125592d599731, the commit of the copied
// test data). A line no entry matches is benign: boot, driver and
// container noise. The first entry that matches decides.
func GPUDCatalog() []CatalogEntry {
	return []CatalogEntry{
		{"gpu_xid", true, regexp.MustCompile(`NVRM: Xid \(`),
			"NVIDIA Xid catalog (docs.nvidia.com/deploy/xid-errors): every Xid is an error the driver reports for a GPU; gpud components/accelerator/nvidia/xid"},
		{"gpu_sxid", true, regexp.MustCompile(`SXid \(PCI:`),
			"NVIDIA NVSwitch SXid errors; gpud components/accelerator/nvidia/sxid"},
		{"memory_ce", true, regexp.MustCompile(`EDAC MC\d+: \d+ CE memory read error`),
			"gpud components/memory (EDAC correctable errors)"},
		{"oom (not hardware)", false, regexp.MustCompile(`(?i)Out of memory:|oom-kill:constraint=|(?:invoked|triggered) oom-killer:|Memory cgroup out of memory`),
			"gpud components/memory (OOM events)"},
		{"file-max (not hardware)", false, regexp.MustCompile(`VFS: file-max limit \d+ reached`),
			"gpud components/os"},
		{"nccl segfault (not hardware)", false, regexp.MustCompile(`segfault at .* in libnccl\.so`),
			"gpud components/accelerator/nvidia/nccl"},
		{"peermem (not hardware)", false, regexp.MustCompile(`nvidia-peermem nv_get_p2p_free_callback:\d+ ERROR detected invalid context`),
			"gpud components/accelerator/nvidia/peermem"},
		{"kernel crash (not hardware)", false, regexp.MustCompile(`Kernel panic - not syncing|BUG: unable to handle|Oops: \d+ \[#\d+\]`),
			"gpud pkg/pstore: the crash records in its test data were triggered on purpose (crash_test module, sysrq)"},
	}
}

// catalogBenign is the category of the lines no catalog entry matches.
const catalogBenign = "benign"

// labelByCatalog returns the category and label of a line.
func labelByCatalog(cat []CatalogEntry, line string) (string, bool) {
	for _, e := range cat {
		if e.Match.MatchString(line) {
			return e.Category, e.Fault
		}
	}
	return catalogBenign, false
}
