package sqlite

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkResolveQuiet runs the quiet pass over 100,000 open faults (25,000
// nodes with 4 each, clear time 24 h) of which few are due, as a collector
// does every few seconds. Setup takes about 10 s.
//
//   - none_due: the pass when nothing is due, the common case;
//   - 100_due: 100 faults made due before each pass (untimed), resolved
//     with their events and health changes;
//   - baseline_scan: the query a store without due_at would need to find
//     the same faults (every open fault against its node's connection),
//     read-only and without resolving anything;
//   - 1000_held: nothing resolvable, but 1,000 faults derived from
//     readings are past their quiet time with no reading that clears them
//     (a stale one each): what a pass costs per such fault, since they
//     stay in the due range until a reading comes.
func BenchmarkResolveQuiet(b *testing.B) {
	const (
		nodes     = 25_000
		perNode   = 4
		clear     = 24 * time.Hour
		perRearms = 100
	)
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	registerBulk(b, s, nodes)
	for first := 0; first < nodes; first += 1000 {
		var batches []store.Batch
		for i := first; i < min(first+1000, nodes); i++ {
			var reps []*hwhealv1.Report
			for p := range perNode {
				reps = append(reps, &hwhealv1.Report{Seq: uint64(p + 1), Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
					FaultClass: "disk.io_error", Severity: hwhealv1.Severity_SEVERITY_WARNING,
					Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: fmt.Sprintf("sd%c", 'a'+p)},
					Time: timestamppb.New(benchT0), Mode: hwhealv1.RuleMode_RULE_MODE_ENFORCE, ClearAfter: durationpb.New(clear),
				}}})
			}
			batches = append(batches, store.Batch{Node: benchNode(i), StreamID: "stream", Reports: reps, Received: benchT0})
		}
		if _, err := s.Apply(b.Context(), batches); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("setup of %d open faults: %v", nodes*perNode, time.Since(start).Round(time.Millisecond))
	now := benchT0.Add(time.Hour)

	b.Run("none_due_100k_open", func(b *testing.B) {
		for b.Loop() {
			evs, err := s.ResolveQuiet(b.Context(), now)
			if err != nil || len(evs) != 0 {
				b.Fatalf("ResolveQuiet = %d events, %v; want none", len(evs), err)
			}
		}
	})

	b.Run("100_due_100k_open", func(b *testing.B) {
		next := int64(1)
		resolved := 0
		for b.Loop() {
			b.StopTimer()
			// Make the next 100 faults due now, as if their clear time ran
			// out (reopening those an earlier round resolved).
			if _, err := s.w.ExecContext(b.Context(), `UPDATE faults SET state = 1, resolved = NULL, due_at = ? WHERE id >= ? AND id < ?`,
				nanos(now), next, next+perRearms); err != nil {
				b.Fatal(err)
			}
			next += perRearms
			if next > nodes*perNode {
				next = 1
			}
			b.StartTimer()
			evs, err := s.ResolveQuiet(b.Context(), now)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, ev := range evs {
				if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED {
					n++
				}
			}
			if n != perRearms {
				b.Fatalf("resolved %d faults, want %d", n, perRearms)
			}
			resolved += n
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(resolved), "µs/fault")
	})

	defer b.Run("1000_held_100k_open", func(b *testing.B) {
		const held = 1000
		// The last ids, so that 100_due (which walks up from id 1) left
		// them as they were; forced open all the same.
		for _, q := range []string{
			`UPDATE faults SET state = 1, resolved = NULL, source = 'smart', due_at = ?1 WHERE id > ?2`,
			`INSERT OR REPLACE INTO observations_latest (node, source, part_key, time, observation)
				SELECT node, 'smart', part_key, last_seen, x'' FROM faults WHERE id > ?2`,
		} {
			if _, err := s.w.ExecContext(b.Context(), q, nanos(now.Add(-time.Second)), nodes*perNode-held); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			evs, err := s.ResolveQuiet(b.Context(), now)
			if err != nil || len(evs) != 0 {
				b.Fatalf("ResolveQuiet = %d events, %v; want none", len(evs), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/held, "ns/held")
	})

	b.Run("baseline_scan_100k_open", func(b *testing.B) {
		q := `SELECT f.id, f.node FROM faults f JOIN nodes n ON n.name = f.node
			WHERE f.state = 1 AND f.clear_after > 0 AND n.connected = 1
			AND f.last_seen + (f.clear_after << MIN(f.reopened, 3)) <= ?1
			AND n.connected_at + (f.clear_after << MIN(f.reopened, 3)) <= ?1`
		for b.Loop() {
			rows, err := s.r.QueryContext(b.Context(), q, nanos(now))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			rows.Close()
			if n != 0 {
				b.Fatalf("baseline found %d due faults, want 0", n)
			}
		}
	})
}

// BenchmarkFleetObservations reads one source's latest observations across
// 10,000 nodes with 4 parts each, from a table holding 3 sources (120,000
// rows). Setup takes about 5 s.
//
//   - source_keyed: FleetObservations, on the table keyed (source, node,
//     part_key) as migration 0003 makes it;
//   - baseline_node_keyed_source_index: the same query and decoding over a
//     copy keyed (node, source, part_key) as before 0003, with an index
//     on source: a lookup into the table per reading;
//   - baseline_per_node: what a caller without FleetObservations does,
//     LatestObservations of every node (node names known).
func BenchmarkFleetObservations(b *testing.B) {
	const (
		nodes = 10_000
		parts = 4
	)
	sources := []string{"diskstats", "netdev", "smart"}
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	registerBulk(b, s, nodes)
	for first := 0; first < nodes; first += 1000 {
		var batches []store.Batch
		for i := first; i < min(first+1000, nodes); i++ {
			var reps []*hwhealv1.Report
			for _, src := range sources {
				for p := range parts {
					reps = append(reps, &hwhealv1.Report{Seq: uint64(len(reps) + 1), Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
						Time: timestamppb.New(benchT0), Source: src,
						Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: fmt.Sprintf("sd%c", 'a'+p), Model: "WDC WD40EFRX"},
						Samples: []*hwhealv1.Sample{{Name: "reads", Value: float64(i)}, {Name: "io_ms", Value: 3}, {Name: "await_ms", Value: 1.5}},
					}}})
				}
			}
			batches = append(batches, store.Batch{Node: benchNode(i), StreamID: "stream", Reports: reps, Received: benchT0})
		}
		if _, err := s.Apply(b.Context(), batches); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("setup of %d observations: %v", nodes*parts*len(sources), time.Since(start).Round(time.Millisecond))

	check := func(b *testing.B, n int) {
		if n != nodes*parts {
			b.Fatalf("%d observations, want %d", n, nodes*parts)
		}
	}
	b.Run("source_keyed", func(b *testing.B) {
		for b.Loop() {
			obs, err := s.FleetObservations(b.Context(), "diskstats")
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(obs))
		}
	})
	b.Run("baseline_node_keyed_source_index", func(b *testing.B) {
		for _, q := range []string{
			`CREATE TABLE obs_by_node (node TEXT NOT NULL, source TEXT NOT NULL, part_key TEXT NOT NULL, time INTEGER, observation BLOB NOT NULL,
				PRIMARY KEY (node, source, part_key)) WITHOUT ROWID`,
			`INSERT INTO obs_by_node SELECT node, source, part_key, time, observation FROM observations_latest`,
			`CREATE INDEX obs_by_node_source ON obs_by_node (source)`,
		} {
			if _, err := s.w.ExecContext(b.Context(), q); err != nil {
				b.Fatal(err)
			}
		}
		q := strings.Replace(fleetObsSQL, "observations_latest o", "obs_by_node o", 1)
		if plan := fmt.Sprint(explainB(b, s, q, "diskstats")); !strings.Contains(plan, "obs_by_node_source") {
			b.Fatalf("baseline plan %s does not use its source index", plan)
		}
		for b.Loop() {
			obs, err := s.fleetObservations(b.Context(), q, "diskstats")
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(obs))
		}
	})
	b.Run("baseline_per_node", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for i := range nodes {
				obs, err := s.LatestObservations(b.Context(), benchNode(i))
				if err != nil {
					b.Fatal(err)
				}
				for _, o := range obs {
					if o.GetSource() == "diskstats" {
						n++
					}
				}
			}
			check(b, n)
		}
	})
}

func explainB(b *testing.B, s *Store, q string, args ...any) []string {
	rows, err := s.r.QueryContext(b.Context(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			b.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}
