package smart

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSmartctlDrives pins the values read from a few drives of each
// protocol; every expected value was read off the JSON file by hand.
func TestSmartctlDrives(t *testing.T) {
	type want struct {
		protocol   Protocol
		device     string
		devType    string
		model      string
		serial     string
		wwn        string
		firmware   string
		capacity   uint64
		poh        uint64
		tempC      int
		passed     *bool
		exit       ExitStatus
		messages   int
		findings   []string
		check      func(t *testing.T, r *Report)
		noFindings bool
	}
	for _, tc := range []struct {
		file string
		want want
	}{
		{"scrutiny/webapp/backend/pkg/models/testdata/smart-fail2.json", want{
			protocol: ProtocolATA, device: "/dev/sdc", devType: "usbjmicron",
			model: "Hitachi HDS721050DLE630", serial: "MSK423Y20S3HBC", firmware: "MS1OA650",
			// naa 5, oui 3274 (0x000cca, HGST), id 15028879784 (0x37fca81a8)
			wwn: "0x5000cca37fca81a8", capacity: 500107862016, poh: 65592, tempC: 25,
			passed: ptr(false), exit: ExitDiskFailing | ExitPrefailFailing | ExitErrorLog | ExitSelfTestErrors,
			findings: []string{CodeOverallFailed, CodeATAPrefailFailingNow, CodeATAReallocated, CodeATAPending, CodeATASelfTestFailed, CodeATAErrorLog},
			check: func(t *testing.T, r *Report) {
				a, ok := r.ATA.Attr(5)
				if !ok || a.Value != 1 || a.Worst != 1 || a.Threshold != 5 || a.Raw != 1975 || !a.Prefailure || !a.FailedNow || !a.FailedPast || a.Name != "Reallocated_Sector_Ct" {
					t.Errorf("attribute 5 = %+v", a)
				}
				if a, _ := r.ATA.Attr(3); a.Raw != 17192124596 || a.RawString != "180 (Average 187)" {
					t.Errorf("attribute 3 raw %d %q", a.Raw, a.RawString)
				}
				if r.ATA.ErrorLogCount != 56 || len(r.ATA.ErrorLog) != 5 || r.ATA.ErrorLog[0].LifetimeHours != 61957 ||
					r.ATA.ErrorLog[0].Description != "Error: IDNF at LBA = 0x06f57ae8 = 116751080" {
					t.Errorf("error log %d %+v", r.ATA.ErrorLogCount, r.ATA.ErrorLog)
				}
				if r.ATA.SelfTestErrors != 3 || r.ATA.Revision != 16 {
					t.Errorf("self-test errors %d, revision %d", r.ATA.SelfTestErrors, r.ATA.Revision)
				}
			},
		}},
		{"scrutiny/webapp/backend/pkg/models/testdata/smart-megaraid0.json", want{
			protocol: ProtocolATA, device: "/dev/sda", devType: "sat+megaraid,0", model: "WD4000FYYX",
			serial: "XXXXXXXXXXXX", firmware: "00.0D1K4", wwn: "0x50014ee26101eee7", capacity: 4000787030016,
			passed: ptr(true), exit: ExitCommandFailed, messages: 1, poh: 37787, tempC: 36, noFindings: true,
			check: func(t *testing.T, r *Report) {
				m := r.Smartctl.Messages[0]
				if m.Severity != "warning" || m.Text != "Warning: This result is based on an Attribute check." {
					t.Errorf("message %+v", m)
				}
				if r.Smartctl.Version != "7.1" {
					t.Errorf("version %q", r.Smartctl.Version)
				}
			},
		}},
		{"smartctl_exporter/testdata/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json", want{
			protocol: ProtocolNVMe, device: "/dev/nvme0", devType: "nvme", model: "SAMSUNG MZWLL3T2HAJQ-00005",
			serial: "REDACTED", firmware: "REDACTED", capacity: 3200631791616, poh: 18376, tempC: 40,
			passed: ptr(false), exit: ExitDiskFailing,
			findings: []string{CodeNVMeCriticalWarning + ".volatile_backup"},
			check: func(t *testing.T, r *Report) {
				n := r.NVMe
				if n.CriticalWarning != NVMeWarnVolatileBackup || n.AvailableSpare != 100 || n.AvailableSpareThreshold != 10 ||
					n.DataUnitsRead != 146935678 || n.DataUnitsWritten != 147556750 || n.HostReadCommands != 3927325763 ||
					n.UnsafeShutdowns != 4 || n.PowerCycles != 6 || n.ControllerBusyMinutes != 93891 ||
					!slices.Equal(n.TemperatureSensorsC, []int{40, 40, 35}) {
					t.Errorf("NVMe health %+v", n)
				}
			},
		}},
		{"netdata/type-nvme/device-nvme1.json", want{
			protocol: ProtocolNVMe, device: "/dev/nvme1", devType: "nvme", model: "Seagate FireCuda 530 ZP4000GM30023",
			// eui64 oui 6584743 (0x6479a7), ext_id 553497146765 (0x80df00358d)
			wwn: "eui.6479a780df00358d", serial: "REDACTED", firmware: "REDACTED",
			capacity: 4000787030016, poh: 4733, tempC: 36, passed: ptr(true), noFindings: true,
			check: func(t *testing.T, r *Report) {
				if r.NVMe.NumErrLogEntries != 20 || r.NVMe.AvailableSpareThreshold != 5 || r.NVMe.MediaErrors != 0 {
					t.Errorf("NVMe health %+v", r.NVMe)
				}
			},
		}},
		{"smartctl_exporter/testdata/HITACHI_H109060SESUN600G_10.json", want{
			protocol: ProtocolSCSI, device: "/dev/sdb", devType: "scsi", model: "HITACHI H109060SESUN600G",
			serial: "REDACTED", firmware: "A31A", wwn: "0x1234567890abcdef", capacity: 600127266816,
			poh: 22364, tempC: 26, passed: ptr(true), noFindings: true,
			check: func(t *testing.T, r *Report) {
				s := r.SCSI
				if s.GrownDefects == nil || *s.GrownDefects != 0 || s.Read == nil || s.Read.TotalCorrected != 40247 ||
					s.Write.TotalCorrected != 26762907 || s.Verify.GigabytesProcessed != 1.525 || s.PercentageUsedEndurance != nil {
					t.Errorf("SCSI health %+v", s)
				}
				if n, ok := s.UncorrectedErrors(); !ok || n != 0 {
					t.Errorf("uncorrected %d %v", n, ok)
				}
			},
		}},
		{"scrutiny/webapp/backend/pkg/models/testdata/smart-scsi2.json", want{
			// smartctl 6.7's experimental JSON: vendor/product/revision
			// instead of the scsi_ names of 7.x.
			protocol: ProtocolSCSI, device: "/dev/sdb", devType: "scsi", model: "SEAGATE ST1200MM0088",
			serial: "Z4028VRY0000C810BZXB", firmware: "N004", capacity: 1200243695616, poh: 5675, tempC: 31,
			passed: ptr(true), noFindings: true,
			check: func(t *testing.T, r *Report) {
				if r.Smartctl.Version != "6.7" || r.Firmware != "N004" || r.SCSI == nil || r.SCSI.GrownDefects == nil {
					t.Errorf("version %q firmware %q SCSI %+v", r.Smartctl.Version, r.Firmware, r.SCSI)
				}
			},
		}},
		{"scrutiny/webapp/backend/pkg/models/testdata/smart-pass.json", want{
			// smartctl -jH: the verdict alone.
			protocol: ProtocolATA, device: "/dev/sdc", devType: "sat", passed: ptr(true), noFindings: true,
			check: func(t *testing.T, r *Report) {
				if r.ATA != nil {
					t.Errorf("ATA health from -H only: %+v", r.ATA)
				}
			},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := mustParse(t, filepath.Join(corpusDir, tc.file))
			w := tc.want
			if r.Protocol != w.protocol || r.Device != w.device || r.DeviceType != w.devType || r.Model != w.model ||
				r.Serial != w.serial || r.WWN != w.wwn || r.Firmware != w.firmware {
				t.Errorf("identity = %q %q %q %q %q %q %q", r.Protocol, r.Device, r.DeviceType, r.Model, r.Serial, r.WWN, r.Firmware)
			}
			if r.CapacityBytes != w.capacity || r.PowerOnHours != w.poh || r.TemperatureC != w.tempC {
				t.Errorf("capacity %d, power-on hours %d, temperature %d", r.CapacityBytes, r.PowerOnHours, r.TemperatureC)
			}
			if deref(r.OverallPassed) != deref(w.passed) {
				t.Errorf("passed %s, want %s", deref(r.OverallPassed), deref(w.passed))
			}
			if r.Smartctl.ExitStatus != w.exit || len(r.Smartctl.Messages) != w.messages {
				t.Errorf("exit %s, %d messages", r.Smartctl.ExitStatus, len(r.Smartctl.Messages))
			}
			got := findingCodes(Assess(r))
			if w.noFindings {
				if len(got) != 0 {
					t.Errorf("findings %v, want none", got)
				}
			} else if !slices.Equal(got, w.findings) {
				t.Errorf("findings %v, want %v", got, w.findings)
			}
			if w.check != nil {
				w.check(t, r)
			}
		})
	}
}

// TestSmartctlStandby: a drive smartctl declined to wake is a report with
// Standby set, not an error, and has no findings.
func TestSmartctlStandby(t *testing.T) {
	for _, tc := range []struct {
		file, device, mode string
		protocol           Protocol
		exit               ExitStatus
	}{
		{"standby_ata.json", "/dev/sdb", "STANDBY", ProtocolATA, ExitDeviceOpen},
		// The OS-level check stops before smartctl writes the device section.
		{"standby_os.json", "", "STANDBY (OS)", "", ExitDeviceOpen},
		// -n standby,0 chose exit status 0; the message still tells.
		{"standby_scsi_exit0.json", "/dev/sdd", "STANDBY BY COMMAND", ProtocolSCSI, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r, err := parseFile(t, filepath.Join(syntheticDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Standby || r.PowerMode != tc.mode || r.Device != tc.device || r.Protocol != tc.protocol || r.Smartctl.ExitStatus != tc.exit {
				t.Fatalf("standby %v mode %q device %q protocol %q exit %s", r.Standby, r.PowerMode, r.Device, r.Protocol, r.Smartctl.ExitStatus)
			}
			if r.ATA != nil || r.NVMe != nil || r.SCSI != nil || r.OverallPassed != nil {
				t.Fatal("health data in a standby report")
			}
			if fs := Assess(r); fs != nil {
				t.Fatalf("findings for a standby drive: %v", fs)
			}
		})
	}
	for _, msg := range []string{
		"Device is in IDLE_B mode", // -n never: the mode is printed, the drive is read
		"Power mode was:   STANDBY",
		"Device is in  mode, exit(2)",
	} {
		if mode, ok := standbyMode(msg); ok {
			t.Errorf("standbyMode(%q) = %q, want no standby", msg, mode)
		}
	}
	for msg, want := range map[string]string{
		"CHECK POWER MODE not implemented, exit(3)":                "UNKNOWN",
		"CHECK POWER MODE returned unknown value 0x42, exit(3)":    "UNKNOWN",
		"Device is in SLEEP mode, exit(2)":                         "SLEEP",
		"Device is in STANDBY_Y BY TIMER mode, exit(2)":            "STANDBY_Y BY TIMER",
		"/dev/sda: Device is in STANDBY (OS) mode, exit(2)":        "STANDBY (OS)",
		"Device is in IDLE_C mode, exit(7)\n":                      "IDLE_C",
		"Device is in ACTIVE_NV_DOWN mode, exit(2)":                "ACTIVE_NV_DOWN",
		"Device is in STANDBY mode, exit(2) (trailing garbage ok)": "STANDBY",
	} {
		if mode, ok := standbyMode(msg); !ok || mode != want {
			t.Errorf("standbyMode(%q) = %q, %v; want %q", msg, mode, ok, want)
		}
	}
}

// TestSmartctlFailures: outputs of smartctl 7.3 captured on the dev machine
// for a device that does not exist and for a bad option.
func TestSmartctlFailures(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"open_failed.json", "exit status 2 (device-open): Smartctl open device: /dev/hwheal-nonexistent failed: No such device"},
		{"bad_option.json", "exit status 1 (command-line): =======> UNRECOGNIZED OPTION: bogus-option"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r, err := parseFile(t, filepath.Join(smartctl73Dir, tc.file))
			if !errors.Is(err, ErrSmartctlFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want ErrSmartctlFailed with %q", r, err, tc.want)
			}
		})
	}
}

func TestSmartctlJSONErrors(t *testing.T) {
	big := `{"smartctl":{"exit_status":0},"device":{"name":"/dev/sda","protocol":"ATA"},"model_name":"` +
		strings.Repeat("x", MaxJSONSize) + `"}`
	for _, tc := range []struct {
		name, in string
		is       error
		want     string
	}{
		{"empty", "", ErrMalformed, "empty input"},
		{"whitespace", " \n\t ", ErrMalformed, "empty input"},
		{"truncated", `{"smartctl": {"exit_status": 0}, "device": {"name": "/dev/sda"`, ErrMalformed, "truncated at offset 62 (line 1, column 63)"},
		{"syntax on line 3", "{\n  \"a\": 1,\n  oops\n}", ErrMalformed, "at offset 14 (line 3, column 3)"},
		{"trailing comma at end", `{"a":1,}`, ErrMalformed, "at offset 7 (line 1, column 8)"},
		{"array", `[1, 2]`, ErrNoDevice, "top level is a JSON array"},
		{"no device", `{"json_format_version": [1, 0], "model_name": "X"}`, ErrNoDevice, "top-level keys: json_format_version, model_name"},
		{"unknown protocol", `{"device": {"name": "/dev/x", "protocol": "MMC"}}`, nil, `unknown protocol "MMC"`},
		{"open failed with device", `{"smartctl": {"exit_status": 2, "messages": [{"string": "Read Device Identity failed: Input/output error", "severity": "error"}]},
		  "device": {"name": "/dev/sdq", "protocol": "ATA"}}`, ErrSmartctlFailed, "device /dev/sdq: smartctl failed: exit status 2 (device-open): Read Device Identity failed"},
		{"too large", big, ErrMalformed, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseSmartctlJSON(strings.NewReader(tc.in))
			if err == nil || r != nil {
				t.Fatalf("got %+v, %v; want an error", r, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestSmartctlLenient: a field of an unexpected type is a warning, and the
// rest of the report, the failing verdict included, still comes through.
func TestSmartctlLenient(t *testing.T) {
	in := `{
	  "smartctl": {"version": [7, 5], "exit_status": 8},
	  "device": {"name": "/dev/sda", "type": "sat", "protocol": "ATA"},
	  "model_name": ["not", "a", "string"],
	  "serial_number": "S1",
	  "smart_status": {"passed": false},
	  "temperature": {"current": "41"},
	  "power_on_time": {"hours": 1.2e4},
	  "ata_smart_attributes": {"table": [
	    {"id": 5, "name": "Reallocated_Sector_Ct", "value": 100, "worst": 100, "thresh": 10,
	     "flags": {"value": 51}, "raw": {"value": true, "string": "?"}},
	    {"id": 197, "value": 100, "worst": 100, "thresh": 0, "flags": {"value": 50}, "raw": {"value": "12"}},
	    {"id": 300, "value": 1},
	    {"name": "no id"}
	  ]}
	}`
	r, err := ParseSmartctlJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "model_name") {
		t.Errorf("warnings %q, want one about model_name", r.Warnings)
	}
	if r.Model != "" || r.Serial != "S1" || r.TemperatureC != 41 || r.PowerOnHours != 12000 || deref(r.OverallPassed) != "false" {
		t.Errorf("report %+v", r)
	}
	if len(r.ATA.Attributes) != 2 {
		t.Fatalf("attributes %+v", r.ATA.Attributes)
	}
	a5, a197 := r.ATA.Attributes[0], r.ATA.Attributes[1]
	if !a5.Prefailure || a5.Raw != 0 || a5.FailedNow {
		// No when_failed: computed from the values, 100 > 10.
		t.Errorf("attribute 5 %+v", a5)
	}
	if a197.Name != "Current_Pending_Sector" || a197.Raw != 12 || a197.RawString != "12" {
		t.Errorf("attribute 197 %+v", a197)
	}
	got := findingCodes(Assess(r))
	if !slices.Equal(got, []string{CodeOverallFailed, CodeATAPending}) {
		t.Errorf("findings %v", got)
	}
}

func TestParseSmartctlScan(t *testing.T) {
	in := `{"json_format_version":[1,0],"smartctl":{"version":[7,3],"argv":["smartctl","-j","--scan"],"exit_status":0},
	  "devices":[{"name":"/dev/sda","info_name":"/dev/sda [SAT]","type":"sat","protocol":"ATA"},
	             {"name":"/dev/bus/0","info_name":"/dev/bus/0 [megaraid_disk_00]","type":"megaraid,0","protocol":"SCSI"},
	             {"name":"/dev/nvme0","info_name":"/dev/nvme0","type":"nvme","protocol":"NVMe"}]}`
	devs, err := ParseSmartctlScan(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ScanDevice{
		{"/dev/sda", "/dev/sda [SAT]", "sat", ProtocolATA},
		{"/dev/bus/0", "/dev/bus/0 [megaraid_disk_00]", "megaraid,0", ProtocolSCSI},
		{"/dev/nvme0", "/dev/nvme0", "nvme", ProtocolNVMe},
	}
	if !slices.Equal(devs, want) {
		t.Fatalf("got %+v", devs)
	}
	if _, err := ParseSmartctlScan(strings.NewReader(`{"device":{"name":"/dev/sda"}}`)); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("device report as scan: %v", err)
	}
	// An empty scan is a valid answer: no devices.
	devs, err = ParseSmartctlScan(strings.NewReader(`{"devices":[]}`))
	if err != nil || len(devs) != 0 {
		t.Fatalf("empty scan: %v, %v", devs, err)
	}
}

func TestExitStatusString(t *testing.T) {
	for e, want := range map[ExitStatus]string{
		0:   "0",
		216: "216 (disk-failing|prefail-failing|error-log|self-test-errors)",
		2:   "2 (device-open)",
		255: "255 (command-line|device-open|command-failed|disk-failing|prefail-failing|failed-in-past|error-log|self-test-errors)",
	} {
		if got := e.String(); got != want {
			t.Errorf("%d: %q, want %q", uint8(e), got, want)
		}
	}
	if !ExitStatus(216).Has(ExitDiskFailing|ExitErrorLog) || ExitStatus(216).Has(ExitDeviceOpen) {
		t.Error("Has")
	}
}
