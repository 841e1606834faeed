package detect_test

import (
	"encoding/binary"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// obs builds an observation of source for a part, at t0+at (t0 is
// limit_test.go's), with samples
// given as name, value pairs.
func obs(source string, part *hwhealv1.Part, at time.Duration, kv ...any) *hwhealv1.Observation {
	o := &hwhealv1.Observation{Time: timestamppb.New(t0.Add(at)), Source: source, Part: part}
	for i := 0; i+1 < len(kv); i += 2 {
		var v float64
		switch x := kv[i+1].(type) {
		case int:
			v = float64(x)
		case float64:
			v = x
		default:
			panic("obs: value must be int or float64")
		}
		o.Samples = append(o.Samples, &hwhealv1.Sample{Name: kv[i].(string), Value: v})
	}
	return o
}

// smartctlObservation reads testdata/smart/<name> (smartctl --json) into
// the observation the agent's SMART source would send for it.
func smartctlObservation(t testing.TB, name, device string, at time.Duration) *hwhealv1.Observation {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "smart", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := smart.ParseSmartctlJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return reportObservation(rep, device, at, true)
}

// reportObservation is the observation the agent's SMART source sends for
// one reading of a drive: pkg/smart.ReadingSamples, which the source and
// the offline replay both use.
func reportObservation(rep *smart.Report, device string, at time.Duration, bySmartctl bool) *hwhealv1.Observation {
	o := &hwhealv1.Observation{
		Time:   timestamppb.New(t0.Add(at)),
		Source: smart.ObservationSource,
		Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: device, Serial: rep.Serial, Model: rep.Model},
	}
	for _, s := range smart.ReadingSamples(rep, bySmartctl) {
		o.Samples = append(o.Samples, &hwhealv1.Sample{Name: s.Name, Value: s.Value})
	}
	return o
}

// nativeObservation reads testdata/smart/<name>.bin, one of libblockdev's
// libatasmart dumps of a real drive (records of a 4-byte tag, a 4-byte
// big-endian length and the data: IDFY, SMST, SMDT, SMTH), into the
// observation the SMART source's native reader would send: the pages it
// reads over SAT pass-through, parsed by pkg/smart.
func nativeObservation(t testing.TB, name, device string, at time.Duration) *hwhealv1.Observation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "smart", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string][]byte{}
	for len(b) > 0 {
		if len(b) < 8 || uint32(len(b)-8) < binary.BigEndian.Uint32(b[4:8]) {
			t.Fatalf("%s: truncated record", name)
		}
		n := binary.BigEndian.Uint32(b[4:8])
		recs[string(b[:4])] = b[8 : 8+n]
		b = b[8+n:]
	}
	id, err := smart.ParseATAIdentify(recs["IDFY"])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	h, err := smart.ParseATASmartPages(recs["SMDT"], recs["SMTH"])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(recs["SMST"]) != 4 {
		t.Fatalf("%s: no SMART RETURN STATUS", name)
	}
	passed := binary.BigEndian.Uint32(recs["SMST"]) != 0
	return reportObservation(&smart.Report{Protocol: smart.ProtocolATA, Model: id.Model, Serial: id.Serial, OverallPassed: &passed, ATA: h}, device, at, false)
}

// driveDay is one daily Backblaze Drive Stats row of one drive.
type driveDay struct {
	date    time.Time
	failure bool // the drive failed on this day (its last row)
	obs     *hwhealv1.Observation
}

// readBackblaze reads Backblaze Drive Stats CSV into each drive's days in
// date order, as SMART observations with agent/source/smart's sample
// names: smart_<id>_raw as ata_attr_<id>_raw, smart_<id>_normalized as
// ata_attr_<id>_value. Empty cells are samples the drive did not report.
func readBackblaze(t testing.TB, r io.Reader) (map[string][]driveDay, []string) {
	t.Helper()
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range []string{"date", "serial_number", "model", "failure"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("backblaze CSV has no %s column", c)
		}
	}
	drives := map[string][]driveDay{}
	var order []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		date, err := time.Parse("2006-01-02", rec[col["date"]])
		if err != nil {
			t.Fatal(err)
		}
		serial := rec[col["serial_number"]]
		o := &hwhealv1.Observation{
			Time:   timestamppb.New(date),
			Source: smart.ObservationSource,
			Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Serial: serial, Model: rec[col["model"]]},
		}
		for i, h := range head {
			id, field, ok := strings.Cut(strings.TrimPrefix(h, "smart_"), "_")
			if !ok || !strings.HasPrefix(h, "smart_") || rec[i] == "" {
				continue
			}
			n, err := strconv.Atoi(id)
			if err != nil || n < 1 || n > 255 {
				continue
			}
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil {
				t.Fatalf("%s %s: %s = %q", serial, date.Format(time.DateOnly), h, rec[i])
			}
			switch field {
			case "raw":
				o.Samples = append(o.Samples, &hwhealv1.Sample{Name: smart.AttrSample(uint8(n), "raw"), Value: v})
			case "normalized":
				o.Samples = append(o.Samples, &hwhealv1.Sample{Name: smart.AttrSample(uint8(n), "value"), Value: v})
			}
		}
		if _, ok := drives[serial]; !ok {
			order = append(order, serial)
		}
		drives[serial] = append(drives[serial], driveDay{date: date, failure: rec[col["failure"]] == "1", obs: o})
	}
	for _, days := range drives {
		slices.SortStableFunc(days, func(a, b driveDay) int { return a.date.Compare(b.date) })
	}
	return drives, order
}
