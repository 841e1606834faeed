package smart

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestCDBs checks each command's ATA PASS-THROUGH (16) bytes against what
// smartctl 7.3 sends for the same command (recorded through
// testdata/satshim.c: `smartctl -i -H -A -n standby -d sat`).
// TestSmartctlAgainstNative repeats the comparison against the live binary.
func TestCDBs(t *testing.T) {
	for _, tc := range []struct {
		cmd  ataCommand
		want string
	}{
		{cmdCheckPowerMode, "85062c0000000000000000000000e500"},
		{cmdIdentify, "85080e0000000100000000000000ec00"},
		{cmdReadData, "85080e00d000010000004f00c200b000"},
		{cmdReadThresholds, "85080e00d100010001004f00c200b000"},
		{cmdReturnStatus, "85062c00da00000000004f00c200b000"},
	} {
		t.Run(tc.cmd.String(), func(t *testing.T) {
			cdb := tc.cmd.cdb()
			if got := hex.EncodeToString(cdb[:]); got != tc.want {
				t.Errorf("cdb = %s, smartctl sends %s", got, tc.want)
			}
		})
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSense(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Sense
		wantErr string
	}{
		{
			// libata, CK_COND on CHECK POWER MODE of an idle drive:
			// RECOVERED ERROR, 00/1D, ATA Status Return descriptor.
			name: "descriptor with ATA return",
			in:   "72 01 00 1d 00 00 00 0e  09 0c 00 00 00 ff 00 00 00 00 00 00 40 50",
			want: Sense{Descriptor: true, Key: 1, ASC: 0, ASCQ: 0x1d, ATA: &ATARegisters{Count: 0xff, Device: 0x40, Status: 0x50}},
		},
		{
			name: "descriptor, ATA return after another descriptor",
			in:   "72 0b 00 00 00 00 00 1a  00 0a 80 00 00 00 00 00 00 00 00 00  09 0c 00 04 00 00 00 00 00 00 00 00 00 51",
			want: Sense{Descriptor: true, Key: 0xb, ATA: &ATARegisters{Error: 4, Status: 0x51}},
		},
		{
			name: "descriptor without ATA return",
			in:   "72 05 24 00 00 00 00 00",
			want: Sense{Descriptor: true, Key: 5, ASC: 0x24},
		},
		{
			name: "descriptor cut inside the ATA return",
			in:   "72 01 00 1d 00 00 00 0e  09 0c 00 00 00 ff",
			want: Sense{Descriptor: true, Key: 1, ASCQ: 0x1d},
		},
		{
			name: "descriptor header only",
			in:   "72 02 04 01",
			want: Sense{Descriptor: true, Key: 2, ASC: 4, ASCQ: 1},
		},
		{
			// Linux 6.10+ with D_SENSE=0: fixed format, VALID, registers in
			// the information fields.
			name: "fixed with ATA registers (libata)",
			in:   "f0 00 01 00 50 40 ff 0a 00 00 4f c2 00 1d 00 00 00 00",
			want: Sense{Key: 1, ASCQ: 0x1d, ATA: &ATARegisters{Status: 0x50, Device: 0x40, Count: 0xff, LBAMid: 0x4f, LBAHigh: 0xc2}},
		},
		{
			name: "fixed, 00/1D without VALID (SAT-3 12.2.2.7)",
			in:   "70 00 01 00 50 00 80 0a 00 00 f4 2c 00 1d",
			want: Sense{Key: 1, ASCQ: 0x1d, ATA: &ATARegisters{Status: 0x50, Count: 0x80, LBAMid: 0xf4, LBAHigh: 0x2c}},
		},
		{
			name: "fixed medium error, no ATA registers",
			in:   "70 00 03 00 00 00 00 0a 00 00 00 00 11 04 00 00 00 00",
			want: Sense{Key: 3, ASC: 0x11, ASCQ: 0x04},
		},
		{
			name: "fixed, additional length shorter than written",
			in:   "70 00 01 00 50 00 80 02 00 00 4f c2 00 1d",
			want: Sense{Key: 1},
		},
		{name: "fixed, too short", in: "70 00", wantErr: "at least 3"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "vendor format", in: "7f 00 00 00", wantErr: "neither fixed nor descriptor"},
		{name: "not sense", in: "00 00 00 00", wantErr: "response code 0x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSense(mustHex(t, tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseSense = %+v (ATA %+v), want %+v (ATA %+v)", got, got.ATA, tc.want, tc.want.ATA)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	cc := func(sense string) sgResult {
		return sgResult{status: scsiStatusCheckCondition, driverStatus: driverSense, sense: mustHex(t, sense)}
	}
	const idle = "72 01 00 1d 00 00 00 0e  09 0c 00 00 00 ff 00 00 00 00 00 00 40 50"
	tests := []struct {
		name        string
		cmd         ataCommand
		in          sgResult
		wantRegs    *ATARegisters
		wantErr     string
		unsupported bool
		ataErr      bool
	}{
		{name: "data-in GOOD", cmd: cmdReadData, in: sgResult{}},
		{name: "registers back", cmd: cmdCheckPowerMode, in: cc(idle), wantRegs: &ATARegisters{Count: 0xff, Device: 0x40, Status: 0x50}},
		{name: "CK_COND ignored", cmd: cmdCheckPowerMode, in: sgResult{}, wantErr: "no ATA registers returned"},
		{name: "SATL rejects the CDB", cmd: cmdIdentify, in: cc("72 05 24 00"), wantErr: "ATA pass-through rejected", unsupported: true},
		{name: "drive aborts", cmd: cmdReturnStatus, in: cc("72 0b 00 00 00 00 00 0e 09 0c 00 04 00 00 00 00 00 00 00 00 00 51"), wantErr: "SMART RETURN STATUS failed: ATA status 0x51, error 0x04", ataErr: true},
		{name: "device fault", cmd: cmdReadData, in: cc("f0 00 0b 00 71 00 00 0a 00 00 00 00 00 00"), wantErr: "ATA status 0x71", ataErr: true},
		{name: "medium error", cmd: cmdReadData, in: cc("70 00 03 00 00 00 00 0a 00 00 00 00 11 04"), wantErr: "sense 3/11/04"},
		{name: "host timeout", cmd: cmdIdentify, in: sgResult{hostStatus: hostTimeOut}, wantErr: "timed out in the host adapter"},
		{name: "host error", cmd: cmdIdentify, in: sgResult{hostStatus: 0x01}, wantErr: "host adapter status 0x01"},
		{name: "driver error", cmd: cmdIdentify, in: sgResult{driverStatus: 0x04}, wantErr: "driver status 0x04"},
		{name: "busy", cmd: cmdIdentify, in: sgResult{status: 0x08}, wantErr: "SCSI status 0x08"},
		{name: "garbage sense", cmd: cmdIdentify, in: cc("01 02"), wantErr: "response code"},
		{name: "no registers in sense", cmd: cmdCheckPowerMode, in: cc("72 01 00 00"), wantErr: "no ATA registers in the sense data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			regs, err := tc.cmd.evaluate(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(regs, tc.wantRegs) {
					t.Fatalf("regs = %+v, want %+v", regs, tc.wantRegs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrNotSupported) != tc.unsupported {
				t.Errorf("ErrNotSupported = %v, want %v", errors.Is(err, ErrNotSupported), tc.unsupported)
			}
			var ae *ATAError
			if errors.As(err, &ae) != tc.ataErr {
				t.Errorf("ATAError = %v, want %v", errors.As(err, &ae), tc.ataErr)
			}
		})
	}
}

func TestPowerMode(t *testing.T) {
	for _, tc := range []struct {
		count    uint8
		name     string
		spunDown bool
	}{
		{0x00, "STANDBY", true},
		{0x01, "STANDBY_Y", true},
		{0x40, "NV_CACHE_SPUN_DOWN", true},
		{0x41, "NV_CACHE_SPUN_UP", false},
		{0x80, "IDLE", false},
		{0x81, "IDLE_A", false},
		{0x82, "IDLE_B", false},
		{0x83, "IDLE_C", false},
		{0xff, "ACTIVE_OR_IDLE", false},
		{0x42, "UNKNOWN_0x42", true},
	} {
		name, down := PowerMode(tc.count)
		if name != tc.name || down != tc.spunDown {
			t.Errorf("PowerMode(0x%02x) = %s, %v; want %s, %v", tc.count, name, down, tc.name, tc.spunDown)
		}
	}
}

func TestSmartStatus(t *testing.T) {
	for _, tc := range []struct {
		mid, high    uint8
		passed, okay bool
	}{
		{0x4f, 0xc2, true, true},
		{0xf4, 0x2c, false, true},
		{0x00, 0x00, false, false},
		{0x4f, 0x2c, false, false},
	} {
		passed, ok := smartStatus(ATARegisters{LBAMid: tc.mid, LBAHigh: tc.high})
		if passed != tc.passed || ok != tc.okay {
			t.Errorf("smartStatus(%02x/%02x) = %v, %v", tc.mid, tc.high, passed, ok)
		}
	}
}
