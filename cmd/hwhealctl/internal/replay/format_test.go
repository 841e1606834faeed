package replay

import (
	"testing"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

func TestParseFormat(t *testing.T) {
	for _, f := range Formats {
		got, err := ParseFormat(string(f))
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
		kf, ok := f.Kernlog()
		if ok != (f != FormatSmartctl && f != FormatBackblaze) || ok && kf.String() != string(f) {
			t.Errorf("%q.Kernlog() = %v, %v", f, kf, ok)
		}
	}
	if _, err := ParseFormat("csv"); err == nil {
		t.Error("ParseFormat(csv) succeeded")
	}
	if kf, _ := FormatAuto.Kernlog(); kf != kernlog.FormatAuto {
		t.Errorf("auto is kernel log format %v", kf)
	}
}

// TestDetectFormat tells the copied real files apart by their first bytes,
// as Replay sees them (at most a few KiB).
func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		want Format
	}{
		{"a.json", readTestFile(t, smartctlFile("smart-fail2.json")), FormatSmartctl},
		{"stdin", readTestFile(t, smartctlFile("HGST_HMS5C4040BLE640.json"))[:headSize], FormatSmartctl},
		{"stdin", readTestFile(t, smartctlFile("04_malformed.json")), FormatSmartctl},
		{"05_empty.json", nil, FormatSmartctl},
		{"scan.JSON", readTestFile(t, smartctlFile("smartctl_scan_nvme.json")), FormatSmartctl},
		{"stdin", readTestFile(t, bbFailed)[:200], FormatBackblaze},
		{"stdin", append([]byte("\xef\xbb\xbf"), readTestFile(t, bbDaily)...), FormatBackblaze},
		{"x.csv", []byte("date,serial_number,model\n"), FormatAuto},
		{"kern.log", []byte("Dec 10 18:58:49 kernel: I/O error, dev sda, sector 16779296\n"), FormatAuto},
		{"dmesg", []byte("[   16.717702] ata2.00: failed command: WRITE FPDMA QUEUED\n"), FormatAuto},
		{"kmsg", []byte("3,1234,5678,-;nvme nvme0: I/O 81 QID 1 timeout\n"), FormatAuto},
		{"stdin", []byte("{\"other\": 1}"), FormatAuto},
		{"stdin", nil, FormatAuto},
	} {
		if got := DetectFormat(tc.name, tc.head); got != tc.want {
			t.Errorf("DetectFormat(%q, %.40q) = %q, want %q", tc.name, tc.head, got, tc.want)
		}
	}
}
