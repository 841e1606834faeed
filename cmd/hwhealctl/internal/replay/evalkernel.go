package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// LabeledLine is one labeled kernel log line of the lkml_archives corpus
// (../shared/corpora/kernel_logs/lkml_archives/*.jsonl, and the slimmed
// copy agent/detect/testdata/lkml_lines.jsonl.gz).
type LabeledLine struct {
	Category string // the corpus's subsystem: ata, nvme, pcie_aer, ...
	Line     string // as quoted, prefixes (timestamps, hosts) and all
	Fault    bool   // the corpus's fault_keyword label
	URL      string // where it was quoted
	File     string
	Row      int // 1-based line of the JSONL file
}

type labeledJSON struct {
	Category     string `json:"category"`
	Line         string `json:"line"`
	FaultKeyword *bool  `json:"fault_keyword"`
	Fault        *bool  `json:"fault"`
	LoreURL      string `json:"lore_url"`
	URL          string `json:"url"`
}

// ReadLabeled reads labeled lines, one JSON object a line, with fields
// category, line and the label fault_keyword (or fault, as in the
// slimmed copy), and calls fn for each. Input starting with gzip's magic
// is decompressed. name names the input in errors.
func ReadLabeled(r io.Reader, name string, fn func(LabeledLine) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	row := 0
	for sc.Scan() {
		row++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var j labeledJSON
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("%s: line %d: %w", name, row, err)
		}
		label := j.FaultKeyword
		if label == nil {
			label = j.Fault
		}
		if j.Category == "" || label == nil {
			return fmt.Errorf("%s: line %d: want category, line and fault_keyword (or fault)", name, row)
		}
		l := LabeledLine{Category: j.Category, Line: j.Line, Fault: *label, URL: cmpOr(j.LoreURL, j.URL), File: name, Row: row}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// The verdicts a dispute can give a line.
const (
	VerdictFault  = "fault"
	VerdictBenign = "benign"
	VerdictDetail = "detail"  // a line of a multi-line report raised from another line: not counted
	VerdictNotLog = "not-log" // not a kernel log line at all: not counted
)

// Dispute is one entry of a label disputes file
// (agent/detect/testdata/label_disputes.yaml): lines whose text matches
// Match and whose corpus label is Label are read as Verdict instead.
type Dispute struct {
	Match   string `yaml:"match" json:"match"`
	Label   string `yaml:"label" json:"label"`
	Verdict string `yaml:"verdict" json:"verdict"`
	Reason  string `yaml:"reason" json:"reason"`
	re      *regexp.Regexp
}

// Disputes is a label disputes file, read with the same checks as
// agent/detect's TestCorpusCoverage; it counts which entries were used.
// Not safe for concurrent use.
type Disputes struct {
	list []*Dispute
	used []int
}

// ReadDisputes parses a label disputes file. name names it in errors.
func ReadDisputes(r io.Reader, name string) (*Disputes, error) {
	var ds []*Dispute
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&ds); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, d := range ds {
		re, err := regexp.Compile(d.Match)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: %q: %w", name, d.Match, err)
		case d.Label != VerdictFault && d.Label != VerdictBenign:
			return nil, fmt.Errorf("%s: %q: label %q (want fault or benign)", name, d.Match, d.Label)
		case d.Verdict != VerdictFault && d.Verdict != VerdictBenign && d.Verdict != VerdictDetail && d.Verdict != VerdictNotLog:
			return nil, fmt.Errorf("%s: %q: verdict %q (want fault, benign, detail or not-log)", name, d.Match, d.Verdict)
		case d.Verdict == d.Label:
			return nil, fmt.Errorf("%s: %q: verdict agrees with the label", name, d.Match)
		case strings.TrimSpace(d.Reason) == "":
			return nil, fmt.Errorf("%s: %q: no reason", name, d.Match)
		}
		d.re = re
	}
	return &Disputes{list: ds, used: make([]int, len(ds))}, nil
}

// Adjust returns our reading of a line the corpus labels fault (or not):
// VerdictFault, VerdictBenign, or "" when the line is not counted. The
// first entry that applies decides; with no entry the label stands. A nil
// Disputes keeps every label.
func (d *Disputes) Adjust(line string, fault bool) string {
	label := VerdictBenign
	if fault {
		label = VerdictFault
	}
	if d == nil {
		return label
	}
	for i, e := range d.list {
		if e.Label == label && e.re.MatchString(line) {
			d.used[i]++
			if e.Verdict == VerdictDetail || e.Verdict == VerdictNotLog {
				return ""
			}
			return e.Verdict
		}
	}
	return label
}

// Unused lists the entries that applied to no line so far: stale ones.
func (d *Disputes) Unused() []Dispute {
	if d == nil {
		return nil
	}
	var out []Dispute
	for i, e := range d.list {
		if d.used[i] == 0 {
			out = append(out, *e)
		}
	}
	return out
}

// KernelLineMatcher turns a matcher of kernel log records (such as
// agent/detect's RuleSet.Match) into one of quoted lines: the line's
// prefixes (dmesg, syslog, journal timestamps, levels) are cut with
// pkg/kernlog's per-line format detection, as `rules replay` reads a
// file. A syslog line of another program is still matched on its message,
// as quoted text carries no guarantee of its origin.
func KernelLineMatcher(match func(kernlog.Record) []*hwhealv1.Fault, p kernlog.Parser) func(line string) []*hwhealv1.Fault {
	return func(line string) []*hwhealv1.Fault {
		rec, _, err := p.ParseLine(line, kernlog.FormatAuto)
		if err != nil && rec.Message == "" {
			return nil
		}
		return match(rec)
	}
}

// DefaultCategoryClasses maps each category to the class families (the
// part of a class before its first dot) a fault of that category should
// raise, the first being the one a missed line counts against: the
// lkml_archives categories, gpud's catalog (GPUDCatalog) and the reasons
// of node-problem-detector's kernel monitors. BGL's alert tags have none:
// BlueGene/L is not Linux.
var DefaultCategoryClasses = map[string][]string{
	// lkml_archives
	"ata":         {"disk"},
	"scsi_blk_io": {"disk", "fs"},
	"nvme":        {"disk"},
	"md_raid":     {"disk"},
	"edac":        {"memory", "edac"},
	"mce":         {"cpu", "memory"},
	"mem_failure": {"memory"},
	"cper_ghes":   {"ghes", "pcie", "memory", "cpu"},
	"pcie_aer":    {"pcie"},
	"nic_link":    {"nic"},
	"gpu_xid":     {"gpu"},
	"fs_error":    {"fs"},
	"lockup_hang": {"kernel"},
	// gpud
	"gpu_sxid":  {"gpu"},
	"memory_ce": {"memory", "edac"},
	// node-problem-detector (config/kernel-monitor.json, readonly-monitor.json)
	"OOMKilling":                   {"kernel"},
	"TaskHung":                     {"kernel"},
	"DockerHung":                   {"kernel"},
	"DockerHung+TaskHung":          {"kernel"},
	"UnregisterNetDevice":          {"kernel", "nic"},
	"KernelOops":                   {"kernel"},
	"Ext4Error":                    {"fs"},
	"Ext4Warning":                  {"fs"},
	"IOError":                      {"disk", "fs"},
	"XfsHasShutdown":               {"fs"},
	"MemoryReadError":              {"memory", "edac"},
	"CperHardwareErrorCorrected":   {"ghes", "memory", "pcie", "cpu"},
	"CperHardwareErrorRecoverable": {"ghes", "memory", "pcie", "cpu"},
	"CperHardwareErrorFatal":       {"ghes", "memory", "pcie", "cpu"},
	"FilesystemIsReadOnly":         {"fs"},
}

// Aim is an area of the recall aim and the categories (of any
// source) whose fault lines count towards it.
type Aim struct {
	Name       string   `json:"name"`
	Categories []string `json:"categories"`
}

// DefaultAims are the areas issue 4 sets a recall aim for: at least
// AimRecall of the genuine fault lines caught in disk, NVMe, memory, PCIe,
// NIC and GPU categories. MCE and CPER lines (CPU or memory or PCIe,
// undecided by their category) are left out, as are kernel and file
// system categories.
var DefaultAims = []Aim{
	{"disk", []string{"ata", "scsi_blk_io", "md_raid", "IOError"}},
	{"NVMe", []string{"nvme"}},
	{"memory", []string{"edac", "mem_failure", "memory_ce", "MemoryReadError"}},
	{"PCIe", []string{"pcie_aer"}},
	{"NIC", []string{"nic_link"}},
	{"GPU", []string{"gpu_xid", "gpu_sxid"}},
}

// The aims: recall per area (with a plausible class) and the
// share of benign lines flagged.
const (
	AimRecall  = 0.95
	AimFlagged = 0.02
)

// KernelOptions configures EvalKernelLog.
type KernelOptions struct {
	// Disputes adjusts the lkml_archives labels (of line records, and so
	// of the blocks labeled through them); nil keeps them.
	Disputes *Disputes
	// CategoryClasses maps categories to class families for the per-family
	// recall and the plausible-class columns; nil means
	// DefaultCategoryClasses. A category it does not list counts its
	// misses against the family "?" and has no plausible-class figure.
	CategoryClasses map[string][]string
	// Aims are the areas the aims table reports; nil means DefaultAims.
	Aims []Aim
	// Catalog labels saved kernel logs (KindRaw); nil means GPUDCatalog().
	Catalog []CatalogEntry
	// NPDConfigDir is node-problem-detector's config/ folder for every
	// NPD sample; "" finds it above each sample (the nearest folder
	// holding config/kernel-monitor.json).
	NPDConfigDir string
}

// KernelFigures is one row of a kernel-log evaluation: units (lines or
// blocks) labeled fault (TP caught, FN missed) and benign (FP flagged).
type KernelFigures struct {
	Name   string `json:"name"`
	Faults int    `json:"fault_lines"`
	Benign int    `json:"benign_lines"`
	TP     int    `json:"tp"`
	FP     int    `json:"fp"`
	FN     int    `json:"fn"`
	// ClassTP are the caught fault units that raised a class of a family
	// their category expects (CategoryClasses); ClassRecall is nil for a
	// row whose categories have none.
	ClassTP int `json:"tp_plausible_class"`
	// Unlabeled blocks: neither a fault block nor benign (see
	// EvalKernelLog), and how many of them raised a fault.
	Unlabeled       int `json:"unlabeled,omitempty"`
	UnlabeledRaised int `json:"unlabeled_raised,omitempty"`
	// nil when the denominator is 0; Recall is nil for a single class,
	// whose lines carry no class label.
	Precision   *float64 `json:"precision"`
	Recall      *float64 `json:"recall"`
	ClassRecall *float64 `json:"recall_plausible_class,omitempty"`
	FlaggedRate *float64 `json:"benign_flagged_rate"` // FP / Benign

	noClasses bool // some fault category without expected families
}

func ratio(n, d int) *float64 {
	if d == 0 {
		return nil
	}
	v := float64(n) / float64(d)
	return &v
}

func (k *KernelFigures) finish(recall bool) {
	k.Precision = ratio(k.TP, k.TP+k.FP)
	if recall {
		k.Recall = ratio(k.TP, k.TP+k.FN)
		if !k.noClasses {
			k.ClassRecall = ratio(k.ClassTP, k.TP+k.FN)
		}
	}
	k.FlaggedRate = ratio(k.FP, k.Benign)
}

// KernelGroup is the evaluation of one kind of labeled source (lkml
// blocks, gpud logs, NPD samples, BGL), per category.
type KernelGroup struct {
	Name   string   `json:"name"`
	Unit   string   `json:"unit"`   // "line" or "block"
	Labels string   `json:"labels"` // where the labels come from
	Files  []string `json:"files"`
	Units  int      `json:"units"` // lines or blocks read
	// Categories: TP is a fault unit that raised anything, ClassTP one
	// that raised a class of a family its category expects, FP a benign
	// unit that raised anything.
	Categories []KernelFigures `json:"categories"`
	Total      KernelFigures   `json:"total"`
	// Fault units that raised nothing, benign ones that raised a fault
	// (with the classes), and unlabeled blocks that raised one, as
	// "file:row: category: text".
	Missed    []string `json:"missed,omitempty"`
	Flagged   []string `json:"flagged,omitempty"`
	Unlabeled []string `json:"unlabeled_raised,omitempty"`
}

// AimFigures is one area of the recall aim: its fault lines (lkml line
// records after disputes, gpud logs, NPD samples) and fault blocks, caught
// with any class and with a plausible one. Met says whether the lines
// caught with a plausible class reach AimRecall.
type AimFigures struct {
	Aim
	Faults            int      `json:"fault_lines"`
	Caught            int      `json:"caught"`
	ClassCaught       int      `json:"caught_plausible_class"`
	Recall            *float64 `json:"recall"`
	ClassRecall       *float64 `json:"recall_plausible_class"`
	Blocks            int      `json:"fault_blocks"`
	BlocksCaught      int      `json:"blocks_caught"`
	BlocksClassCaught int      `json:"blocks_caught_plausible_class"`
	BlockRecall       *float64 `json:"block_recall"`
	BlockClassRecall  *float64 `json:"block_recall_plausible_class"`
	Met               bool     `json:"met"`
}

// KernelReport is what EvalKernelLog measured.
type KernelReport struct {
	Files        []string     `json:"files"` // the lkml line record files
	Inputs       []KernelFile `json:"inputs"`
	SkippedFiles int          `json:"skipped_files"` // files of the directories no reader applies to
	Lines        int          `json:"lines"`
	Excluded     int          `json:"excluded"` // read as detail or not-log by a dispute
	// RawCategories are against the corpus's labels; Categories, Families
	// and Classes against the adjusted reading (the same without
	// disputes). A category's TP is a fault line that raised anything,
	// FP a benign line that did. A family's TP is a fault line of a
	// category expecting it that raised a class of it; a fault line that
	// raised nothing of its category's families is an FN of the first one
	// and an FP of each family it raised; a benign line is an FP of each
	// family it raised. A class's TP and FP are the fault and benign lines
	// that raised it.
	RawCategories []KernelFigures `json:"raw_categories"`
	RawTotal      KernelFigures   `json:"raw_total"`
	Categories    []KernelFigures `json:"categories"`
	Total         KernelFigures   `json:"total"`
	Families      []KernelFigures `json:"families"`
	Classes       []KernelFigures `json:"classes"`
	// Missed fault lines and flagged benign lines (adjusted reading), as
	// "category: line".
	Missed  []string `json:"missed,omitempty"`
	Flagged []string `json:"flagged,omitempty"`
	// UnusedDisputes are dispute entries that applied to no line.
	UnusedDisputes []string `json:"unused_disputes,omitempty"`
	// Groups are the other sources: lkml blocks, gpud, npd, bgl.
	Groups []KernelGroup `json:"groups,omitempty"`
	// Aims is the recall aim per area; BenignFlagged the share of benign
	// units flagged per source (Name) and over all line sources ("all
	// lines").
	Aims          []AimFigures    `json:"aims,omitempty"`
	BenignFlagged []KernelFigures `json:"benign_flagged,omitempty"`
}

// classFamily is a class's family: "disk" of "disk.io_error".
func classFamily(c string) string {
	f, _, _ := strings.Cut(c, ".")
	return f
}

// EvalKernelLog runs every labeled input through match and compares what
// it raises with the labels. paths are files or directories
// (ClassifyKernelFiles says which files of a directory are read and how a
// file's kind is told); each kind is its own group in the report:
//
//   - lkml line records (KindLines): the corpus's fault_keyword label,
//     adjusted by opt.Disputes; per category, class family and class.
//   - lkml blocks (KindBlocks), one unit per block. Blocks carry no label,
//     so each line is looked up, by its message (timestamps and prefixes
//     cut), in the line records of every line file given and of the line
//     file beside the block file (X.blocks.jsonl -> X.jsonl[.gz]), with
//     disputes applied. A block holding a line labeled fault is a fault
//     block of the categories of its fault lines: caught if any of its
//     lines raises a fault, with a plausible class if one raised is of a
//     family its category expects. A block whose every line is labeled
//     benign is benign, wrongly flagged if any line raises a fault. The
//     rest (no fault line, but lines the records do not hold, or details
//     of a report) are unlabeled: the records sample the excerpts, so
//     these may hold real errors; how many raise a fault is reported, and
//     counted neither way. A block counts in each category it is a fault
//     (or benign, or unlabeled) block of, and once in the total.
//   - gpud logs (KindRaw), one unit per line: labeled by opt.Catalog
//     (GPUDCatalog), not by our rules.
//   - NPD samples (KindNPD): a line is a fault of the reasons of the NPD
//     kmsg monitor rules it fires, as NPD runs them (NPDLabeler), else
//     benign.
//   - BGL (KindBGL): the alert column; the rules see the message.
//
// A fault unit that raises nothing is missed; a benign one that raises
// anything is flagged. The aims table sums the lkml lines (adjusted),
// gpud and NPD lines of each area's categories.
func EvalKernelLog(paths []string, match func(line string) []*hwhealv1.Fault, opt KernelOptions) (KernelReport, error) {
	inputs, skipped, err := ClassifyKernelFiles(paths)
	if err != nil {
		return KernelReport{}, err
	}
	if opt.CategoryClasses == nil {
		opt.CategoryClasses = DefaultCategoryClasses
	}
	if opt.Aims == nil {
		opt.Aims = DefaultAims
	}
	if opt.Catalog == nil {
		opt.Catalog = GPUDCatalog()
	}
	e := &kernelEval{
		opt: opt, match: match,
		raw: map[string]*KernelFigures{}, adj: map[string]*KernelFigures{},
		fam: map[string]*KernelFigures{}, cls: map[string]*KernelFigures{},
		labels: newLineLabels(kernlog.Parser{}), read: map[string]bool{},
		groups: map[KernelFileKind]*tally{},
	}
	e.rep.Inputs, e.rep.SkippedFiles = inputs, skipped
	byKind := map[KernelFileKind][]string{}
	for _, f := range inputs {
		byKind[f.Kind] = append(byKind[f.Kind], f.Path)
	}
	// Line records first: the blocks are labeled through them.
	for _, name := range byKind[KindLines] {
		e.rep.Files = append(e.rep.Files, name)
		if err := readFile(name, func(r io.Reader) error { return e.lines(r, name) }); err != nil {
			return e.rep, err
		}
	}
	for _, kind := range groupOrder[1:] {
		for _, name := range byKind[kind] {
			t := e.group(kind)
			t.g.Files = append(t.g.Files, name)
			var err error
			switch kind {
			case KindBlocks:
				err = e.blocks(t, name)
			case KindRaw:
				err = readFile(name, func(r io.Reader) error { return e.rawLog(t, r, name) })
			case KindNPD:
				err = e.npd(t, name)
			case KindBGL:
				err = readFile(name, func(r io.Reader) error { return e.bgl(t, r, name) })
			}
			if err != nil {
				return e.rep, err
			}
		}
	}
	e.finish()
	return e.rep, nil
}

// kernelEval is the state of one EvalKernelLog run.
type kernelEval struct {
	opt   KernelOptions
	match func(string) []*hwhealv1.Fault
	rep   KernelReport
	// lkml line records: per category (raw and adjusted), family, class.
	raw, adj, fam, cls map[string]*KernelFigures
	benignLines        int
	labels             *lineLabels
	read               map[string]bool // line files read into labels
	groups             map[KernelFileKind]*tally
	npdLabelers        map[string]*NPDLabeler // by config dir
}

func getFigures(m map[string]*KernelFigures, k string) *KernelFigures {
	if m[k] == nil {
		m[k] = &KernelFigures{Name: k}
	}
	return m[k]
}

func countUnit(k *KernelFigures, fault, hit bool) {
	switch {
	case fault && hit:
		k.Faults++
		k.TP++
	case fault:
		k.Faults++
		k.FN++
	case hit:
		k.Benign++
		k.FP++
	default:
		k.Benign++
	}
}

// lines evaluates one file of lkml line records and adds its labels to
// the index the blocks are labeled with.
func (e *kernelEval) lines(r io.Reader, name string) error {
	e.read[name] = true
	catClasses := e.opt.CategoryClasses
	return ReadLabeled(r, name, func(l LabeledLine) error {
		e.rep.Lines++
		faults := e.match(l.Line)
		hit := len(faults) > 0
		rawCat := getFigures(e.raw, l.Category)
		rawCat.noClasses = true // plausible classes are read on the adjusted labels
		countUnit(rawCat, l.Fault, hit)
		countUnit(&e.rep.RawTotal, l.Fault, hit)
		verdict := e.opt.Disputes.Adjust(l.Line, l.Fault)
		e.labels.add(l.Line, l.Category, verdict)
		if verdict == "" {
			e.rep.Excluded++
			return nil
		}
		fault := verdict == VerdictFault
		cat := getFigures(e.adj, l.Category)
		countUnit(cat, fault, hit)
		countUnit(&e.rep.Total, fault, hit)
		switch {
		case fault && !hit:
			e.rep.Missed = append(e.rep.Missed, l.Category+": "+l.Line)
		case !fault && hit:
			e.rep.Flagged = append(e.rep.Flagged, l.Category+": "+l.Line)
		}
		if !fault {
			e.benignLines++
		}
		raisedClasses, raisedFams := map[string]bool{}, map[string]bool{}
		for _, f := range faults {
			raisedClasses[f.GetFaultClass()] = true
			raisedFams[classFamily(f.GetFaultClass())] = true
		}
		for c := range raisedClasses {
			k := getFigures(e.cls, c)
			if fault {
				k.TP++
			} else {
				k.FP++
			}
		}
		if !fault {
			for f := range raisedFams {
				getFigures(e.fam, f).FP++
			}
			return nil
		}
		want := catClasses[l.Category]
		if len(want) == 0 {
			cat.noClasses, e.rep.Total.noClasses = true, true
			want = []string{"?"}
		}
		got := ""
		for _, f := range want {
			if raisedFams[f] {
				got = f
				break
			}
		}
		if got != "" {
			cat.ClassTP++
			e.rep.Total.ClassTP++
			getFigures(e.fam, got).TP++
			return nil
		}
		getFigures(e.fam, want[0]).FN++
		for f := range raisedFams {
			getFigures(e.fam, f).FP++
		}
		return nil
	})
}

func sortedRows(m map[string]*KernelFigures, recall bool, benign int) []KernelFigures {
	out := make([]KernelFigures, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := *m[k]
		if benign >= 0 {
			v.Faults, v.Benign = v.TP+v.FN, benign
		}
		v.finish(recall)
		out = append(out, v)
	}
	return out
}

func (e *kernelEval) finish() {
	rep := &e.rep
	rep.RawCategories = sortedRows(e.raw, true, -1)
	rep.Categories = sortedRows(e.adj, true, -1)
	rep.Families = sortedRows(e.fam, true, e.benignLines)
	rep.Classes = sortedRows(e.cls, false, e.benignLines)
	rep.RawTotal.Name, rep.Total.Name = "all", "all"
	// The raw reading has no class figure: the adjusted one does.
	rep.RawTotal.noClasses = true
	rep.RawTotal.finish(true)
	rep.Total.finish(true)
	for _, d := range e.opt.Disputes.Unused() {
		rep.UnusedDisputes = append(rep.UnusedDisputes, fmt.Sprintf("%s (label %s)", d.Match, d.Label))
	}
	for _, kind := range groupOrder[1:] {
		if t := e.groups[kind]; t != nil {
			rep.Groups = append(rep.Groups, t.finish())
		}
	}
	e.aims()
}

// readFile opens name ("-" is not accepted here: labels are files) and
// hands it to fn.
func readFile(name string, fn func(io.Reader) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// ReadDisputesFile reads a label disputes file from disk.
func ReadDisputesFile(path string) (*Disputes, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadDisputes(f, path)
}
