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

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/detect"
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

// TestObservationSamples reads five real drives (smartctl JSON: a healthy
// and a failing SATA HDD, one whose error log holds uncorrectable reads,
// an NVMe SSD, a SAS HDD) through the reader seam and checks every sample
// against the JSON file itself.
func TestObservationSamples(t *testing.T) {
	for _, file := range []string{
		"sat-HGST_Ultrastar_7K6000-HGST_HUS726020ALE614-sda.json",
		"smart-fail2.json",
		"sat-TOSHIBA_MG05ACA800E-sdw.json",
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
			want := map[string]float64{smart.SampleStandby: 0, smart.SampleReadError: 0, smart.SampleReadBySmartctl: 1}
			if p, ok := doc["smart_status"].(map[string]any)["passed"].(bool); ok {
				want[smart.SampleSmartPassed] = b2f(p)
			}
			if v, ok := doc.num("temperature", "current"); ok && v != 0 {
				want[smart.SampleTemperature] = v
			}
			if v, ok := doc.num("power_on_time", "hours"); ok {
				want[smart.SamplePowerOnHours] = v
			}
			if attrs, ok := doc["ata_smart_attributes"].(map[string]any); ok {
				want[smart.SampleATAPrefailFailingNow], want[smart.SampleATAPrefailFailedPast] = 0, 0
				for _, a := range attrs["table"].([]any) {
					a := jsonDoc(a.(map[string]any))
					if pre, _ := a["flags"].(map[string]any)["prefailure"].(bool); pre {
						switch a["when_failed"] {
						case "now":
							want[smart.SampleATAPrefailFailingNow]++
						case "past":
							want[smart.SampleATAPrefailFailedPast]++
						}
					}
					id, _ := a.num("id")
					key := fmt.Sprintf("ata_attr_%d_", int(id))
					want[key+"value"], _ = a.num("value")
					want[key+"worst"], _ = a.num("worst")
					want[key+"thresh"], _ = a.num("thresh")
					raw, _ := a.num("raw", "value")
					want[key+"raw"] = raw
					switch int(id) {
					case 5:
						want[smart.SampleATAReallocated] = float64(uint64(raw) & 0xffff)
					case 187:
						want[smart.SampleATAReportedUncorrect] = raw
					case 188:
						want[smart.SampleATACommandTimeout] = raw
					case 197:
						want[smart.SampleATAPending] = raw
					case 198:
						want[smart.SampleATAOfflineUncorrectable] = raw
					case 199:
						want[smart.SampleATAUDMACRCErrors] = raw
					}
				}
			}
			for _, log := range []string{"extended", "standard"} {
				total, ok := doc.num("ata_smart_self_test_log", log, "error_count_total")
				if !ok {
					continue
				}
				outdated, _ := doc.num("ata_smart_self_test_log", log, "error_count_outdated")
				if total > outdated {
					want[smart.SampleATASelfTestErrors] = total - outdated
				}
				break
			}
			for _, log := range []string{"extended", "summary"} {
				logs, _ := doc["ata_smart_error_log"].(map[string]any)
				l, ok := logs[log].(map[string]any)
				if !ok {
					continue
				}
				if table, _ := l["table"].([]any); len(table) > 0 {
					want[smart.SampleATAErrorLogLastUNC] = 0
					for _, e := range table {
						e := jsonDoc(e.(map[string]any))
						desc, _ := e["error_description"].(string)
						if n, _ := e.num("error_number"); strings.Contains(desc, "Error: UNC") {
							want[smart.SampleATAErrorLogLastUNC] = max(want[smart.SampleATAErrorLogLastUNC], n)
						}
					}
				}
				break
			}
			if _, ok := doc["nvme_smart_health_information_log"]; ok {
				for sample, key := range map[string]string{
					smart.SampleNVMeCriticalWarning: "critical_warning", smart.SampleNVMeAvailableSpare: "available_spare",
					smart.SampleNVMeAvailableSpareThresh: "available_spare_threshold", smart.SampleNVMePercentageUsed: "percentage_used",
					smart.SampleNVMeMediaErrors: "media_errors", smart.SampleNVMeUnsafeShutdowns: "unsafe_shutdowns",
					smart.SampleNVMePowerCycles: "power_cycles", smart.SampleNVMeErrorLogEntries: "num_err_log_entries",
					smart.SampleNVMeDataUnitsRead: "data_units_read", smart.SampleNVMeDataUnitsWritten: "data_units_written",
					smart.SampleNVMeHostReadCommands: "host_reads", smart.SampleNVMeHostWriteCommands: "host_writes",
					smart.SampleNVMeControllerBusyMinutes: "controller_busy_time", smart.SampleNVMeWarningTempMinutes: "warning_temp_time",
					smart.SampleNVMeCriticalTempMinutes: "critical_comp_time",
				} {
					v, ok := doc.num("nvme_smart_health_information_log", key)
					if !ok {
						t.Fatalf("%s not in the file", key)
					}
					want[sample] = v
				}
				want[smart.SampleNVMeEnduranceGroupWarning] = 0
			}
			if v, ok := doc.num("scsi_grown_defect_list"); ok {
				want[smart.SampleSCSIGrownDefects] = v
				var sum float64
				for _, k := range []string{"read", "write", "verify"} {
					n, _ := doc.num("scsi_error_counter_log", k, "total_uncorrected_errors")
					sum += n
				}
				want[smart.SampleSCSIUncorrectedErrors] = sum
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

// ruleSet is "rule/SEVERITY" of each fault, sorted.
func ruleSet(fs []*hwhealv1.Fault) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.GetRule()+"/"+strings.TrimPrefix(f.GetSeverity().String(), "SEVERITY_"))
	}
	slices.Sort(out)
	return out
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

// TestReadingsJudgedByCollectorRules follows one real failing drive
// (libblockdev's Maxtor 6Y120P0: 1783 reallocated, 1727 pending sectors,
// attribute 5 once below its threshold) through the native reader over
// several intervals, and gives each observation to the collector's shipped
// rules (agent/detect's Evaluator, as collector/classify runs it): what the
// drive says about itself is raised from the observations alone, at the
// first reading, not again while nothing changes, again when the pending
// count grows or attribute 5 fails now, never for a standby interval, and
// anew for another drive under the same name. The source itself raises
// nothing.
func TestReadingsJudgedByCollectorRules(t *testing.T) {
	rules, err := detect.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	ev := detect.NewEvaluator(rules, detect.EvaluatorOptions{})
	maxtor := readBlob(t, filepath.Join(blobDir, "Maxtor_6Y120P0.bin"))
	wdc := readBlob(t, filepath.Join(blobDir, "WDC_WD20EARS-00MVWB0.bin"))
	root := diskTree(t, sataDisk("sda", 1))
	drive := newPageDrive(maxtor)
	s := New(Config{Root: root, Readers: []Reader{nativeFor(map[string]*pageDrive{filepath.Join(root, "dev/sda"): drive})}})
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	step := func(b blob, power uint8) ([]*hwhealv1.Fault, *hwhealv1.Observation) {
		t.Helper()
		drive.b, drive.power = b, power
		sink := &sourcetest.Sink{}
		rd := s.read(context.Background())
		if err := rd.err(); err != nil {
			t.Fatal(err)
		}
		for _, o := range rd.observations() {
			sink.Observe(o)
		}
		obs := sink.Observations()
		if len(obs) != 1 {
			t.Fatalf("%d observations", len(obs))
		}
		// Thirty minutes apart, as the source reads by default.
		at = at.Add(DefaultInterval)
		obs[0].Time = timestamppb.New(at)
		return ev.Observe("n1", obs[0]), obs[0]
	}

	fs, obs := step(maxtor, 0xff)
	if got, want := ruleSet(fs), []string{"smart-ata-media/WARNING", "smart-ata-threshold/WARNING"}; !slices.Equal(got, want) {
		t.Fatalf("first reading raised %v, want %v", got, want)
	}
	for _, f := range fs {
		if f.GetPart().GetName() != "sda" || f.GetPart().GetSerial() != "Y3NJWLDE" || f.GetPart().GetModel() != "Maxtor 6Y120P0" {
			t.Errorf("part %v", f.GetPart())
		}
	}
	if s := sourcetest.SampleMap(obs); s[smart.SampleATAPending] != 1727 || s[smart.SampleSmartPassed] != 1 ||
		s[smart.SampleATAPrefailFailedPast] != 1 || s[smart.SampleATAPrefailFailingNow] != 0 {
		t.Errorf("observation %v", s)
	}
	if fs, _ := step(maxtor, 0xff); len(fs) != 0 {
		t.Fatalf("unchanged drive raised %v", ruleSet(fs))
	}
	// Reallocated sectors grow: the media rule judges growth.
	grown := withRaw(t, maxtor, 5, 1790)
	if fs, _ = step(grown, 0xff); !slices.Equal(ruleSet(fs), []string{"smart-ata-media/WARNING"}) {
		t.Fatalf("reallocated 1783 -> 1790 raised %v, want smart-ata-media again", ruleSet(fs))
	}
	if prev := fs[0].GetEvidence().GetCaptures()["ata_attr_5_raw.previous"]; prev != "1783" {
		t.Errorf("previous %q, evidence %v", prev, fs[0].GetEvidence())
	}
	fs, obs = step(grown, 0x00)
	if len(fs) != 0 || sourcetest.SampleMap(obs)[smart.SampleStandby] != 1 || len(obs.GetSamples()) != 2 {
		t.Fatalf("standby: faults %v, samples %v", ruleSet(fs), sourcetest.SampleMap(obs))
	}
	if fs, _ := step(grown, 0xff); len(fs) != 0 {
		t.Fatalf("after standby the same drive raised %v", ruleSet(fs))
	}
	// Attribute 5 falls to its threshold (63) now: the drive fails its
	// own test, critical; then recovers above it.
	if fs, _ = step(withValue(t, grown, 5, 40), 0xff); !slices.Equal(ruleSet(fs), []string{"smart-ata-threshold/CRITICAL"}) {
		t.Fatalf("attribute 5 failing now raised %v", ruleSet(fs))
	}
	if fs, _ := step(grown, 0xff); len(fs) != 0 {
		t.Fatalf("attribute 5 back above its threshold raised %v", ruleSet(fs))
	}
	// Another drive in the same bay: SMART failed, attribute 5 failing
	// now, 65529 pending sectors.
	fs, _ = step(wdc, 0xff)
	if got, want := ruleSet(fs), []string{"smart-ata-media/WARNING", "smart-ata-threshold/CRITICAL", "smart-overall-failed/CRITICAL"}; !slices.Equal(got, want) {
		t.Fatalf("new drive raised %v, want %v", got, want)
	}
	if fs[0].GetPart().GetSerial() != "WD-WMAZA0075739" {
		t.Errorf("part %v", fs[0].GetPart())
	}
}

// TestRunRaisesNothing: through Run, a failing drive's readings reach the
// sink every interval, with the values the collector's rules judge, and
// the source raises no fault of its own.
func TestRunRaisesNothing(t *testing.T) {
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
	for _, o := range sink.Observations() {
		if v := sourcetest.SampleMap(o); v[smart.SampleSmartPassed] != 0 || v[smart.SampleATAPrefailFailingNow] != 1 || v[smart.SampleATASelfTestErrors] != 3 {
			t.Fatalf("observation %v", v)
		}
	}
	if fs := sink.Faults(); len(fs) != 0 {
		t.Fatalf("the source raised %v", ruleSet(fs))
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
		obs := sourcetest.SamplesByName(rd.observations())
		if obs["sda"][smart.SampleStandby] != 1 || len(obs["sda"]) != 2 {
			t.Errorf("sda samples %v, want standby only", obs["sda"])
		}
		if len(readers) == 2 && (obs["sdb"][smart.SampleStandby] != 1 || len(obs["sdb"]) != 2) {
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
				if obs["sda"][smart.SampleReadError] != 1 || obs["sda"][smart.SampleReadTimeout] != 1 {
					t.Errorf("reading %d: sda %v", reading, obs["sda"])
				}
				for _, n := range []string{"sdb", "sdc"} {
					if obs[n][smart.SampleReadError] != 0 || obs[n]["ata_attr_5_raw"] != 0 || obs[n][smart.SampleSmartPassed] != 1 {
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
			if err := rd.err(); err != nil || sourcetest.SamplesByName(rd.observations())["sda"][smart.SampleReadError] != 0 {
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
	if rd.err() != nil || sourcetest.SampleMap(rd.observations()[0])[smart.SampleReadBySmartctl] != 1 {
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
		p := s.Probe(ctx)
		if p.Unavailable != "" || len(p.Observations) != 4 {
			t.Fatalf("unavailable %q, %d observations", p.Unavailable, len(p.Observations))
		}
		// The readings, judged by the collector: the failing drives'
		// verdicts are in them, and no fault.
		obs := sourcetest.SamplesByName(p.Observations)
		if obs["sda"][smart.SampleSmartPassed] != 0 || obs["sdb"][smart.SampleNVMeCriticalWarning] != 0x10 ||
			obs["sdc"][smart.SampleATAReportedUncorrect] != 1 || obs["sdd"][smart.SampleReadError] != 1 {
			t.Errorf("readings %v", obs)
		}
		if len(p.Faults) != 0 {
			t.Errorf("faults %v, want none", ruleSet(p.Faults))
		}
		if len(p.Errors) != 1 || !strings.Contains(p.Errors[0], "sdd: SMART READ DATA failed") {
			t.Errorf("errors %q", p.Errors)
		}
		if len(p.Notes) != 1 || !strings.HasPrefix(p.Notes[0], "3 drives read, 0 left in standby, 1 not read") {
			t.Errorf("notes %q", p.Notes)
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
