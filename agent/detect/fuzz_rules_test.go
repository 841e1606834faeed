package detect_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// FuzzLoadFiles feeds two arbitrary rule files, the second overriding the
// first: LoadFiles must not panic; every error must be an *Error naming
// one of the files and a line (only an empty file has none); a set that
// loads must list, match, annotate and evaluate without panic.
func FuzzLoadFiles(f *testing.F) {
	builtins := detect.BuiltinFiles()
	for _, bf := range builtins {
		f.Add(bf.Data, []byte("rules:\n  - name: edac-ue\n    mode: shadow\n"))
	}
	f.Add([]byte(goodThreshold), []byte("rules:\n  - name: hot\n    enabled: false\n  - name: hot2\n    kind: threshold\n"))
	f.Add([]byte(goodRate), []byte(strings.Replace(goodRate, "increase: 6", "increase: 0x10", 1)))
	f.Add([]byte(goodSmart), []byte("rules:\n  - name: media\n    severity: critical\n    clear_after: never\n"))
	f.Add([]byte(goodOutlier+"    min_value: 1e3\n    direction: low\n"), []byte(goodAgent))
	f.Add([]byte(goodAgent), []byte("rules:\n  - name_prefix: vendor/\n    kind: agent\n    clear_after_by_class: {a.b: 1h}\n"))
	f.Add([]byte("rules:\n  - {name: x, kind: smart, class: a.b, severity: info, any: [{attribute: '*', at_threshold: true}]}\n"), []byte(""))
	f.Add([]byte("rules:\n  - &a {name: x, kind: agent}\n  - *a\n"), []byte("{"))
	f.Add([]byte("rules: [{name: a, kind: rate, class: a.b, severity: info, source: s, sample: '*x*y', increase: 1, window: 1ns}]"), []byte("\x00"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		rs, err := detect.LoadFiles(detect.File{Name: "a.yaml", Data: a}, detect.File{Name: "b.yaml", Data: b})
		if err != nil {
			for _, e := range unjoin(err) {
				var le *detect.Error
				if !errors.As(e, &le) || (le.File != "a.yaml" && le.File != "b.yaml") {
					t.Fatalf("error %q is not an *Error naming a.yaml or b.yaml", e)
				}
				if le.Line <= 0 && !strings.Contains(le.Error(), "empty rule file") {
					t.Fatalf("error %q names no line", e)
				}
			}
			return
		}
		ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{MaxParts: 8})
		for _, r := range rs.Rules() {
			fl := &hwhealv1.Fault{Rule: r.Name}
			rs.Annotate(fl)
			if r.Kind != detect.KindThreshold && r.Kind != detect.KindRate && r.Kind != detect.KindSmart {
				continue
			}
			for i, v := range []float64{0, 1, 1e9, -3, 0, 255} {
				o := obs(r.Source, &hwhealv1.Part{Kind: r.Part, Name: "p", Serial: "s"}, time.Duration(i)*time.Hour,
					r.Sample, v, "x_over_crit", v, "ata_attr_5_raw", v, "ata_attr_5_value", v, "ata_attr_5_thresh", 10-v)
				ev.Observe("n", o)
			}
		}
		rs.Match(kernlog.Record{Message: string(a)})
		rs.Outliers()
	})
}

// fuzzSources are what FuzzEvaluator's readings come from: a source, a
// part kind and the samples a reading of it may carry.
var fuzzSources = []struct {
	source  string
	kind    hwhealv1.PartKind
	samples []string
}{
	{"hwmon", hwhealv1.PartKind_PART_KIND_CPU, []string{"core_0_over_crit", "package_id_0_over_max", "over_crit", "core_0_celsius"}},
	{"hwmon", hwhealv1.PartKind_PART_KIND_NODE, []string{"composite_over_crit", "temp1_over_max"}},
	{"edac", hwhealv1.PartKind_PART_KIND_MEMORY, []string{"ce_count", "ue_count", "seconds_since_reset"}},
	{"ras", hwhealv1.PartKind_PART_KIND_MEMORY, []string{"ce_count", "ue_count"}},
	{"aer", hwhealv1.PartKind_PART_KIND_PCI, []string{"correctable_total", "fatal_total", "link_width_degraded"}},
	{"netdev", hwhealv1.PartKind_PART_KIND_NIC, []string{"carrier_changes", "rx_errors", "tx_errors"}},
	{"smart", hwhealv1.PartKind_PART_KIND_DISK, []string{"ata_attr_5_raw", "ata_attr_197_raw", "ata_attr_5_value", "ata_attr_5_thresh",
		"nvme_critical_warning", "nvme_available_spare", "nvme_available_spare_threshold", "nvme_media_errors", "nvme_percentage_used", "standby"}},
}

// FuzzEvaluator feeds the shipped rules arbitrary sequences of readings,
// four bytes each: which part, which sample, its value, how far time moves
// (the top bit moves it back). Observe must not panic, every fault must be
// complete and about the reading that raised it, and memory must stay
// within its bound.
func FuzzEvaluator(f *testing.F) {
	rs := builtin(f)
	f.Add([]byte{0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1})
	f.Add([]byte{5 * 4, 0, 0, 1, 5 * 4, 0, 3, 1, 5 * 4, 0, 6, 1, 5 * 4, 0, 9, 1})
	f.Add([]byte{6 * 4, 1, 0, 1, 6 * 4, 1, 8, 1, 6 * 4, 1, 8, 0x81, 6 * 4, 1, 9, 1})
	f.Add([]byte{2 * 4, 0, 0, 0, 2 * 4, 0, 200, 10, 2*4 + 1, 2, 1, 0, 6*4 + 3, 4, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxParts = 6
		ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{MaxParts: maxParts, Now: func() time.Time { return t0 }})
		at := time.Duration(0)
		for i := 0; i+3 < len(data); i += 4 {
			src := fuzzSources[int(data[i]>>2)%len(fuzzSources)]
			part := &hwhealv1.Part{Kind: src.kind, Name: fmt.Sprintf("p%d", data[i]&3), Serial: fmt.Sprintf("s%d", data[i]&1)}
			name := src.samples[int(data[i+1])%len(src.samples)]
			step := time.Duration(data[i+3]&0x7f) * 7 * time.Minute
			if data[i+3]&0x80 != 0 {
				step = -step
			}
			at += step
			o := obs(src.source, part, at, name, float64(data[i+2]), "ata_attr_5_thresh", 10)
			node := fmt.Sprintf("n%d", data[i+1]>>6)
			for _, fl := range ev.Observe(node, o) {
				r, ok := rs.Lookup(fl.GetRule())
				if !ok || r.Source != src.source || !r.Enabled {
					t.Fatalf("fault of rule %q (%+v) from a %s reading", fl.GetRule(), r, src.source)
				}
				if fl.GetFaultClass() != r.Class || fl.GetSummary() == "" || fl.GetSeverity() < info || fl.GetSeverity() > crit ||
					fl.GetMode() != r.Mode || !fl.GetTime().AsTime().Equal(t0.Add(at)) || !proto.Equal(fl.GetPart(), part) ||
					len(fl.GetEvidence().GetSamples()) == 0 {
					t.Fatalf("incomplete fault %v from %v", fl, o)
				}
			}
			if n := ev.Parts(); n > maxParts {
				t.Fatalf("%d parts remembered, bound %d", n, maxParts)
			}
		}
		ev.Forget("n0")
	})
}
