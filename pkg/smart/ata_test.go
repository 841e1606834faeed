package smart

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLibblockdevPagesAgainstSkdump parses the raw SMART READ DATA,
// READ THRESHOLDS and IDENTIFY pages of libblockdev's dumps natively and
// compares every attribute with what libatasmart's skdump (an independent
// implementation, run once on the same files: testdata/skdump) printed.
//
// The corpus pairs no raw dump with smartctl JSON of the same drive (the
// models differ), so skdump is the cross-check.
func TestLibblockdevPagesAgainstSkdump(t *testing.T) {
	blobs, err := filepath.Glob(filepath.Join(blobDir, "*.bin"))
	if err != nil || len(blobs) != 13 {
		t.Fatalf("found %d dumps (%v), want libblockdev's 13", len(blobs), err)
	}
	for _, path := range blobs {
		name := strings.TrimSuffix(filepath.Base(path), ".bin")
		t.Run(name, func(t *testing.T) {
			b := readBlob(t, path)
			sk := readSkdump(t, filepath.Join(skdumpDir, name+".txt"))

			id, err := ParseATAIdentify(b.identify)
			if err != nil {
				t.Fatal(err)
			}
			if id.Model != sk.model || id.Serial != sk.serial || id.Firmware != sk.firmware {
				t.Errorf("identity = %q %q %q, skdump %q %q %q", id.Model, id.Serial, id.Firmware, sk.model, sk.serial, sk.firmware)
			}
			if !id.ChecksumValid || !id.SMARTSupport {
				t.Errorf("checksum valid %v, SMART supported %v", id.ChecksumValid, id.SMARTSupport)
			}

			h, err := ParseATASmartPages(b.data, b.thresholds)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Attributes) != len(sk.attrs) {
				t.Fatalf("%d attributes, skdump %d", len(h.Attributes), len(sk.attrs))
			}
			for i, a := range h.Attributes {
				s := sk.attrs[i]
				// libatasmart prints n/a for normalized bytes outside 1-253.
				same := func(got uint8, sk int) bool {
					return sk == int(got) || (sk == -1 && (got == 0 || got >= 254))
				}
				if a.ID != s.id || !same(a.Value, s.value) || !same(a.Worst, s.worst) || !same(a.Threshold, s.thres) ||
					a.Raw != s.raw || a.Prefailure != s.prefail {
					t.Errorf("attribute %d: id %d value %d worst %d thresh %d raw %#x prefail %v; skdump %+v",
						i, a.ID, a.Value, a.Worst, a.Threshold, a.Raw, a.Prefailure, s)
				}
				// skdump: "no" = failing, "yes" = passing, "n/a" = no
				// threshold to fail against.
				if want := map[string]bool{"no": true, "yes": false, "n/a": false}; a.FailedNow != want[s.goodNow] || a.FailedPast != want[s.goodPast] {
					t.Errorf("attribute %d: failed now/past %v/%v, skdump good %s/%s", a.ID, a.FailedNow, a.FailedPast, s.goodNow, s.goodPast)
				}
				if (s.goodNow == "n/a") != (a.Threshold == 0) {
					t.Errorf("attribute %d: threshold %d but skdump good %q", a.ID, a.Threshold, s.goodNow)
				}
			}
			if b.statusGood == nil || map[bool]string{true: "yes", false: "no"}[*b.statusGood] != sk.healthGood {
				t.Errorf("SMART status %v, skdump says good %q", b.statusGood, sk.healthGood)
			}
		})
	}
}

// TestLibblockdevAssess checks Assess on the native readings against
// skdump's own overall verdict: drives it calls GOOD get no warning or
// critical finding, the others do. Two get their exact findings checked.
func TestLibblockdevAssess(t *testing.T) {
	exact := map[string][]string{
		// BAD_STATUS: SMART RETURN STATUS failing, 5 at 118 under threshold
		// 140, 655 reallocated, 65529 pending, 46 offline uncorrectable.
		"WDC_WD20EARS-00MVWB0": {CodeOverallFailed, CodeATAPrefailFailingNow, CodeATAReallocated, CodeATAPending, CodeATAOfflineUncorrect},
		// BAD_SECTOR: 5 worst 1 under threshold 63 in the past, 1783
		// reallocated, 1727 pending, 1 offline uncorrectable.
		"Maxtor_6Y120P0": {CodeATAPrefailFailedPast, CodeATAReallocated, CodeATAPending, CodeATAOfflineUncorrect},
	}
	blobs, _ := filepath.Glob(filepath.Join(blobDir, "*.bin"))
	bad := 0
	for _, path := range blobs {
		name := strings.TrimSuffix(filepath.Base(path), ".bin")
		t.Run(name, func(t *testing.T) {
			b := readBlob(t, path)
			sk := readSkdump(t, filepath.Join(skdumpDir, name+".txt"))
			h, err := ParseATASmartPages(b.data, b.thresholds)
			if err != nil {
				t.Fatal(err)
			}
			fs := Assess(&Report{Protocol: ProtocolATA, OverallPassed: b.statusGood, ATA: h})
			if sk.overall == "" {
				t.Fatal("no overall status in skdump output")
			}
			if flagged(fs) != (sk.overall != "GOOD") {
				t.Fatalf("flagged = %v %v, skdump overall status %s", flagged(fs), findingCodes(fs), sk.overall)
			}
			if sk.overall != "GOOD" {
				bad++
			}
			if want, ok := exact[name]; ok {
				var got []string
				for _, f := range fs {
					if f.Severity >= SeverityWarning {
						got = append(got, f.Code)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("flagged %v, want %v", got, want)
				}
			}
		})
	}
	if bad != 5 {
		t.Fatalf("%d dumps skdump calls bad, expected 5 (WD20EARS, Maxtor, Hitachi, IBM, Samsung HS122JC)", bad)
	}
}

// TestParseATAIdentify checks IDENTIFY fields against outside facts:
// capacities follow IDEMA LBA1-03 (97,696,368 + 1,953,504 × (GB - 50)
// sectors of 512 bytes), WWNs start with NAA 5 and the maker's IEEE OUI
// (HGST 000CCA, Western Digital 0014EE, Kingston 0026B7), the rotation rate
// is the one the model number encodes (HDS72.. = 7,200 rpm; SSDs report 1).
func TestParseATAIdentify(t *testing.T) {
	idema := func(gb uint64) uint64 { return (97696368 + 1953504*(gb-50)) * 512 }
	for _, tc := range []struct {
		dump      string
		capacity  uint64
		wwnPrefix string
		rpm       uint16
	}{
		{"Hitachi_HDS721010CLA632", idema(1000), "0x5000cca", 7200},
		{"WDC_WD20EARS-00MVWB0", idema(2000), "0x50014ee", 0},
		{"KINGSTON_SA400S37480G_SBFKQ13", idema(480), "0x50026b7", 1},
		{"KINGSTON_SA400S37240G_SBFK71B1", idema(240), "0x50026b7", 1},
		{"IBM_IC25N020ATCS04-0", 39070080 * 512, "", 0}, // 20 GB Travelstar, LBA28 only, no WWN
	} {
		t.Run(tc.dump, func(t *testing.T) {
			id, err := ParseATAIdentify(readBlob(t, filepath.Join(blobDir, tc.dump+".bin")).identify)
			if err != nil {
				t.Fatal(err)
			}
			if id.CapacityBytes != tc.capacity || id.LogicalSectorSize != 512 {
				t.Errorf("capacity %d (sector %d), want %d", id.CapacityBytes, id.LogicalSectorSize, tc.capacity)
			}
			if !strings.HasPrefix(id.WWN, tc.wwnPrefix) || (tc.wwnPrefix == "") != (id.WWN == "") || (id.WWN != "" && len(id.WWN) != 18) {
				t.Errorf("WWN %q, want prefix %q", id.WWN, tc.wwnPrefix)
			}
			if id.RotationRate != tc.rpm {
				t.Errorf("rotation rate %d, want %d", id.RotationRate, tc.rpm)
			}
		})
	}
	if _, err := ParseATAIdentify(make([]byte, 512)); err == nil || !strings.Contains(err.Error(), "all zeros") {
		t.Errorf("zero page: %v", err)
	}
	if _, err := ParseATAIdentify(make([]byte, 100)); err == nil || !strings.Contains(err.Error(), "100 bytes") {
		t.Errorf("short page: %v", err)
	}
	page := bytes.Clone(readBlob(t, filepath.Join(blobDir, "Maxtor_6Y120P0.bin")).identify)
	page[300]++ // word 150, vendor specific; word 255 carries the A5h signature, so the sum is checked
	if id, err := ParseATAIdentify(page); !errors.Is(err, ErrChecksum) || id == nil || id.Model != "Maxtor 6Y120P0" {
		t.Errorf("corrupt page: %+v, %v", id, err)
	}
}

func TestParseATASmartPagesErrors(t *testing.T) {
	b := readBlob(t, filepath.Join(blobDir, "Hitachi_HDS721010CLA632.bin"))
	good, err := ParseATASmartPages(b.data, b.thresholds)
	if err != nil {
		t.Fatal(err)
	}

	corrupt := bytes.Clone(b.data)
	corrupt[2+3]-- // attribute 1's normalized value; the checksum no longer matches
	badThr := bytes.Clone(b.thresholds)
	badThr[100]++

	for _, tc := range []struct {
		name         string
		data, thr    []byte
		wantErr      string
		wantChecksum bool
		wantHealth   bool
	}{
		{name: "short data", data: b.data[:511], thr: b.thresholds, wantErr: "511 bytes, want 512"},
		{name: "long thresholds", data: b.data, thr: append(bytes.Clone(b.thresholds), 0), wantErr: "513 bytes, want 512"},
		{name: "zero page", data: make([]byte, 512), thr: b.thresholds, wantErr: "all zeros"},
		{name: "data checksum", data: corrupt, thr: b.thresholds, wantErr: "SMART data page: checksum mismatch", wantChecksum: true, wantHealth: true},
		{name: "thresholds checksum", data: b.data, thr: badThr, wantErr: "SMART thresholds page: checksum mismatch", wantChecksum: true, wantHealth: true},
		{name: "no thresholds", data: b.data, thr: nil, wantHealth: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseATASmartPages(tc.data, tc.thr)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrChecksum) != tc.wantChecksum {
				t.Fatalf("errors.Is(ErrChecksum) = %v", !tc.wantChecksum)
			}
			if (h != nil) != tc.wantHealth {
				t.Fatalf("health returned: %v", h != nil)
			}
			if h != nil && len(h.Attributes) != len(good.Attributes) {
				t.Fatalf("%d attributes, want %d", len(h.Attributes), len(good.Attributes))
			}
		})
	}

	// Without thresholds no attribute can fail.
	h, _ := ParseATASmartPages(b.data, nil)
	for _, a := range h.Attributes {
		if a.Threshold != 0 || a.FailedNow || a.FailedPast {
			t.Errorf("attribute %d without thresholds: %+v", a.ID, a)
		}
	}
}

// TestThresholdLookup: the threshold is found by attribute ID when the
// thresholds page lists IDs in another order, as smartctl does.
func TestThresholdLookup(t *testing.T) {
	h := &ATAHealth{Revision: 16, Attributes: []ATAAttribute{
		{ID: 5, Value: 100, Worst: 100, Flags: 0x33, Prefailure: true},
		{ID: 197, Value: 100, Worst: 90},
	}}
	data, thr := encodeATAPages(h)
	// Swap the two threshold entries (and their thresholds).
	e0, e1 := thr[2:14], thr[14:26]
	e0[0], e0[1], e1[0], e1[1] = 197, 95, 5, 100
	thr[511] = 0
	thr[511] = -sum8(thr)
	got, err := ParseATASmartPages(data, thr)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Attributes[0]; a.ID != 5 || a.Threshold != 100 || !a.FailedNow {
		t.Errorf("attribute 5: %+v, want threshold 100, failing now", a)
	}
	if a := got.Attributes[1]; a.ID != 197 || a.Threshold != 95 || a.FailedNow || !a.FailedPast {
		t.Errorf("attribute 197: %+v, want threshold 95, failed in the past only", a)
	}
}

func TestATAAccessors(t *testing.T) {
	rep := mustParse(t, filepath.Join(corpusDir, "smartctl_exporter/testdata/ST3200820AS_16.json"))
	h := rep.ATA
	for _, tc := range []struct {
		name string
		get  func() (uint64, bool)
		want uint64
	}{
		{"ReallocatedSectors", h.ReallocatedSectors, 0},
		{"PowerOnHours", h.PowerOnHours, 100161},
		{"ReportedUncorrect", h.ReportedUncorrect, 0},
		{"PendingSectors", h.PendingSectors, 0},
		{"OfflineUncorrectable", h.OfflineUncorrectable, 0},
		{"UDMACRCErrors", h.UDMACRCErrors, 0},
	} {
		if v, ok := tc.get(); !ok || v != tc.want {
			t.Errorf("%s = %d, %v; want %d", tc.name, v, ok, tc.want)
		}
	}
	if _, ok := h.CommandTimeout(); ok {
		t.Error("CommandTimeout present on a drive without attribute 188")
	}
	// 194's raw value is 85899345953 = 0x14_0000_0021: 33 °C in the low byte,
	// as smartctl's "33 (0 20 0 0 0)" says.
	if c, ok := h.TemperatureC(); !ok || c != 33 || rep.TemperatureC != 33 {
		t.Errorf("TemperatureC = %d, %v (report %d), want 33", c, ok, rep.TemperatureC)
	}
	var none *ATAHealth
	if _, ok := none.ReallocatedSectors(); ok {
		t.Error("nil ATAHealth has attributes")
	}
}

// TestReallocatedLow16: attribute 5 counts in its low 16 bits, as smartctl
// shows it; libatasmart's 48-bit reading of the same bytes is not a
// sector count.
func TestReallocatedLow16(t *testing.T) {
	for dump, want := range map[string]uint64{
		"Hitachi_HDS721010CLA632": 43, // raw bytes 2b 00 2b 00 00 00; skdump: 2818091 sectors
		"IBM_IC25N020ATCS04-0":    22, // raw bytes 16 00 04 00 00 00; skdump: 262166 sectors
		"WDC_WD20EARS-00MVWB0":    655,
	} {
		b := readBlob(t, filepath.Join(blobDir, dump+".bin"))
		h, err := ParseATASmartPages(b.data, b.thresholds)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := h.ReallocatedSectors(); !ok || got != want {
			t.Errorf("%s: ReallocatedSectors = %d, %v; want %d", dump, got, ok, want)
		}
	}
}
