package replay

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Row is one Backblaze Drive Stats row: one drive on one day.
type Row struct {
	Date    time.Time // the day, at 00:00 UTC
	Serial  string
	Model   string
	Failure bool // Backblaze's label: the drive failed on this day
	// Observation is what the agent's SMART source would send for the
	// drive that day: the same sample names (ata_attr_<id>_raw,
	// ata_attr_<id>_value from smart_<id>_normalized, the named counters,
	// power_on_hours, temperature_celsius), with an empty cell an absent
	// sample, never a zero. Its part is the disk with the row's serial and
	// model (no kernel name), its time the day.
	Observation *hwhealv1.Observation
	// File and Line say where the row was read: File as ReplayBackblaze
	// was given it (empty from ReadBackblaze), Line the 1-based line.
	File string
	Line int
}

// ErrNotBackblaze: the CSV header lacks a column Backblaze rows have.
var ErrNotBackblaze = errors.New("not Backblaze Drive Stats CSV")

// bbHeader maps a file's columns.
type bbHeader struct {
	date, serial, model, failure int
	attrs                        []bbAttr // by id, then raw before normalized
	ncol                         int
}

type bbAttr struct {
	id         int
	normalized bool
	col        int
}

var bbRequired = []string{"date", "serial_number", "model", "failure"}

func headerName(s string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(strings.TrimPrefix(s, "\xef\xbb\xbf")), `"`))
}

func isBackblazeHeader(cols []string) bool {
	_, err := parseBBHeader(cols)
	return err == nil
}

func parseBBHeader(cols []string) (*bbHeader, error) {
	h := &bbHeader{date: -1, serial: -1, model: -1, failure: -1, ncol: len(cols)}
	for i, c := range cols {
		c = headerName(c)
		switch c {
		case "date":
			h.date = i
		case "serial_number":
			h.serial = i
		case "model":
			h.model = i
		case "failure":
			h.failure = i
		default:
			rest, ok := strings.CutPrefix(c, "smart_")
			if !ok {
				continue // capacity_bytes, datacenter, pod_id, ...: not SMART
			}
			idStr, kind, ok := strings.Cut(rest, "_")
			id, err := strconv.Atoi(idStr)
			if !ok || err != nil || id < 1 || id > 255 || (kind != "raw" && kind != "normalized") {
				continue
			}
			h.attrs = append(h.attrs, bbAttr{id: id, normalized: kind == "normalized", col: i})
		}
	}
	var missing []string
	for i, idx := range []int{h.date, h.serial, h.model, h.failure} {
		if idx < 0 {
			missing = append(missing, bbRequired[i])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: header has no %s column", ErrNotBackblaze, strings.Join(missing, ", "))
	}
	// Samples go out as the live agent orders them: by attribute id,
	// value before raw.
	slices.SortStableFunc(h.attrs, func(a, b bbAttr) int {
		if c := cmp.Compare(a.id, b.id); c != 0 {
			return c
		}
		if a.normalized != b.normalized {
			if a.normalized {
				return -1
			}
			return 1
		}
		return 0
	})
	return h, nil
}

// The attributes the agent also reports under a name, with the bits of
// the raw value it keeps (pkg/smart's accessors): so that a rule on
// ata_reallocated_sectors sees the same number from a Backblaze row as
// from the drive.
var bbNamed = []struct {
	id   int
	name string
	mask uint64
}{
	{5, smart.SampleATAReallocated, 0xffff},
	{187, smart.SampleATAReportedUncorrect, math.MaxUint64},
	{188, smart.SampleATACommandTimeout, math.MaxUint64},
	{197, smart.SampleATAPending, math.MaxUint64},
	{198, smart.SampleATAOfflineUncorrectable, math.MaxUint64},
	{199, smart.SampleATAUDMACRCErrors, math.MaxUint64},
}

// row turns one record into a Row.
func (h *bbHeader) row(rec []string, line int) (Row, error) {
	if len(rec) != h.ncol {
		return Row{}, fmt.Errorf("line %d: %d fields, header has %d", line, len(rec), h.ncol)
	}
	day, err := time.Parse(time.DateOnly, strings.TrimSpace(rec[h.date]))
	if err != nil {
		return Row{}, fmt.Errorf("line %d: date %q: want YYYY-MM-DD", line, clip(rec[h.date]))
	}
	r := Row{Date: day, Serial: strings.TrimSpace(rec[h.serial]), Model: strings.TrimSpace(rec[h.model]), Line: line}
	if r.Serial == "" {
		return Row{}, fmt.Errorf("line %d: empty serial_number", line)
	}
	switch strings.TrimSpace(rec[h.failure]) {
	case "0", "0.0", "":
	case "1", "1.0":
		r.Failure = true
	default:
		return Row{}, fmt.Errorf("line %d: failure %q: want 0 or 1", line, clip(rec[h.failure]))
	}

	raw := map[int]uint64{}
	var attrs []*hwhealv1.Sample
	for _, a := range h.attrs {
		cell := strings.TrimSpace(rec[a.col])
		if cell == "" {
			continue
		}
		v, err := parseCount(cell)
		if err != nil {
			kind := "raw"
			if a.normalized {
				kind = "normalized"
			}
			return Row{}, fmt.Errorf("line %d: smart_%d_%s %q: %w", line, a.id, kind, clip(cell), err)
		}
		name := "ata_attr_" + strconv.Itoa(a.id) + "_raw"
		if a.normalized {
			name = "ata_attr_" + strconv.Itoa(a.id) + "_value"
		} else {
			raw[a.id] = v
		}
		attrs = append(attrs, &hwhealv1.Sample{Name: name, Value: float64(v)})
	}

	o := &hwhealv1.Observation{
		Time:   timestamppb.New(day),
		Source: smart.ObservationSource,
		Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Serial: r.Serial, Model: r.Model},
	}
	add := func(name string, v float64) { o.Samples = append(o.Samples, &hwhealv1.Sample{Name: name, Value: v}) }
	// What every live reading of an awake drive carries; Backblaze
	// collects with smartctl.
	add(smart.SampleStandby, 0)
	add(smart.SampleReadError, 0)
	add(smart.SampleReadBySmartctl, 1)
	if v, ok := raw[194]; ok && v&0xff != 0 {
		add(smart.SampleTemperature, float64(v&0xff))
	}
	if v, ok := raw[9]; ok && v&0xffffff != 0 {
		add(smart.SamplePowerOnHours, float64(v&0xffffff))
	}
	o.Samples = append(o.Samples, attrs...)
	for _, n := range bbNamed {
		if v, ok := raw[n.id]; ok {
			add(n.name, float64(v&n.mask))
		}
	}
	r.Observation = o
	return r, nil
}

// parseCount reads a SMART cell: a non-negative integer, written as a
// float by some exports ("12.0", "1.2e+11").
func parseCount(s string) (uint64, error) {
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f >= 1<<64 || f != math.Trunc(f) {
		return 0, errors.New("not a non-negative integer")
	}
	return uint64(f), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// newBBReader is a CSV reader for Backblaze files: variable field counts
// are checked per row against the header, with a message that says so.
func newBBReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

// readBBHeader reads the header record.
func readBBHeader(cr *csv.Reader) (*bbHeader, error) {
	rec, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty input", ErrNotBackblaze)
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return parseBBHeader(rec)
}

// ReadBackblaze reads Backblaze Drive Stats CSV (a header line, then one
// row per drive per day, any schema since 2013: columns are found by name)
// and calls fn for each row in file order. It stops at the first malformed
// row with an error that names its line and column, and returns fn's
// error as it is.
func ReadBackblaze(r io.Reader, fn func(Row) error) error {
	cr := newBBReader(r)
	h, err := readBBHeader(cr)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		row, err := h.row(rec, line)
		if err != nil {
			return err
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// bbRef locates one row for the sorted second pass. Serials are interned:
// a drive's 40 rows share one string.
type bbRef struct {
	serial string
	day    int32 // days since 1970-01-01
	file   int32
	line   int32
	off    int64
	n      int32
}

// ReplayStats counts what a Backblaze replay read.
type ReplayStats struct {
	Rows       int `json:"rows"`
	Drives     int `json:"drives"`
	Duplicates int `json:"duplicate_rows"` // the same serial and day in another file or line: the first kept
}

// bbSource is one input: the bytes, random access.
type bbSource struct {
	name string
	r    io.ReaderAt
	size int64
}

// ReplayBackblaze reads Backblaze CSV files and calls fn for every row,
// drive by drive (serials in byte order) and, for each drive, day by day,
// whatever order the files hold them in (Backblaze publishes one file per
// day; derived files group rows by drive). A row for a serial and day
// already read (the same day in a daily file and a per-drive history) is
// skipped and counted.
//
// Memory: it reads the files twice, first only to index them (48 bytes a
// row, up to twice that while the index grows, plus each serial once:
// under 8 MB for ../shared/corpora/backblaze's 80,701 rows), then one row
// at a time in drive order, so the rows themselves are never all held. A
// year of Backblaze's whole fleet (some 100 million rows) would need
// about 5-10 GB: replay such data a quarter at a time.
func ReplayBackblaze(files []string, fn func(Row) error) (ReplayStats, error) {
	srcs := make([]bbSource, 0, len(files))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return ReplayStats{}, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return ReplayStats{}, fmt.Errorf("%s: %w", name, err)
		}
		srcs = append(srcs, bbSource{name: name, r: f, size: st.Size()})
	}
	return replayBackblaze(srcs, fn)
}

func replayBackblaze(srcs []bbSource, fn func(Row) error) (ReplayStats, error) {
	var st ReplayStats
	headers := make([]*bbHeader, len(srcs))
	var refs []bbRef
	intern := map[string]string{}
	for i, src := range srcs {
		cr := newBBReader(io.NewSectionReader(src.r, 0, src.size))
		h, err := readBBHeader(cr)
		if err != nil {
			return st, fmt.Errorf("%s: %w", src.name, err)
		}
		headers[i] = h
		for {
			off := cr.InputOffset()
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return st, fmt.Errorf("%s: %w", src.name, err)
			}
			line, _ := cr.FieldPos(0)
			if len(rec) != h.ncol {
				return st, fmt.Errorf("%s: line %d: %d fields, header has %d", src.name, line, len(rec), h.ncol)
			}
			day, err := time.Parse(time.DateOnly, strings.TrimSpace(rec[h.date]))
			if err != nil {
				return st, fmt.Errorf("%s: line %d: date %q: want YYYY-MM-DD", src.name, line, clip(rec[h.date]))
			}
			serial := strings.TrimSpace(rec[h.serial])
			s, ok := intern[serial]
			if !ok {
				// A field of a reused record shares the line's memory:
				// copy it, or every row's line stays alive.
				s = strings.Clone(serial)
				intern[s] = s
			}
			refs = append(refs, bbRef{
				serial: s, day: int32(day.Unix() / 86400), file: int32(i), line: int32(line),
				off: off, n: int32(cr.InputOffset() - off),
			})
		}
	}
	slices.SortFunc(refs, func(a, b bbRef) int {
		return cmp.Or(strings.Compare(a.serial, b.serial), cmp.Compare(a.day, b.day),
			cmp.Compare(a.file, b.file), cmp.Compare(a.off, b.off))
	})
	var buf []byte
	// One CSV reader for every row: each row's bytes are exactly one
	// record, handed to it in turn (a reader per row made garbage of a
	// 4 KiB buffer per row).
	src := &rowBytes{}
	cr := newBBReader(src)
	for i, ref := range refs {
		if i > 0 && refs[i-1].serial == ref.serial && refs[i-1].day == ref.day {
			st.Duplicates++
			continue
		}
		if i == 0 || refs[i-1].serial != ref.serial {
			st.Drives++
		}
		in := srcs[ref.file]
		buf = slices.Grow(buf[:0], int(ref.n))[:ref.n]
		if _, err := in.r.ReadAt(buf, ref.off); err != nil && err != io.EOF {
			return st, fmt.Errorf("%s: line %d: %w", in.name, ref.line, err)
		}
		src.b = buf
		rec, err := cr.Read()
		if err != nil || len(src.b) != 0 {
			return st, fmt.Errorf("%s: line %d: changed while read (%v)", in.name, ref.line, err)
		}
		row, err := headers[ref.file].row(rec, int(ref.line))
		if err != nil {
			return st, fmt.Errorf("%s: %w", in.name, err)
		}
		row.File = in.name
		st.Rows++
		if err := fn(row); err != nil {
			return st, err
		}
	}
	return st, nil
}

// rowBytes reads the bytes of the row at hand, then reports the end of
// input until the next row is set.
type rowBytes struct{ b []byte }

func (r *rowBytes) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
