package sqlite

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func clearFault(seq uint64, class string, part *hwhealv1.Part, when time.Time, clear *durationpb.Duration) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: class, Severity: hwhealv1.Severity_SEVERITY_WARNING, Part: part,
		Time: timestamppb.New(when), ClearAfter: clear,
	}}}
}

func dueOf(t *testing.T, s *Store, id uint64) (int64, bool) {
	t.Helper()
	var due *int64
	if err := s.r.QueryRowContext(t.Context(), `SELECT due_at FROM faults WHERE id = ?`, int64(id)).Scan(&due); err != nil {
		t.Fatal(err)
	}
	if due == nil {
		return 0, false
	}
	return *due, true
}

// TestMigration0003 opens a version 2 database: its faults keep their
// health and never resolve by themselves (they have no clear time), and a
// node connected at the upgrade counts its quiet time from its last sign of
// life, not from the epoch.
func TestMigration0003(t *testing.T) {
	known, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db")
	db := rawWriter(t, path)
	if _, err := migrate(t.Context(), db, known[:2], time.Unix(0, 0), discard()); err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	obs := &hwhealv1.Observation{Time: timestamppb.New(last), Source: "diskstats", Part: diskPart("sda"), Samples: []*hwhealv1.Sample{{Name: "reads", Value: 7}}}
	blob, err := marshal(obs)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO nodes (name, health, connected, first_seen, last_seen, open_faults) VALUES ('n1', 3, 1, 0, %d, 1)`, last.UnixNano()),
		`INSERT INTO streams (node, stream_id, acked_seq) VALUES ('n1', 's1', 1)`,
		`INSERT INTO faults (node, class, part_key, severity, state, count, first_seen, last_seen)
			VALUES ('n1', 'memory.ue', '` + partKey(&hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "DIMM_A1"}) + `', 4, 1, 1, 0, 0)`,
		fmt.Sprintf(`INSERT INTO observations_latest (node, source, part_key, time, observation) VALUES ('n1', 'diskstats', '%s', %d, x'%x')`,
			partKey(diskPart("sda")), last.UnixNano(), blob),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 2 database: %v", err)
	}
	defer s.Close()
	// The observations table was rebuilt under its new key.
	if got, err := s.LatestObservations(t.Context(), "n1"); err != nil || len(got) != 1 || !proto.Equal(got[0], obs) {
		t.Errorf("LatestObservations after upgrade = %v, %v; want %v", got, err, obs)
	}
	if got, err := s.FleetObservations(t.Context(), "diskstats"); err != nil || len(got) != 1 || got[0].Node != "n1" || !proto.Equal(got[0].Observation, obs) {
		t.Errorf("FleetObservations after upgrade = %v, %v; want n1's %v", got, err, obs)
	}
	faults, _, err := s.ListFaults(t.Context(), store.FaultFilter{}, store.Page{})
	if err != nil || len(faults) != 1 {
		t.Fatalf("faults after upgrade = %v, %v", faults, err)
	}
	if f := faults[0]; f.GetMode() != hwhealv1.RuleMode_RULE_MODE_UNSPECIFIED || f.GetClearAfter() != nil || f.GetReopened() != 0 {
		t.Errorf("version 2 fault after upgrade %v, want no mode, no clear time", f)
	}
	if evs, err := s.ResolveQuiet(t.Context(), last.Add(1000*time.Hour)); err != nil || len(evs) != 0 {
		t.Errorf("ResolveQuiet after upgrade = %v, %v; want nothing resolved", evs, err)
	}

	// A fault reported an hour before the node's last sign of life, with a
	// clear time of 10 minutes, is due 10 minutes after that sign of life.
	res, err := s.Apply(t.Context(), []store.Batch{{Node: "n1", StreamID: "s1", Received: last.Add(-time.Hour),
		Reports: []*hwhealv1.Report{clearFault(2, "disk.io_error", diskPart("sda"), last.Add(-time.Hour), durationpb.New(10*time.Minute))}}})
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].Events[0].GetFault().GetId()
	if evs, err := s.ResolveQuiet(t.Context(), last.Add(10*time.Minute-time.Second)); err != nil || len(evs) != 0 {
		t.Errorf("ResolveQuiet before the node's quiet time = %v, %v; want nothing", evs, err)
	}
	evs, err := s.ResolveQuiet(t.Context(), last.Add(10*time.Minute))
	if err != nil || len(evs) != 1 || evs[0].GetFault().GetId() != id {
		t.Errorf("ResolveQuiet after the node's quiet time = %v, %v; want fault %d resolved", evs, err, id)
	}
	n, err := s.GetNode(t.Context(), "n1")
	if err != nil || n.GetHealth() != hwhealv1.NodeHealth_NODE_HEALTH_FAULTY || n.GetOpenFaults() != 1 {
		t.Errorf("node after upgrade %v, %v; want faulty with its version 2 fault", n, err)
	}
}

// TestClearAfterBounds: a clear time beyond any use, and one added to a
// time at the end of the storable range, are stored without overflow.
func TestClearAfterBounds(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Hello(ctx, store.Hello{Node: "n1", StreamID: "s1", Time: t0}); err != nil {
		t.Fatal(err)
	}
	late := time.Date(2260, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		when  time.Time
		clear *durationpb.Duration
		want  time.Duration
		due   int64 // 0: t0's fault time plus want
	}{
		{"thousand years", t0, &durationpb.Duration{Seconds: 1000 * 365 * 86400}, maxClearAfter, 0},
		{"negative", t0, durationpb.New(-time.Hour), 0, -1},
		{"invalid", t0, &durationpb.Duration{Seconds: 1, Nanos: -5}, 0, -1},
		{"at the end of time", late, durationpb.New(maxClearAfter), maxClearAfter, math.MaxInt64},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Apply(ctx, []store.Batch{{Node: "n1", StreamID: "s1", Received: t0,
				Reports: []*hwhealv1.Report{clearFault(uint64(i+1), "c", diskPart(fmt.Sprint("sd", i)), tt.when, tt.clear)}}})
			if err != nil {
				t.Fatal(err)
			}
			f := res[0].Events[0].GetFault()
			if got := f.GetClearAfter().AsDuration(); (tt.want == 0) != (f.GetClearAfter() == nil) || got != tt.want {
				t.Errorf("clear_after %v (set %v), want %v", got, f.GetClearAfter() != nil, tt.want)
			}
			due, ok := dueOf(t, s, f.GetId())
			switch {
			case tt.due < 0 && ok:
				t.Errorf("due at %d, want none", due)
			case tt.due == 0 && (!ok || due != tt.when.Add(tt.want).UnixNano()):
				t.Errorf("due at %d (%v), want %d", due, ok, tt.when.Add(tt.want).UnixNano())
			case tt.due > 0 && (!ok || due != tt.due):
				t.Errorf("due at %d (%v), want %d", due, ok, tt.due)
			}
		})
	}
	// The SQL path of the same sum saturates too.
	if _, err := s.Hello(ctx, store.Hello{Node: "n1", StreamID: "s1", Time: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var due int64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(due_at) FROM faults`).Scan(&due); err != nil || due != math.MaxInt64 {
		t.Errorf("largest due_at after a hello %d, %v; want %d", due, err, int64(math.MaxInt64))
	}
	if evs, err := s.ResolveQuiet(ctx, late.Add(time.Hour)); err != nil || len(evs) != 1 {
		t.Errorf("ResolveQuiet at the end of time = %d events, %v; want the thousand-year fault only", len(evs), err)
	}
}

// TestResolveQuietChunks resolves more faults than one transaction takes:
// all of them in one call, each once.
func TestResolveQuietChunks(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const nodes, parts = 3, quietChunk/2 + 1
	var batches []store.Batch
	for n := range nodes {
		node := fmt.Sprint("n", n)
		if _, err := s.Hello(ctx, store.Hello{Node: node, StreamID: "s1", Time: t0}); err != nil {
			t.Fatal(err)
		}
		b := store.Batch{Node: node, StreamID: "s1", Received: t0}
		for p := range parts {
			b.Reports = append(b.Reports, clearFault(uint64(p+1), "disk.io_error", diskPart(fmt.Sprint("sd", p)), t0, durationpb.New(time.Minute)))
		}
		batches = append(batches, b)
	}
	if _, err := s.Apply(ctx, batches); err != nil {
		t.Fatal(err)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if evs, err := s.ResolveQuiet(canceled, t0.Add(time.Minute)); err == nil || len(evs) != 0 {
		t.Errorf("ResolveQuiet with a canceled context = %d events, %v; want an error and none", len(evs), err)
	}

	evs, err := s.ResolveQuiet(ctx, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resolved := map[uint64]bool{}
	health := 0
	for _, ev := range evs {
		switch ev.GetType() {
		case hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED:
			if resolved[ev.GetFault().GetId()] {
				t.Errorf("fault %d resolved twice", ev.GetFault().GetId())
			}
			resolved[ev.GetFault().GetId()] = true
		case hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED:
			health++
		}
	}
	// A node whose faults span two transactions changes health once, in
	// the one that resolves its last fault.
	if len(resolved) != nodes*parts || health != nodes {
		t.Errorf("%d faults resolved, %d health changes; want %d, %d", len(resolved), health, nodes*parts, nodes)
	}
	open, _, err := s.ListFaults(ctx, store.FaultFilter{}, store.Page{})
	if err != nil || len(open) != 0 {
		t.Errorf("open faults after the pass: %d, %v", len(open), err)
	}
}
