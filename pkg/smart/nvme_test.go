package smart

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseNVMeCLIJSONNetdata(t *testing.T) {
	f, err := os.Open(filepath.Join(nvmeCLIDir, "netdata/nvme-smart-log.v2.11.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ParseNVMeCLIJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	// Values read off the file; 324 K is 51 °C.
	want := &NVMeHealth{
		CriticalWarning: 0, TemperatureC: 51, AvailableSpare: 100, AvailableSpareThreshold: 5, PercentageUsed: 30,
		DataUnitsRead: 178037231, DataUnitsWritten: 1928683480, HostReadCommands: 5808178366, HostWriteCommands: 24273507789,
		ControllerBusyMinutes: 69549, PowerCycles: 99, PowerOnHours: 24424, UnsafeShutdowns: 49, MediaErrors: 0,
		NumErrLogEntries: 212,
	}
	if !reflect.DeepEqual(r.NVMe, want) {
		t.Fatalf("got  %+v\nwant %+v", r.NVMe, want)
	}
	if r.Protocol != ProtocolNVMe || r.PowerOnHours != 24424 || r.TemperatureC != 51 || r.OverallPassed != nil || len(r.Warnings) != 0 {
		t.Fatalf("report %+v", r)
	}
	if fs := Assess(r); len(fs) != 0 {
		t.Fatalf("findings on a healthy drive: %v", findingCodes(fs))
	}
}

// TestParseNVMeCLIJSONVariants covers the shapes nvme-cli has printed:
// critical_warning as a number (before 2.11), counters as strings (2.1),
// a value past 64 bits.
func TestParseNVMeCLIJSONVariants(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		check    func(t *testing.T, h *NVMeHealth)
		findings []string
	}{
		{
			name: "1.x numbers, a failing drive",
			in: `{"critical_warning": 4, "temperature": 310, "avail_spare": 3, "spare_thresh": 10,
			      "percent_used": 104, "media_errors": 2, "num_err_log_entries": 7, "temperature_sensor_1": 318,
			      "temperature_sensor_2": 0}`,
			check: func(t *testing.T, h *NVMeHealth) {
				if h.CriticalWarning != NVMeWarnReliability || h.TemperatureC != 37 || h.PercentageUsed != 104 ||
					!slices.Equal(h.TemperatureSensorsC, []int{45}) {
					t.Errorf("%+v", h)
				}
			},
			findings: []string{CodeNVMeCriticalWarning + ".reliability", CodeNVMeSpareBelow, CodeNVMePercentageUsed, CodeNVMeMediaErrors},
		},
		{
			name: "2.1 strings and a 128-bit counter",
			in: `{"critical_warning": {"value": 1, "available_spare": 1}, "temperature": "300", "avail_spare": "5",
			      "spare_thresh": "10", "percent_used": "0", "data_units_read": "340282366920938463463374607431768211455",
			      "power_on_hours": "100"}`,
			check: func(t *testing.T, h *NVMeHealth) {
				if h.CriticalWarning != NVMeWarnSpare || h.TemperatureC != 27 || h.DataUnitsRead != math.MaxUint64 || h.PowerOnHours != 100 {
					t.Errorf("%+v", h)
				}
			},
			// Bit 0 set by the drive: no second finding for the same spare.
			findings: []string{CodeNVMeCriticalWarning + ".spare"},
		},
		{
			name: "all warning bits",
			in:   `{"critical_warning": 255, "temperature": 350}`,
			findings: []string{
				CodeNVMeCriticalWarning + ".spare", CodeNVMeCriticalWarning + ".reliability", CodeNVMeCriticalWarning + ".read_only",
				CodeNVMeCriticalWarning + ".volatile_backup", CodeNVMeCriticalWarning + ".persistent_memory",
				CodeNVMeCriticalWarning + ".temperature", CodeNVMeCriticalWarning + ".reserved6", CodeNVMeCriticalWarning + ".reserved7",
			},
		},
		{
			name: "percentage_used spelling, float counter",
			in:   `{"critical_warning": 0, "temperature": 300, "percentage_used": 255, "host_read_commands": 1.5e3}`,
			check: func(t *testing.T, h *NVMeHealth) {
				if h.PercentageUsed != 255 || h.HostReadCommands != 1500 {
					t.Errorf("%+v", h)
				}
			},
			findings: []string{CodeNVMePercentageUsed},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseNVMeCLIJSON(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, r.NVMe)
			}
			if got := findingCodes(Assess(r)); !slices.Equal(got, tc.findings) {
				t.Errorf("findings %v, want %v", got, tc.findings)
			}
		})
	}
}

func TestParseNVMeCLIJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		is             error
	}{
		{"empty", "", "empty input", ErrMalformed},
		{"truncated", `{"critical_warning": 0, "temperature": 3`, "truncated at offset", ErrMalformed},
		{"not a smart-log", `{"Devices": []}`, "no critical_warning and temperature (top-level keys: Devices)", ErrNoDevice},
		{"smartctl output", `{"device": {"name": "/dev/nvme0"}, "temperature": {"current": 30}}`, "no critical_warning", ErrNoDevice},
		{"bad critical warning", `{"critical_warning": "lots", "temperature": 300}`, `critical_warning: cannot read "lots"`, nil},
		{"critical warning past a byte", `{"critical_warning": 256, "temperature": 300}`, "critical_warning: cannot read 256", nil},
		{"object without value", `{"critical_warning": {"ro": 1}, "temperature": 300}`, "critical_warning: cannot read", nil},
		{"zero kelvin", `{"critical_warning": 0, "temperature": 0}`, "temperature: cannot read 0", nil},
		{"unknown unit", `{"critical_warning": 0, "temperature": "300 F"}`, "temperature: cannot read", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseNVMeCLIJSON(strings.NewReader(tc.in))
			if err == nil || r != nil {
				t.Fatalf("got %+v, %v", r, err)
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("error %q, want %q (%v)", err, tc.want, tc.is)
			}
		})
	}
}

func TestKelvinToC(t *testing.T) {
	for in, want := range map[string]int{`324`: 51, `"324"`: 51, `"324 K"`: 51, `"51 °C"`: 51, `"51 C"`: 51, `"-5 C"`: -5, `273.9`: 0} {
		if got, ok := kelvinToC([]byte(in)); !ok || got != want {
			t.Errorf("kelvinToC(%s) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{`0`, `null`, `"hot"`, `true`, ``, `"1e9"`} {
		if got, ok := kelvinToC([]byte(in)); ok {
			t.Errorf("kelvinToC(%s) = %d, want not ok", in, got)
		}
	}
}

// TestParseNVMeSmartLog builds a page by the specification's byte offsets
// (not with this package's encoder) and reads it back.
func TestParseNVMeSmartLog(t *testing.T) {
	p := make([]byte, 4096) // what readers often fetch; only 512 bytes count
	le := binary.LittleEndian
	p[0] = 0x0c                 // read-only + reliability degraded
	le.PutUint16(p[1:], 0x0143) // 323 K
	p[3], p[4], p[5], p[6] = 7, 10, 101, 1
	u128 := func(off int, lo, hi uint64) { le.PutUint64(p[off:], lo); le.PutUint64(p[off+8:], hi) }
	u128(32, 1001, 0)
	u128(48, 1002, 1) // past 64 bits: saturates
	u128(64, 1003, 0)
	u128(80, 1004, 0)
	u128(96, 1005, 0)
	u128(112, 1006, 0)
	u128(128, 1007, 0)
	u128(144, 1008, 0)
	u128(160, 1009, 0)
	u128(176, 1010, 0)
	le.PutUint32(p[192:], 11)
	le.PutUint32(p[196:], 12)
	le.PutUint16(p[200:], 300) // sensor 1: 27 °C
	le.PutUint16(p[204:], 310) // sensor 3 (sensor 2 not implemented): 37 °C
	p[600] = 0xff              // past the page: ignored

	h, err := ParseNVMeSmartLog(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &NVMeHealth{
		CriticalWarning: NVMeWarnReadOnly | NVMeWarnReliability, TemperatureC: 50,
		AvailableSpare: 7, AvailableSpareThreshold: 10, PercentageUsed: 101, EnduranceGroupCriticalWarning: 1,
		DataUnitsRead: 1001, DataUnitsWritten: math.MaxUint64, HostReadCommands: 1003, HostWriteCommands: 1004,
		ControllerBusyMinutes: 1005, PowerCycles: 1006, PowerOnHours: 1007, UnsafeShutdowns: 1008,
		MediaErrors: 1009, NumErrLogEntries: 1010, WarningTempMinutes: 11, CriticalTempMinutes: 12,
		TemperatureSensorsC: []int{27, 37},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got  %+v\nwant %+v", h, want)
	}
	if got := h.CriticalWarning.String(); got != "reliability|read_only" {
		t.Errorf("warning string %q", got)
	}
	got := findingCodes(Assess(&Report{Protocol: ProtocolNVMe, NVMe: h}))
	wantCodes := []string{CodeNVMeCriticalWarning + ".reliability", CodeNVMeCriticalWarning + ".read_only",
		CodeNVMeSpareBelow, CodeNVMePercentageUsed, CodeNVMeMediaErrors}
	if !slices.Equal(got, wantCodes) {
		t.Errorf("findings %v, want %v", got, wantCodes)
	}

	if _, err := ParseNVMeSmartLog(p[:511]); err == nil || !strings.Contains(err.Error(), "511 bytes") {
		t.Errorf("short page: %v", err)
	}
	if _, err := ParseNVMeSmartLog(make([]byte, 512)); err == nil || !strings.Contains(err.Error(), "all zeros") {
		t.Errorf("zero page: %v", err)
	}
}

// TestNVMeSmartLogAgreesWithNVMeCLI: the same drive's log read as a raw page
// and as nvme-cli printed it gives the same health. The page is written
// from nvme-cli's values by the specification's offsets.
func TestNVMeSmartLogAgreesWithNVMeCLI(t *testing.T) {
	f, err := os.Open(filepath.Join(nvmeCLIDir, "netdata/nvme-smart-log.v2.11.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cli, err := ParseNVMeCLIJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 512)
	le := binary.LittleEndian
	le.PutUint16(p[1:], 324) // the file's kelvins
	p[3], p[4], p[5] = 100, 5, 30
	for off, v := range map[int]uint64{32: 178037231, 48: 1928683480, 64: 5808178366, 80: 24273507789,
		96: 69549, 112: 99, 128: 24424, 144: 49, 160: 0, 176: 212} {
		le.PutUint64(p[off:], v)
	}
	raw, err := ParseNVMeSmartLog(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(raw, cli.NVMe) {
		t.Fatalf("raw page %+v\nnvme-cli  %+v", raw, cli.NVMe)
	}
}
