package sqlite

import (
	"context"
	"fmt"
	"google.golang.org/protobuf/proto"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var benchT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// registerBulk says hello for n nodes, many per transaction (setup only:
// the ingest layer records one hello per transaction). Node i gets labels
// rack=r(i%100), zone=z(i%4), role=compute.
func registerBulk(b *testing.B, s *Store, n int) {
	b.Helper()
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		err := s.write(b.Context(), func(ctx context.Context, st *txStmts) error {
			for i := start; i < min(start+chunk, n); i++ {
				_, err := s.hello(ctx, st, store.Hello{
					Node:         benchNode(i),
					Labels:       map[string]string{"rack": fmt.Sprintf("r%02d", i%100), "zone": fmt.Sprintf("z%d", i%4), "role": "compute"},
					AgentVersion: "1.0.0",
					BootID:       "boot",
					StreamID:     "stream",
					Inventory:    &hwhealv1.Inventory{SystemSerial: fmt.Sprintf("SN%06d", i), CpuCores: 64},
					Time:         benchT0,
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchNode(i int) string { return fmt.Sprintf("node-%06d", i) }

// benchFeed makes agent batches the way a fleet sends them: each batch is
// one node's next reports, 2 in 10 of them faults (on one of 4 disks, so
// most update an open fault) and the rest observations of those disks.
type benchFeed struct {
	nodes   int
	next    int
	seq     []uint64
	faults  int
	reports int
}

func (f *benchFeed) batches(n, perBatch int) []store.Batch {
	out := make([]store.Batch, n)
	for i := range out {
		node := f.next % f.nodes
		f.next++
		reps := make([]*hwhealv1.Report, perBatch)
		for j := range reps {
			f.seq[node]++
			seq := f.seq[node]
			when := timestamppb.New(benchT0.Add(time.Duration(seq) * time.Second))
			part := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: fmt.Sprintf("sd%c", 'a'+seq%4)}
			// The mix counts reports, not sequence numbers, so that it is
			// the same however the reports are batched.
			if f.reports%5 == 0 {
				sev := hwhealv1.Severity_SEVERITY_WARNING
				if f.reports%50 == 0 {
					sev = hwhealv1.Severity_SEVERITY_CRITICAL
				}
				reps[j] = &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
					FaultClass: "disk.io_error", Severity: sev, Part: part, Rule: "kmsg.blk_update_request", Time: when,
					Summary: "I/O error on " + part.Name,
					Evidence: &hwhealv1.Evidence{
						KernelLog: &hwhealv1.KernelLogRecord{Level: proto.Uint32(3), BootId: "boot", Sequence: seq, Message: "blk_update_request: I/O error, dev " + part.Name + ", sector 1234 op 0x0:(READ)"},
						Captures:  map[string]string{"device": part.Name, "sector": "1234"},
					},
				}}}
				f.faults++
			} else {
				reps[j] = &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
					Time: when, Source: "diskstats", Part: part,
					Samples: []*hwhealv1.Sample{{Name: "reads", Value: float64(seq)}, {Name: "writes", Value: float64(seq * 2)}, {Name: "io_ms", Value: 3}},
				}}}
			}
			f.reports++
		}
		out[i] = store.Batch{Node: benchNode(node), StreamID: "stream", Reports: reps, Received: benchT0.Add(time.Duration(f.next) * time.Millisecond)}
	}
	return out
}

// BenchmarkApply stores agent reports from 1,000 nodes. "batched" is how
// the collector writes: 100 batches of 10 reports per transaction;
// "unbatched" is the baseline of one report per transaction.
func BenchmarkApply(b *testing.B) {
	cases := []struct {
		name              string
		batchesPerTx, per int
	}{
		{"batched_100x10_per_tx", 100, 10},
		{"batch_1x10_per_tx", 1, 10},
		{"unbatched_1_report_per_tx", 1, 1},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const nodes = 1000
			registerBulk(b, s, nodes)
			feed := &benchFeed{nodes: nodes, seq: make([]uint64, nodes)}
			cpu0 := cpuTime(b)
			for b.Loop() {
				// Making the batches is timed too (a few percent): stopping the
				// timer per iteration costs more than the smallest Apply.
				batches := feed.batches(c.batchesPerTx, c.per)
				if _, err := s.Apply(b.Context(), batches); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds()
			// CPU time of the process per report: on
			// a shared machine it says more than the wall-clock rate.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(feed.reports), "cpu-µs/report")
			b.ReportMetric(float64(feed.reports)/sec, "reports/s")
			b.ReportMetric(float64(feed.faults)/sec, "faults/s")
		})
	}
}

// BenchmarkListNodes lists a 100,000-node fleet (1 in 100 nodes faulty),
// 100 nodes a page. Setup takes about 6 s.
func BenchmarkListNodes(b *testing.B) {
	const nodes = 100_000
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	registerBulk(b, s, nodes)
	var faulty []store.Batch
	for i := 0; i < nodes; i += 100 {
		faulty = append(faulty, store.Batch{Node: benchNode(i + 7), StreamID: "stream", Received: benchT0, Reports: []*hwhealv1.Report{{
			Seq: 1, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{FaultClass: "memory.ue", Severity: hwhealv1.Severity_SEVERITY_CRITICAL,
				Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "DIMM_A1"}}},
		}}})
	}
	if _, err := s.Apply(b.Context(), faulty); err != nil {
		b.Fatal(err)
	}
	// No ANALYZE: a new collector has no statistics, and the listing must
	// not need them (see TestNodeQueryPlans).
	b.Logf("setup of %d nodes: %v", nodes, time.Since(start).Round(time.Millisecond))

	midToken := nodeToken(benchNode(nodes / 2))
	cases := []struct {
		name   string
		filter store.NodeFilter
		token  string
		all    bool // page through every match
		want   int
	}{
		{"first_page", store.NodeFilter{}, "", false, 100},
		{"middle_page", store.NodeFilter{}, midToken, false, 100},
		{"label_rack_first_page", store.NodeFilter{Labels: map[string]string{"rack": "r42"}}, "", false, 100},
		{"label_rack_all_10_pages", store.NodeFilter{Labels: map[string]string{"rack": "r42"}}, "", true, 1000},
		{"labels_rack_zone_all", store.NodeFilter{Labels: map[string]string{"rack": "r42", "zone": "z2"}}, "", true, 1000},
		{"label_zone_first_page", store.NodeFilter{Labels: map[string]string{"zone": "z1"}}, "", false, 100},
		{"health_faulty_all", store.NodeFilter{Health: []hwhealv1.NodeHealth{hwhealv1.NodeHealth_NODE_HEALTH_FAULTY}}, "", true, 1000},
		{"health_suspect_or_faulty_all", store.NodeFilter{Health: []hwhealv1.NodeHealth{hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT, hwhealv1.NodeHealth_NODE_HEALTH_FAULTY}}, "", true, 1000},
		{"health_healthy_first_page", store.NodeFilter{Health: []hwhealv1.NodeHealth{hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY}}, "", false, 100},
		{"health_healthy_or_suspect_middle_page", store.NodeFilter{Health: []hwhealv1.NodeHealth{hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY, hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT}}, midToken, false, 100},
		{"fault_class_all", store.NodeFilter{FaultClass: "memory.ue"}, "", true, 1000},
		{"label_rack_and_faulty", store.NodeFilter{Labels: map[string]string{"rack": "r07"}, Health: []hwhealv1.NodeHealth{hwhealv1.NodeHealth_NODE_HEALTH_FAULTY}}, "", true, 1000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var got int
			for b.Loop() {
				got = 0
				tok := c.token
				for {
					ns, next, err := s.ListNodes(b.Context(), c.filter, store.Page{Size: 100, Token: tok})
					if err != nil {
						b.Fatal(err)
					}
					got += len(ns)
					if !c.all || next == "" {
						break
					}
					tok = next
				}
			}
			if got != c.want {
				b.Fatalf("listed %d nodes, want %d", got, c.want)
			}
			b.ReportMetric(float64(got), "nodes/op")
		})
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
