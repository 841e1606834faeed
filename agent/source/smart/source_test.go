package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// corpusReader answers every disk with a real drive's smartctl report,
// and fails "sdz".
func corpusReader(t testing.TB, file string) *fakeReader {
	r := newFakeReader(PreferSmartctl)
	rep := parseJSONFile(t, filepath.Join(jsonDir, file))
	for _, n := range []string{"sda", "sdb", "sdc", "sdd"} {
		r.set(n, rep)
	}
	r.errs["sdz"] = fmt.Errorf("sdz: SMART READ DATA: %w", errors.New("input/output error"))
	return r
}

func TestRunLoop(t *testing.T) {
	sourcetest.RunLoop(t, sourcetest.Fixture{
		New: func(root string, interval time.Duration, logger *slog.Logger) sourcetest.Periodic {
			return New(Config{Root: root, Interval: interval, Logger: logger,
				Readers: []Reader{corpusReader(t, "sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json")}})
		},
		Good:       func(t *testing.T) string { return diskTree(t, sataDisk("sdb", 2), sataDisk("sda", 1)) },
		PerReading: 2,
		Parts:      []string{"sda", "sdb"},
		AbsentLog:  "nothing to read, source stopped",
		Malformed: func(t *testing.T) (string, []string) {
			return diskTree(t, sataDisk("sda", 1), sataDisk("sdz", 2)), []string{"read SMART", "sdz: SMART READ DATA: input/output error"}
		},
		MalformedMin: 4, // sda read, sdz reported as failed, twice
	})
}

// jsonDoc is a smartctl JSON file read without pkg/smart, to check the
// samples against the file itself.
type jsonDoc map[string]any

func readDoc(t *testing.T, file string) jsonDoc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(jsonDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var d jsonDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d jsonDoc) num(path ...string) (float64, bool) {
	var v any = map[string]any(d)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, false
		}
		v = m[p]
	}
	f, ok := v.(float64)
	return f, ok
}

// TestObservationSamples reads four real drives (smartctl JSON: a healthy
// and a failing SATA HDD, an NVMe SSD, a SAS HDD) through the reader seam
// and checks every sample against the JSON file itself.
func TestObservationSamples(t *testing.T) {
	for _, file := range []string{
		"sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json",
		"smart-fail2.json",
		"nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json",
		"SEAGATE_ST373453LC_27.json",
	} {
		t.Run(file, func(t *testing.T) {
			doc := readDoc(t, file)
			r := newFakeReader(PreferSmartctl)
			r.set("sda", parseJSONFile(t, filepath.Join(jsonDir, file)))
			s := New(Config{Root: diskTree(t, sataDisk("sda", 1)), Readers: []Reader{r}})
			rd := s.read(context.Background())
			obs := rd.observations()
			if len(obs) != 1 || rd.err() != nil {
				t.Fatalf("%d observations, err %v", len(obs), rd.err())
			}
			o := obs[0]
			got := sourcetest.SampleMap(o)
			if o.GetSource() != Name || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_DISK || o.GetPart().GetName() != "sda" {
				t.Errorf("observation %s part %v", o.GetSource(), o.GetPart())
			}
			if m, _ := doc["model_name"].(string); m != "" && o.GetPart().GetModel() != m {
				t.Errorf("model %q, drive says %q", o.GetPart().GetModel(), m)
			}
			if sn, _ := doc["serial_number"].(string); o.GetPart().GetSerial() != sn {
				t.Errorf("serial %q, drive says %q (sysfs has none)", o.GetPart().GetSerial(), sn)
			}
			want := map[string]float64{SampleStandby: 0, SampleReadError: 0, SampleReadBySmartctl: 1}
			if p, ok := doc["smart_status"].(map[string]any)["passed"].(bool); ok {
				want[SampleSmartPassed] = b2f(p)
			}
			if v, ok := doc.num("temperature", "current"); ok && v != 0 {
				want[SampleTemperature] = v
			}
			if v, ok := doc.num("power_on_time", "hours"); ok {
				want[SamplePowerOnHours] = v
			}
			if attrs, ok := doc["ata_smart_attributes"].(map[string]any); ok {
				for _, a := range attrs["table"].([]any) {
					a := jsonDoc(a.(map[string]any))
					id, _ := a.num("id")
					key := fmt.Sprintf("ata_attr_%d_", int(id))
					want[key+"value"], _ = a.num("value")
					want[key+"worst"], _ = a.num("worst")
					want[key+"thresh"], _ = a.num("thresh")
					raw, _ := a.num("raw", "value")
					want[key+"raw"] = raw
					switch int(id) {
					case 5:
						want[SampleATAReallocated] = float64(uint64(raw) & 0xffff)
					case 187:
						want[SampleATAReportedUncorrect] = raw
					case 188:
						want[SampleATACommandTimeout] = raw
					case 197:
						want[SampleATAPending] = raw
					case 198:
						want[SampleATAOfflineUncorrectable] = raw
					case 199:
						want[SampleATAUDMACRCErrors] = raw
					}
				}
			}
			if _, ok := doc["nvme_smart_health_information_log"]; ok {
				for sample, key := range map[string]string{
					SampleNVMeCriticalWarning: "critical_warning", SampleNVMeAvailableSpare: "available_spare",
					SampleNVMeAvailableSpareThresh: "available_spare_threshold", SampleNVMePercentageUsed: "percentage_used",
					SampleNVMeMediaErrors: "media_errors", SampleNVMeUnsafeShutdowns: "unsafe_shutdowns",
					SampleNVMePowerCycles: "power_cycles", SampleNVMeErrorLogEntries: "num_err_log_entries",
					SampleNVMeDataUnitsRead: "data_units_read", SampleNVMeDataUnitsWritten: "data_units_written",
					SampleNVMeHostReadCommands: "host_reads", SampleNVMeHostWriteCommands: "host_writes",
					SampleNVMeControllerBusyMinutes: "controller_busy_time", SampleNVMeWarningTempMinutes: "warning_temp_time",
					SampleNVMeCriticalTempMinutes: "critical_comp_time",
				} {
					v, ok := doc.num("nvme_smart_health_information_log", key)
					if !ok {
						t.Fatalf("%s not in the file", key)
					}
					want[sample] = v
				}
				want[SampleNVMeEnduranceGroupWarning] = 0
			}
			if v, ok := doc.num("scsi_grown_defect_list"); ok {
				want[SampleSCSIGrownDefects] = v
				var sum float64
				for _, k := range []string{"read", "write", "verify"} {
					n, _ := doc.num("scsi_error_counter_log", k, "total_uncorrected_errors")
					sum += n
				}
				want[SampleSCSIUncorrectedErrors] = sum
			}
			if !maps.Equal(got, want) {
				for k := range maps.Keys(want) {
					if got[k] != want[k] {
						t.Errorf("%s = %v, file says %v", k, got[k], want[k])
					}
				}
				for k := range maps.Keys(got) {
					if _, ok := want[k]; !ok {
						t.Errorf("sample %s = %v not in the file", k, got[k])
					}
				}
			}
		})
	}
}

// faultSet is "class/severity" of each fault, sorted.
func faultSet(fs []*hwhealv1.Fault) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.GetFaultClass()+"/"+strings.TrimPrefix(f.GetSeverity().String(), "SEVERITY_"))
	}
	slices.Sort(out)
	return out
}

func evidence(f *hwhealv1.Fault) map[string]float64 {
	m := map[string]float64{}
	for _, s := range f.GetEvidence().GetSamples() {
		m[s.GetName()] = s.GetValue()
	}
	return m
}

// withRaw returns the pages with attribute id's raw value set, and the
// checksum made right again: a later reading of the same drive.
func withRaw(t *testing.T, b blob, id uint8, raw uint64) blob {
	t.Helper()
	return withAttr(t, b, id, func(e []byte) {
		for j := range 6 {
			e[5+j] = byte(raw >> (8 * j))
		}
	})
}

// withValue sets attribute id's normalized value.
func withValue(t *testing.T, b blob, id, value uint8) blob {
	t.Helper()
	return withAttr(t, b, id, func(e []byte) { e[3] = value })
}

func withAttr(t *testing.T, b blob, id uint8, set func(entry []byte)) blob {
	t.Helper()
	b.data = slices.Clone(b.data)
	found := false
	for i := 2; i+12 <= 362; i += 12 {
		if b.data[i] == id {
			set(b.data[i : i+12])
			found = true
		}
	}
	if !found {
		t.Fatalf("%s has no attribute %d", b.name, id)
	}
	var sum byte
	for _, c := range b.data[:511] {
		sum += c
	}
	b.data[511] = -sum
	return b
}

// TestFaultsOnceAndWhenWorse follows one real failing drive (libblockdev's
// Maxtor 6Y120P0: 1783 reallocated, 1727 pending sectors, attribute 5 once
// below its threshold) through the native reader over several intervals:
// its faults are raised at the first reading, not again while nothing
// changes, again when the pending count grows, not when it shrinks, not
// for a standby interval, and anew for another drive under the same name.
func TestFaultsOnceAndWhenWorse(t *testing.T) {
	maxtor := readBlob(t, filepath.Join(blobDir, "Maxtor_6Y120P0.bin"))
	wdc := readBlob(t, filepath.Join(blobDir, "WDC_WD20EARS-00MVWB0.bin"))
	root := diskTree(t, sataDisk("sda", 1))
	drive := newPageDrive(maxtor)
	s := New(Config{Root: root, Readers: []Reader{nativeFor(map[string]*pageDrive{filepath.Join(root, "dev/sda"): drive})}})

	step := func(b blob, power uint8) ([]*hwhealv1.Fault, *hwhealv1.Observation) {
		t.Helper()
		drive.b, drive.power = b, power
		rd := s.read(context.Background())
		if err := rd.err(); err != nil {
			t.Fatal(err)
		}
		return s.track(rd), rd.observations()[0]
	}

	fs, obs := step(maxtor, 0xff)
	if got, want := faultSet(fs), []string{"disk.media/WARNING", "disk.smart_failing/WARNING"}; !slices.Equal(got, want) {
		t.Fatalf("first reading raised %v, want %v", got, want)
	}
	for _, f := range fs {
		if f.GetPart().GetName() != "sda" || f.GetPart().GetSerial() != "Y3NJWLDE" || f.GetPart().GetModel() != "Maxtor 6Y120P0" {
			t.Errorf("part %v", f.GetPart())
		}
		if f.GetTime() == nil || !strings.HasPrefix(f.GetSummary(), "sda: ") || f.GetEvidence().GetCaptures()["reader"] != "native" {
			t.Errorf("fault %v", f)
		}
	}
	media := fs[slices.IndexFunc(fs, func(f *hwhealv1.Fault) bool { return f.GetFaultClass() == ClassMedia })]
	ev := evidence(media)
	if ev[SampleATAReallocated] != 1783 || ev[SampleATAPending] != 1727 || ev[SampleATAOfflineUncorrectable] != 1 || ev["ata_attr_5_raw"] != 1783 {
		t.Errorf("media evidence %v", ev)
	}
	if c := media.GetEvidence().GetCaptures()["findings"]; c != "ata.reallocated_sectors ata.pending_sectors ata.offline_uncorrectable" {
		t.Errorf("findings %q", c)
	}
	if s := sourcetest.SampleMap(obs); s[SampleATAPending] != 1727 || s[SampleSmartPassed] != 1 {
		t.Errorf("observation %v", s)
	}

	if fs, _ := step(maxtor, 0xff); len(fs) != 0 {
		t.Fatalf("unchanged drive raised %v", faultSet(fs))
	}
	grown := withRaw(t, maxtor, 197, 1732)
	fs, _ = step(grown, 0xff)
	if got := faultSet(fs); !slices.Equal(got, []string{"disk.media/WARNING"}) {
		t.Fatalf("pending 1727 -> 1732 raised %v, want disk.media again", got)
	}
	if prev := fs[0].GetEvidence().GetCaptures()["previous"]; prev != "ata.pending_sectors was 1727" || evidence(fs[0])[SampleATAPending] != 1732 {
		t.Errorf("previous %q, evidence %v", prev, evidence(fs[0]))
	}
	if fs, _ := step(grown, 0xff); len(fs) != 0 {
		t.Fatalf("unchanged drive raised %v", faultSet(fs))
	}
	if fs, _ := step(maxtor, 0xff); len(fs) != 0 {
		t.Fatalf("fewer pending sectors raised %v", faultSet(fs))
	}
	fs, obs = step(maxtor, 0x00)
	if len(fs) != 0 || sourcetest.SampleMap(obs)[SampleStandby] != 1 {
		t.Fatalf("standby: faults %v, samples %v", faultSet(fs), sourcetest.SampleMap(obs))
	}
	if fs, _ := step(maxtor, 0xff); len(fs) != 0 {
		t.Fatalf("after standby the same drive raised %v", faultSet(fs))
	}
	// The pending count grows while the disk is asleep: seen when it wakes.
	fs, _ = step(withRaw(t, maxtor, 197, 1800), 0xff)
	if got := faultSet(fs); !slices.Equal(got, []string{"disk.media/WARNING"}) {
		t.Fatalf("growth after standby raised %v", got)
	}
	// Attribute 5 falls to its threshold (63) now, then recovers above it:
	// worse, then better.
	fs, _ = step(withValue(t, withRaw(t, maxtor, 197, 1800), 5, 40), 0xff)
	if got := faultSet(fs); !slices.Equal(got, []string{"disk.smart_failing/CRITICAL"}) {
		t.Fatalf("attribute 5 failing now raised %v", got)
	}
	if fs, _ := step(withRaw(t, maxtor, 197, 1800), 0xff); len(fs) != 0 {
		t.Fatalf("attribute 5 back above its threshold raised %v", faultSet(fs))
	}
	// Another drive in the same bay.
	fs, _ = step(wdc, 0xff)
	if got, want := faultSet(fs), []string{"disk.media/WARNING", "disk.smart_failing/CRITICAL"}; !slices.Equal(got, want) {
		t.Fatalf("new drive raised %v, want %v", got, want)
	}
	if fs[0].GetPart().GetSerial() != "WD-WMAZA0075739" {
		t.Errorf("part %v", fs[0].GetPart())
	}
}

// TestNVMeFaults: a real NVMe drive with a critical warning (Samsung
// MZWLL3T2HAJQ, bit 4: volatile memory backup failed), and derived later
// readings of a healthy one (Samsung 970 EVO Plus) whose media errors,
// spare and wear change.
func TestNVMeFaults(t *testing.T) {
	warn := parseJSONFile(t, filepath.Join(jsonDir, "nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json"))
	healthy := parseJSONFile(t, filepath.Join(jsonDir, "nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json"))
	later := func(f func(h *smart.NVMeHealth)) *smart.Report {
		r := *healthy
		h := *healthy.NVMe
		f(&h)
		r.NVMe = &h
		return &r
	}
	r := newFakeReader(PreferNative)
	s := New(Config{Root: diskTree(t, sataDisk("sda", 1)), Readers: []Reader{r}})
	for i, step := range []struct {
		rep  *smart.Report
		want []string
	}{
		{warn, []string{"nvme.critical_warning/CRITICAL"}},
		{warn, nil},
		{healthy, nil},
		{later(func(h *smart.NVMeHealth) { h.MediaErrors = 3 }), []string{"nvme.media_errors/WARNING"}},
		{later(func(h *smart.NVMeHealth) { h.MediaErrors = 3 }), nil},
		{later(func(h *smart.NVMeHealth) { h.MediaErrors = 5 }), []string{"nvme.media_errors/WARNING"}},
		{later(func(h *smart.NVMeHealth) { h.AvailableSpare = 9 }), []string{"nvme.spare_low/CRITICAL"}},
		{later(func(h *smart.NVMeHealth) { h.AvailableSpare = 9 }), nil},
		{later(func(h *smart.NVMeHealth) { h.AvailableSpare = 5 }), []string{"nvme.spare_low/CRITICAL"}},
		{later(func(h *smart.NVMeHealth) { h.AvailableSpare = 5; h.CriticalWarning = smart.NVMeWarnSpare }), nil},
		{later(func(h *smart.NVMeHealth) { h.AvailableSpare = 4; h.CriticalWarning = smart.NVMeWarnSpare }), []string{"nvme.spare_low/CRITICAL"}},
		{later(func(h *smart.NVMeHealth) {
			h.AvailableSpare = 4
			h.CriticalWarning = smart.NVMeWarnSpare | smart.NVMeWarnTemperature
		}), []string{"nvme.critical_warning/WARNING"}},
		{later(func(h *smart.NVMeHealth) { h.PercentageUsed = 100 }), []string{"nvme.wear_out/WARNING"}},
		{later(func(h *smart.NVMeHealth) { h.PercentageUsed = 100 }), nil},
		{later(func(h *smart.NVMeHealth) { h.PercentageUsed = 101 }), []string{"nvme.wear_out/WARNING"}},
	} {
		r.set("sda", step.rep)
		fs := s.track(s.read(context.Background()))
		if got := faultSet(fs); !slices.Equal(got, step.want) {
			t.Fatalf("step %d raised %v, want %v", i, got, step.want)
		}
	}
}

// TestRunRaisesOnce: through Run, a failing drive's faults reach the sink
// once over many intervals.
func TestRunRaisesOnce(t *testing.T) {
	r := corpusReader(t, "smart-fail2.json")
	s := New(Config{Root: diskTree(t, sataDisk("sda", 1)), Interval: 2 * time.Millisecond, Readers: []Reader{r}})
	sink := &sourcetest.Sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Observations()) < 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(sink.Observations()); n < 6 {
		t.Fatalf("%d observations", n)
	}
	if got, want := faultSet(sink.Faults()), []string{"disk.media/WARNING", "disk.smart_failing/CRITICAL"}; !slices.Equal(got, want) {
		t.Fatalf("raised %v over %d readings, want %v once", got, len(sink.Observations()), want)
	}
}

// TestStandbyNeverRead: a disk the kernel has spun down is not handed to
// any reader; one that says it is in standby gets CHECK POWER MODE only.
func TestStandbyNeverRead(t *testing.T) {
	root := diskTree(t, sataDisk("sda", 1), sataDisk("sdb", 2))
	sourcetest.WriteFile(t, filepath.Join(root, "sys/block/sda/device/power/runtime_status"), "suspended\n")
	counter := corpusReader(t, "smart-fail2.json")
	sleepy := newPageDrive(readBlob(t, filepath.Join(blobDir, "WDC_WD20EARS-00MVWB0.bin")))
	sleepy.power = 0x00
	for _, readers := range [][]Reader{
		{counter},
		{nativeFor(map[string]*pageDrive{filepath.Join(root, "dev/sda"): sleepy, filepath.Join(root, "dev/sdb"): sleepy}), counter},
	} {
		s := New(Config{Root: root, Readers: readers})
		rd := s.read(context.Background())
		if fs := s.track(rd); len(fs) != 0 && len(readers) == 2 {
			t.Errorf("faults for drives not read: %v", faultSet(fs))
		}
		obs := sourcetest.SamplesByName(rd.observations())
		if obs["sda"][SampleStandby] != 1 || len(obs["sda"]) != 2 {
			t.Errorf("sda samples %v, want standby only", obs["sda"])
		}
		if len(readers) == 2 && (obs["sdb"][SampleStandby] != 1 || len(obs["sdb"]) != 2) {
			t.Errorf("sdb samples %v, want standby only", obs["sdb"])
		}
	}
	if n := counter.callsOf("sda"); n != 0 {
		t.Errorf("the suspended disk was read %d times", n)
	}
	if n := counter.callsOf("sdb"); n != 1 {
		t.Errorf("the awake disk was read by the fallback %d times, want once (native says standby)", n)
	}
	if got := sleepy.commands(); !slices.Equal(got, []string{"e5"}) {
		t.Errorf("native sent %v to the standby disk, want CHECK POWER MODE only", got)
	}
}

// TestSmartctlStandbyNeverRead runs the real smartctl against a recorded
// drive that says it is in standby, in both sense formats: the report is
// Standby, and smartctl sent CHECK POWER MODE and nothing else (which
// --device=sat makes sure of: autodetection sends IDENTIFY first).
func TestSmartctlStandbyNeverRead(t *testing.T) {
	lookSmartctl(t)
	lib := shim(t)
	b := readBlob(t, filepath.Join(blobDir, "Hitachi_HDS721010CLA632.bin"))
	for _, tc := range []struct{ power, sense, mode string }{
		{"00", "descriptor", "STANDBY"},
		{"00", "fixed", "STANDBY"},
		{"01", "descriptor", "STANDBY_Y"},
	} {
		t.Run(tc.power+"/"+tc.sense, func(t *testing.T) {
			sd := newShimDrive(t, lib, b, "SATSHIM_POWER="+tc.power, "SATSHIM_SENSE="+tc.sense)
			r := NewSmartctlReader("")
			r.env = sd.env
			rep, err := r.Read(context.Background(), Disk{Name: "sda", Protocol: smart.ProtocolATA, Path: sd.dev, BlockPath: sd.dev})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Standby || rep.PowerMode != tc.mode || rep.ATA != nil || rep.Model != "" {
				t.Errorf("report standby %v mode %q attributes %v model %q", rep.Standby, rep.PowerMode, rep.ATA != nil, rep.Model)
			}
			if names, _ := sd.commands(t); !slices.Equal(names, []string{"e5"}) {
				t.Errorf("smartctl sent %v, want CHECK POWER MODE only", names)
			}
		})
	}
	t.Run("autodetection", func(t *testing.T) {
		sd := newShimDrive(t, lib, b, "SATSHIM_POWER=00")
		r := NewSmartctlReader("")
		r.env = sd.env
		// Protocol unknown: no --device; smartctl 7.3 is not told SAT
		// here only to show what it then sends.
		rep, err := r.Read(context.Background(), Disk{Name: "sda", Path: sd.dev, BlockPath: sd.dev})
		names, _ := sd.commands(t)
		t.Logf("autodetection: %v; err %v; standby %v", names, err, rep != nil && rep.Standby)
	})
}

// TestHungDiskCut: a disk whose read never returns is reported as timed
// out while the others are read; at the next interval it is reported
// again, once, without a second read piling up behind the first; when the
// read finally returns, the disk is read again. With one slot, the hung
// disk does not keep the others waiting either.
func TestHungDiskCut(t *testing.T) {
	for _, parallel := range []int{3, 1} {
		t.Run(fmt.Sprint("parallel=", parallel), func(t *testing.T) {
			r := corpusReader(t, "sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json")
			r.hang["sda"] = true
			var logs sourcetest.LogBuffer
			s := New(Config{Root: diskTree(t, sataDisk("sda", 1), sataDisk("sdb", 2), sataDisk("sdc", 3)),
				Timeout: 30 * time.Millisecond, Parallel: parallel, Readers: []Reader{r}, Logger: sourcetest.NewLogger(&logs)})
			check := func(reading int, wantErr string) {
				t.Helper()
				rd := s.read(context.Background())
				obs := sourcetest.SamplesByName(rd.observations())
				if len(rd.results) != 3 || len(obs) != 3 {
					t.Fatalf("reading %d: %d results", reading, len(rd.results))
				}
				if obs["sda"][SampleReadError] != 1 || obs["sda"][SampleReadTimeout] != 1 {
					t.Errorf("reading %d: sda %v", reading, obs["sda"])
				}
				for _, n := range []string{"sdb", "sdc"} {
					if obs[n][SampleReadError] != 0 || obs[n]["ata_attr_5_raw"] != 0 || obs[n][SampleSmartPassed] != 1 {
						t.Errorf("reading %d: %s %v", reading, n, obs[n])
					}
				}
				err := rd.err()
				if !errors.Is(err, errTimeout) || !strings.Contains(err.Error(), wantErr) || strings.Count(err.Error(), "sda") != 1 {
					t.Errorf("reading %d: error %v, want sda once: %q", reading, err, wantErr)
				}
			}
			check(1, "sda: SMART read timed out after 30ms")
			check(2, "the read started")
			if n := r.callsOf("sda"); n != 1 {
				t.Errorf("sda read %d times while hung, want 1", n)
			}
			if n := r.callsOf("sdb"); n != 2 {
				t.Errorf("sdb read %d times, want 2", n)
			}
			close(r.release)
			deadline := time.Now().Add(5 * time.Second)
			for s.busy.count() != 0 {
				if time.Now().After(deadline) {
					t.Fatal("the released read did not finish")
				}
				time.Sleep(time.Millisecond)
			}
			r.mu.Lock()
			r.hang["sda"] = false
			r.mu.Unlock()
			rd := s.read(context.Background())
			if err := rd.err(); err != nil || sourcetest.SamplesByName(rd.observations())["sda"][SampleReadError] != 0 {
				t.Fatalf("after release: %v", err)
			}
			if n := r.callsOf("sda"); n != 2 {
				t.Errorf("sda read %d times, want 2", n)
			}
		})
	}
}

// TestParallelBounded: with Parallel 3, three reads run at once and a
// fourth waits for one of them.
func TestParallelBounded(t *testing.T) {
	var disks []sysDisk
	for i := range 8 {
		disks = append(disks, sataDisk("sd"+string(rune('a'+i)), i))
	}
	r := corpusReader(t, "sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json")
	for i := range 8 {
		r.set("sd"+string(rune('a'+i)), r.reports["sda"]...)
	}
	r.entered, r.gate = make(chan string, 8), make(chan struct{})
	s := New(Config{Root: diskTree(t, disks...), Parallel: 3, Timeout: time.Minute, Readers: []Reader{r}})
	done := make(chan *reading, 1)
	go func() { done <- s.read(context.Background()) }()
	for range 3 {
		select {
		case <-r.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("three reads did not start")
		}
	}
	select {
	case n := <-r.entered:
		t.Fatalf("a fourth read (%s) started while three were running", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(r.gate)
	rd := <-done
	if err := rd.err(); err != nil || len(rd.results) != 8 {
		t.Fatalf("%d results, err %v", len(rd.results), err)
	}
	if r.peak != 3 {
		t.Errorf("peak %d concurrent reads, want 3", r.peak)
	}
}

func TestReaderOrder(t *testing.T) {
	hgst := parseJSONFile(t, filepath.Join(jsonDir, "sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json"))
	root := diskTree(t, sataDisk("sda", 1))
	first, second := newFakeReader("native"), newFakeReader("smartctl")
	second.set("sda", hgst)
	s := New(Config{Root: root, Readers: []Reader{first, second}})
	rd := s.read(context.Background())
	if rd.err() != nil || sourcetest.SampleMap(rd.observations()[0])[SampleReadBySmartctl] != 1 {
		t.Fatalf("fallback: %v %v", rd.err(), sourcetest.SampleMap(rd.observations()[0]))
	}
	first.errs["sda"] = errors.New("sda: I/O error")
	rd = s.read(context.Background())
	if !strings.Contains(fmt.Sprint(rd.err()), "native: sda: I/O error") || second.callsOf("sda") != 1 {
		t.Fatalf("a failing drive was asked again: %v, smartctl calls %d", rd.err(), second.callsOf("sda"))
	}

	if got := New(Config{}).readers; got[0].Name() != "native" || got[1].Name() != "smartctl" {
		t.Errorf("default order %s, %s", got[0].Name(), got[1].Name())
	}
	if got := New(Config{Prefer: PreferSmartctl}).readers; got[0].Name() != "smartctl" || got[1].Name() != "native" {
		t.Errorf("Prefer smartctl: %s, %s", got[0].Name(), got[1].Name())
	}
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	t.Run("no sysfs", func(t *testing.T) {
		p := New(Config{Root: t.TempDir()}).Probe(ctx)
		if !strings.Contains(p.Unavailable, "list block devices") || p.Source != Name {
			t.Errorf("Unavailable = %q", p.Unavailable)
		}
	})
	t.Run("no disks", func(t *testing.T) {
		root := t.TempDir()
		sourcetest.WriteFile(t, filepath.Join(root, "sys/devices/virtual/block/loop0/size"), "8\n")
		if err := os.MkdirAll(filepath.Join(root, "sys/block"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../devices/virtual/block/loop0", filepath.Join(root, "sys/block/loop0")); err != nil {
			t.Fatal(err)
		}
		p := New(Config{Root: root}).Probe(ctx)
		if !strings.Contains(p.Unavailable, "no SATA, SAS or NVMe disk") {
			t.Errorf("Unavailable = %q", p.Unavailable)
		}
	})
	t.Run("not root", func(t *testing.T) {
		r := newFakeReader("native")
		r.errs["sda"] = fmt.Errorf("sda: open /dev/sda: %w", fs.ErrPermission)
		r.errs["sdb"] = fmt.Errorf("sdb: open /dev/sdb: %w", fs.ErrPermission)
		p := New(Config{Root: diskTree(t, sataDisk("sda", 1), sataDisk("sdb", 2)), Readers: []Reader{r}}).Probe(ctx)
		if !strings.HasPrefix(p.Unavailable, "permission denied") {
			t.Errorf("Unavailable = %q", p.Unavailable)
		}
	})
	t.Run("no reader for the disks", func(t *testing.T) {
		sas := sataDisk("sda", 1)
		sas.vendor = "SEAGATE"
		s := New(Config{Root: diskTree(t, sas), Smartctl: filepath.Join(t.TempDir(), "absent")})
		p := s.Probe(ctx)
		for _, w := range []string{"no reader can read these disks", "native: sda: SMART not supported natively for SCSI", "smartctl: SMART not supported"} {
			if !strings.Contains(p.Unavailable, w) {
				t.Errorf("Unavailable = %q, want %q", p.Unavailable, w)
			}
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		p := New(Config{Parallel: -1, Prefer: "magic"}).Probe(ctx)
		if !strings.Contains(p.Unavailable, "Parallel -1") || !strings.Contains(p.Unavailable, `Prefer "magic"`) {
			t.Errorf("Unavailable = %q", p.Unavailable)
		}
	})
	t.Run("drives", func(t *testing.T) {
		r := newFakeReader("smartctl")
		r.set("sda", parseJSONFile(t, filepath.Join(jsonDir, "smart-fail2.json")))
		r.set("sdb", parseJSONFile(t, filepath.Join(jsonDir, "nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json")))
		r.set("sdc", parseJSONFile(t, filepath.Join(jsonDir, "MB0500EBNCR_13.json")))
		r.errs["sdd"] = errors.New("sdd: SMART READ DATA failed")
		s := New(Config{Root: diskTree(t, sataDisk("sda", 1), sataDisk("sdb", 2), sataDisk("sdc", 3), sataDisk("sdd", 4)), Readers: []Reader{r}})
		want := []string{"disk.media/WARNING", "disk.media/WARNING", "disk.smart_failing/CRITICAL", "nvme.critical_warning/CRITICAL"}
		for range 2 {
			p := s.Probe(ctx)
			if p.Unavailable != "" || len(p.Observations) != 4 {
				t.Fatalf("unavailable %q, %d observations", p.Unavailable, len(p.Observations))
			}
			if got := faultSet(p.Faults); !slices.Equal(got, want) {
				t.Errorf("faults %v, want %v (every time)", got, want)
			}
			if len(p.Errors) != 1 || !strings.Contains(p.Errors[0], "sdd: SMART READ DATA failed") {
				t.Errorf("errors %q", p.Errors)
			}
		}
		if len(s.memory) != 0 {
			t.Errorf("Probe changed what Run remembers: %v", s.memory)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Prefer: PreferSmartctl, Interval: time.Hour, Timeout: time.Second, Parallel: 16}, ""},
		{Config{Interval: -1}, "Interval"},
		{Config{Timeout: -1}, "Timeout"},
		{Config{Parallel: -2}, "Parallel"},
		{Config{Prefer: "udisks"}, "Prefer"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	s := New(Config{})
	if s.Interval() != DefaultInterval || s.timeout != DefaultTimeout || s.parallel != DefaultParallel || s.root != "/" {
		t.Errorf("defaults: %v %v %d %q", s.Interval(), s.timeout, s.parallel, s.root)
	}
}

// TestUnsupportedDiskSkipped: on a host where one disk can be read and
// another cannot (a SAS disk, no smartctl), the second is logged once and
// then left alone: no observation, no error, every interval.
func TestUnsupportedDiskSkipped(t *testing.T) {
	sas := sataDisk("sdb", 2)
	sas.vendor = "SEAGATE"
	root := diskTree(t, sataDisk("sda", 1), sas)
	drive := newPageDrive(readBlob(t, filepath.Join(blobDir, "Hitachi_HDS721010CLA632.bin")))
	var logs sourcetest.LogBuffer
	s := New(Config{Root: root, Interval: 2 * time.Millisecond, Logger: sourcetest.NewLogger(&logs),
		Readers: []Reader{nativeFor(map[string]*pageDrive{filepath.Join(root, "dev/sda"): drive}), NewSmartctlReader(filepath.Join(t.TempDir(), "absent"))}})
	sink := &sourcetest.Sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Observations()) < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, n := range sourcetest.Names(sink.Observations()) {
		if n != "sda" {
			t.Errorf("observed %s", n)
		}
	}
	if len(sink.Observations()) < 4 || s.Errors() != 0 {
		t.Errorf("%d observations, %d errors", len(sink.Observations()), s.Errors())
	}
	out := logs.String()
	if strings.Count(out, "disk not readable, skipped") != 1 || !strings.Contains(out, "disk=sdb") ||
		!strings.Contains(out, "SMART not supported natively for SCSI") || strings.Contains(out, "level=ERROR") {
		t.Errorf("log:\n%s", out)
	}
}
