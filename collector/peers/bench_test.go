package peers

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

const (
	benchNodes  = 10000
	benchDisks  = 8
	benchRacks  = 10
	benchModels = 5 // 10 racks x 5 models = 50 peer groups of 1600 disks
)

// benchFleet is 10 000 nodes with 8 disks each: every node has one disk
// model and sits in one rack, so grouping by rack and model gives 50 groups
// of 1600. Latencies are log-normal per model from a fixed seed (no corpus
// holds fleet latencies), with one disk in 500 made 5-30x slower.
func benchFleet() []Input {
	rng := rand.New(rand.NewPCG(13, 14))
	medians := [benchModels]float64{250, 1200, 8000, 41000, 90000} // NVMe .. HDD, µs
	ts := timestamppb.New(now.Add(-time.Minute))
	in := make([]Input, 0, benchNodes*benchDisks)
	for n := range benchNodes {
		node := fmt.Sprintf("node-%05d", n)
		labels := map[string]string{"rack": fmt.Sprintf("r%02d", n%benchRacks), "zone": "z1"}
		m := (n / benchRacks) % benchModels
		vals := lognormal(rng, benchDisks, medians[m], 0.2)
		for d, v := range vals {
			if rng.IntN(500) == 0 {
				v *= 5 + 25*rng.Float64()
			}
			in = append(in, Input{Node: node, Labels: labels, Observation: &hwhealv1.Observation{
				Time:   ts,
				Source: "blockio",
				Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: fmt.Sprintf("sd%c", 'a'+d),
					Model: fmt.Sprintf("MODEL-%d", m), Serial: fmt.Sprintf("S%05d%d", n, d)},
				Samples: []*hwhealv1.Sample{
					{Name: "latency_mean_us", Value: v / 3},
					{Name: "latency_p50_us", Value: v / 4},
					{Name: latency, Value: v},
				},
			}})
		}
	}
	return in
}

// BenchmarkEvaluate runs the whole evaluation (grouping, statistics,
// faults) on 80 000 inputs, with selection ("select") and, as the baseline
// in the same run, with a full sort of each group's values ("sort").
// "select-quiet" has a threshold nothing passes: the cost of an evaluation
// that raises no fault, i.e. without building faults.
func BenchmarkEvaluate(b *testing.B) {
	in := benchFleet()
	r := rule(func(r *Rule) { r.Peers = []string{"rack"} })
	quiet := r
	quiet.Threshold = 1e9
	for _, bc := range []struct {
		name string
		r    Rule
		med  func([]float64) float64
	}{{"select", r, median}, {"sort", r, medianSorted}, {"select-quiet", quiet, median}} {
		b.Run(bc.name, func(b *testing.B) {
			r := bc.r
			b.ReportAllocs()
			var found int
			var st Stats
			for b.Loop() {
				fs, s := evaluate(r, in, now, bc.med)
				found, st = len(fs), s
			}
			if st.Groups != benchRacks*benchModels || st.Evaluated != len(in) {
				b.Fatalf("stats %+v, want %d groups of all %d inputs", st, benchRacks*benchModels, len(in))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in)), "ns/input")
			b.ReportMetric(float64(found), "findings")
		})
	}
}

// BenchmarkGroupStats isolates the statistics: median and MAD of 50 groups
// of 1600 values, by selection and by sort.
func BenchmarkGroupStats(b *testing.B) {
	rng := rand.New(rand.NewPCG(15, 16))
	groups := make([][]float64, benchRacks*benchModels)
	for g := range groups {
		groups[g] = lognormal(rng, benchNodes*benchDisks/len(groups), 41000, 0.2)
	}
	scratch := make([]float64, len(groups[0]))
	for _, bc := range []struct {
		name string
		med  func([]float64) float64
	}{{"select", median}, {"sort", medianSorted}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, vals := range groups {
					copy(scratch, vals)
					m := bc.med(scratch)
					for i, v := range vals {
						scratch[i] = max(v-m, m-v)
					}
					bc.med(scratch)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(benchNodes*benchDisks), "ns/input")
		})
	}
}
