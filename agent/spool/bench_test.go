package spool

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// benchReport is a typical diskstats observation (~150 bytes marshalled).
func benchReport() *hwhealv1.Report {
	return &hwhealv1.Report{Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
		Time:   timestamppb.Now(),
		Source: "diskstats",
		Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "nvme0n1", Serial: "S4EWNX0R123456", Model: "Samsung SSD 980 PRO 1TB"},
		Samples: []*hwhealv1.Sample{
			{Name: "reads_completed", Value: 123456789}, {Name: "writes_completed", Value: 98765432},
			{Name: "io_time_ms", Value: 4567}, {Name: "weighted_io_time_ms", Value: 891011},
		},
	}}}
}

func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(map[int]string{1: "single", 100: "batch100"}[batch], func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{})
			reports := make([]*hwhealv1.Report, batch)
			for i := range reports {
				reports[i] = benchReport()
			}
			b.SetBytes(int64(batch * (frameHeaderBytes + proto.Size(reports[0]) + 4)))
			b.ResetTimer()
			for b.Loop() {
				if err := s.Append(reports...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}

// BenchmarkRead reads sequentially in transport-sized batches (500) over a
// spool of 100k reports, as a replay after a long collector outage does.
func BenchmarkRead(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	const n = 100_000
	batch := make([]*hwhealv1.Report, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = benchReport()
		}
		if err := s.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Read(1, 0, 0); err != nil { // fsync once, outside the timing
		b.Fatal(err)
	}
	next := uint64(1)
	var reports, bytes int
	b.ResetTimer()
	for b.Loop() {
		got, err := s.Read(next, 500, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			next = 1
			continue
		}
		reports += len(got)
		for _, r := range got {
			bytes += proto.Size(r)
		}
		next = got[len(got)-1].Seq + 1
	}
	b.ReportMetric(float64(reports)/b.Elapsed().Seconds(), "reports/s")
	b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// BenchmarkOpen measures recovery of a full default-sized spool (64 MiB):
// the agent's start-up cost after a long outage.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*hwhealv1.Report, 1000)
	for s.Stats().Bytes < DefaultMaxBytes-DefaultSegmentBytes {
		for j := range batch {
			batch[j] = benchReport()
		}
		if err := s.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	size := s.Stats().Bytes
	s.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
