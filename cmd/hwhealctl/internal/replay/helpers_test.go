package replay

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var (
	bbFailed  = filepath.Join("testdata", "backblaze", "failed_drives_history_slice.csv")
	bbHealthy = filepath.Join("testdata", "backblaze", "healthy_drives_history_slice.csv")
	bbDaily   = filepath.Join("testdata", "backblaze", "daily_2013-04-16_slice.csv")
)

func smartctlFile(name string) string { return filepath.Join("testdata", "smartctl_json", name) }

func readTestFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// growthRule is the second comparison rule: pending sectors (197) above
// zero, or reallocated sectors (5) above the drive's previous reading.
// It keeps the last count per node and drive.
type growthRule struct{ last map[string]float64 }

const growthClass = "disk.media_growth"

func newGrowthRule() Evaluator { return &growthRule{last: map[string]float64{}} }

func (g *growthRule) Observe(node string, o *hwhealv1.Observation) []*hwhealv1.Fault {
	key := node + "\x00" + o.GetPart().GetSerial() + "\x00" + o.GetPart().GetName()
	var evidence []*hwhealv1.Sample
	for _, s := range o.GetSamples() {
		switch s.GetName() {
		case smart.SampleATAPending:
			if s.GetValue() > 0 {
				evidence = append(evidence, s)
			}
		case smart.SampleATAReallocated:
			if prev, ok := g.last[key]; ok && s.GetValue() > prev {
				evidence = append(evidence, &hwhealv1.Sample{Name: s.GetName() + "_previous", Value: prev}, s)
			}
			g.last[key] = s.GetValue()
		}
	}
	if len(evidence) == 0 {
		return nil
	}
	return []*hwhealv1.Fault{{FaultClass: growthClass, Severity: hwhealv1.Severity_SEVERITY_WARNING, Part: o.GetPart(),
		Rule: "pending-or-reallocated-growing", Time: o.GetTime(), Evidence: &hwhealv1.Evidence{Samples: evidence}}}
}

// both raises the baseline's and the growth rule's faults: two classes.
type both struct{ g Evaluator }

func (b both) Observe(node string, o *hwhealv1.Observation) []*hwhealv1.Fault {
	return append(BaselineRule{}.Observe(node, o), b.g.Observe(node, o)...)
}

// testMatcher is a small stand-in for the shipped kernel-log rules, so
// that the harness's arithmetic is checked against counts worked out by
// hand on testdata/lkml_sample.jsonl. "AER: enabled with IRQ" is a boot
// line matched on purpose, to have benign lines flagged, and the pcie
// "Corrected" line is given a memory class on purpose, to have a fault
// line raise the wrong family.
var testRules = []struct {
	re    *regexp.Regexp
	class string
}{
	{regexp.MustCompile(`I/O error, dev \w+`), "disk.io_error"},
	{regexp.MustCompile(`ata\d+\.\d+: (?:failed command|exception Emask)`), "disk.ata_error"},
	{regexp.MustCompile(`Sense Key : Aborted Command|Add\. Sense: Unaligned write`), "disk.scsi_error"},
	{regexp.MustCompile(`nvme nvme\d+: I/O \d+ QID \d+ timeout`), "disk.nvme_timeout"},
	{regexp.MustCompile(`severity=Corrected, type=Physical Layer`), "memory.ce"},
	{regexp.MustCompile(`severity=Corrected, type=Data Link Layer|PCIe Bus Error: severity=Corrected,$`), "pcie.aer_corrected"},
	{regexp.MustCompile(`AER: enabled with IRQ`), "pcie.boot"},
	{regexp.MustCompile(`EDAC .*MEMORY ERROR`), "memory.ce"},
	{regexp.MustCompile(`Machine check events logged`), "cpu.mce"},
}

func testMatch(line string) []*hwhealv1.Fault {
	var out []*hwhealv1.Fault
	for _, r := range testRules {
		if r.re.MatchString(line) {
			out = append(out, &hwhealv1.Fault{FaultClass: r.class})
		}
	}
	return out
}
