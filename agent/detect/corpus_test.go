package detect_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type dispute struct {
	Match   string `yaml:"match"`
	Label   string `yaml:"label"`
	Verdict string `yaml:"verdict"`
	Reason  string `yaml:"reason"`
	re      *regexp.Regexp
	used    int
}

func loadDisputes(t *testing.T) []*dispute {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "label_disputes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds []*dispute
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&ds); err != nil {
		t.Fatalf("label_disputes.yaml: %v", err)
	}
	for _, d := range ds {
		d.re = regexp.MustCompile(d.Match)
		switch {
		case d.Label != "fault" && d.Label != "benign":
			t.Fatalf("label_disputes.yaml: %q: label %q", d.Match, d.Label)
		case d.Verdict != "fault" && d.Verdict != "benign" && d.Verdict != "detail" && d.Verdict != "not-log":
			t.Fatalf("label_disputes.yaml: %q: verdict %q", d.Match, d.Verdict)
		case d.Verdict == d.Label:
			t.Fatalf("label_disputes.yaml: %q: verdict agrees with the label", d.Match)
		case strings.TrimSpace(d.Reason) == "":
			t.Fatalf("label_disputes.yaml: %q: no reason", d.Match)
		}
	}
	return ds
}

// adjusted is our reading of a corpus line: "fault", "benign" or "" when it
// is not counted (a detail line or not a log line).
func adjusted(ds []*dispute, line string, fault bool) string {
	label := "benign"
	if fault {
		label = "fault"
	}
	for _, d := range ds {
		if d.Label == label && d.re.MatchString(line) {
			d.used++
			if d.Verdict == "detail" || d.Verdict == "not-log" {
				return ""
			}
			return d.Verdict
		}
	}
	return label
}

type tally struct {
	faults, caught, benign, flagged int
	excluded                        int
}

func pct(n, d int) string {
	if d == 0 {
		return "   -  "
	}
	return fmt.Sprintf("%5.1f%%", 100*float64(n)/float64(d))
}

// TestCorpusCoverage runs every lkml_archives line through the shipped
// rules and tabulates, per category, how many fault lines are caught and how
// many benign lines are flagged: raw (against the corpus's keyword labels)
// and adjusted (with testdata/label_disputes.yaml applied). The floors are
// what the rules achieve today on the adjusted reading; a change that loses
// coverage or flags benign lines fails here.
func TestCorpusCoverage(t *testing.T) {
	rs := builtin(t)
	ds := loadDisputes(t)
	raw := map[string]*tally{}
	adj := map[string]*tally{}
	var misses, falsePos []string
	for _, r := range readJSONL[lkmlLine](t, "lkml_lines.jsonl.gz") {
		if raw[r.Category] == nil {
			raw[r.Category], adj[r.Category] = &tally{}, &tally{}
		}
		hit := len(rs.Match(record(stripPrefix(r.Line)))) > 0
		count := func(tl *tally, fault bool) {
			if fault {
				tl.faults++
				if hit {
					tl.caught++
				}
			} else {
				tl.benign++
				if hit {
					tl.flagged++
				}
			}
		}
		count(raw[r.Category], r.Fault)
		switch a := adjusted(ds, r.Line, r.Fault); a {
		case "":
			adj[r.Category].excluded++
		default:
			count(adj[r.Category], a == "fault")
			if a == "fault" && !hit {
				misses = append(misses, r.Category+": "+r.Line)
			}
			if a == "benign" && hit {
				falsePos = append(falsePos, r.Category+": "+r.Line)
			}
		}
	}
	for _, d := range ds {
		if d.used == 0 {
			t.Errorf("label_disputes.yaml: %q (label %s) applies to no corpus line", d.Match, d.Label)
		}
	}

	cats := make([]string, 0, len(raw))
	for c := range raw {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var total, totalAdj tally
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-12s | %-30s | %-30s | %s\n", "", "raw corpus labels", "adjusted (label_disputes.yaml)", "")
	fmt.Fprintf(&b, "%-12s | %14s %15s | %14s %15s | %s\n", "category", "faults caught", "benign flagged", "faults caught", "benign flagged", "excluded")
	for _, c := range cats {
		r, a := raw[c], adj[c]
		fmt.Fprintf(&b, "%-12s | %4d/%-4d %s %4d/%-4d %s | %4d/%-4d %s %4d/%-4d %s | %d\n", c,
			r.caught, r.faults, pct(r.caught, r.faults), r.flagged, r.benign, pct(r.flagged, r.benign),
			a.caught, a.faults, pct(a.caught, a.faults), a.flagged, a.benign, pct(a.flagged, a.benign), a.excluded)
		for _, p := range []struct{ dst, src *tally }{{&total, r}, {&totalAdj, a}} {
			p.dst.faults += p.src.faults
			p.dst.caught += p.src.caught
			p.dst.benign += p.src.benign
			p.dst.flagged += p.src.flagged
			p.dst.excluded += p.src.excluded
		}
	}
	fmt.Fprintf(&b, "%-12s | %4d/%-4d %s %4d/%-4d %s | %4d/%-4d %s %4d/%-4d %s | %d\n", "all",
		total.caught, total.faults, pct(total.caught, total.faults), total.flagged, total.benign, pct(total.flagged, total.benign),
		totalAdj.caught, totalAdj.faults, pct(totalAdj.caught, totalAdj.faults), totalAdj.flagged, totalAdj.benign, pct(totalAdj.flagged, totalAdj.benign), totalAdj.excluded)
	t.Log(b.String())
	sort.Strings(misses)
	for i, m := range misses {
		if i == 40 {
			t.Logf("... %d more misses", len(misses)-40)
			break
		}
		t.Logf("miss: %s", m)
	}
	for _, f := range falsePos {
		t.Logf("flagged benign: %s", f)
	}

	// Floors on the adjusted reading (recall of fault lines, in percent):
	// what the rules achieve today. The lines still missed are logged by -v
	// above: two block-layer lines cut off by a mail client mid-status
	// ("blk_update_request: critical"), and two PCIe lines that are not
	// upstream kernel messages ("Over 1000 Correctable Errors", "Recovering
	// Root Port due to Link Down", both from patches under review).
	floors := map[string]float64{
		"ata": 100, "scsi_blk_io": 99, "nvme": 100, "edac": 100, "mce": 100, "mem_failure": 100,
		"cper_ghes": 100, "pcie_aer": 99, "nic_link": 100, "gpu_xid": 100, "fs_error": 100, "lockup_hang": 100,
	}
	for c, floor := range floors {
		a := adj[c]
		if a == nil || a.faults == 0 {
			t.Errorf("category %s: no fault lines", c)
			continue
		}
		if got := 100 * float64(a.caught) / float64(a.faults); got < floor {
			t.Errorf("category %s: %.1f%% of fault lines caught (%d/%d), floor %.0f%%", c, got, a.caught, a.faults, floor)
		}
	}
	if fp := float64(totalAdj.flagged) / float64(totalAdj.benign); fp > 0.005 {
		t.Errorf("%.2f%% of benign lines flagged (%d/%d), want under 0.5%%", 100*fp, totalAdj.flagged, totalAdj.benign)
	}
	if fp := float64(total.flagged) / float64(total.benign); fp > 0.05 {
		t.Errorf("%.2f%% of lines the corpus calls benign flagged (%d/%d), want under 5%% (the rest are disputed labels)", 100*fp, total.flagged, total.benign)
	}
}

// TestBlockCoverage looks at whole dmesg excerpts quoted in the mailing
// lists: an excerpt that holds at least one fault line (adjusted reading)
// must raise at least one fault. Multi-line reports (AER, CPER, ATA
// exceptions) raise their fault from one line, so this is the measure an
// operator feels: was I told about this incident at all?
func TestBlockCoverage(t *testing.T) {
	rs := builtin(t)
	ds := loadDisputes(t)
	verdict := map[string]string{} // line -> "fault" | "benign" | ""
	for _, r := range readJSONL[lkmlLine](t, "lkml_lines.jsonl.gz") {
		a := adjusted(ds, r.Line, r.Fault)
		if prev, ok := verdict[r.Line]; !ok || prev != "fault" {
			verdict[r.Line] = a
		}
	}
	type bt struct{ incidents, raised, quiet, flaggedQuiet int }
	per := map[string]*bt{}
	var missed []string
	lines, flagged := 0, 0
	for _, blk := range readJSONL[lkmlBlock](t, "lkml_blocks.jsonl.gz") {
		incident, raised := false, false
		for _, l := range blk.Lines {
			lines++
			if verdict[l] == "fault" {
				incident = true
			}
			if len(rs.Match(record(stripPrefix(l)))) > 0 {
				raised = true
				flagged++
			}
		}
		for _, c := range blk.Categories {
			if per[c] == nil {
				per[c] = &bt{}
			}
			switch {
			case incident:
				per[c].incidents++
				if raised {
					per[c].raised++
				}
			default:
				per[c].quiet++
				if raised {
					per[c].flaggedQuiet++
				}
			}
		}
		// An excerpt with no line the corpus calls a fault can still hold
		// fault lines (the line file samples the excerpts); the flagged
		// lines in those were read by hand when the rules were written and
		// are all real errors (AER, DPC, ATA, NVMe, memory failure), so
		// that column is reported, not asserted.
		if incident && !raised {
			missed = append(missed, fmt.Sprintf("%v %s: %s", blk.Categories, blk.URL, strings.Join(blk.Lines[:min(3, len(blk.Lines))], " | ")))
		}
	}
	cats := make([]string, 0, len(per))
	for c := range per {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-12s | %-24s | %s\n", "category", "excerpts with a fault: raised", "excerpts without: some line flagged")
	var inc, rai int
	for _, c := range cats {
		p := per[c]
		inc += p.incidents
		rai += p.raised
		fmt.Fprintf(&b, "%-12s | %4d/%-4d %s          | %4d/%-4d\n", c, p.raised, p.incidents, pct(p.raised, p.incidents), p.flaggedQuiet, p.quiet)
	}
	fmt.Fprintf(&b, "%d block lines, %d flagged\n", lines, flagged)
	t.Log(b.String())
	for _, m := range missed {
		t.Logf("excerpt with a fault line but no fault: %s", m)
	}
	if got := float64(rai) / float64(inc); got < 0.98 {
		t.Errorf("%.1f%% of excerpts with a fault line raised a fault (%d/%d), floor 98%%", 100*got, rai, inc)
	}
}

// TestBackgroundLogs runs whole real logs: an H100 node's full boot (2,362
// lines, none of them a fault but three NIC ports left uncabled) and gpud's
// Xid captures. A line must raise a fault exactly when an independent,
// simple reading says so.
func TestBackgroundLogs(t *testing.T) {
	rs := builtin(t)
	for _, tc := range []struct {
		file string
		// expect returns the rule a line must raise, or "".
		expect func(line string) string
	}{
		{"gpud/h100-boot-dmesg.decode.iso.log.gz", func(l string) string {
			if strings.HasSuffix(l, ": Link down") {
				return "nic-link-down"
			}
			return ""
		}},
		{"gpud/dmesg-with-xid-119.log", xidOnly},
		{"gpud/dmesg-time-format-iso.log", xidOnly},
		{"gpud/memory-dmesg.decode.iso.log", xidOnly},
		{"gpud/xid-13-43-dmesg.decode.iso.log.gz", xidOnly},
	} {
		t.Run(tc.file, func(t *testing.T) {
			lines := readLines(t, tc.file)
			raised := 0
			for _, l := range lines {
				fs := rs.Match(record(stripPrefix(l)))
				want := tc.expect(l)
				switch {
				case want == "" && len(fs) > 0:
					t.Errorf("%q raised %s, want nothing", l, describe(fs))
				case want != "" && (len(fs) != 1 || fs[0].GetRule() != want):
					t.Errorf("%q raised %s, want one fault from %s", l, describe(fs), want)
				}
				raised += len(fs)
			}
			t.Logf("%d lines, %d faults", len(lines), raised)
		})
	}
}

func xidOnly(l string) string {
	if strings.Contains(l, "NVRM: Xid (") {
		return "nvidia-xid"
	}
	return ""
}

// TestXidDecodeOnRealLogs runs every NVIDIA Xid line of gpud's captures
// (669 lines from real nodes) and checks the class each is
// decoded to against NVIDIA's Xid catalog, read here independently of the
// rule file: the code is taken from the line with its own pattern and
// looked up in the catalog's description of it.
func TestXidDecodeOnRealLogs(t *testing.T) {
	rs := builtin(t)
	// Catalog descriptions of the codes these logs hold, and the class
	// each description means.
	catalog := map[string]struct{ description, class string }{
		"13":  {"Graphics Engine Exception (RESTART_APP)", "gpu.app"},
		"43":  {"GPU stopped processing (IGNORE: the app's channel was reset)", "gpu.app"},
		"48":  {"Double Bit ECC Error", "gpu.memory"},
		"63":  {"GPU memory remapping event", "gpu.memory"},
		"94":  {"Contained memory error", "gpu.memory"},
		"119": {"GSP RPC Timeout", "gpu.gsp"},
	}
	codeRE := regexp.MustCompile(`NVRM: Xid \(PCI:[0-9a-f:]+\): (\d+), `)
	seen := map[string]int{}
	for _, file := range []string{"gpud/dmesg-with-xid-119.log", "gpud/dmesg-time-format-iso.log", "gpud/memory-dmesg.decode.iso.log", "gpud/xid-13-43-dmesg.decode.iso.log.gz"} {
		for _, l := range readLines(t, file) {
			m := codeRE.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			want, ok := catalog[m[1]]
			if !ok {
				t.Fatalf("%s: Xid %s has no catalog entry in this test: %q", file, m[1], l)
			}
			seen[m[1]]++
			fs := rs.Match(record(stripPrefix(l)))
			if len(fs) != 1 || fs[0].GetFaultClass() != want.class || fs[0].GetEvidence().GetCaptures()["xid"] != m[1] {
				t.Errorf("%q (Xid %s, %s) raised %s, want one %s fault", l, m[1], want.description, describe(fs), want.class)
			}
		}
	}
	for code := range catalog {
		if seen[code] == 0 {
			t.Errorf("no line with Xid %s in the copied gpud logs", code)
		}
	}
	t.Logf("Xid lines decoded per code: %v", seen)
}

// TestThermalLinesInCorpus runs every line of the copied corpora that talks
// about temperature or throttling. A line must raise a fault exactly when
// a simple independent reading says it reports heat (throttling or a
// critical trip): boot notices, registrations, trip-point listings and a
// zone that cannot be read are not faults.
func TestThermalLinesInCorpus(t *testing.T) {
	rs := builtin(t)
	thermal := regexp.MustCompile(`(?i)thermal|throttl|temperature|overheat|prochot`)
	heat := regexp.MustCompile(`(?i)above threshold, cpu clock (?:is )?throttled|critical temperature reached`)
	var lines []string
	for _, r := range readJSONL[lkmlLine](t, "lkml_lines.jsonl.gz") {
		lines = append(lines, r.Line)
	}
	for _, b := range readJSONL[lkmlBlock](t, "lkml_blocks.jsonl.gz") {
		lines = append(lines, b.Lines...)
	}
	for _, f := range []string{"gpud/h100-boot-dmesg.decode.iso.log.gz", "gpud/dmesg-with-xid-119.log", "gpud/dmesg-time-format-iso.log", "gpud/memory-dmesg.decode.iso.log", "gpud/xid-13-43-dmesg.decode.iso.log.gz"} {
		lines = append(lines, readLines(t, f)...)
	}
	n := 0
	for _, l := range lines {
		if !thermal.MatchString(l) {
			continue
		}
		n++
		fs := rs.Match(record(stripPrefix(l)))
		var thermalFaults int
		for _, f := range fs {
			if c := f.GetFaultClass(); c == "cpu.thermal" || c == "node.thermal_shutdown" {
				thermalFaults++
			}
		}
		switch want := heat.MatchString(l); {
		case want && thermalFaults != 1:
			t.Errorf("%q raised %s, want one thermal fault", l, describe(fs))
		case !want && thermalFaults != 0:
			t.Errorf("%q raised %s, want no thermal fault", l, describe(fs))
		}
	}
	if n < 50 {
		t.Errorf("only %d thermal lines in the copied corpora", n)
	}
	t.Logf("%d lines about temperature or throttling", n)
}
