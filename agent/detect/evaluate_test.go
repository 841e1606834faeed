package detect_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/agent/source/aer"
	"github.com/hwheal/hwheal/agent/source/edac"
	"github.com/hwheal/hwheal/agent/source/hwmon"
	"github.com/hwheal/hwheal/agent/source/netdev"
	"github.com/hwheal/hwheal/agent/source/rasevent"
	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Parts as the agent's sources name them.
var (
	cpuChip  = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_CPU, Name: "hwmon:coretemp/coretemp.0"}
	cpuZone  = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_CPU, Name: "thermal:x86_pkg_temp/thermal_zone1"}
	nvmeChip = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NODE, Name: "hwmon:nvme/nvme0", PciAddress: "0000:01:00.0"}
	dimm     = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"}
	mc0      = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "mc0"}
	pciDev   = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_PCI, Name: "0000:3b:00.0", PciAddress: "0000:3b:00.0"}
	eth0     = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0", PciAddress: "0000:5e:00.0"}
	eth1     = &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth1"}
)

// withSamples is a copy of o at t0+at with the given samples set (added
// when absent): a real reading with one value changed.
func withSamples(o *hwhealv1.Observation, at time.Duration, kv ...any) *hwhealv1.Observation {
	c := proto.Clone(o).(*hwhealv1.Observation)
	c.Time = timestamppb.New(t0.Add(at))
	set := obs("", nil, 0, kv...)
	for _, s := range set.GetSamples() {
		i := slices.IndexFunc(c.Samples, func(x *hwhealv1.Sample) bool { return x.GetName() == s.GetName() })
		if i < 0 {
			c.Samples = append(c.Samples, s)
		} else {
			c.Samples[i].Value = s.GetValue()
		}
	}
	return c
}

// withoutSamples is a copy of o without the named samples: a reading that
// does not carry them.
func withoutSamples(o *hwhealv1.Observation, names ...string) *hwhealv1.Observation {
	c := proto.Clone(o).(*hwhealv1.Observation)
	c.Samples = slices.DeleteFunc(c.Samples, func(s *hwhealv1.Sample) bool { return slices.Contains(names, s.GetName()) })
	return c
}

// series of observations: f(i) for i in [0, n), one every step.
func series(n int, step time.Duration, f func(i int, at time.Duration) *hwhealv1.Observation) []*hwhealv1.Observation {
	out := make([]*hwhealv1.Observation, n)
	for i := range out {
		out[i] = f(i, time.Duration(i)*step)
	}
	return out
}

// raised runs the observations of node through ev and returns, per
// observation, the rules that raised a fault.
func raised(ev *detect.Evaluator, node string, os []*hwhealv1.Observation) [][]string {
	out := make([][]string, len(os))
	for i, o := range os {
		for _, f := range ev.Observe(node, o) {
			out[i] = append(out[i], f.GetRule())
		}
	}
	return out
}

// TestShippedEvaluatedRules gives every shipped threshold, rate and smart
// rule a sequence of readings (the agent's real sample names; SMART values
// from real drives) whose last reading must raise it, after none of the
// earlier ones did, and a look-alike sequence that must never raise it.
func TestShippedEvaluatedRules(t *testing.T) {
	rs := builtin(t)
	intel := smartctlObservation(t, "INTEL_SSDPE2KX080T8_1.json", "nvme0n1", 0)
	wdc := smartctlObservation(t, "WDC_WD20EFRX-68EUZN0_18.json", "sda", 0)
	scsi := smartctlObservation(t, "SEAGATE_ST373453LC_27.json", "sdb", 0)
	toshiba := smartctlObservation(t, "TOSHIBA_MG05ACA800E-sdw.json", "sdw", 0)
	hotCore := func(over int) []any {
		return []any{"core_0" + hwmon.SuffixCelsius, 95 + 10*over, "core_0" + hwmon.SuffixCritCelsius, 100, "core_0" + hwmon.SuffixOverCrit, over}
	}
	cases := map[string]struct{ fire, quiet []*hwhealv1.Observation }{
		"cpu-over-crit": {
			fire: []*hwhealv1.Observation{
				obs(hwmon.Name, cpuChip, 0, hotCore(0)...),
				obs(hwmon.Name, cpuZone, time.Minute, hwmon.SampleZoneTemp, 101, hwmon.SampleZoneCritCelsius, 100, hwmon.SampleZoneOverCrit, 1),
			},
			// A drive's sensor over its limit is no CPU's.
			quiet: []*hwhealv1.Observation{obs(hwmon.Name, nvmeChip, 0, "composite"+hwmon.SuffixOverCrit, 1)},
		},
		"sensor-over-crit": {
			fire:  []*hwhealv1.Observation{obs(hwmon.Name, nvmeChip, 0, "composite"+hwmon.SuffixCelsius, 86, "composite"+hwmon.SuffixOverCrit, 1)},
			quiet: []*hwhealv1.Observation{obs(hwmon.Name, cpuChip, 0, hotCore(1)...), obs(hwmon.Name, nvmeChip, time.Minute, "composite"+hwmon.SuffixOverMax, 1)},
		},
		"cpu-over-max": {
			fire: series(6, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(hwmon.Name, cpuChip, at, "package_id_0"+hwmon.SuffixOverMax, 1)
			}),
			// Four minutes on, one off, again: never five on end.
			quiet: series(12, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(hwmon.Name, cpuChip, at, "package_id_0"+hwmon.SuffixOverMax, min(1, (i+1)%5))
			}),
		},
		"memory-ce-storm": {
			fire: series(11, time.Hour, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(edac.Name, dimm, at, edac.SampleCECount, 100+i, edac.SampleUECount, 0)
			}),
			// The controller's total grows as fast, and a DIMM that
			// corrects 10 a day but spread over more than a day.
			quiet: append(series(11, time.Hour, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(edac.Name, mc0, at, edac.SampleCECount, 100+i, edac.SampleSecondsSinceReset, 3600*i)
			}), series(12, 3*time.Hour, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(edac.Name, dimm, at, edac.SampleCECount, i)
			})...),
		},
		"memory-ce-storm-ras": {
			fire: series(11, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(rasevent.Name, dimm, at, rasevent.SampleCECount, i, rasevent.SampleUECount, 0)
			}),
			// The agent restarts every four minutes: its counters start
			// again from zero, and only their growth (9) counts.
			quiet: series(12, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(rasevent.Name, dimm, at, rasevent.SampleCECount, i%4)
			}),
		},
		"memory-ue-count": {
			fire: []*hwhealv1.Observation{
				obs(edac.Name, dimm, 0, edac.SampleCECount, 5, edac.SampleUECount, 0),
				obs(edac.Name, dimm, time.Minute, edac.SampleCECount, 5, edac.SampleUECount, 1),
			},
			quiet: []*hwhealv1.Observation{
				obs(edac.Name, dimm, 0, edac.SampleUECount, 3), // first reading: no baseline
				obs(edac.Name, dimm, time.Minute, edac.SampleUECount, 3),
				obs(edac.Name, dimm, 2*time.Minute, edac.SampleUECount, 0), // reset_counters
			},
		},
		"pcie-aer-corrected-storm": {
			fire: series(7, 10*time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(aer.Name, pciDev, at, aer.SampleCorrectableTotal, 17*i, aer.SampleFatalTotal, 0)
			}),
			quiet: series(7, 10*time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(aer.Name, pciDev, at, aer.SampleCorrectableTotal, 15*i, aer.SampleRootPortCorrectableTotal, 1000*i)
			}),
		},
		"pcie-aer-fatal-count": {
			fire: []*hwhealv1.Observation{
				obs(aer.Name, pciDev, 0, aer.SampleFatalTotal, 0),
				obs(aer.Name, pciDev, time.Minute, aer.SampleFatalTotal, 1),
			},
			quiet: []*hwhealv1.Observation{
				obs(aer.Name, pciDev, 0, aer.SampleFatalTotal, 2, aer.SampleNonFatalTotal, 0),
				obs(aer.Name, pciDev, time.Minute, aer.SampleFatalTotal, 2, aer.SampleNonFatalTotal, 5),
			},
		},
		"pcie-link-width-degraded": {
			fire: series(11, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(aer.Name, pciDev, at, aer.SampleLinkWidth, 4, aer.SampleLinkCapableWidth, 16, aer.SampleLinkWidthDegraded, 1)
			}),
			// Narrow for a few readings after a reset, then trained.
			quiet: series(11, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(aer.Name, pciDev, at, aer.SampleLinkWidthDegraded, b2i(i < 3), aer.SampleLinkSpeedDegraded, 1)
			}),
		},
		"nic-link-flap": {
			fire: series(7, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(netdev.Name, eth0, at, netdev.SampleCarrierChanges, 4+i, netdev.SampleCarrier, (i+1)%2)
			}),
			// One flap every three minutes: never six changes in ten.
			quiet: series(30, time.Minute, func(i int, at time.Duration) *hwhealv1.Observation {
				return obs(netdev.Name, eth0, at, netdev.SampleCarrierChanges, 4+i/3)
			}),
		},
		"nic-errors": {
			fire: []*hwhealv1.Observation{
				obs(netdev.Name, eth0, 0, netdev.SampleRxErrors, 10, netdev.SampleTxErrors, 0),
				obs(netdev.Name, eth0, 30*time.Minute, netdev.SampleRxErrors, 60, netdev.SampleTxErrors, 0),
				obs(netdev.Name, eth0, 59*time.Minute, netdev.SampleRxErrors, 110, netdev.SampleTxErrors, 0),
			},
			// Drops are not errors; errors spread over more than the hour.
			quiet: []*hwhealv1.Observation{
				obs(netdev.Name, eth0, 0, netdev.SampleRxDropped, 10, netdev.SampleRxErrors, 0),
				obs(netdev.Name, eth0, 40*time.Minute, netdev.SampleRxDropped, 5000, netdev.SampleRxErrors, 60),
				obs(netdev.Name, eth0, 80*time.Minute, netdev.SampleRxDropped, 9000, netdev.SampleRxErrors, 120),
			},
		},
		"smart-ata-media": {
			fire: []*hwhealv1.Observation{
				smartctlObservation(t, "ST3500418AS_11.json", "sda", 0), // 5 raw 1
				smartctlObservation(t, "smart-ata-date2.json", "sdb", time.Minute),
			},
			// 187 raw 1 and 5 raw 1, read twice, unchanged; a drive
			// whose error log holds two old uncorrectable reads (UNC),
			// read twice.
			quiet: []*hwhealv1.Observation{
				smartctlObservation(t, "MB0500EBNCR_13.json", "sdc", 0),
				smartctlObservation(t, "MB0500EBNCR_13.json", "sdc", 30*time.Minute),
				smartctlObservation(t, "ST3500418AS_11.json", "sda", 0),
				smartctlObservation(t, "ST3500418AS_11.json", "sda", 30*time.Minute),
				toshiba,
				withSamples(toshiba, 30*time.Minute),
			},
		},
		"smart-ata-command-timeouts": {
			fire: []*hwhealv1.Observation{
				withSamples(wdc, 0, smart.AttrSample(188, "raw"), 2),
				withSamples(wdc, 30*time.Minute, smart.AttrSample(188, "raw"), 5),
			},
			quiet: []*hwhealv1.Observation{
				withSamples(wdc, 0, smart.AttrSample(188, "raw"), 2),
				withSamples(wdc, 30*time.Minute, smart.AttrSample(188, "raw"), 2),
			},
		},
		"smart-overall-failed": {
			fire: []*hwhealv1.Observation{wdc, smartctlObservation(t, "smart-fail2.json", "sdd", time.Minute)},
			// An NVMe drive's failed verdict is its critical warning
			// byte (here: volatile memory backup failed), judged by bit.
			quiet: []*hwhealv1.Observation{wdc, smartctlObservation(t, "nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json", "nvme1n1", 0)},
		},
		"smart-ata-threshold": {
			fire: []*hwhealv1.Observation{smartctlObservation(t, "smart-fail2.json", "sdd", 0)},
			quiet: []*hwhealv1.Observation{wdc, smartctlObservation(t, "HGST_HUS724020ALE640_28.json", "sde", 0),
				// In standby: no values, nothing judged.
				withSamples(obs(smart.ObservationSource, wdc.GetPart(), 0), time.Hour, smart.SampleStandby, 1, smart.SampleReadError, 0)},
		},
		"smart-ata-selftest": {
			fire: []*hwhealv1.Observation{wdc, smartctlObservation(t, "smart-fail2.json", "sdd", time.Minute)},
			// The same drive with its failed tests superseded by a
			// passed extended one: no sample, nothing to judge.
			quiet: []*hwhealv1.Observation{wdc, withoutSamples(smartctlObservation(t, "smart-fail2.json", "sdd", 0), smart.SampleATASelfTestErrors)},
		},
		"smart-scsi-media": {
			fire: []*hwhealv1.Observation{
				withSamples(scsi, 0, smart.SampleSCSIGrownDefects, 3),
				withSamples(scsi, 30*time.Minute, smart.SampleSCSIGrownDefects, 4),
			},
			quiet: []*hwhealv1.Observation{withSamples(scsi, 0, smart.SampleSCSIGrownDefects, 3), withSamples(scsi, time.Hour, smart.SampleSCSIGrownDefects, 3)},
		},
		"nvme-critical-warning": {
			fire:  []*hwhealv1.Observation{intel, smartctlObservation(t, "nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json", "nvme1n1", time.Minute)},
			quiet: []*hwhealv1.Observation{intel, smartctlObservation(t, "SAMSUNG_MZVL21T0HCLR-00B00_23.json", "nvme2n1", 0), withSamples(intel, time.Hour, smart.SampleNVMeCriticalWarning, 1)},
		},
		"nvme-spare-low": {
			fire:  []*hwhealv1.Observation{intel, withSamples(intel, time.Hour, smart.SampleNVMeAvailableSpare, 9, smart.SampleNVMeAvailableSpareThresh, 10)},
			quiet: []*hwhealv1.Observation{intel, withSamples(intel, time.Hour, smart.SampleNVMeAvailableSpare, 10, smart.SampleNVMeAvailableSpareThresh, 10)},
		},
		"nvme-media-errors": {
			fire: []*hwhealv1.Observation{intel, withSamples(intel, time.Hour, smart.SampleNVMeMediaErrors, 1)},
			// Already non-zero when first read, and unchanged.
			quiet: []*hwhealv1.Observation{withSamples(intel, 0, smart.SampleNVMeMediaErrors, 4), withSamples(intel, time.Hour, smart.SampleNVMeMediaErrors, 4)},
		},
		"nvme-wear-out": {
			fire:  []*hwhealv1.Observation{withSamples(intel, 0, smart.SampleNVMePercentageUsed, 100)},
			quiet: []*hwhealv1.Observation{withSamples(intel, 0, smart.SampleNVMePercentageUsed, 99), withSamples(intel, time.Hour, smart.SampleNVMeDataUnitsWritten, 1e12)},
		},
	}
	for _, r := range rs.Rules() {
		switch r.Kind {
		case detect.KindThreshold, detect.KindRate, detect.KindSmart:
		default:
			continue
		}
		t.Run(r.Name, func(t *testing.T) {
			tc, ok := cases[r.Name]
			if !ok {
				t.Fatalf("shipped %s rule %s has no case here", r.Kind, r.Name)
			}
			got := raised(detect.NewEvaluator(rs, detect.EvaluatorOptions{}), "n1", tc.fire)
			for i, names := range got {
				last := i == len(got)-1
				if slices.Contains(names, r.Name) != last {
					t.Errorf("fire: reading %d raised %v; want %s only from the last", i, names, r.Name)
				}
			}
			for i, names := range raised(detect.NewEvaluator(rs, detect.EvaluatorOptions{}), "n1", tc.quiet) {
				if slices.Contains(names, r.Name) {
					t.Errorf("quiet: reading %d raised %s", i, r.Name)
				}
			}
		})
	}
	for name := range cases {
		if _, ok := rs.Lookup(name); !ok {
			t.Errorf("case for %s, which is not a shipped rule", name)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ruleSeverities is "rule/SEVERITY" of each fault, sorted.
func ruleSeverities(fs []*hwhealv1.Fault) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.GetRule()+"/"+strings.TrimPrefix(f.GetSeverity().String(), "SEVERITY_"))
	}
	slices.Sort(out)
	return out
}

// realDrive reads a real drive as the agent's SMART source reports it:
// smartctl --json output as smartctl read it, a libatasmart dump (.bin) as
// the native reader does.
func realDrive(t testing.TB, file, device string, at time.Duration) *hwhealv1.Observation {
	t.Helper()
	if name, ok := strings.CutSuffix(file, ".bin"); ok {
		return nativeObservation(t, name, device, at)
	}
	return smartctlObservation(t, file, device, at)
}

// TestSmartRealDrives reads real drives' SMART data as the agent's SMART
// source reports it, twice 20 minutes apart, and checks what the shipped
// rules make of it: every verdict of the drive's own (pkg/smart.Assess, of
// warning or above) that is not a lifetime count judged by its growth is
// raised by the first reading with Assess's severity, the healthy drives
// never raise anything.
func TestSmartRealDrives(t *testing.T) {
	rs := builtin(t)
	for _, tc := range []struct {
		file string
		want []string // rule/severity raised by the first reading
	}{
		// Hitachi HDS721050DLE630: SMART failed, attribute 5
		// (pre-failure) at its threshold now, 8 pending sectors, 3 failed
		// self-tests.
		{"smart-fail2.json", []string{"smart-ata-media/WARNING", "smart-ata-selftest/WARNING", "smart-ata-threshold/CRITICAL", "smart-overall-failed/CRITICAL"}},
		// WDC WD140EDFZ: 10 reallocated, pending and offline uncorrectable.
		{"smart-ata-date2.json", []string{"smart-ata-media/WARNING"}},
		// Maxtor 6Y120P0, read natively: attribute 5's worst value went
		// below its threshold once (it is above now); 1727 pending
		// sectors, 1 offline uncorrectable.
		{"Maxtor_6Y120P0.bin", []string{"smart-ata-media/WARNING", "smart-ata-threshold/WARNING"}},
		// Samsung MZWLL3T2HAJQ: critical warning 0x10 (volatile memory
		// backup failed); its overall verdict is that byte.
		{"nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json", []string{"nvme-critical-warning/CRITICAL"}},
		// Healthy, though two carry a lifetime count of 1 (5 and 187),
		// one 12 errors in its ATA error log and one two uncorrectable
		// reads logged some 1,400 power-on hours ago (their growth is
		// judged, TestSmartLaterReadings).
		{"MB0500EBNCR_13.json", nil},
		{"ST3500418AS_11.json", nil},
		{"WDC_WD20EFRX-68EUZN0_18.json", nil},
		{"HGST_HUS724020ALE640_28.json", nil},
		{"TOSHIBA_MG05ACA800E-sdw.json", nil},
		{"INTEL_SSDPE2KX080T8_1.json", nil},
		{"SAMSUNG_MZVL21T0HCLR-00B00_23.json", nil},
		{"SEAGATE_ST373453LC_27.json", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
			first := realDrive(t, tc.file, "sda", 0)
			fs := ev.Observe("n1", first)
			for _, f := range fs {
				if f.GetPart().GetSerial() == "" || f.GetPart().GetSerial() != first.GetPart().GetSerial() {
					t.Errorf("%s: part %v, want the drive's", f.GetRule(), f.GetPart())
				}
				if len(f.GetEvidence().GetSamples()) == 0 || f.GetSummary() == "" {
					t.Errorf("%s: no evidence: %v", f.GetRule(), f.GetEvidence())
				}
				if r, _ := rs.Lookup(f.GetRule()); r.Kind == detect.KindSmart && f.GetEvidence().GetCaptures()["findings"] == "" {
					t.Errorf("%s: no findings: %v", f.GetRule(), f.GetEvidence())
				}
			}
			if got := ruleSeverities(fs); !slices.Equal(got, tc.want) {
				t.Errorf("first reading raised %v, want %v", got, tc.want)
			}
			// Twenty minutes later, unchanged: nothing new to say (the
			// faulty drives' faults are repeated after a quarter of their
			// clear time, at least 30 minutes).
			if fs := ev.Observe("n1", realDrive(t, tc.file, "sda", 20*time.Minute)); len(fs) != 0 {
				t.Errorf("unchanged second reading raised %s", describe(fs))
			}
		})
	}
}

// TestSmartLaterReadings follows real drives through later readings that
// differ in one value, as the drives would report them: a verdict that
// gets worse is raised again at once, one that goes away is not raised.
func TestSmartLaterReadings(t *testing.T) {
	rs := builtin(t)
	maxtor := realDrive(t, "Maxtor_6Y120P0.bin", "sda", 0)
	toshiba := realDrive(t, "TOSHIBA_MG05ACA800E-sdw.json", "sdw", 0)
	fail := realDrive(t, "smart-fail2.json", "sdd", 0)
	for _, tc := range []struct {
		name  string
		steps []*hwhealv1.Observation
		want  [][]string // rule/severity raised by each step
	}{
		{"attribute 5 falls to its threshold again", []*hwhealv1.Observation{
			maxtor,
			// Value 40, threshold 63: the drive fails its own test now.
			withSamples(maxtor, time.Minute, smart.AttrSample(5, "value"), 40, smart.SampleATAPrefailFailingNow, 1, smart.SampleATAPrefailFailedPast, 0),
			withSamples(maxtor, 2*time.Minute),
		}, [][]string{{"smart-ata-media/WARNING", "smart-ata-threshold/WARNING"}, {"smart-ata-threshold/CRITICAL"}, nil}},
		{"a new uncorrectable read in the error log", []*hwhealv1.Observation{
			toshiba,
			withSamples(toshiba, time.Minute),
			withSamples(toshiba, 2*time.Minute, smart.SampleATAErrorLogLastUNC, 3),
			withSamples(toshiba, 3*time.Minute, smart.SampleATAErrorLogLastUNC, 3),
		}, [][]string{nil, nil, {"smart-ata-media/WARNING"}, nil}},
		{"failed self-tests superseded", []*hwhealv1.Observation{
			fail,
			withoutSamples(withSamples(fail, time.Minute), smart.SampleATASelfTestErrors),
			// A test fails again a minute later: the fault raised a
			// minute ago is still open, and one failure is not worse
			// than three.
			withSamples(fail, 2*time.Minute, smart.SampleATASelfTestErrors, 1),
		}, [][]string{
			{"smart-ata-media/WARNING", "smart-ata-selftest/WARNING", "smart-ata-threshold/CRITICAL", "smart-overall-failed/CRITICAL"},
			nil,
			nil,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
			for i, o := range tc.steps {
				if got := ruleSeverities(ev.Observe("n1", o)); !slices.Equal(got, tc.want[i]) {
					t.Errorf("step %d raised %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

// TestBackblazeDrives replays real daily SMART rows of Backblaze drives
// (testdata/backblaze_drives.csv) and checks every day the ATA media rule
// raised: when a drive starts losing sectors, when it gets worse, and
// every other day while it keeps holding (clear time 168h, so again after
// 42h); never on drives whose counts only stand still, however high, or
// go down.
func TestBackblazeDrives(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "backblaze_drives.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	drives, _ := readBackblaze(t, f)
	rs := builtin(t)
	for _, tc := range []struct {
		serial string
		failed bool
		want   []string // days smart-ata-media raised (MM-DD)
	}{
		// 5 grows 33 -> 34 (04-18), 47, 48, 67; 27 pending from 04-20.
		{"9VS366LA", true, []string{"04-18", "04-20", "04-22", "04-24"}},
		// 16 pending from 04-21 to 05-10, then none: it stops.
		{"W1F0A2TL", true, []string{"04-21", "04-23", "04-25", "04-27", "04-29", "05-01", "05-03", "05-05", "05-07", "05-09"}},
		// Pending from the first day; 5 goes down 1511 -> 1510 (not
		// growth), then back up (growth: raised at once).
		{"MJ0351YNGA3TUA", true, []string{"04-10", "04-12", "04-13", "04-15"}},
		// 44 reallocated all along and never growing: the plain "5 > 0"
		// rule flags it, this one does not (a miss).
		{"MJ1323YNG1STUC", true, nil},
		// Failed without a word from 5 or 197.
		{"S1F09CF2", true, nil},
		// Healthy: 40 reallocated sectors, unchanged for 40 days.
		{"9VS1EQ54", false, nil},
		{"5XW02LPQ", false, nil},
	} {
		t.Run(tc.serial, func(t *testing.T) {
			days := drives[tc.serial]
			if len(days) == 0 {
				t.Fatal("no rows")
			}
			if days[len(days)-1].failure != tc.failed {
				t.Fatalf("failed = %v, want %v", days[len(days)-1].failure, tc.failed)
			}
			ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
			var got []string
			for _, d := range days {
				for _, f := range ev.Observe("backblaze", d.obs) {
					if f.GetRule() == "smart-ata-media" {
						got = append(got, d.date.Format("01-02"))
						if !f.GetTime().AsTime().Equal(d.date) {
							t.Errorf("fault time %v, want the reading's %v", f.GetTime().AsTime(), d.date)
						}
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("raised on %v, want %v", got, tc.want)
			}
		})
	}
}

// TestThresholdFor drives a threshold rule with for: it raises once the
// value has held on consecutive readings that long; a reading where it
// does not hold starts the wait again; a reading without the sample
// changes nothing.
func TestThresholdFor(t *testing.T) {
	rs := loadRules(t, `rules:
  - name: hot
    kind: threshold
    class: cpu.thermal
    severity: warning
    source: hwmon
    sample: "*_celsius"
    above: 90
    for: 3m
    clear_after: 1h
`)
	temp := func(at time.Duration, v int) *hwhealv1.Observation {
		return obs("hwmon", cpuChip, at, "core_0_celsius", 50, "core_1_celsius", v)
	}
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	for _, step := range []struct {
		o     *hwhealv1.Observation
		raise bool
	}{
		{temp(0, 95), false},
		{temp(1*time.Minute, 95), false},
		{temp(2*time.Minute, 89), false}, // dips: the wait starts again
		{temp(3*time.Minute, 95), false},
		{obs("hwmon", cpuChip, 4*time.Minute, "fan1_rpm", 900), false}, // says nothing about temperature
		{temp(5*time.Minute, 95), false},
		{temp(6*time.Minute, 96), true},                                 // 3 minutes since 3m
		{temp(7*time.Minute, 97), false},                                // raised 1 minute ago
		{temp(21*time.Minute, 97), true},                                // a quarter of the clear time later
		{obs("hwmon", cpuZone, 22*time.Minute, "x_celsius", 99), false}, // another part waits on its own
		{obs("hwmon", cpuZone, 40*time.Minute, "x_celsius", 99), false}, // seen again after a gap longer than 3m: held 0
		{obs("hwmon", cpuZone, 42*time.Minute, "x_celsius", 99), false},
		{obs("hwmon", cpuZone, 43*time.Minute, "x_celsius", 99), true}, // 3 minutes of readings close together
	} {
		fs := ev.Observe("n1", step.o)
		if (len(fs) == 1) != step.raise || len(fs) > 1 {
			t.Fatalf("at %v: raised %s, want raise=%v", step.o.GetTime().AsTime().Sub(t0), describe(fs), step.raise)
		}
		if len(fs) == 1 && step.o.GetPart() == cpuChip {
			f := fs[0]
			if got := f.GetEvidence().GetSamples(); len(got) != 1 || got[0].GetName() != "core_1_celsius" {
				t.Errorf("evidence %v, want the one sample over the limit", got)
			}
			if f.GetSummary() != fmt.Sprintf("core_1_celsius is %d on hwmon:coretemp/coretemp.0 (limit > 90 for 3m)", int(got0(f))) {
				t.Errorf("summary %q", f.GetSummary())
			}
			if f.GetEvidence().GetCaptures()["held_for"] == "" {
				t.Errorf("captures %v, want held_for", f.GetEvidence().GetCaptures())
			}
		}
	}
}

func got0(f *hwhealv1.Fault) float64 { return f.GetEvidence().GetSamples()[0].GetValue() }

// TestRate drives a rate rule over counters: growth within the window
// raises; growth spread wider does not; a counter that goes down restarts
// from its new value and never counts as growth; each counter a glob
// matches is judged on its own.
func TestRate(t *testing.T) {
	rs := loadRules(t, `rules:
  - name: errs
    kind: rate
    class: nic.errors
    severity: warning
    source: netdev
    sample: "*_errors"
    increase: 10
    window: 1h
`)
	type step struct {
		at     time.Duration
		rx, tx int
		want   string // sample named in the fault, "" for none
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"growth within the window", []step{
			{0, 100, 0, ""}, {20 * time.Minute, 105, 0, ""}, {40 * time.Minute, 110, 0, "rx_errors"},
		}},
		{"the same growth over more than the window", []step{
			{0, 100, 0, ""}, {40 * time.Minute, 105, 0, ""}, {80 * time.Minute, 110, 0, ""}, {120 * time.Minute, 115, 0, ""},
		}},
		{"window expiry: old growth leaves the window", []step{
			{0, 0, 0, ""}, {10 * time.Minute, 9, 0, ""}, {75 * time.Minute, 10, 0, ""}, {80 * time.Minute, 12, 0, ""},
		}},
		{"counter reset never raises", []step{
			{0, 5000, 0, ""}, {10 * time.Minute, 3, 0, ""}, {20 * time.Minute, 9, 0, ""}, {30 * time.Minute, 0, 0, ""}, {40 * time.Minute, 3, 0, ""},
		}},
		{"growth after a reset counts from the new value", []step{
			{0, 5000, 0, ""}, {10 * time.Minute, 3, 0, ""}, {20 * time.Minute, 13, 0, "rx_errors"},
		}},
		{"counters judged apart", []step{
			{0, 0, 0, ""}, {10 * time.Minute, 6, 6, ""}, {20 * time.Minute, 9, 16, "tx_errors"},
		}},
		{"a gap longer than the window is no baseline", []step{
			{0, 0, 0, ""}, {3 * time.Hour, 500, 0, ""}, {3*time.Hour + time.Minute, 501, 0, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
			for _, s := range tc.steps {
				fs := ev.Observe("n1", obs("netdev", eth0, s.at, "rx_errors", s.rx, "tx_errors", s.tx, "rx_packets", 1e6))
				got := ""
				if len(fs) > 1 {
					t.Fatalf("at %v: %s", s.at, describe(fs))
				}
				if len(fs) == 1 {
					got = fs[0].GetEvidence().GetSamples()[0].GetName()
				}
				if got != s.want {
					t.Fatalf("at %v (rx %d, tx %d): raised %q, want %q", s.at, s.rx, s.tx, got, s.want)
				}
			}
		})
	}
}

// TestReraise checks the raise policy: at once when a rule starts to hold
// or gets worse (a higher severity, a condition that had not held), else
// at most once per quarter of the clear time; after it stops holding, at
// once again.
func TestReraise(t *testing.T) {
	rs := loadRules(t, `rules:
  - name: drive
    kind: smart
    class: disk.media
    severity: warning
    clear_after: 2h
    any:
      - {sample: ata_pending_sectors, raw_above: 0}
      - {sample: ata_reallocated_sectors, growing: true}
      - {sample: ata_offline_uncorrectable, raw_above: 100, severity: critical}
`)
	disk := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda", Serial: "S1"}
	read := func(at time.Duration, pending, realloc, offline int) *hwhealv1.Observation {
		return obs("smart", disk, at, "ata_pending_sectors", pending, "ata_reallocated_sectors", realloc, "ata_offline_uncorrectable", offline)
	}
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	m := time.Minute
	for _, step := range []struct {
		o    *hwhealv1.Observation
		want string // severity raised, "" for none
	}{
		{read(0, 0, 5, 0), ""},
		{read(10*m, 2, 5, 0), "warning"}, // starts to hold
		{read(20*m, 2, 5, 0), ""},
		{read(30*m, 2, 6, 0), "warning"}, // a new condition: reallocations grew
		{read(40*m, 2, 7, 0), ""},        // grew again: nothing new
		{read(50*m, 2, 7, 0), ""},
		{read(60*m, 2, 7, 200), "critical"}, // worse
		{read(70*m, 2, 7, 200), ""},
		{read(89*m, 2, 7, 200), ""},
		{read(90*m, 2, 7, 200), "critical"}, // a quarter of 2h since 60m
		{read(100*m, 0, 7, 0), ""},          // stops holding
		{read(110*m, 1, 7, 0), "warning"},   // holds again: at once
		{&hwhealv1.Observation{Time: timestamppb.New(t0.Add(115 * m)), Source: "smart", Part: disk, Samples: []*hwhealv1.Sample{{Name: smart.SampleStandby, Value: 1}}}, ""}, // standby: no data
		{read(140*m, 1, 7, 0), "warning"},
	} {
		fs := ev.Observe("n1", step.o)
		got := ""
		if len(fs) == 1 {
			got = severityName(fs[0].GetSeverity())
		}
		if got != step.want || len(fs) > 1 {
			t.Fatalf("at %v: raised %s, want %q", step.o.GetTime().AsTime().Sub(t0), describe(fs), step.want)
		}
	}
}

// TestEvaluatorFault checks every field of an evaluated fault.
func TestEvaluatorFault(t *testing.T) {
	rs := builtin(t)
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	o := smartctlObservation(t, "smart-ata-date2.json", "sdb", 0)
	fs := ev.Observe("n1", o)
	if len(fs) != 1 {
		t.Fatalf("raised %s, want smart-ata-media", describe(fs))
	}
	f := fs[0]
	want := &hwhealv1.Fault{
		FaultClass: "disk.media",
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Part:       o.GetPart(),
		Rule:       "smart-ata-media",
		Time:       o.GetTime(),
		Summary:    "sdb: ata_attr_197_raw = 10 (> 0); ata_attr_198_raw = 10 (> 0)",
		Evidence: &hwhealv1.Evidence{
			Samples:  []*hwhealv1.Sample{{Name: "ata_attr_197_raw", Value: 10}, {Name: "ata_attr_198_raw", Value: 10}},
			Captures: map[string]string{"findings": "ata_attr_197_raw = 10 (> 0); ata_attr_198_raw = 10 (> 0)"},
		},
		Mode:       hwhealv1.RuleMode_RULE_MODE_ENFORCE,
		ClearAfter: f.GetClearAfter(),
	}
	if !proto.Equal(f, want) {
		t.Errorf("fault\n %v\nwant\n %v", f, want)
	}
	if f.GetClearAfter().AsDuration() != 168*time.Hour {
		t.Errorf("clear after %v, want 168h", f.GetClearAfter().AsDuration())
	}
	if f.GetPart() == o.GetPart() {
		t.Error("the fault shares its part with the observation")
	}
	// A shadow rule's faults say so.
	ev = detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	ev.Observe("n1", obs("netdev", eth0, 0, "rx_errors", 0))
	fs = ev.Observe("n1", obs("netdev", eth0, time.Minute, "rx_errors", 1000))
	if len(fs) != 1 || fs[0].GetMode() != hwhealv1.RuleMode_RULE_MODE_SHADOW || fs[0].GetSummary() != "eth0 counted 1000 rx_errors within 1h" {
		t.Errorf("nic-errors raised %s", describe(fs))
	}
}

// TestEvaluatorMemory checks the bound on what an Evaluator remembers,
// Forget, and that a drive is remembered by serial across device names.
func TestEvaluatorMemory(t *testing.T) {
	rs := loadRules(t, `rules:
  - name: flaps
    kind: rate
    class: nic.link_flap
    severity: warning
    source: netdev
    sample: carrier_changes
    increase: 2
    window: 1h
  - name: grow
    kind: smart
    class: disk.media
    severity: warning
    any: [{sample: ata_reallocated_sectors, growing: true}]
`)
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{MaxParts: 3})
	nic := func(i int) *hwhealv1.Part {
		return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: fmt.Sprintf("eth%d", i)}
	}
	for i := range 5 {
		ev.Observe("n1", obs("netdev", nic(i), 0, "carrier_changes", 10))
	}
	if n, ev := ev.Parts(), ev.Evicted(); n != 3 || ev != 2 {
		t.Fatalf("Parts() = %d, Evicted() = %d; want the bound 3, and 2 forgotten", n, ev)
	}
	// eth0 was forgotten (least recently seen): its next reading is a
	// baseline again, while eth4's grows.
	if fs := ev.Observe("n1", obs("netdev", nic(0), time.Minute, "carrier_changes", 20)); len(fs) != 0 {
		t.Errorf("forgotten eth0 raised %s", describe(fs))
	}
	if fs := ev.Observe("n1", obs("netdev", nic(4), time.Minute, "carrier_changes", 20)); len(fs) != 1 {
		t.Errorf("remembered eth4 raised %s, want a flap", describe(fs))
	}
	ev.Observe("n2", obs("netdev", nic(0), time.Minute, "carrier_changes", 20))
	ev.Forget("n1")
	if n := ev.Parts(); n != 1 {
		t.Errorf("after Forget(n1): Parts() = %d, want n2's 1", n)
	}
	if fs := ev.Observe("n1", obs("netdev", nic(4), 2*time.Minute, "carrier_changes", 40)); len(fs) != 0 {
		t.Errorf("forgotten node's eth4 raised %s", describe(fs))
	}

	// A drive that moves from sda to sdb is the same drive; another
	// drive under sda is another.
	ev = detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	drive := func(name, serial string, at time.Duration, v int) *hwhealv1.Observation {
		return obs("smart", &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name, Serial: serial}, at, "ata_reallocated_sectors", v)
	}
	ev.Observe("n1", drive("sda", "WD-1", 0, 5))
	if fs := ev.Observe("n1", drive("sdb", "WD-1", time.Hour, 6)); len(fs) != 1 {
		t.Errorf("drive WD-1 renamed sdb, grown: raised %s, want a fault", describe(fs))
	}
	if fs := ev.Observe("n1", drive("sda", "WD-2", 2*time.Hour, 9)); len(fs) != 0 {
		t.Errorf("new drive WD-2 as sda raised %s on its first reading", describe(fs))
	}
	// Two drives of different models with one placeholder serial (the
	// smartctl dumps in testdata say "REDACTED") are two drives.
	wdc := smartctlObservation(t, "WDC_WD20EFRX-68EUZN0_18.json", "sda", 0) // 5 raw 0
	st := smartctlObservation(t, "ST3500418AS_11.json", "sdb", 0)           // 5 raw 1
	if wdc.GetPart().GetSerial() != st.GetPart().GetSerial() {
		t.Fatalf("serials %q and %q: the test wants the same", wdc.GetPart().GetSerial(), st.GetPart().GetSerial())
	}
	ev = detect.NewEvaluator(builtin(t), detect.EvaluatorOptions{})
	for i := range 4 {
		for _, o := range []*hwhealv1.Observation{withSamples(wdc, time.Duration(i)*time.Hour), withSamples(st, time.Duration(i)*time.Hour)} {
			if fs := ev.Observe("n1", o); len(fs) != 0 {
				t.Fatalf("reading %d of %s raised %s", i, o.GetPart().GetModel(), describe(fs))
			}
		}
	}
}

// TestEvaluatorTimeGoesBack: a reading older than the part's latest (a
// stepped clock, a replay started again) starts the part afresh rather
// than compute negative durations.
func TestEvaluatorTimeGoesBack(t *testing.T) {
	rs := builtin(t)
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	ev.Observe("n1", obs("netdev", eth0, time.Hour, "carrier_changes", 10))
	if fs := ev.Observe("n1", obs("netdev", eth0, 0, "carrier_changes", 30)); len(fs) != 0 {
		t.Errorf("reading from before the last raised %s", describe(fs))
	}
	if fs := ev.Observe("n1", obs("netdev", eth0, time.Minute, "carrier_changes", 36)); len(fs) != 1 {
		t.Errorf("growth after the restart raised %s, want nic-link-flap", describe(fs))
	}
	// No time on the observation: Now stamps it.
	now := t0.Add(2 * time.Minute)
	ev = detect.NewEvaluator(rs, detect.EvaluatorOptions{Now: func() time.Time { return now }})
	o := obs("hwmon", nvmeChip, 0, "composite_over_crit", 1)
	o.Time = nil
	if fs := ev.Observe("n1", o); len(fs) != 1 || !fs[0].GetTime().AsTime().Equal(now) {
		t.Errorf("untimed observation raised %s, want one fault at Now", describe(fs))
	}
}

// TestEvaluatorDisabledAndOverridden: a disabled rule never evaluates; a
// patched mode, severity and clear time show in the faults.
func TestEvaluatorDisabledAndOverridden(t *testing.T) {
	files := append(detect.BuiltinFiles(), detect.File{Name: "local.yaml", Data: []byte(`rules:
  - name: sensor-over-crit
    enabled: false
  - name: cpu-over-crit
    mode: shadow
    severity: warning
    clear_after: 5m
`)})
	rs, err := detect.LoadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	if fs := ev.Observe("n1", obs("hwmon", nvmeChip, 0, "composite_over_crit", 1)); len(fs) != 0 {
		t.Errorf("disabled rule raised %s", describe(fs))
	}
	fs := ev.Observe("n1", obs("hwmon", cpuChip, 0, "core_0_over_crit", 1))
	if len(fs) != 1 || fs[0].GetMode() != hwhealv1.RuleMode_RULE_MODE_SHADOW ||
		fs[0].GetSeverity() != hwhealv1.Severity_SEVERITY_WARNING || fs[0].GetClearAfter().AsDuration() != 5*time.Minute {
		t.Errorf("patched rule raised %s", describe(fs))
	}
}

// TestEvaluatorConcurrent runs nodes from several goroutines (the race
// detector checks the locking) and checks each node got its own faults.
func TestEvaluatorConcurrent(t *testing.T) {
	ev := detect.NewEvaluator(builtin(t), detect.EvaluatorOptions{MaxParts: 1000})
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for g := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("n%d", g)
			for i := range 200 {
				fs := ev.Observe(node, obs("netdev", eth0, time.Duration(i)*time.Minute, "carrier_changes", 2*i))
				counts[g] += len(fs)
				if i%50 == 0 {
					ev.Forget(node + "-gone")
				}
			}
		}()
	}
	wg.Wait()
	for g, n := range counts {
		// +2 a minute: 6 within 10 minutes from the 4th reading (minute
		// 3) on; raised then and again once 2m30s (a quarter of the 10m
		// clear time) have passed: minutes 3, 6, ..., 198.
		if n != 66 {
			t.Errorf("node %d: %d faults", g, n)
		}
	}
}

func loadRules(t testing.TB, src string) *detect.RuleSet {
	t.Helper()
	rs, err := detect.Load(strings.NewReader(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// A reading that cannot be judged (the rule's sample missing: a drive in
// standby, a read error) keeps the last verdict: a holding rule raises it
// again, so no news is never taken for recovery; once a judged reading
// shows the condition gone, unjudged readings raise nothing.
func TestUnjudgedReadingHoldsVerdict(t *testing.T) {
	rs := loadRules(t, `rules:
  - name: hot
    kind: threshold
    class: cpu.thermal
    severity: warning
    source: hwmon
    sample: "*_celsius"
    above: 90
    clear_after: 1h
`)
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	for _, step := range []struct {
		o        *hwhealv1.Observation
		raise    bool
		heldOver bool
	}{
		{obs("hwmon", cpuChip, 0, "core_0_celsius", 95), true, false},
		{obs("hwmon", cpuChip, 5*time.Minute, "fan1_rpm", 0), false, false}, // raised 5 min ago
		{obs("hwmon", cpuChip, 20*time.Minute, "fan1_rpm", 0), true, true},  // a quarter of the clear time: raised again
		{obs("hwmon", cpuChip, 40*time.Minute, "core_0_celsius", 60), false, false},
		{obs("hwmon", cpuChip, 80*time.Minute, "fan1_rpm", 0), false, false}, // gone on a judged reading: nothing to hold
	} {
		fs := ev.Observe("n1", step.o)
		if (len(fs) == 1) != step.raise || len(fs) > 1 {
			t.Fatalf("at %v: raised %s, want raise=%v", step.o.GetTime().AsTime().Sub(t0), describe(fs), step.raise)
		}
		if len(fs) == 1 {
			_, held := fs[0].GetEvidence().GetCaptures()["held_over"]
			if held != step.heldOver || !fs[0].GetTime().AsTime().Equal(step.o.GetTime().AsTime()) {
				t.Errorf("at %v: held_over %v (want %v), time %v", step.o.GetTime().AsTime().Sub(t0), held, step.heldOver, fs[0].GetTime().AsTime())
			}
		}
	}
}
