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

// DefaultCategoryClasses maps each lkml_archives category to the class
// families (the part of a class before its first dot) a fault line of that
// category should raise, the first being the one a missed line counts
// against.
var DefaultCategoryClasses = map[string][]string{
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
}

// KernelOptions configures EvalKernelLog.
type KernelOptions struct {
	// Disputes adjusts the corpus's labels; nil keeps them.
	Disputes *Disputes
	// CategoryClasses maps categories to class families for the per-family
	// recall; nil means DefaultCategoryClasses. A category it does not
	// list counts its misses against the family "?".
	CategoryClasses map[string][]string
}

// KernelFigures is one row of a kernel-log evaluation: lines labeled fault
// (TP caught, FN missed) and benign (FP flagged).
type KernelFigures struct {
	Name   string `json:"name"`
	Faults int    `json:"fault_lines"`
	Benign int    `json:"benign_lines"`
	TP     int    `json:"tp"`
	FP     int    `json:"fp"`
	FN     int    `json:"fn"`
	// nil when the denominator is 0; Recall is nil for a single class,
	// whose lines carry no class label.
	Precision   *float64 `json:"precision"`
	Recall      *float64 `json:"recall"`
	FlaggedRate *float64 `json:"benign_flagged_rate"` // FP / Benign
}

func (k *KernelFigures) finish(recall bool) {
	ratio := func(n, d int) *float64 {
		if d == 0 {
			return nil
		}
		v := float64(n) / float64(d)
		return &v
	}
	k.Precision = ratio(k.TP, k.TP+k.FP)
	if recall {
		k.Recall = ratio(k.TP, k.TP+k.FN)
	}
	k.FlaggedRate = ratio(k.FP, k.Benign)
}

// KernelReport is what EvalKernelLog measured.
type KernelReport struct {
	Files    []string `json:"files"`
	Lines    int      `json:"lines"`
	Excluded int      `json:"excluded"` // read as detail or not-log by a dispute
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
}

// classFamily is a class's family: "disk" of "disk.io_error".
func classFamily(c string) string {
	f, _, _ := strings.Cut(c, ".")
	return f
}

// EvalKernelLog runs every labeled line of files (ReadLabeled's format;
// a directory stands for every *.jsonl and *.jsonl.gz under it, block
// files "*.blocks.jsonl" left out) through match and compares what it
// raises with the labels, per category, class family and class.
func EvalKernelLog(files []string, match func(line string) []*hwhealv1.Fault, opt KernelOptions) (KernelReport, error) {
	files, err := ExpandFiles(files, ".jsonl", ".jsonl.gz")
	if err != nil {
		return KernelReport{}, err
	}
	files = slices.DeleteFunc(files, func(f string) bool {
		return strings.HasSuffix(f, ".blocks.jsonl") || strings.HasSuffix(f, ".blocks.jsonl.gz")
	})
	catClasses := opt.CategoryClasses
	if catClasses == nil {
		catClasses = DefaultCategoryClasses
	}
	rep := KernelReport{Files: files}
	raw, adj := map[string]*KernelFigures{}, map[string]*KernelFigures{}
	fam, cls := map[string]*KernelFigures{}, map[string]*KernelFigures{}
	get := func(m map[string]*KernelFigures, k string) *KernelFigures {
		if m[k] == nil {
			m[k] = &KernelFigures{Name: k}
		}
		return m[k]
	}
	benignLines := 0
	count := func(k *KernelFigures, fault, hit bool) {
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
	for _, name := range files {
		err := readFile(name, func(r io.Reader) error {
			return ReadLabeled(r, name, func(l LabeledLine) error {
				rep.Lines++
				faults := match(l.Line)
				hit := len(faults) > 0
				count(get(raw, l.Category), l.Fault, hit)
				count(&rep.RawTotal, l.Fault, hit)
				verdict := opt.Disputes.Adjust(l.Line, l.Fault)
				if verdict == "" {
					rep.Excluded++
					return nil
				}
				fault := verdict == VerdictFault
				count(get(adj, l.Category), fault, hit)
				count(&rep.Total, fault, hit)
				switch {
				case fault && !hit:
					rep.Missed = append(rep.Missed, l.Category+": "+l.Line)
				case !fault && hit:
					rep.Flagged = append(rep.Flagged, l.Category+": "+l.Line)
				}
				if !fault {
					benignLines++
				}
				raisedClasses, raisedFams := map[string]bool{}, map[string]bool{}
				for _, f := range faults {
					raisedClasses[f.GetFaultClass()] = true
					raisedFams[classFamily(f.GetFaultClass())] = true
				}
				for c := range raisedClasses {
					k := get(cls, c)
					if fault {
						k.TP++
					} else {
						k.FP++
					}
				}
				if !fault {
					for f := range raisedFams {
						get(fam, f).FP++
					}
					return nil
				}
				want := catClasses[l.Category]
				if len(want) == 0 {
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
					get(fam, got).TP++
					return nil
				}
				get(fam, want[0]).FN++
				for f := range raisedFams {
					get(fam, f).FP++
				}
				return nil
			})
		})
		if err != nil {
			return rep, err
		}
	}
	rows := func(m map[string]*KernelFigures, recall bool, benign int) []KernelFigures {
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
	rep.RawCategories = rows(raw, true, -1)
	rep.Categories = rows(adj, true, -1)
	rep.Families = rows(fam, true, benignLines)
	rep.Classes = rows(cls, false, benignLines)
	rep.RawTotal.Name, rep.Total.Name = "all", "all"
	rep.RawTotal.finish(true)
	rep.Total.finish(true)
	for _, d := range opt.Disputes.Unused() {
		rep.UnusedDisputes = append(rep.UnusedDisputes, fmt.Sprintf("%s (label %s)", d.Match, d.Label))
	}
	return rep, nil
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
