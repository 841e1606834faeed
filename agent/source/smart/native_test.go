package smart

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	smartgo "github.com/anatol/smart.go"

	"github.com/hwheal/hwheal/pkg/smart"
)

// TestNativeATAFromPages reads each of libblockdev's 13 recorded drives
// through the native reader, the SAT seam answering from the drive's
// pages, in both sense formats the kernel uses: the report is what
// pkg/smart makes of the same pages, and the commands are exactly the
// five the reader may send, CHECK POWER MODE first.
func TestNativeATAFromPages(t *testing.T) {
	for _, b := range allBlobs(t) {
		for _, fixed := range []bool{false, true} {
			name := b.name + map[bool]string{false: "/descriptor", true: "/fixed"}[fixed]
			t.Run(name, func(t *testing.T) {
				drive := newPageDrive(b)
				drive.fixed = fixed
				d := Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: "/dev/sda"}
				rep, err := nativeFor(map[string]*pageDrive{"/dev/sda": drive}).Read(context.Background(), d)
				if err != nil {
					t.Fatal(err)
				}
				if want := []string{"e5", "ec", "b0/da", "b0/d0", "b0/d1"}; !slices.Equal(drive.commands(), want) {
					t.Errorf("commands %v, want %v", drive.commands(), want)
				}
				if drive.open != 0 {
					t.Errorf("%d opens not closed", drive.open)
				}
				id, err := smart.ParseATAIdentify(b.identify)
				if err != nil {
					t.Fatal(err)
				}
				h, err := smart.ParseATASmartPages(b.data, b.thresholds)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Standby || rep.PowerMode != "ACTIVE_OR_IDLE" {
					t.Errorf("standby %v, power mode %q", rep.Standby, rep.PowerMode)
				}
				if rep.Model != id.Model || rep.Serial != id.Serial || rep.Firmware != id.Firmware || rep.WWN != id.WWN || rep.CapacityBytes != id.CapacityBytes {
					t.Errorf("identity %q %q %q %q %d", rep.Model, rep.Serial, rep.Firmware, rep.WWN, rep.CapacityBytes)
				}
				if rep.OverallPassed == nil || *rep.OverallPassed != b.good {
					t.Errorf("passed = %v, RETURN STATUS recorded good=%v", rep.OverallPassed, b.good)
				}
				if !reflect.DeepEqual(rep.ATA, h) {
					t.Errorf("ATA health differs from the pages parsed directly")
				}
				if poh, _ := h.PowerOnHours(); rep.PowerOnHours != poh {
					t.Errorf("power on hours %d, want %d", rep.PowerOnHours, poh)
				}
				if rep.Protocol != smart.ProtocolATA || rep.Device != "/dev/sda" || len(rep.Warnings) != 0 {
					t.Errorf("protocol %q device %q warnings %q", rep.Protocol, rep.Device, rep.Warnings)
				}
			})
		}
	}
}

// TestNativeATANeverWakes: a drive that says it is spun down, or will not
// say, gets CHECK POWER MODE and nothing else.
func TestNativeATANeverWakes(t *testing.T) {
	b := readBlob(t, filepath.Join(blobDir, "Hitachi_HDS721010CLA632.bin"))
	for _, tc := range []struct {
		name  string
		power uint8
		abort bool
		mode  string
	}{
		{"standby", 0x00, false, "STANDBY"},
		{"standby_y", 0x01, false, "STANDBY_Y"},
		{"NV cache spun down", 0x40, false, "NV_CACHE_SPUN_DOWN"},
		{"undefined mode", 0x7e, false, "UNKNOWN_0x7e"},
		{"CHECK POWER MODE aborted", 0xff, true, "UNKNOWN"},
	} {
		for _, fixed := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "/descriptor", true: "/fixed"}[fixed], func(t *testing.T) {
				drive := newPageDrive(b)
				drive.power, drive.fixed = tc.power, fixed
				if tc.abort {
					drive.abort = ataCheckPowerMode
				}
				rep, err := nativeFor(map[string]*pageDrive{"/dev/sdb": drive}).Read(context.Background(),
					Disk{Name: "sdb", Protocol: smart.ProtocolATA, Path: "/dev/sdb", Model: "M", Serial: "S"})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(drive.commands(), []string{"e5"}) {
					t.Fatalf("commands %v, want only CHECK POWER MODE", drive.commands())
				}
				if !rep.Standby || rep.PowerMode != tc.mode || rep.ATA != nil || rep.OverallPassed != nil {
					t.Fatalf("report standby=%v mode=%q ata=%v passed=%v", rep.Standby, rep.PowerMode, rep.ATA != nil, rep.OverallPassed)
				}
				if rep.Model != "M" || rep.Serial != "S" {
					t.Errorf("identity %q %q, want sysfs's", rep.Model, rep.Serial)
				}
				if len(smart.Assess(rep)) != 0 {
					t.Error("findings for a drive that was not read")
				}
			})
		}
	}
}

// TestNativeATAAwakeModes: idle modes are read.
func TestNativeATAAwakeModes(t *testing.T) {
	b := readBlob(t, filepath.Join(blobDir, "KINGSTON_SA400S37240G_SBFK71B1.bin"))
	for _, p := range []uint8{0x80, 0x81, 0x82, 0x83, 0x41, 0xff} {
		drive := newPageDrive(b)
		drive.power = p
		rep, err := nativeFor(map[string]*pageDrive{"/dev/sda": drive}).Read(context.Background(), Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: "/dev/sda"})
		if err != nil || rep.Standby || rep.ATA == nil {
			t.Errorf("power 0x%02x: standby %v, err %v", p, rep != nil && rep.Standby, err)
		}
	}
}

func TestNativeATAFailures(t *testing.T) {
	b := readBlob(t, filepath.Join(blobDir, "Hitachi_HDS721010CLA632.bin"))
	noSMART := b
	noSMART.identify = slices.Clone(b.identify)
	noSMART.identify[82*2] &^= 1 // word 82 bit 0: SMART feature set supported
	disabled := b
	disabled.identify = slices.Clone(b.identify)
	disabled.identify[85*2] &^= 1
	zero := b
	zero.data = make([]byte, 512)
	badSum := b
	badSum.data = slices.Clone(b.data)
	badSum.data[100]++

	for _, tc := range []struct {
		name        string
		drive       *pageDrive
		wantErr     string
		unsupported bool
		warning     string
	}{
		{name: "SATL rejects pass-through", drive: &pageDrive{b: b, illegal: true}, wantErr: "ATA pass-through rejected", unsupported: true},
		{name: "IDENTIFY aborted", drive: &pageDrive{b: b, power: 0xff, abort: ataIdentifyDevice}, wantErr: "IDENTIFY DEVICE failed"},
		{name: "SMART not supported", drive: &pageDrive{b: noSMART, power: 0xff}, wantErr: "SMART not supported by the drive", unsupported: true},
		{name: "SMART disabled", drive: &pageDrive{b: disabled, power: 0xff}, wantErr: "SMART is disabled"},
		{name: "SMART commands aborted", drive: &pageDrive{b: b, power: 0xff, abort: ataSMART}, wantErr: "SMART RETURN STATUS failed"},
		{name: "empty data page", drive: &pageDrive{b: zero, power: 0xff}, wantErr: "all zeros"},
		{name: "bad checksum is a warning", drive: &pageDrive{b: badSum, power: 0xff}, warning: "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := nativeFor(map[string]*pageDrive{"/dev/sda": tc.drive}).Read(context.Background(), Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: "/dev/sda"})
			if tc.warning != "" {
				if err != nil || rep.ATA == nil || !strings.Contains(strings.Join(rep.Warnings, ";"), tc.warning) {
					t.Fatalf("err %v, warnings %q", err, rep.Warnings)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "sda: ") {
				t.Errorf("error %q does not name the disk", err)
			}
			if errors.Is(err, ErrNotSupported) != tc.unsupported {
				t.Errorf("ErrNotSupported = %v", errors.Is(err, ErrNotSupported))
			}
		})
	}
}

// TestNativeNotATAOrNVMe: the native reader sends nothing to a SAS disk or
// a disk it cannot tell.
func TestNativeNotATAOrNVMe(t *testing.T) {
	opened := 0
	r := &NativeReader{
		openSAT:  func(string) (satDevice, error) { opened++; return nil, errors.New("opened") },
		openNVMe: func(string) (nvmeDevice, error) { opened++; return nil, errors.New("opened") },
	}
	for _, p := range []smart.Protocol{smart.ProtocolSCSI, ""} {
		_, err := r.Read(context.Background(), Disk{Name: "sdc", Protocol: p, Path: "/dev/sdc"})
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("%q: %v, want ErrNotSupported", p, err)
		}
	}
	if opened != 0 {
		t.Errorf("device opened %d times", opened)
	}
}

// fakeNVMe serves one recorded health log.
type fakeNVMe struct {
	log    *smartgo.NvmeSMARTLog
	err    error
	reads  int
	closed bool
}

func (f *fakeNVMe) ReadSMART() (*smartgo.NvmeSMARTLog, error) { f.reads++; return f.log, f.err }
func (f *fakeNVMe) Close() error                              { f.closed = true; return nil }

// smartgoLog fills smart.go's log page from the values smartctl reported
// for a real drive.
func smartgoLog(h *smart.NVMeHealth) *smartgo.NvmeSMARTLog {
	u := func(v uint64) smartgo.Uint128 { return smartgo.Uint128{Val: [2]uint64{v, 0}} }
	l := &smartgo.NvmeSMARTLog{
		CritWarning:          uint8(h.CriticalWarning),
		Temperature:          uint16(h.TemperatureC + 273),
		AvailSpare:           h.AvailableSpare,
		SpareThresh:          h.AvailableSpareThreshold,
		PercentUsed:          h.PercentageUsed,
		EnduranceCritWarning: h.EnduranceGroupCriticalWarning,
		DataUnitsRead:        u(h.DataUnitsRead),
		DataUnitsWritten:     u(h.DataUnitsWritten),
		HostReads:            u(h.HostReadCommands),
		HostWrites:           u(h.HostWriteCommands),
		CtrlBusyTime:         u(h.ControllerBusyMinutes),
		PowerCycles:          u(h.PowerCycles),
		PowerOnHours:         u(h.PowerOnHours),
		UnsafeShutdowns:      u(h.UnsafeShutdowns),
		MediaErrors:          u(h.MediaErrors),
		NumErrLogEntries:     u(h.NumErrLogEntries),
		WarningTempTime:      h.WarningTempMinutes,
		CritCompTime:         h.CriticalTempMinutes,
	}
	for i, c := range h.TemperatureSensorsC {
		l.TempSensor[i] = uint16(c + 273)
	}
	return l
}

// TestNativeNVMe: smart.go's decoded page, filled with what smartctl read
// from two real drives (one with a critical warning), comes out of the
// native reader as the same health smartctl's JSON gives.
func TestNativeNVMe(t *testing.T) {
	for _, file := range []string{"nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json", "nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json"} {
		t.Run(file, func(t *testing.T) {
			want := parseJSONFile(t, filepath.Join(jsonDir, file))
			dev := &fakeNVMe{log: smartgoLog(want.NVMe)}
			var opened string
			r := &NativeReader{openNVMe: func(p string) (nvmeDevice, error) { opened = p; return dev, nil }}
			d := Disk{Name: "nvme0n1", Protocol: smart.ProtocolNVMe, Path: "/dev/nvme0", BlockPath: "/dev/nvme0n1", Model: want.Model, Serial: want.Serial}
			rep, err := r.Read(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			if opened != "/dev/nvme0" || dev.reads != 1 || !dev.closed {
				t.Errorf("opened %q, %d reads, closed %v: want the controller, one read, closed", opened, dev.reads, dev.closed)
			}
			if !reflect.DeepEqual(rep.NVMe, want.NVMe) {
				t.Errorf("health\n got %+v\nwant %+v", rep.NVMe, want.NVMe)
			}
			if *rep.OverallPassed != *want.OverallPassed || rep.PowerOnHours != want.PowerOnHours || rep.TemperatureC != want.TemperatureC {
				t.Errorf("passed %v hours %d temp %d; smartctl %v %d %d", *rep.OverallPassed, rep.PowerOnHours, rep.TemperatureC,
					*want.OverallPassed, want.PowerOnHours, want.TemperatureC)
			}
			if !reflect.DeepEqual(smart.Assess(rep), smart.Assess(want)) {
				t.Errorf("findings %v, smartctl's %v", smart.Assess(rep), smart.Assess(want))
			}
		})
	}
}

func TestNativeNVMeFailures(t *testing.T) {
	for _, tc := range []struct {
		name        string
		dev         *fakeNVMe
		openErr     error
		wantErr     string
		unsupported bool
	}{
		{name: "all-zero page", dev: &fakeNVMe{log: &smartgo.NvmeSMARTLog{}}, wantErr: "all zeros"},
		{name: "ioctl not supported", dev: &fakeNVMe{err: errInval()}, wantErr: "Get Log Page 02h", unsupported: true},
		{name: "permission", openErr: errPerm(), wantErr: "operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &NativeReader{openNVMe: func(string) (nvmeDevice, error) {
				if tc.openErr != nil {
					return nil, tc.openErr
				}
				return tc.dev, nil
			}}
			_, err := r.Read(context.Background(), Disk{Name: "nvme0n1", Protocol: smart.ProtocolNVMe, Path: "/dev/nvme0"})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrNotSupported) != tc.unsupported {
				t.Errorf("ErrNotSupported = %v", errors.Is(err, ErrNotSupported))
			}
		})
	}
}

// TestSmartgoLogLayout: smart.go's struct is the 512-byte page, so that
// writing it back gives the bytes the drive sent.
func TestSmartgoLogLayout(t *testing.T) {
	if n := binary.Size(smartgo.NvmeSMARTLog{}); n != smart.NVMeSmartLogSize {
		t.Fatalf("NvmeSMARTLog is %d bytes, the page %d", n, smart.NVMeSmartLogSize)
	}
	page := make([]byte, 512)
	for i := range 216 { // the fields both know; the rest is reserved
		page[i] = byte(i*7 + 1)
	}
	for i := 7; i < 32; i++ {
		page[i] = 0 // reserved
	}
	var l smartgo.NvmeSMARTLog
	if err := binary.Read(bytes.NewReader(page), binary.LittleEndian, &l); err != nil {
		t.Fatal(err)
	}
	h, err := nvmeHealth(&l)
	if err != nil {
		t.Fatal(err)
	}
	want, err := smart.ParseNVMeSmartLog(page)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("round trip\n got %+v\nwant %+v", h, want)
	}
}
