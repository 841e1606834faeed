package smart

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseSmartctlJSON: any input gives a report or an error, never a
// panic; a report is assessable and parses the same twice; a failure is one
// of the documented kinds.
func FuzzParseSmartctlJSON(f *testing.F) {
	var seeds []string
	for _, dir := range []string{corpusDir, syntheticDir, smartctl73Dir} {
		seeds = append(seeds, corpusJSONFiles(f, dir)...)
	}
	for _, p := range seeds {
		data := readAll(f, p)
		f.Add(data)
		if len(data) > 64 {
			f.Add(data[:len(data)/2]) // truncated
		}
	}
	f.Add([]byte(`{"device":{"protocol":"NVMe"},"nvme_smart_health_information_log":{"critical_warning":"x","data_units_read":1e400}}`))
	f.Add([]byte(`{"smartctl":{"messages":[{"string":"Device is in SLEEP mode, exit(2)"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseSmartctlJSON(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatalf("report and error: %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoDevice) && !errors.Is(err, ErrSmartctlFailed) &&
				!strings.Contains(err.Error(), "unknown protocol") {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		fs := Assess(r)
		if r.Standby && fs != nil {
			t.Fatalf("findings for a standby report: %v", fs)
		}
		for _, f := range fs {
			if f.Code == "" || f.Severity < SeverityInfo || f.Severity > SeverityCritical || f.Detail == "" {
				t.Fatalf("malformed finding %+v", f)
			}
		}
		again, err := ParseSmartctlJSON(bytes.NewReader(data))
		if err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

func FuzzParseNVMeCLIJSON(f *testing.F) {
	f.Add(readAll(f, filepath.Join(nvmeCLIDir, "netdata/nvme-smart-log.v2.11.json")))
	f.Add([]byte(`{"critical_warning": 4, "temperature": "310 K", "avail_spare": "3", "data_units_read": 1.5e30}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseNVMeCLIJSON(bytes.NewReader(data))
		if (r == nil) == (err == nil) {
			t.Fatalf("report %v and error %v", r, err)
		}
		if r != nil {
			Assess(r)
		}
	})
}

// FuzzParseATASmartPages: no panic on any pair of byte strings; with pages
// of the right size and valid checksums, the health read back from pages
// written from it is the same (round trip).
func FuzzParseATASmartPages(f *testing.F) {
	blobs, _ := filepath.Glob(filepath.Join(blobDir, "*.bin"))
	for _, p := range blobs {
		b := readBlob(f, p)
		f.Add(b.data, b.thresholds, false)
	}
	f.Add([]byte{1}, []byte{}, true)
	f.Fuzz(func(t *testing.T, data, thr []byte, fixSums bool) {
		// As given: lengths and checksums as the fuzzer made them.
		if h, err := ParseATASmartPages(data, thr); err != nil && h != nil && !errors.Is(err, ErrChecksum) {
			t.Fatalf("health with a non-checksum error: %v", err)
		}

		// Normalized to two pages, checksums made valid when asked.
		data, thr = fitPage(data), fitPage(thr)
		if fixSums {
			data[ataChecksumByte] -= sum8(data)
			thr[ataChecksumByte] -= sum8(thr)
		}
		h, err := ParseATASmartPages(data, thr)
		if err != nil {
			if h != nil && !errors.Is(err, ErrChecksum) {
				t.Fatalf("health with a non-checksum error: %v", err)
			}
			return
		}
		Assess(&Report{Protocol: ProtocolATA, ATA: h})
		d2, t2 := encodeATAPages(h)
		h2, err := ParseATASmartPages(d2, t2)
		if err != nil {
			if len(h.Attributes) == 0 && h.Revision == 0 {
				return // nothing to write back: the pages are zero
			}
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", h2, h)
		}
	})
}

// FuzzParseNVMeSmartLog: no panic; what a page decodes to encodes to a
// page that decodes the same.
func FuzzParseNVMeSmartLog(f *testing.F) {
	p := make([]byte, 512)
	p[0], p[1], p[2], p[3], p[4], p[5] = 0x11, 0x43, 0x01, 50, 10, 3
	p[160], p[200], p[201] = 9, 0x2c, 0x01
	f.Add(p)
	f.Add(make([]byte, 4096))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, page []byte) {
		if h, err := ParseNVMeSmartLog(page); (h == nil) == (err == nil) {
			t.Fatalf("health %v and error %v", h, err)
		}
		h, err := ParseNVMeSmartLog(fitPage(page))
		if err != nil {
			return
		}
		Assess(&Report{Protocol: ProtocolNVMe, NVMe: h})
		enc := encodeNVMeSmartLog(h)
		if allZero(enc) {
			return // only reserved bytes were set
		}
		h2, err := ParseNVMeSmartLog(enc)
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, h2, h)
		}
	})
}

func FuzzParseATAIdentify(f *testing.F) {
	blobs, _ := filepath.Glob(filepath.Join(blobDir, "*.bin"))
	for _, p := range blobs {
		f.Add(readBlob(f, p).identify)
	}
	f.Fuzz(func(t *testing.T, page []byte) {
		id, err := ParseATAIdentify(page)
		if err != nil && id != nil && !errors.Is(err, ErrChecksum) {
			t.Fatalf("identity with a non-checksum error: %v", err)
		}
		if id != nil && id.CapacityBytes%uint64(id.LogicalSectorSize) != 0 {
			t.Fatalf("capacity %d not a multiple of the sector size %d", id.CapacityBytes, id.LogicalSectorSize)
		}
	})
}

// fitPage pads or cuts b to one 512-byte page.
func fitPage(b []byte) []byte {
	p := make([]byte, ATAPageSize)
	copy(p, b)
	return p
}
