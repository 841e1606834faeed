package peers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

const latency = "latency_p99_us"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// disk is one input: a disk of a node with a p99 latency observed age ago.
func disk(node, name, model string, v float64, age time.Duration, labels map[string]string) Input {
	return Input{
		Node:   node,
		Labels: labels,
		Observation: &hwhealv1.Observation{
			Time:    timestamppb.New(now.Add(-age)),
			Source:  "blockio",
			Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name, Model: model, Serial: "S-" + node + "-" + name},
			Samples: []*hwhealv1.Sample{{Name: "latency_p50_us", Value: v / 4}, {Name: latency, Value: v}},
		},
	}
}

// fleet is n disks of one model, one per node "<prefix>NN", with the
// given latencies.
func fleet(prefix, model string, labels map[string]string, vals ...float64) []Input {
	out := make([]Input, len(vals))
	for i, v := range vals {
		out[i] = disk(fmt.Sprintf("%s%02d", prefix, i), "sda", model, v, time.Minute, labels)
	}
	return out
}

// lognormal draws n latencies (µs, whole numbers as blockio reports them)
// around median with log-space spread sigma. No corpus in
// ../shared/corpora holds per-device latencies across a fleet, so the
// tests draw them from a fixed seed: a log-normal is the usual shape of
// per-device I/O latency (positive, right-skewed).
func lognormal(rng *rand.Rand, n int, median, sigma float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Round(median * math.Exp(sigma*rng.NormFloat64()))
	}
	return out
}

func concat(parts ...[]Input) []Input { return slices.Concat(parts...) }

func rule(mod ...func(*Rule)) Rule {
	r := Rule{
		Name:       "disk-latency-outlier",
		Class:      "disk.latency_outlier",
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Mode:       hwhealv1.RuleMode_RULE_MODE_SHADOW,
		ClearAfter: time.Hour,
		Source:     "blockio",
		Sample:     latency,
	}
	for _, m := range mod {
		m(&r)
	}
	return r
}

// flagged lists findings as "node/part".
func flagged(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Node+"/"+f.Fault.GetPart().GetName())
	}
	return out
}

func evidence(f *hwhealv1.Fault, name string) (float64, bool) {
	for _, s := range f.GetEvidence().GetSamples() {
		if s.GetName() == name {
			return s.GetValue(), true
		}
	}
	return 0, false
}
