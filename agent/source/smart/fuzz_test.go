package smart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hwheal/hwheal/pkg/smart"
)

// FuzzParseSense: any bytes decode or fail, never panic; what decodes
// decodes the same twice, and a CK_COND command given it as CHECK
// CONDITION either gets registers or an error, never both or neither.
func FuzzParseSense(f *testing.F) {
	for _, s := range []string{
		"72 01 00 1d 00 00 00 0e  09 0c 00 00 00 ff 00 00 00 00 00 00 40 50",
		"72 0b 00 00 00 00 00 1a  00 0a 80 00 00 00 00 00 00 00 00 00  09 0c 00 04 00 00 00 00 00 00 00 00 00 51",
		"f0 00 01 00 50 40 ff 0a 00 00 4f c2 00 1d 00 00 00 00",
		"70 00 03 00 00 00 00 0a 00 00 00 00 11 04 00 00 00 00",
		"72 05 24 00", "70", "7f", "72 01 00 1d 00 00 00 ff 09 0c",
	} {
		f.Add(mustHex(f, s))
	}
	d := newPageDrive(readBlob(f, filepath.Join(blobDir, "Maxtor_6Y120P0.bin")))
	for _, fixed := range []bool{false, true} {
		d.fixed = fixed
		f.Add(d.sense(0x01, 0x00, 0x1d, ATARegisters{Count: 0xff, Status: 0x50}).sense)
		f.Add(d.sense(0x0b, 0x00, 0x00, ATARegisters{Error: 4, Status: 0x51}).sense)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		again, err2 := ParseSense(b)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(s, again) {
			t.Fatal("not deterministic")
		}
		if err == nil && len(b) > 0 && s.Descriptor != (b[0]&0x7f >= 0x72) {
			t.Fatalf("descriptor %v for response code 0x%02x", s.Descriptor, b[0])
		}
		regs, err := cmdCheckPowerMode.evaluate(sgResult{status: scsiStatusCheckCondition, driverStatus: driverSense, sense: b})
		if (regs == nil) == (err == nil) {
			t.Fatalf("registers %v and error %v", regs, err)
		}
		if _, err := cmdReadData.evaluate(sgResult{status: scsiStatusCheckCondition, sense: b}); err == nil && s.ATA != nil && s.ATA.Status&1 != 0 {
			t.Fatal("a failed ATA status read as success")
		}
	})
}

// FuzzParseSmartctlVersion: never a panic; a version read is in range and
// reads the same from its own rendering.
func FuzzParseSmartctlVersion(f *testing.F) {
	for _, s := range []string{
		"smartctl 7.3 2022-02-28 r5338 [x86_64-linux-6.18.44-fc-v669] (local build)",
		"smartctl pre-7.5 2024-06-01 r5600 [x86_64-linux-6.9.0] (local build)",
		"smartctl 6.6 2017-11-05 r4594", "smartctl 7", "smartctl 7.x", "", "smartctl\t7.3\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		major, minor, err := ParseSmartctlVersion(line)
		if err != nil {
			if major != 0 || minor != 0 {
				t.Fatalf("%d.%d with error %v", major, minor, err)
			}
			return
		}
		if major < 0 || minor < 0 || major > 1000 || minor > 1000 {
			t.Fatalf("version %d.%d out of range", major, minor)
		}
		m2, n2, err := ParseSmartctlVersion(fmt.Sprintf("smartctl %d.%d", major, minor))
		if err != nil || m2 != major || n2 != minor {
			t.Fatalf("%d.%d does not read back: %d.%d %v", major, minor, m2, n2, err)
		}
	})
}

// FuzzNaturalCompare: the order Discover sorts by is an order.
func FuzzNaturalCompare(f *testing.F) {
	f.Add("sda", "sdaa", "nvme10n1")
	f.Add("nvme1n1", "nvme1n2", "nvme01n1")
	f.Add("", "0", "a0")
	f.Add("sd0", "sdz", "sd00")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		if naturalCompare(a, a) != 0 {
			t.Fatalf("%q != itself", a)
		}
		ab, ba := naturalCompare(a, b), naturalCompare(b, a)
		if ab != -ba {
			t.Fatalf("cmp(%q, %q) = %d, cmp(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if ab <= 0 && naturalCompare(b, c) <= 0 && naturalCompare(a, c) > 0 {
			t.Fatalf("%q <= %q <= %q but %q > %q", a, b, c, a, c)
		}
	})
}

// FuzzNativeATA runs the native reader over arbitrary pages and power
// modes: a report or an error, never a panic; a drive in standby is sent
// nothing after CHECK POWER MODE.
func FuzzNativeATA(f *testing.F) {
	for _, b := range allBlobs(f) {
		f.Add(byte(0xff), byte(1), bytes.Join([][]byte{b.identify, b.data, b.thresholds}, nil))
	}
	f.Add(byte(0x00), byte(0), make([]byte, 1536))
	f.Fuzz(func(t *testing.T, power, good byte, pages []byte) {
		pages = append(pages, make([]byte, max(0, 1536-len(pages)))...)
		d := newPageDrive(blob{identify: pages[:512], data: pages[512:1024], thresholds: pages[1024:1536], good: good&1 != 0})
		d.power, d.fixed = power, good&2 != 0
		rep, err := nativeFor(map[string]*pageDrive{"/dev/sda": d}).Read(context.Background(), Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: "/dev/sda"})
		if (rep == nil) == (err == nil) {
			t.Fatalf("report %v and error %v", rep, err)
		}
		if _, down := PowerMode(power); down && (err != nil || !rep.Standby || len(d.commands()) != 1) {
			t.Fatalf("power 0x%02x: err %v, commands %v", power, err, d.commands())
		}
		if err != nil && errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if rep != nil {
			_ = smart.Assess(rep)
			_ = protoSamples(smart.Samples(rep))
		}
	})
}
