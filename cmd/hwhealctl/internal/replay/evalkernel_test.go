package replay

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func readDisputes(t *testing.T) *Disputes {
	t.Helper()
	d, err := ReadDisputesFile("testdata/label_disputes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type counts struct{ faults, benign, tp, fp, fn int }

func countsOf(k KernelFigures) counts { return counts{k.Faults, k.Benign, k.TP, k.FP, k.FN} }

func byName(ks []KernelFigures) map[string]counts {
	m := map[string]counts{}
	for _, k := range ks {
		m[k.Name] = countsOf(k)
	}
	return m
}

// TestEvalKernelLog runs the 39 real lines of testdata/lkml_sample.jsonl
// through testMatch, with the project's label disputes. The expected
// counts were worked out from the file with a separate script applying
// the same reading (first dispute whose label and pattern apply decides;
// detail and not-log lines are not counted): 8 lines excluded; the
// Unaligned-write line is disputed benign and matched (scsi_blk_io FP);
// two nvme "fault" lines are disputed benign; all four edac fault lines
// are detail lines of a report; "AER: enabled" lines are flagged on
// purpose; the pcie Physical Layer line raises only memory.ce.
func TestEvalKernelLog(t *testing.T) {
	rep, err := EvalKernelLog([]string{"testdata/lkml_sample.jsonl"}, testMatch, KernelOptions{Disputes: readDisputes(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 39 || rep.Excluded != 8 {
		t.Errorf("lines %d excluded %d", rep.Lines, rep.Excluded)
	}
	check := func(what string, got, want map[string]counts) {
		t.Helper()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s %s: %+v, want %+v", what, k, got[k], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("raw category", byName(rep.RawCategories), map[string]counts{
		"ata": {4, 3, 3, 0, 1}, "scsi_blk_io": {4, 0, 3, 0, 1}, "nvme": {4, 3, 2, 0, 2},
		"pcie_aer": {4, 3, 3, 2, 1}, "edac": {4, 3, 4, 0, 0}, "mce": {4, 3, 2, 0, 2},
	})
	check("category", byName(rep.Categories), map[string]counts{
		"ata": {4, 3, 3, 0, 1}, "scsi_blk_io": {2, 1, 2, 1, 0}, "nvme": {2, 5, 2, 0, 0},
		"pcie_aer": {3, 3, 3, 2, 0}, "edac": {0, 3, 0, 0, 0}, "mce": {2, 3, 2, 0, 0},
	})
	check("family", byName(rep.Families), map[string]counts{
		"disk": {8, 18, 7, 1, 1}, "pcie": {3, 18, 2, 2, 1}, "memory": {0, 18, 0, 1, 0}, "cpu": {2, 18, 2, 0, 0},
	})
	check("class", byName(rep.Classes), map[string]counts{
		"disk.ata_error": {3, 18, 3, 0, 0}, "disk.scsi_error": {1, 18, 1, 1, 0}, "disk.io_error": {1, 18, 1, 0, 0},
		"disk.nvme_timeout": {2, 18, 2, 0, 0}, "pcie.aer_corrected": {2, 18, 2, 0, 0}, "memory.ce": {1, 18, 1, 0, 0},
		"pcie.boot": {0, 18, 0, 2, 0}, "cpu.mce": {2, 18, 2, 0, 0},
	})
	if got := countsOf(rep.Total); got != (counts{13, 18, 12, 3, 1}) {
		t.Errorf("total %+v", got)
	}
	if got := countsOf(rep.RawTotal); got != (counts{24, 15, 17, 2, 7}) {
		t.Errorf("raw total %+v", got)
	}
	if r := rep.Total; *r.Recall != 12.0/13 || *r.Precision != 12.0/15 || *r.FlaggedRate != 3.0/18 {
		t.Errorf("total ratios %v %v %v", *r.Recall, *r.Precision, *r.FlaggedRate)
	}
	for _, c := range rep.Classes {
		if c.Recall != nil {
			t.Errorf("class %s has a recall", c.Name)
		}
	}
	if len(rep.Missed) != 1 || !strings.Contains(rep.Missed[0], "revalidation failed") || len(rep.Flagged) != 3 {
		t.Errorf("missed %q flagged %q", rep.Missed, rep.Flagged)
	}
	// The sample hits 7 of the file's dispute entries; the rest are stale
	// for this slice, and reported as such.
	if n := len(rep.UnusedDisputes); n != 31-7 {
		t.Errorf("%d unused disputes", n)
	}

	t.Run("no disputes, gzip, directory", func(t *testing.T) {
		dir := t.TempDir()
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(readTestFile(t, "testdata/lkml_sample.jsonl"))
		zw.Close()
		if err := os.WriteFile(filepath.Join(dir, "lines.jsonl.gz"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		raw, err := EvalKernelLog([]string{dir}, testMatch, KernelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if raw.Excluded != 0 || countsOf(raw.Total) != countsOf(rep.RawTotal) || len(raw.Files) != 1 || len(raw.Groups) != 0 {
			t.Errorf("without disputes: files %v total %+v groups %d, want the raw %+v", raw.Files, countsOf(raw.Total), len(raw.Groups), countsOf(rep.RawTotal))
		}
		// A directory's block files are read too, and a broken one says
		// where it is broken.
		if err := os.WriteFile(filepath.Join(dir, "x.blocks.jsonl"), []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = EvalKernelLog([]string{dir}, testMatch, KernelOptions{})
		if err == nil || !strings.Contains(err.Error(), "x.blocks.jsonl: line 1: want lines") {
			t.Errorf("broken block file: %v", err)
		}
	})
}

// TestReadLabeled reads both label spellings and rejects records without
// a label.
func TestReadLabeled(t *testing.T) {
	in := `{"category":"nvme","line":"nvme nvme2: I/O 81 QID 1 timeout","fault":true,"url":"u"}` + "\n\n" +
		`{"category":"ata","line":"ata5: SATA link up","fault_keyword":false,"lore_url":"l"}` + "\n"
	var got []LabeledLine
	if err := ReadLabeled(strings.NewReader(in), "x", func(l LabeledLine) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Fault || got[0].URL != "u" || got[1].Fault || got[1].URL != "l" || got[1].Row != 3 {
		t.Errorf("%+v", got)
	}
	for _, bad := range []string{`{"category":"ata","line":"x"}`, `{"line":"x","fault":true}`, `{"category":`} {
		if err := ReadLabeled(strings.NewReader(bad), "x.jsonl", func(LabeledLine) error { return nil }); err == nil || !strings.HasPrefix(err.Error(), "x.jsonl: line 1") {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}

// TestReadDisputes parses the project's file and rejects the mistakes
// agent/detect's corpus test rejects.
func TestReadDisputes(t *testing.T) {
	d := readDisputes(t)
	if len(d.list) != 31 {
		t.Errorf("%d entries", len(d.list))
	}
	if v := d.Adjust("sd 1:0:0:0: [sda] tag#17 Add. Sense: Unaligned write command", true); v != VerdictBenign {
		t.Errorf("unaligned write: %q", v)
	}
	if v := d.Adjust("sd 1:0:0:0: [sda] tag#17 Add. Sense: Unaligned write command", false); v != VerdictBenign {
		t.Errorf("benign label kept: %q", v)
	}
	if v := d.Adjust("ata1.00: status: { DRDY ERR }", true); v != "" {
		t.Errorf("detail line: %q", v)
	}
	if _, err := ReadDisputesFile("testdata/none.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	var nilD *Disputes
	if nilD.Adjust("anything", true) != VerdictFault || nilD.Unused() != nil {
		t.Error("nil Disputes changes labels")
	}
	for _, tc := range []struct{ in, want string }{
		{"- match: 'a'\n  label: fault\n  verdict: benign\n", "no reason"},
		{"- match: 'a'\n  label: fault\n  verdict: fault\n  reason: r\n", "agrees"},
		{"- match: 'a'\n  label: maybe\n  verdict: benign\n  reason: r\n", "label"},
		{"- match: 'a'\n  label: fault\n  verdict: wrong\n  reason: r\n", "verdict"},
		{"- match: '('\n  label: fault\n  verdict: benign\n  reason: r\n", "missing closing"},
		{"- match: 'a'\n  lable: fault\n", "field lable not found"},
	} {
		if _, err := ReadDisputes(strings.NewReader(tc.in), "d.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "d.yaml: ") {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestKernelLineMatcher: the matcher sees the message without the
// prefixes saved logs put before it, whichever format the line is in.
func TestKernelLineMatcher(t *testing.T) {
	var seen []string
	m := KernelLineMatcher(func(r kernlog.Record) []*hwhealv1.Fault {
		seen = append(seen, r.Message)
		return []*hwhealv1.Fault{{FaultClass: "x"}}
	}, kernlog.Parser{})
	for _, line := range []string{
		"[   98.412686] nvme nvme2: I/O 81 QID 1 timeout",
		"Aug 26 15:00:56 testhost kernel: nvme nvme2: I/O 81 QID 1 timeout",
		"2025-04-11T20:12:38.513032-07:00 host kernel: nvme nvme2: I/O 81 QID 1 timeout",
		"[Sun Feb 23 16:24:18 2025] nvme nvme2: I/O 81 QID 1 timeout",
		"4,1234,98412686,-;nvme nvme2: I/O 81 QID 1 timeout",
		"nvme nvme2: I/O 81 QID 1 timeout",
	} {
		seen = seen[:0]
		if fs := m(line); len(fs) != 1 || len(seen) != 1 || seen[0] != "nvme nvme2: I/O 81 QID 1 timeout" {
			t.Errorf("%q: matcher saw %q", line, seen)
		}
	}
	if fs := m("   "); fs != nil {
		t.Errorf("blank line raised %v", fs)
	}
}
