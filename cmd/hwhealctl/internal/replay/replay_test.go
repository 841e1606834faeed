package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/pkg/kernlog"
	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// recordMatch is testMatch as a kernel-record matcher, with the record as
// evidence the way agent/detect's rules attach it.
func recordMatch(rec kernlog.Record) []*hwhealv1.Fault {
	fs := testMatch(rec.Message)
	for _, f := range fs {
		f.Part = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda"}
		f.Evidence = &hwhealv1.Evidence{KernelLog: &hwhealv1.KernelLogRecord{Message: rec.Message}}
	}
	return fs
}

// kernelLines are real lines of testdata/lkml_sample.jsonl in the formats
// they were quoted in, with a blank line.
const kernelLines = "Dec 10 18:58:49 kernel: I/O error, dev sda, sector 16779296 op 0x0:(READ) flags 0x83700 phys_seg 12 prio class 2\n" +
	"[    6.977799] ata5: SATA link up 6.0 Gbps (SStatus 133 SControl 300)\n" +
	"\n" +
	"[   98.412686] nvme nvme2: I/O 81 QID 1 timeout\n"

// TestReplay replays every kind of input at once, formats detected: a
// kernel log, smartctl files (a healthy drive, two with bad sectors, the
// corpus's broken file) and Backblaze CSV from a file and standard input.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	klog := filepath.Join(dir, "kern.log")
	if err := os.WriteFile(klog, []byte(kernelLines), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []string{
		klog,
		smartctlFile("HGST_HMS5C4040BLE640.json"),
		smartctlFile("smart-fail2.json"),
		smartctlFile("04_malformed.json"),
		smartctlFile("smart-ata-date2.json"),
		"-", // the failed drives' history
		bbHealthy,
	}
	rules := Rules{Match: recordMatch, NewEvaluator: func() Evaluator { return BaselineRule{} }}
	var recs []Record
	emit := func(r Record) error { recs = append(recs, r); return nil }
	opt := Options{Stdin: bytes.NewReader(readTestFile(t, bbFailed)), KeepGoing: true}
	st, err := Replay(files, rules, opt, emit)
	if err != nil {
		t.Fatal(err)
	}
	// Baseline faults: one per drive reading with a counter above zero
	// (203 Backblaze rows, see TestEvalBackblaze, and two smartctl files).
	if st.Records != 3 || st.Observations != 3+412 || st.Faults != 2+2+203 || st.Drives != 16 || st.Duplicates != 0 ||
		st.Skipped["empty"] != 1 || st.Skipped["smartctl_malformed"] != 1 || len(st.Errors) != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(recs) != st.Faults {
		t.Fatalf("%d records, %d faults", len(recs), st.Faults)
	}
	if r := recs[0]; r.File != klog || r.Line != 1 || r.Format != FormatSyslog || r.Class != "disk.io_error" || r.Part.Name != "sda" ||
		!strings.HasPrefix(r.Message, "I/O error, dev sda") || !strings.HasSuffix(r.Time, "T18:58:49Z") {
		t.Errorf("kernel record %+v", r)
	}
	if r := recs[1]; r.Line != 4 || r.Format != FormatDmesg || r.Class != "disk.nvme_timeout" || r.MonotonicSec == nil || *r.MonotonicSec != 98.412686 {
		t.Errorf("kernel record %+v", r)
	}
	got, err := json.Marshal(recs[2])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"file":"testdata/smartctl_json/smart-fail2.json","line":0,"class":"disk.media","severity":"warning","rule":"baseline-smart-raw-nonzero",` +
		`"part":{"kind":"disk","name":"sdc","serial":"MSK423Y20S3HBC","model":"Hitachi HDS721050DLE630"},` +
		`"summary":"SMART error counters above zero: ata_reallocated_sectors=1975, ata_pending_sectors=8","time":"2021-11-16T05:18:38Z",` +
		`"format":"smartctl-json","samples":[{"name":"ata_reallocated_sectors","value":1975},{"name":"ata_pending_sectors","value":8}]}`
	if string(got) != want {
		t.Errorf("smartctl record\n got %s\nwant %s", got, want)
	}
	if r := recs[3]; r.File != smartctlFile("smart-ata-date2.json") || r.Part.Name != "sdb" || len(r.Samples) != 3 {
		t.Errorf("smartctl record %+v", r)
	}
	// Backblaze: the drives in serial order, each drive's days in order.
	var prev Record
	for i, r := range recs[4:] {
		if r.Format != FormatBackblaze || r.Part.Serial == "" || r.Part.Kind != "disk" || r.Line < 2 || len(r.Samples) == 0 {
			t.Fatalf("backblaze record %d: %+v", i, r)
		}
		if i > 0 && (r.Part.Serial < prev.Part.Serial || r.Part.Serial == prev.Part.Serial && r.Time <= prev.Time) {
			t.Fatalf("record %d %s %s after %s %s", i, r.Part.Serial, r.Time, prev.Part.Serial, prev.Time)
		}
		prev = r
	}
	// 6XW001M5 (healthy, 325 reallocated sectors from its first day, line
	// 162 of its file) sorts first.
	if r := recs[4]; r.File != bbHealthy || r.Part.Serial != "6XW001M5" || r.Time != "2013-04-10T00:00:00Z" || r.Line != 162 {
		t.Errorf("first backblaze record %+v", r)
	}
	fromStdin := 0
	for _, r := range recs[4:] {
		if r.File == "-" {
			fromStdin++
		}
	}
	if fromStdin == 0 || fromStdin == len(recs)-4 {
		t.Errorf("%d of %d Backblaze faults from standard input", fromStdin, len(recs)-4)
	}

	t.Run("stops on a broken smartctl file", func(t *testing.T) {
		_, err := Replay([]string{smartctlFile("05_empty.json")}, rules, Options{}, emit)
		if !errors.Is(err, smart.ErrMalformed) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("forced format", func(t *testing.T) {
		// Read as kmsg, the kernel log's lines are all malformed.
		st, err := Replay([]string{klog}, rules, Options{Format: FormatKmsg}, func(Record) error { return nil })
		if err != nil || st.Records != 0 || st.Skipped["malformed"] != 3 {
			t.Errorf("stats %+v err %v", st, err)
		}
		// Read as smartctl JSON, it is malformed JSON.
		if _, err := Replay([]string{klog}, rules, Options{Format: FormatSmartctl}, emit); !errors.Is(err, smart.ErrMalformed) {
			t.Errorf("err %v", err)
		}
		if _, err := Replay([]string{klog}, rules, Options{Format: "xml"}, emit); err == nil {
			t.Error("format xml accepted")
		}
	})
	t.Run("no rules", func(t *testing.T) {
		st, err := Replay(files[:3], Rules{}, Options{}, func(Record) error { t.Error("emitted"); return nil })
		if err != nil || st.Records != 3 || st.Observations != 2 || st.Faults != 0 {
			t.Errorf("stats %+v err %v", st, err)
		}
	})
	t.Run("emit error stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		_, err := Replay([]string{bbHealthy}, rules, Options{}, func(Record) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("err %v after %d", err, n)
		}
	})
	t.Run("stdin missing", func(t *testing.T) {
		if _, err := Replay([]string{"-"}, rules, Options{}, emit); err == nil {
			t.Error("no error")
		}
	})
}

// TestWriteJSONLine: one object a line, that decodes back.
func TestWriteJSONLine(t *testing.T) {
	var b bytes.Buffer
	r := Record{File: "f", Line: 3, Class: "disk.media", Part: Part{Kind: "disk", Serial: "S"}, Format: FormatBackblaze, Mode: "shadow"}
	if err := WriteJSONLine(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 || !strings.HasSuffix(b.String(), "\n") {
		t.Errorf("%q", b.String())
	}
	var back Record
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Part != r.Part || back.Mode != "shadow" || back.Format != FormatBackblaze {
		t.Errorf("%+v %v", back, err)
	}
}

// TestFaultRecordShadow: a shadow rule's fault says so; an enforced one
// says nothing.
func TestFaultRecordShadow(t *testing.T) {
	f := &hwhealv1.Fault{FaultClass: "x", Severity: hwhealv1.Severity_SEVERITY_CRITICAL, Mode: hwhealv1.RuleMode_RULE_MODE_SHADOW,
		Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_PCI, PciAddress: "0000:00:1f.6"}}
	r := FaultRecord("f", 1, FormatDmesg, f)
	if r.Mode != "shadow" || r.Severity != "critical" || r.Part.Kind != "pci" || r.Part.PCIAddress != "0000:00:1f.6" {
		t.Errorf("%+v", r)
	}
	f.Mode = hwhealv1.RuleMode_RULE_MODE_ENFORCE
	if r := FaultRecord("f", 1, FormatDmesg, f); r.Mode != "" {
		t.Errorf("mode %q", r.Mode)
	}
}
