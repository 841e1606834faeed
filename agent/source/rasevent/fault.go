package rasevent

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Fault classes. They are the classes of the kernel-log rules in
// agent/detect/rules/kernel.yaml, so that the collector sees one kind of
// fault whether the kernel printed it or a tracepoint carried it.
const (
	ClassMemoryUE          = "memory.ue"
	ClassMemoryCE          = "memory.ce"
	ClassMemoryFailure     = "memory.failure"
	ClassCPUMCE            = "cpu.mce"
	ClassCPUMCECorrected   = "cpu.mce_corrected"
	ClassPCIeAERCorrected  = "pcie.aer_corrected"
	ClassPCIeAERNonFatal   = "pcie.aer_nonfatal"
	ClassPCIeAERFatal      = "pcie.aer_fatal"
	maxSevereFaultsDefault = 10
)

// Rule names of the faults, one per tracepoint (kebab-case like the kernel
// log rules'); the tracepoint attached is in the captures.
const (
	RuleMCEvent       = "ras-mc-event"
	RuleMCERecord     = "mce-record"
	RuleAEREvent      = "ras-aer-event"
	RuleMemoryFailure = "memory-failure-event"
)

// Sample names of the source's observations: totals since the source
// started, per part, so that the collector computes rates.
const (
	// Memory (per DIMM label) and CPU (per CPU number).
	SampleCECount       = "ce_count"
	SampleUECount       = "ue_count"
	SampleDeferredCount = "deferred_count"
	// Memory only: mc_event records of type info.
	SampleInfoCount = "info_count"
	// PCI (per device).
	SampleAERCorrectedCount = "aer_corrected_count"
	SampleAERNonFatalCount  = "aer_nonfatal_count"
	SampleAERFatalCount     = "aer_fatal_count"
)

// samplesOf lists, per part kind, the samples every observation of that
// kind carries (zeros included), in order.
var samplesOf = map[hwhealv1.PartKind][]string{
	hwhealv1.PartKind_PART_KIND_MEMORY: {SampleCECount, SampleUECount, SampleDeferredCount, SampleInfoCount},
	hwhealv1.PartKind_PART_KIND_CPU:    {SampleCECount, SampleUECount, SampleDeferredCount},
	hwhealv1.PartKind_PART_KIND_PCI:    {SampleAERCorrectedCount, SampleAERNonFatalCount, SampleAERFatalCount},
}

// finding is what one event means: which counter of which part it adds to,
// and the fault it may raise. The fault is built only when the rate gate
// lets it through: corrected errors can arrive by the thousand a second.
type finding struct {
	part   *hwhealv1.Part
	sample string // counter to add n to; "" counts nothing
	n      uint64
	// class is the fault's class; "" raises nothing.
	class    string
	severity hwhealv1.Severity
	// gate names what the rate limit counts by (a DIMM, a CPU bank, a
	// device); limit is how many faults it lets through per interval.
	gate  string
	limit int
	// rule names the tracepoint's rule; summary and captures describe
	// the event.
	rule     string
	summary  func() string
	captures func() map[string]string
}

// names turns kernel enum values into the kernel's words. The values of
// enum mf_action_page_type changed in almost every release, so they are
// read from the running kernel's BTF; the words are keyed by the enum
// constant's name, which does not change.
type names struct {
	pageType map[int32]string
	result   map[int32]string
}

// defaultNames knows enum mf_result (stable since 4.x) but no page types.
func defaultNames() names {
	return names{result: map[int32]string{0: "Ignored", 1: "Failed", 2: "Delayed", 3: "Recovered"}}
}

var pageTypeWords = map[string]string{
	"MF_MSG_KERNEL":                "reserved kernel page",
	"MF_MSG_KERNEL_HIGH_ORDER":     "high-order kernel page",
	"MF_MSG_SLAB":                  "kernel slab page",
	"MF_MSG_DIFFERENT_COMPOUND":    "different compound page after locking",
	"MF_MSG_POISONED_HUGE":         "huge page already hardware poisoned",
	"MF_MSG_HUGE":                  "huge page",
	"MF_MSG_FREE_HUGE":             "free huge page",
	"MF_MSG_NON_PMD_HUGE":          "non-pmd-sized huge page",
	"MF_MSG_GET_HWPOISON":          "get hwpoison page",
	"MF_MSG_UNMAP_FAILED":          "unmapping failed page",
	"MF_MSG_DIRTY_SWAPCACHE":       "dirty swapcache page",
	"MF_MSG_CLEAN_SWAPCACHE":       "clean swapcache page",
	"MF_MSG_DIRTY_MLOCKED_LRU":     "dirty mlocked LRU page",
	"MF_MSG_CLEAN_MLOCKED_LRU":     "clean mlocked LRU page",
	"MF_MSG_DIRTY_UNEVICTABLE_LRU": "dirty unevictable LRU page",
	"MF_MSG_CLEAN_UNEVICTABLE_LRU": "clean unevictable LRU page",
	"MF_MSG_DIRTY_LRU":             "dirty LRU page",
	"MF_MSG_CLEAN_LRU":             "clean LRU page",
	"MF_MSG_TRUNCATED_LRU":         "already truncated LRU page",
	"MF_MSG_BUDDY":                 "free buddy page",
	"MF_MSG_BUDDY_2ND":             "free buddy page (2nd try)",
	"MF_MSG_DAX":                   "dax page",
	"MF_MSG_UNSPLIT_THP":           "unsplit thp",
	"MF_MSG_DIFFERENT_PAGE_SIZE":   "different page size",
	"MF_MSG_ALREADY_POISONED":      "already poisoned",
	"MF_MSG_PFN_MAP":               "non struct page pfn",
	"MF_MSG_UNKNOWN":               "unknown page",
}

var resultWords = map[string]string{
	"MF_IGNORED": "Ignored", "MF_FAILED": "Failed", "MF_DELAYED": "Delayed", "MF_RECOVERED": "Recovered",
}

// namesFromBTF reads enum mf_action_page_type and enum mf_result from the
// kernel's types; what the kernel lacks keeps its default.
func namesFromBTF(spec *btf.Spec) names {
	n := defaultNames()
	if spec == nil {
		return n
	}
	read := func(enum string, words map[string]string, prefix string) map[int32]string {
		var e *btf.Enum
		if err := spec.TypeByName(enum, &e); err != nil {
			return nil
		}
		m := make(map[int32]string, len(e.Values))
		for _, v := range e.Values {
			w, ok := words[v.Name]
			if !ok {
				w = strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v.Name, prefix)), "_", " ")
			}
			m[int32(v.Value)] = w
		}
		return m
	}
	if m := read("mf_action_page_type", pageTypeWords, "MF_MSG_"); m != nil {
		n.pageType = m
	}
	if m := read("mf_result", resultWords, "MF_"); m != nil {
		n.result = m
	}
	return n
}

func (n names) pageTypeOf(v int32) string {
	if w, ok := n.pageType[v]; ok {
		return w
	}
	return fmt.Sprintf("page type %d", v)
}

func (n names) resultOf(v int32) string {
	if w, ok := n.result[v]; ok {
		return w
	}
	return fmt.Sprintf("result %d", v)
}

// ------------------------------------------------------------- mc_event

// labelsWithoutDIMM are what EDAC writes when it could not place the
// error on a module (kernel.yaml's edac rules treat them the same way).
var labelsWithoutDIMM = map[string]bool{"": true, "unknown memory": true, "any memory": true, "unknown label": true}

// dimmName names the DIMM of e: its label, or the memory controller
// ("mc0") when EDAC could not place the error on a module. That is the
// part the kernel log rules edac-ce and edac-ue name, so the collector
// keeps one record per part whichever signal it came by; the layers EDAC
// did know are in the captures.
func (e *mcEvent) dimmName() string {
	if label := strings.TrimSpace(e.Label); !labelsWithoutDIMM[label] {
		return label
	}
	return "mc" + strconv.Itoa(int(e.MCIndex))
}

func (e *mcEvent) classify(tp string) finding {
	name := e.dimmName()
	f := finding{
		part:  &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: name},
		n:     uint64(e.ErrorCount),
		rule:  RuleMCEvent,
		limit: 1,
	}
	switch e.ErrorType {
	case mcCorrected:
		f.sample, f.class, f.severity = SampleCECount, ClassMemoryCE, hwhealv1.Severity_SEVERITY_INFO
	case mcUncorrected, mcFatal:
		f.sample, f.class, f.severity = SampleUECount, ClassMemoryUE, hwhealv1.Severity_SEVERITY_CRITICAL
		f.limit = maxSevereFaultsDefault
	case mcDeferred:
		f.sample, f.class, f.severity = SampleDeferredCount, ClassMemoryUE, hwhealv1.Severity_SEVERITY_WARNING
		f.limit = maxSevereFaultsDefault
	case mcInfo:
		f.sample = SampleInfoCount
	}
	f.gate = f.class + "|" + name
	f.summary = func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "%d %s memory error", f.n, e.ErrorType)
		if f.n != 1 {
			b.WriteString("s")
		}
		fmt.Fprintf(&b, " on %s", name)
		if e.Msg != "" {
			fmt.Fprintf(&b, ": %s", e.Msg)
		}
		fmt.Fprintf(&b, " (mc %d, location %d:%d:%d, address %#x)", e.MCIndex, e.Layers[0], e.Layers[1], e.Layers[2], e.Address)
		return b.String()
	}
	f.captures = func() map[string]string {
		c := map[string]string{
			"error_type":   e.ErrorType.String(),
			"error_count":  strconv.Itoa(int(e.ErrorCount)),
			"mc":           strconv.Itoa(int(e.MCIndex)),
			"top_layer":    strconv.Itoa(int(e.Layers[0])),
			"middle_layer": strconv.Itoa(int(e.Layers[1])),
			"lower_layer":  strconv.Itoa(int(e.Layers[2])),
			"address":      fmt.Sprintf("%#x", e.Address),
			"grain":        grain(e.GrainBits),
			"syndrome":     fmt.Sprintf("%#x", e.Syndrome),
			"cpu":          strconv.FormatUint(uint64(e.CPU), 10),
		}
		setIf(c, "tracepoint", tp)
		setIf(c, "label", e.Label)
		setIf(c, "msg", e.Msg)
		setIf(c, "driver_detail", e.Detail)
		if len(e.Truncated) > 0 {
			c["truncated"] = strings.Join(e.Truncated, ",")
		}
		return c
	}
	return f
}

func grain(bits uint8) string {
	if bits >= 64 {
		return "2^" + strconv.Itoa(int(bits))
	}
	return strconv.FormatUint(1<<bits, 10)
}

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// ----------------------------------------------------------- mce_record

// MCi_STATUS bits (Intel SDM vol. 3B 16.3.2.2; AMD APM vol. 2 9.3.2.2).
const (
	mciVAL   = 1 << 63 // the register holds an error
	mciOVER  = 1 << 62 // an error came while it still held one
	mciUC    = 1 << 61 // uncorrected
	mciEN    = 1 << 60 // reporting was enabled
	mciMISCV = 1 << 59 // MCi_MISC holds more
	mciADDRV = 1 << 58 // MCi_ADDR holds the address
	mciPCC   = 1 << 57 // processor context corrupt
	mciS     = 1 << 56 // signalled as a machine check (Intel, MCG_SER_P)
	mciAR    = 1 << 55 // recovery action required (Intel, MCG_SER_P)
	// AMD (and Hygon) only.
	mciDeferred = 1 << 44 // uncorrected, not yet consumed
	mciPoison   = 1 << 43 // consumed poisoned data

	mcgSERP = 1 << 24 // MCG_CAP: software error recovery (S and AR exist)
)

// x86 vendors as the kernel numbers them (X86_VENDOR_*).
const (
	vendorIntel = 0
	vendorAMD   = 2
	vendorHygon = 9
)

func vendorName(v uint8) string {
	switch v {
	case vendorIntel:
		return "Intel"
	case vendorAMD:
		return "AMD"
	case vendorHygon:
		return "Hygon"
	case 5:
		return "Centaur"
	case 10:
		return "Zhaoxin"
	}
	return "vendor " + strconv.Itoa(int(v))
}

func (r *mceRecord) amdLike() bool { return r.Vendor == vendorAMD || r.Vendor == vendorHygon }

// statusFlags names the set bits of MCi_STATUS, in the order the kernel
// and rasdaemon print them.
func (r *mceRecord) statusFlags() string {
	flags := []struct {
		bit  uint64
		name string
		ok   bool
	}{
		{mciVAL, "VAL", true},
		{mciOVER, "OVER", true},
		{mciUC, "UC", true},
		{mciEN, "EN", true},
		{mciMISCV, "MISCV", true},
		{mciADDRV, "ADDRV", true},
		{mciPCC, "PCC", true},
		{mciS, "S", !r.amdLike() && r.MCGCap&mcgSERP != 0},
		{mciAR, "AR", !r.amdLike() && r.MCGCap&mcgSERP != 0},
		{mciDeferred, "Deferred", r.amdLike()},
		{mciPoison, "Poison", r.amdLike()},
	}
	var out []string
	for _, f := range flags {
		if f.ok && r.Status&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return strings.Join(out, "|")
}

// mceSeverity is what a machine check record is.
type mceSeverity int

const (
	mceCorrected mceSeverity = iota
	mceDeferred              // AMD: uncorrected but not consumed yet
	mceUncorrected
)

func (r *mceRecord) severity() mceSeverity {
	switch {
	case r.Status&(mciUC|mciPCC) != 0:
		return mceUncorrected
	case r.amdLike() && r.Status&mciDeferred != 0:
		return mceDeferred
	}
	return mceCorrected
}

// errorKind decodes the architectural MCA error code (MCi_STATUS[15:0],
// Intel SDM table 16-9 and 16-10; AMD banks use model-specific codes).
func (r *mceRecord) errorKind() string {
	if r.Vendor != vendorIntel {
		return ""
	}
	code := uint16(r.Status)
	switch {
	case code == 0:
		return "no error code"
	case code == 1:
		return "unclassified"
	case code == 2:
		return "microcode ROM parity error"
	case code == 3:
		return "external error"
	case code == 4:
		return "FRC error"
	case code == 5:
		return "internal parity error"
	case code == 6:
		return "SMM handler code access violation"
	case code&0xfc00 == 0x0400:
		return "internal timer error"
	case code&0xef80 == 0x0080:
		return "memory controller error"
	case code&0xeff0 == 0x0010:
		return "TLB error"
	case code&0xef00 == 0x0100:
		return "cache hierarchy error"
	case code&0xe800 == 0x0800:
		return "bus/interconnect error"
	}
	return "unclassified"
}

func (r *mceRecord) classify(tp string) finding {
	cpu := strconv.FormatUint(uint64(r.ExtCPU), 10)
	f := finding{
		// The CPU number, as the kernel log rules name it, so a machine
		// check seen in both is one part; the socket is in the captures.
		part:  &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_CPU, Name: cpu},
		n:     1,
		rule:  RuleMCERecord,
		limit: maxSevereFaultsDefault,
	}
	var what string
	switch r.severity() {
	case mceUncorrected:
		f.sample, f.class, f.severity, what = SampleUECount, ClassCPUMCE, hwhealv1.Severity_SEVERITY_CRITICAL, "Uncorrected"
	case mceDeferred:
		f.sample, f.class, f.severity, what = SampleDeferredCount, ClassCPUMCE, hwhealv1.Severity_SEVERITY_WARNING, "Deferred"
	default:
		f.sample, f.class, f.severity, what = SampleCECount, ClassCPUMCECorrected, hwhealv1.Severity_SEVERITY_INFO, "Corrected"
		f.limit = 1
	}
	f.gate = f.class + "|" + cpu + "|" + strconv.Itoa(int(r.Bank))
	f.summary = func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s machine check on CPU %s (socket %d) bank %d", what, cpu, r.SocketID, r.Bank)
		if k := r.errorKind(); k != "" {
			fmt.Fprintf(&b, ": %s", k)
		}
		fmt.Fprintf(&b, ", status %#016x [%s]", r.Status, r.statusFlags())
		if r.Status&mciADDRV != 0 {
			fmt.Fprintf(&b, ", address %#x", r.Addr)
		}
		return b.String()
	}
	f.captures = func() map[string]string {
		c := map[string]string{
			"cpu":       cpu,
			"socket":    strconv.FormatUint(uint64(r.SocketID), 10),
			"apicid":    strconv.FormatUint(uint64(r.APICID), 10),
			"bank":      strconv.Itoa(int(r.Bank)),
			"status":    fmt.Sprintf("%#016x", r.Status),
			"flags":     r.statusFlags(),
			"mcgstatus": fmt.Sprintf("%#x", r.MCGStatus),
			"mcgcap":    fmt.Sprintf("%#x", r.MCGCap),
			"mcacod":    fmt.Sprintf("%#04x", uint16(r.Status)),
			"mscod":     fmt.Sprintf("%#04x", uint16(r.Status>>16)),
			"vendor":    vendorName(r.Vendor),
			"cpuid":     fmt.Sprintf("%#x", r.CPUID),
			"ip":        fmt.Sprintf("%#x", r.IP),
			"cs":        fmt.Sprintf("%#x", r.CS),
			"walltime":  strconv.FormatUint(r.Walltime, 10),
			"severity":  strings.ToLower(what),
		}
		setIf(c, "tracepoint", tp)
		if r.Status&mciADDRV != 0 {
			c["addr"] = fmt.Sprintf("%#x", r.Addr)
		}
		if r.Status&mciMISCV != 0 {
			c["misc"] = fmt.Sprintf("%#x", r.Misc)
		}
		if r.Has&mceHasSyndIPID != 0 {
			c["synd"] = fmt.Sprintf("%#x", r.Synd)
			c["ipid"] = fmt.Sprintf("%#x", r.IPID)
		}
		if r.Has&mceHasPPIN != 0 && r.PPIN != 0 {
			c["ppin"] = fmt.Sprintf("%#x", r.PPIN)
		}
		if r.Has&mceHasMicrocode != 0 {
			c["microcode"] = fmt.Sprintf("%#x", r.Microcode)
		}
		setIf(c, "error", r.errorKind())
		return c
	}
	return f
}

// ------------------------------------------------------------ aer_event

// AER status bits (PCIe base spec 7.8.4; the kernel's lists in
// include/ras/ras_event.h).
var (
	aerCorrectableBits = []string{
		0: "Receiver Error", 6: "Bad TLP", 7: "Bad DLLP", 8: "RELAY_NUM Rollover",
		12: "Replay Timer Timeout", 13: "Advisory Non-Fatal", 14: "Corrected Internal Error",
		15: "Header Log Overflow",
	}
	aerUncorrectableBits = []string{
		0: "Undefined", 4: "Data Link Protocol", 5: "Surprise Down Error", 12: "Poisoned TLP",
		13: "Flow Control Protocol", 14: "Completion Timeout", 15: "Completer Abort",
		16: "Unexpected Completion", 17: "Receiver Overflow", 18: "Malformed TLP", 19: "ECRC",
		20: "Unsupported Request", 21: "ACS Violation", 22: "Uncorrectable Internal Error",
		23: "MC Blocked TLP", 24: "AtomicOp Egress Blocked", 25: "TLP Prefix Blocked Error",
		26: "Poisoned TLP Egress Blocked",
	}
)

func (e *aerEvent) statusNames() string {
	table := aerUncorrectableBits
	if e.Severity == aerCorrectable {
		table = aerCorrectableBits
	}
	var out []string
	for bit := range 32 {
		if e.Status&(1<<bit) == 0 {
			continue
		}
		if bit < len(table) && table[bit] != "" {
			out = append(out, table[bit])
		} else {
			out = append(out, "bit "+strconv.Itoa(bit))
		}
	}
	return strings.Join(out, "|")
}

var pciAddress = regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

func (e *aerEvent) classify(tp string) finding {
	part := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_PCI, Name: e.DevName}
	if pciAddress.MatchString(e.DevName) {
		part.PciAddress = e.DevName
	}
	f := finding{part: part, n: 1, rule: RuleAEREvent, limit: maxSevereFaultsDefault}
	switch e.Severity {
	case aerCorrectable:
		f.sample, f.class, f.severity = SampleAERCorrectedCount, ClassPCIeAERCorrected, hwhealv1.Severity_SEVERITY_INFO
		f.limit = 1
	case aerNonFatal:
		f.sample, f.class, f.severity = SampleAERNonFatalCount, ClassPCIeAERNonFatal, hwhealv1.Severity_SEVERITY_WARNING
	case aerFatal:
		f.sample, f.class, f.severity = SampleAERFatalCount, ClassPCIeAERFatal, hwhealv1.Severity_SEVERITY_CRITICAL
	}
	f.gate = f.class + "|" + e.DevName
	f.summary = func() string {
		s := fmt.Sprintf("PCIe %s error from %s", e.Severity, e.DevName)
		if n := e.statusNames(); n != "" {
			s += ": " + n
		}
		return s
	}
	f.captures = func() map[string]string {
		c := map[string]string{
			"pci":      e.DevName,
			"severity": e.Severity.String(),
			"status":   fmt.Sprintf("%#08x", e.Status),
			"errors":   e.statusNames(),
		}
		setIf(c, "tracepoint", tp)
		if e.TLPValid {
			c["tlp_header"] = fmt.Sprintf("%08x %08x %08x %08x", e.TLPHeader[0], e.TLPHeader[1], e.TLPHeader[2], e.TLPHeader[3])
		}
		if e.Truncated {
			c["truncated"] = "dev_name"
		}
		return c
	}
	return f
}

// ------------------------------------------------- memory_failure_event

// classify: a page the kernel recovered (MF_RECOVERED: taken out of
// service without harm) is a warning, as in the kernel log rule
// memory-failure; any other result may have lost data and is critical.
func (e *memoryFailure) classify(tp string, n names) finding {
	pfn := fmt.Sprintf("%#x", e.PFN)
	f := finding{
		part:     &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "pfn " + pfn},
		class:    ClassMemoryFailure,
		severity: hwhealv1.Severity_SEVERITY_CRITICAL,
		// Pages are many: the limit is per node, not per page.
		gate:  ClassMemoryFailure,
		limit: maxSevereFaultsDefault,
		rule:  RuleMemoryFailure,
	}
	if n.resultOf(e.Result) == resultWords["MF_RECOVERED"] {
		f.severity = hwhealv1.Severity_SEVERITY_WARNING
	}
	f.summary = func() string {
		return fmt.Sprintf("Memory page %s poisoned: recovery action for %s: %s", pfn, n.pageTypeOf(e.Type), n.resultOf(e.Result))
	}
	f.captures = func() map[string]string {
		c := map[string]string{
			"pfn":       pfn,
			"page_type": n.pageTypeOf(e.Type),
			"type":      strconv.Itoa(int(e.Type)),
			"result":    n.resultOf(e.Result),
			"cpu":       strconv.FormatUint(uint64(e.CPU), 10),
		}
		setIf(c, "tracepoint", tp)
		return c
	}
	return f
}
