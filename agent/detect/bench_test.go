package detect_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// benignLines are real messages that hold no fault: an H100 node's whole
// boot log and the lines the mailing-list corpus calls benign, prefixes
// stripped as /dev/kmsg would give them.
func benignLines(b *testing.B) []kernlog.Record {
	rs := builtin(b)
	var recs []kernlog.Record
	add := func(l string) {
		if r := record(stripPrefix(l)); len(rs.Match(r)) == 0 {
			recs = append(recs, r)
		}
	}
	for _, l := range readLines(b, "gpud/h100-boot-dmesg.decode.iso.log.gz") {
		add(l)
	}
	for _, r := range readJSONL[lkmlLine](b, "lkml_lines.jsonl.gz") {
		if !r.Fault {
			add(r.Line)
		}
	}
	return recs
}

// BenchmarkMatchBenign is the agent's common case: one op is one benign
// line (no fault). At 10,000 lines/s, ns/op × 10⁻⁵ is the share of a core.
func BenchmarkMatchBenign(b *testing.B) {
	rs := builtin(b)
	recs := benignLines(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rs.Match(recs[i%len(recs)])
	}
}

// BenchmarkMatchFault: one op is one real fault line from examples.yaml,
// producing its fault (regex captures, templates, the protobuf message).
func BenchmarkMatchFault(b *testing.B) {
	rs := builtin(b)
	ex := loadExamples(b)
	recs := make([]kernlog.Record, 0, len(ex.Positive))
	for _, e := range ex.Positive {
		recs = append(recs, record(stripPrefix(e.Line)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(rs.Match(recs[i%len(recs)])) != 1 {
			b.Fatal("fault line matched no rule")
		}
	}
}

// BenchmarkMatchCorpus is a realistic mix: every line of the mailing-list
// corpus (half of them fault lines, far more than a healthy node logs).
func BenchmarkMatchCorpus(b *testing.B) {
	rs := builtin(b)
	var recs []kernlog.Record
	for _, r := range readJSONL[lkmlLine](b, "lkml_lines.jsonl.gz") {
		recs = append(recs, record(stripPrefix(r.Line)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rs.Match(recs[i%len(recs)])
	}
}

// BenchmarkBuiltin is the cost of loading the shipped rules (once per
// process).
func BenchmarkBuiltin(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		builtin(b)
	}
}

// fleetReadings is one hour of a node's periodic readings per round, each
// round an hour after the last: four drives read by SMART (real drives),
// four DIMMs and their controller (EDAC), two NICs, two PCI functions, a
// CPU package's sensors. Values grow slowly, as counters do.
func fleetReadings(b *testing.B, rounds int) []*hwhealv1.Observation {
	drives := []*hwhealv1.Observation{
		smartctlObservation(b, "WDC_WD20EFRX-68EUZN0_18.json", "sda", 0),
		smartctlObservation(b, "ST3500418AS_11.json", "sdb", 0),
		smartctlObservation(b, "INTEL_SSDPE2KX080T8_1.json", "nvme0n1", 0),
		smartctlObservation(b, "SAMSUNG_MZVL21T0HCLR-00B00_23.json", "nvme1n1", 0),
	}
	var out []*hwhealv1.Observation
	for r := range rounds {
		at := time.Duration(r) * time.Hour
		for _, d := range drives {
			out = append(out, withSamples(d, at))
		}
		for i := range 4 {
			p := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: fmt.Sprintf("CPU_SrcID#0_MC#0_Chan#%d_DIMM#0", i)}
			out = append(out, obs("edac", p, at, "ce_count", r/7, "ue_count", 0))
		}
		out = append(out, obs("edac", mc0, at, "ce_count", 4*(r/7), "ue_count", 0, "ce_noinfo_count", 0, "ue_noinfo_count", 0, "seconds_since_reset", 3600*r))
		for _, p := range []*hwhealv1.Part{eth0, eth1} {
			out = append(out, obs("netdev", p, at, "rx_bytes", 1e9*r, "rx_packets", 1e6*r, "rx_errors", r/10, "rx_dropped", r,
				"tx_bytes", 1e9*r, "tx_packets", 1e6*r, "tx_errors", 0, "tx_dropped", 0, "carrier", 1, "carrier_changes", 2, "up", 1, "speed_mbps", 25000))
		}
		for _, p := range []*hwhealv1.Part{pciDev, {Kind: hwhealv1.PartKind_PART_KIND_PCI, Name: "0000:00:01.0"}} {
			out = append(out, obs("aer", p, at, "correctable_total", r, "correctable_RxErr", r, "nonfatal_total", 0, "fatal_total", 0,
				"link_speed_gts", 16, "link_width", 16, "link_degraded", 0, "link_width_degraded", 0))
		}
		out = append(out, obs("hwmon", cpuChip, at, "package_id_0_celsius", 61, "package_id_0_crit_celsius", 100, "package_id_0_max_celsius", 90,
			"package_id_0_over_max", 0, "package_id_0_over_crit", 0, "core_0_celsius", 58, "core_0_over_crit", 0, "core_1_celsius", 60, "core_1_over_crit", 0))
	}
	return out
}

// BenchmarkEvaluatorObserve: one op is one observation of a node's
// periodic mix (fleetReadings) through the shipped rules, each node seen
// for 100 hourly rounds. Compare with BenchmarkEvaluatorBaseline, the
// same observations read by a trivial loop.
func BenchmarkEvaluatorObserve(b *testing.B) {
	readings := fleetReadings(b, 100)
	ev := detect.NewEvaluator(builtin(b), detect.EvaluatorOptions{})
	nodes := make([]string, 64)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%03d", i)
	}
	faults := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pass := i / len(readings)
		faults += len(ev.Observe(nodes[pass%len(nodes)], readings[i%len(readings)]))
	}
	b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
}

// BenchmarkEvaluatorBaseline is the floor under BenchmarkEvaluatorObserve:
// a loop that only reads every sample of the same observations.
func BenchmarkEvaluatorBaseline(b *testing.B) {
	readings := fleetReadings(b, 100)
	var sum float64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := readings[i%len(readings)]
		for _, s := range o.GetSamples() {
			if s.GetName() != "" {
				sum += s.GetValue()
			}
		}
	}
	if sum == 42 {
		b.Log(sum)
	}
}
