package replay

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestReadSmartctl reads real smartctl --json files: part, time (the
// file's local_time) and the counters the rules read.
func TestReadSmartctl(t *testing.T) {
	for _, tc := range []struct {
		file                 string
		name, serial, model  string
		timeT                int64
		kind                 hwhealv1.PartKind
		realloc, pending     float64
		passed, hasCounters  bool
		nvmeCriticalWarnings bool
	}{
		{file: "HGST_HMS5C4040BLE640.json", name: "sda", serial: "PL01234567890J", model: "HGST HMS5C4040BLE640", timeT: 1673282309, passed: true, hasCounters: true},
		{file: "smart-fail2.json", name: "sdc", serial: "MSK423Y20S3HBC", model: "Hitachi HDS721050DLE630", timeT: 1637039918, realloc: 1975, pending: 8, hasCounters: true},
		{file: "smart-ata-date2.json", name: "sdb", serial: "9RK1XXXX", model: "WDC WD140EDFZ-11A0VA0", timeT: 1637039918, realloc: 10, pending: 10, passed: true, hasCounters: true},
		{file: "nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json", name: "nvme0", serial: "REDACTED", model: "Samsung SSD 970 EVO Plus 250GB", timeT: 1234567890, passed: true, nvmeCriticalWarnings: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := smartctlFile(tc.file)
			o, err := ReadSmartctl(bytes.NewReader(readTestFile(t, path)), path)
			if err != nil {
				t.Fatal(err)
			}
			p := o.GetPart()
			if p.GetKind() != hwhealv1.PartKind_PART_KIND_DISK || p.GetName() != tc.name || p.GetSerial() != tc.serial || p.GetModel() != tc.model {
				t.Errorf("part %v", p)
			}
			if !o.GetTime().AsTime().Equal(time.Unix(tc.timeT, 0)) || o.GetSource() != smart.ObservationSource {
				t.Errorf("time %v source %q", o.GetTime().AsTime(), o.GetSource())
			}
			s := sampleMap(o)
			if s[smart.SampleSmartPassed] != b2f(tc.passed) || s[smart.SampleReadBySmartctl] != 1 {
				t.Errorf("samples %v", s)
			}
			if _, ok := s[smart.SampleATAReallocated]; ok != tc.hasCounters || s[smart.SampleATAReallocated] != tc.realloc || s[smart.SampleATAPending] != tc.pending {
				t.Errorf("reallocated %v pending %v", s[smart.SampleATAReallocated], s[smart.SampleATAPending])
			}
			if _, ok := s[smart.SampleNVMeCriticalWarning]; ok != tc.nvmeCriticalWarnings {
				t.Errorf("nvme critical warning sample present: %v", ok)
			}
		})
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestReadSmartctlBroken: the corpus's two broken files, a real file cut
// short at several places, `smartctl --scan` output and a kernel log all
// fail with an error that names the file and says what is wrong.
func TestReadSmartctlBroken(t *testing.T) {
	good := readTestFile(t, smartctlFile("smart-fail2.json"))
	for _, tc := range []struct {
		name string
		in   []byte
		is   error
		want string
	}{
		{"04_malformed.json", readTestFile(t, smartctlFile("04_malformed.json")), smart.ErrMalformed, "at offset 485 (line 29, column 3): invalid character 'h'"},
		{"05_empty.json", readTestFile(t, smartctlFile("05_empty.json")), smart.ErrMalformed, "empty input"},
		{"cut at 1 byte", good[:1], smart.ErrMalformed, "truncated"},
		{"cut mid-way", good[:len(good)/2], smart.ErrMalformed, "truncated"},
		{"cut before the last brace", good[:bytes.LastIndexByte(good, '}')], smart.ErrMalformed, "truncated"},
		{"smartctl_scan_nvme.json", readTestFile(t, smartctlFile("smartctl_scan_nvme.json")), smart.ErrNoDevice, "--scan"},
		{"kernel log", []byte("[   16.717702] ata2.00: failed command: WRITE FPDMA QUEUED\n"), smart.ErrMalformed, "offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ReadSmartctl(bytes.NewReader(tc.in), "in/"+tc.name)
			if err == nil || o != nil {
				t.Fatalf("observation %v, err %v", o, err)
			}
			if !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), "in/"+tc.name+": smartctl JSON") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %v naming the file and %q", err, tc.is, tc.want)
			}
		})
	}
}
