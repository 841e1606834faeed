package smart

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	corpusDir     = "testdata/corpus/smartctl_json"
	nvmeCLIDir    = "testdata/corpus/nvme_cli_json"
	blobDir       = corpusDir + "/libblockdev/tests/smart_dumps"
	skdumpDir     = "testdata/skdump"
	indexFile     = corpusDir + "/INDEX.tsv"
	goldenAssess  = "testdata/golden/assess.txt"
	syntheticDir  = "testdata/synthetic"
	smartctl73Dir = "testdata/smartctl73"
)

// indexRow is one row of the corpus's INDEX.tsv: the corpus maintainers'
// reading of each file, not ground truth.
type indexRow struct {
	File        string
	Protocol    string // ATA, NVMe, SCSI, INVALID_JSON, scan, not_smartctl_device_output
	Model       string
	SmartPassed string // True, False, None or empty
	ExitStatus  string
	FaultFlags  string
}

func readIndex(t testing.TB) []indexRow {
	t.Helper()
	f, err := os.Open(indexFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []indexRow
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		if first {
			continue // header
		}
		cols := strings.Split(sc.Text(), "\t")
		for len(cols) < 6 {
			cols = append(cols, "")
		}
		rows = append(rows, indexRow{cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 100 {
		t.Fatalf("INDEX.tsv has %d rows, expected the whole corpus", len(rows))
	}
	return rows
}

func parseFile(t testing.TB, path string) (*Report, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ParseSmartctlJSON(f)
}

func mustParse(t testing.TB, path string) *Report {
	t.Helper()
	r, err := parseFile(t, path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// blob is a libatasmart "blob" (sk_disk_get_blob, saved by `skdump --save`):
// records of a 4-byte big-endian tag, a 4-byte big-endian length and the
// data. libblockdev's 1572-byte test dumps are IDFY (IDENTIFY DEVICE, 512),
// SMST (SMART RETURN STATUS as a big-endian uint32, 1 = good, 4), SMDT
// (SMART READ DATA, 512) and SMTH (SMART READ THRESHOLDS, 512).
type blob struct {
	identify, data, thresholds []byte
	statusGood                 *bool
}

func readBlob(t testing.TB, path string) blob {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out blob
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("%s: %d trailing bytes", path, len(b))
		}
		tag, n := string(b[:4]), binary.BigEndian.Uint32(b[4:8])
		if uint32(len(b)-8) < n {
			t.Fatalf("%s: record %s of %d bytes truncated", path, tag, n)
		}
		rec := b[8 : 8+n]
		switch tag {
		case "IDFY":
			out.identify = rec
		case "SMDT":
			out.data = rec
		case "SMTH":
			out.thresholds = rec
		case "SMST":
			good := binary.BigEndian.Uint32(rec) != 0
			out.statusGood = &good
		default:
			t.Fatalf("%s: unknown record %q", path, tag)
		}
		b = b[8+n:]
	}
	return out
}

// skdumpAttr is one row of skdump's attribute table.
type skdumpAttr struct {
	id                  uint8
	value, worst, thres int    // -1: skdump printed n/a (libatasmart treats 0 and 254-255 as invalid)
	raw                 uint64 // the 6 raw bytes, printed by skdump in page order
	prefail             bool
	goodNow, goodPast   string // yes, no, n/a
}

type skdumpOut struct {
	model, serial, firmware string
	healthGood              string // yes / no
	overall                 string // GOOD, BAD_SECTOR, BAD_STATUS, ...
	attrs                   []skdumpAttr
}

// readSkdump reads the output of libatasmart's `skdump --load=FILE`, an
// implementation independent of this package.
func readSkdump(t testing.TB, path string) skdumpOut {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out skdumpOut
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		field := func(prefix string) (string, bool) {
			if !strings.HasPrefix(line, prefix) {
				return "", false
			}
			return strings.TrimSpace(strings.TrimPrefix(line, prefix)), true
		}
		bracket := func(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]") }
		if v, ok := field("Model:"); ok {
			out.model = bracket(v)
		} else if v, ok := field("Serial:"); ok {
			out.serial = bracket(v)
		} else if v, ok := field("Firmware:"); ok {
			out.firmware = bracket(v)
		} else if v, ok := field("SMART Disk Health Good:"); ok {
			out.healthGood = v
		} else if v, ok := field("Overall Status:"); ok {
			out.overall = v
		} else if strings.HasPrefix(line, "ID# ") {
			inTable = true
		} else if inTable && strings.TrimSpace(line) != "" {
			out.attrs = append(out.attrs, parseSkdumpRow(t, line))
		}
	}
	return out
}

// parseSkdumpRow reads "  5 reallocated-sector-count  118 118 140 655 sectors
// 0x8f0200000000 prefail online  no   no": the pretty column has spaces, so
// the row is read from both ends.
func parseSkdumpRow(t testing.TB, line string) skdumpAttr {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 10 {
		t.Fatalf("skdump row %q: too few fields", line)
	}
	u8 := func(s string) int {
		if s == "n/a" {
			return -1
		}
		v, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			t.Fatalf("skdump row %q: %v", line, err)
		}
		return int(v)
	}
	n := len(f)
	hexRaw := strings.TrimPrefix(f[n-5], "0x")
	rawBytes, err := hex.DecodeString(hexRaw)
	if err != nil || len(rawBytes) != 6 {
		t.Fatalf("skdump row %q: raw %q: %v", line, hexRaw, err)
	}
	var raw uint64
	for i, c := range rawBytes {
		raw |= uint64(c) << (8 * i)
	}
	return skdumpAttr{
		id:       uint8(u8(f[0])),
		value:    u8(f[2]),
		worst:    u8(f[3]),
		thres:    u8(f[4]),
		raw:      raw,
		prefail:  f[n-4] == "prefail",
		goodNow:  f[n-2],
		goodPast: f[n-1],
	}
}

// encodeATAPages writes h back into SMART READ DATA and READ THRESHOLDS
// pages with valid checksums: the inverse of ParseATASmartPages for the
// fields the model keeps.
func encodeATAPages(h *ATAHealth) (data, thresholds []byte) {
	data, thresholds = make([]byte, ATAPageSize), make([]byte, ATAPageSize)
	binary.LittleEndian.PutUint16(data, h.Revision)
	binary.LittleEndian.PutUint16(thresholds, h.Revision)
	for i, a := range h.Attributes {
		if i >= ataAttrEntries {
			break
		}
		e := data[ataAttrOffset+i*ataAttrSize:][:ataAttrSize]
		e[0] = a.ID
		binary.LittleEndian.PutUint16(e[1:], a.Flags)
		e[3], e[4] = a.Value, a.Worst
		for k := range 6 {
			e[5+k] = byte(a.Raw >> (8 * k))
		}
		te := thresholds[ataAttrOffset+i*ataAttrSize:][:ataAttrSize]
		te[0], te[1] = a.ID, a.Threshold
	}
	data[ataChecksumByte] = -sum8(data[:ataChecksumByte])
	thresholds[ataChecksumByte] = -sum8(thresholds[:ataChecksumByte])
	return data, thresholds
}

// encodeNVMeSmartLog writes h back into a log page 02h.
func encodeNVMeSmartLog(h *NVMeHealth) []byte {
	p := make([]byte, NVMeSmartLogSize)
	le := binary.LittleEndian
	p[0] = byte(h.CriticalWarning)
	le.PutUint16(p[1:], uint16(h.TemperatureC+kelvinOffset))
	p[3], p[4], p[5], p[6] = h.AvailableSpare, h.AvailableSpareThreshold, h.PercentageUsed, h.EnduranceGroupCriticalWarning
	for off, v := range map[int]uint64{
		32: h.DataUnitsRead, 48: h.DataUnitsWritten, 64: h.HostReadCommands, 80: h.HostWriteCommands,
		96: h.ControllerBusyMinutes, 112: h.PowerCycles, 128: h.PowerOnHours, 144: h.UnsafeShutdowns,
		160: h.MediaErrors, 176: h.NumErrLogEntries,
	} {
		le.PutUint64(p[off:], v)
	}
	le.PutUint32(p[192:], h.WarningTempMinutes)
	le.PutUint32(p[196:], h.CriticalTempMinutes)
	for i, c := range h.TemperatureSensorsC {
		if i < 8 {
			le.PutUint16(p[200+2*i:], uint16(c+kelvinOffset))
		}
	}
	return p
}

// corpusJSONFiles lists every .json file under the copied corpus.
func corpusJSONFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".json") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func findingCodes(fs []Finding) []string {
	codes := make([]string, 0, len(fs))
	for _, f := range fs {
		codes = append(codes, f.Code)
	}
	return codes
}

// flagged is the test's reading of "the drive is flagged": a finding of
// warning or critical severity. Info findings are evidence, not verdicts.
func flagged(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity >= SeverityWarning {
			return true
		}
	}
	return false
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
