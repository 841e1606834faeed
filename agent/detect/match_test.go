package detect_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func severityName(s hwhealv1.Severity) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
}

func describe(fs []*hwhealv1.Fault) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "[%s %s %s part=%q] ", f.GetRule(), f.GetFaultClass(), severityName(f.GetSeverity()), f.GetPart().GetName())
	}
	return b.String()
}

// TestExamples checks every real example line: a fault line gives exactly
// one fault, of the expected rule, class, severity and part, with the
// expected captures, both as saved (with its dmesg/syslog prefix) and as the
// bare message the agent reads from /dev/kmsg; a look-alike gives nothing.
func TestExamples(t *testing.T) {
	rs := builtin(t)
	ex := loadExamples(t)
	for i, e := range ex.Positive {
		t.Run(fmt.Sprintf("positive/%s/%d", e.Rule, i), func(t *testing.T) {
			for _, msg := range []string{e.Line, stripPrefix(e.Line)} {
				fs := rs.Match(record(msg))
				if len(fs) != 1 {
					t.Fatalf("Match(%q) = %d faults %s, want exactly one from %s", msg, len(fs), describe(fs), e.Rule)
				}
				f := fs[0]
				if f.GetRule() != e.Rule || f.GetFaultClass() != e.Class || severityName(f.GetSeverity()) != e.Severity {
					t.Errorf("Match(%q) = %s, want [%s %s %s]", msg, describe(fs), e.Rule, e.Class, e.Severity)
				}
				if got := f.GetPart().GetName(); got != e.Part {
					t.Errorf("Match(%q): part name %q, want %q", msg, got, e.Part)
				}
				if got := f.GetPart().GetPciAddress(); got != e.PCIAddress {
					t.Errorf("Match(%q): pci address %q, want %q", msg, got, e.PCIAddress)
				}
				for k, want := range e.Captures {
					if got := f.GetEvidence().GetCaptures()[k]; got != want {
						t.Errorf("Match(%q): capture %s = %q, want %q", msg, k, got, want)
					}
				}
				if f.GetSummary() == "" || strings.Contains(f.GetSummary(), "{") {
					t.Errorf("Match(%q): summary %q is empty or unrendered", msg, f.GetSummary())
				}
				if f.GetEvidence().GetKernelLog().GetMessage() != msg {
					t.Errorf("Match(%q): evidence message %q", msg, f.GetEvidence().GetKernelLog().GetMessage())
				}
			}
		})
	}
	for i, e := range ex.Negative {
		t.Run(fmt.Sprintf("negative/%s/%d", e.Near, i), func(t *testing.T) {
			for _, msg := range []string{e.Line, stripPrefix(e.Line)} {
				if fs := rs.Match(record(msg)); len(fs) != 0 {
					t.Errorf("Match(%q) = %s, want nothing (%s)", msg, describe(fs), e.Why)
				}
			}
		})
	}
}

// TestEveryRuleHasRealExamples fails when a shipped rule has no real line it
// matches or no real look-alike it must leave alone, and when an example
// names a rule that does not exist.
func TestEveryRuleHasRealExamples(t *testing.T) {
	rs := builtin(t)
	ex := loadExamples(t)
	pos := map[string]int{}
	neg := map[string]int{}
	for _, e := range ex.Positive {
		pos[e.Rule]++
	}
	for _, e := range ex.Negative {
		neg[e.Near]++
	}
	names := map[string]bool{}
	for _, r := range rs.Rules() {
		if r.Kind != detect.KindPattern {
			continue // evaluated rules have theirs in evaluate_test.go
		}
		names[r.Name] = true
		if pos[r.Name] == 0 {
			t.Errorf("rule %s has no real example line in testdata/examples.yaml", r.Name)
		}
		if neg[r.Name] == 0 {
			t.Errorf("rule %s has no real look-alike (negative) line in testdata/examples.yaml", r.Name)
		}
	}
	for name := range pos {
		if !names[name] {
			t.Errorf("examples.yaml: positive example for unknown rule %q", name)
		}
	}
	for name := range neg {
		if !names[name] {
			t.Errorf("examples.yaml: negative example near unknown rule %q", name)
		}
	}
}

// TestExampleSources checks that example lines are what their source says:
// lines cited from the copied corpora must be found there verbatim, and
// every web source is listed in SOURCE.txt.
func TestExampleSources(t *testing.T) {
	ex := loadExamples(t)
	corpus := map[string]map[string]bool{} // source -> lines
	add := func(src, line string) {
		if corpus[src] == nil {
			corpus[src] = map[string]bool{}
		}
		corpus[src][line] = true
	}
	for _, r := range readJSONL[lkmlLine](t, "lkml_lines.jsonl.gz") {
		add("lkml:"+r.URL, r.Line)
	}
	for _, b := range readJSONL[lkmlBlock](t, "lkml_blocks.jsonl.gz") {
		for _, l := range b.Lines {
			add("lkml-block:"+b.URL, l)
		}
	}
	sourceTxt := strings.Join(readLines(t, "SOURCE.txt"), "\n")
	check := func(src, line string) {
		switch {
		case strings.HasPrefix(src, "lkml:"), strings.HasPrefix(src, "lkml-block:"):
			if !corpus[src][line] {
				t.Errorf("%q is not a line of %s in the copied corpus", line, src)
			}
		case strings.HasPrefix(src, "gpud/"), strings.HasPrefix(src, "npd/"):
			found := false
			for _, l := range readLines(t, src) {
				if l == line {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%q is not a line of testdata/%s", line, src)
			}
		case strings.HasPrefix(src, "url:"):
			if !strings.Contains(sourceTxt, strings.TrimPrefix(src, "url:")) {
				t.Errorf("source %s is not cited in testdata/SOURCE.txt", src)
			}
		default:
			t.Errorf("unknown source kind %q", src)
		}
	}
	for _, e := range ex.Positive {
		check(e.Source, e.Line)
	}
	for _, e := range ex.Negative {
		check(e.Source, e.Line)
	}
}

// TestMatchRecordFields checks how a record becomes evidence: level,
// facility, sequence, monotonic time, dictionary (copied, not shared) and
// the fault time.
func TestMatchRecordFields(t *testing.T) {
	rs := builtin(t)
	const msg = "nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0x10"
	wall := time.Date(2025, 1, 17, 15, 37, 28, 650514000, time.UTC)
	dict := map[string]string{"SUBSYSTEM": "nvme", "DEVICE": "c243:0"}
	for _, tc := range []struct {
		name            string
		rec             kernlog.Record
		level, facility uint32
		seq, usec       uint64
		wantTime        bool
		wantDict        bool
	}{
		{
			name:  "live kmsg record from the kernel",
			rec:   kernlog.Record{Level: 2, Facility: 0, Seq: 4711, Monotonic: 39971050 * time.Microsecond, HasMonotonic: true, Message: msg, Dict: dict},
			level: 2, facility: 0, seq: 4711, usec: 39971050, wantDict: true,
		},
		{
			name:  "record written from user space in a test",
			rec:   kernlog.Record{Level: 3, Facility: 1, Seq: 9, Monotonic: time.Second, HasMonotonic: true, Message: msg},
			level: 3, facility: 1, seq: 9, usec: 1000000,
		},
		{
			name:  "saved syslog line: wall time, no level, no facility",
			rec:   kernlog.Record{Level: -1, Facility: -1, Time: wall, Message: msg},
			level: 0, facility: 0, wantTime: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := rs.Match(tc.rec)
			if len(fs) != 1 {
				t.Fatalf("Match = %s, want one fault", describe(fs))
			}
			kl := fs[0].GetEvidence().GetKernelLog()
			if kl.GetLevel() != tc.level || kl.GetFacility() != tc.facility || kl.GetSequence() != tc.seq || kl.GetMonotonicUsec() != tc.usec || kl.GetMessage() != msg {
				t.Errorf("evidence = level %d facility %d seq %d usec %d msg %q; want %d %d %d %d",
					kl.GetLevel(), kl.GetFacility(), kl.GetSequence(), kl.GetMonotonicUsec(), kl.GetMessage(), tc.level, tc.facility, tc.seq, tc.usec)
			}
			if got := fs[0].GetTime(); tc.wantTime != (got != nil) || (got != nil && !got.AsTime().Equal(wall)) {
				t.Errorf("time = %v, want set=%v (%v)", got, tc.wantTime, wall)
			}
			if tc.wantDict {
				if kl.GetDictionary()["SUBSYSTEM"] != "nvme" || len(kl.GetDictionary()) != 2 {
					t.Errorf("dictionary = %v, want %v", kl.GetDictionary(), dict)
				}
				kl.GetDictionary()["SUBSYSTEM"] = "changed"
				if dict["SUBSYSTEM"] != "nvme" {
					t.Error("fault evidence shares the record's dictionary map")
				}
			} else if len(kl.GetDictionary()) != 0 {
				t.Errorf("dictionary = %v, want none", kl.GetDictionary())
			}
		})
	}
}

// TestMatchBenignDoesNotAllocate: a line that holds no rule's keyword must
// cost no allocation; at 10,000 lines/s that is what keeps the agent cheap.
func TestMatchBenignDoesNotAllocate(t *testing.T) {
	rs := builtin(t)
	var lines []string
	for _, l := range readLines(t, "gpud/h100-boot-dmesg.decode.iso.log.gz") {
		if msg := stripPrefix(l); len(rs.Match(record(msg))) == 0 {
			lines = append(lines, msg)
		}
	}
	if len(lines) < 2000 {
		t.Fatalf("only %d benign lines in the H100 boot log", len(lines))
	}
	i := 0
	allocs := testing.AllocsPerRun(len(lines), func() {
		rs.Match(record(lines[i%len(lines)]))
		i++
	})
	if allocs != 0 {
		t.Errorf("Match allocates %.3f times per benign line, want 0", allocs)
	}
}

// TestConcurrentMatch runs the matcher from several goroutines (the agent
// and the collector share one RuleSet); run with -race.
func TestConcurrentMatch(t *testing.T) {
	rs := builtin(t)
	ex := loadExamples(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range ex.Positive {
				if fs := rs.Match(record(e.Line)); len(fs) != 1 || fs[0].GetRule() != e.Rule {
					t.Errorf("concurrent Match(%q) = %s", e.Line, describe(fs))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestRulesView checks the read-only rule list the CLI prints.
func TestRulesView(t *testing.T) {
	rs := builtin(t)
	rules := rs.Rules()
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	for _, r := range rules {
		if r.Name == "" || r.Description == "" || r.Line == 0 || r.File == "" || r.Kind == "" {
			t.Errorf("incomplete rule view %+v", r)
		}
		if r.Kind == detect.KindAgent {
			continue // class, severity and part are the agent's
		}
		if r.Class == "" || r.Severity == hwhealv1.Severity_SEVERITY_UNSPECIFIED {
			t.Errorf("incomplete rule view %+v", r)
		}
		if r.Kind == detect.KindPattern && r.Part == hwhealv1.PartKind_PART_KIND_UNSPECIFIED {
			t.Errorf("pattern rule without a part: %+v", r)
		}
	}
	rules[0].Name = "mutated"
	if rs.Rules()[0].Name == "mutated" {
		t.Error("Rules returns a view that writes through to the rule set")
	}
	var _ detect.Rule = rules[0]
}
