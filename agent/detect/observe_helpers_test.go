package detect_test

import (
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

	smartsrc "github.com/hwheal/hwheal/agent/source/smart"
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

// attrSample is agent/source/smart's name of an ATA attribute's field
// (its attrSample is unexported: "ata_attr_<id>_<field>").
func attrSample(id uint8, field string) string {
	return "ata_attr_" + strconv.Itoa(int(id)) + "_" + field
}

// smartSamples maps a drive's report to samples the way agent/source/smart
// does (samples.go's reportSamples, which is unexported), with its
// exported sample names.
func smartSamples(rep *smart.Report) []*hwhealv1.Sample {
	var out []*hwhealv1.Sample
	add := func(name string, v float64) { out = append(out, &hwhealv1.Sample{Name: name, Value: v}) }
	add(smartsrc.SampleStandby, 0)
	add(smartsrc.SampleReadError, 0)
	if rep.OverallPassed != nil {
		add(smartsrc.SampleSmartPassed, b2f(*rep.OverallPassed))
	}
	if rep.TemperatureC != 0 {
		add(smartsrc.SampleTemperature, float64(rep.TemperatureC))
	}
	if h := rep.ATA; h != nil {
		for _, a := range h.Attributes {
			add(attrSample(a.ID, "value"), float64(a.Value))
			add(attrSample(a.ID, "worst"), float64(a.Worst))
			add(attrSample(a.ID, "thresh"), float64(a.Threshold))
			add(attrSample(a.ID, "raw"), float64(a.Raw))
		}
		for _, c := range []struct {
			name string
			get  func() (uint64, bool)
		}{
			{smartsrc.SampleATAReallocated, h.ReallocatedSectors},
			{smartsrc.SampleATAReportedUncorrect, h.ReportedUncorrect},
			{smartsrc.SampleATACommandTimeout, h.CommandTimeout},
			{smartsrc.SampleATAPending, h.PendingSectors},
			{smartsrc.SampleATAOfflineUncorrectable, h.OfflineUncorrectable},
		} {
			if v, ok := c.get(); ok {
				add(c.name, float64(v))
			}
		}
	}
	if h := rep.NVMe; h != nil {
		add(smartsrc.SampleNVMeCriticalWarning, float64(h.CriticalWarning))
		add(smartsrc.SampleNVMeAvailableSpare, float64(h.AvailableSpare))
		add(smartsrc.SampleNVMeAvailableSpareThresh, float64(h.AvailableSpareThreshold))
		add(smartsrc.SampleNVMePercentageUsed, float64(h.PercentageUsed))
		add(smartsrc.SampleNVMeMediaErrors, float64(h.MediaErrors))
		add(smartsrc.SampleNVMeErrorLogEntries, float64(h.NumErrLogEntries))
	}
	if h := rep.SCSI; h != nil {
		if h.GrownDefects != nil {
			add(smartsrc.SampleSCSIGrownDefects, float64(*h.GrownDefects))
		}
		if n, ok := h.UncorrectedErrors(); ok {
			add(smartsrc.SampleSCSIUncorrectedErrors, float64(n))
		}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
	return &hwhealv1.Observation{
		Time:    timestamppb.New(t0.Add(at)),
		Source:  smartsrc.Name,
		Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: device, Serial: rep.Serial, Model: rep.Model},
		Samples: smartSamples(rep),
	}
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
			Source: smartsrc.Name,
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
				o.Samples = append(o.Samples, &hwhealv1.Sample{Name: attrSample(uint8(n), "raw"), Value: v})
			case "normalized":
				o.Samples = append(o.Samples, &hwhealv1.Sample{Name: attrSample(uint8(n), "value"), Value: v})
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
