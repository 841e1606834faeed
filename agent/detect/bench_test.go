package detect_test

import (
	"testing"

	"github.com/hwheal/hwheal/pkg/kernlog"
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
