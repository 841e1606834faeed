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
// receipt time at the end of the storable range, are stored without
// overflow.
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
		due   int64 // 0: the receipt time (when) plus want
	}{
		{"thousand years", t0, &durationpb.Duration{Seconds: 1000 * 365 * 86400}, maxClearAfter, 0},
		{"negative", t0, durationpb.New(-time.Hour), 0, -1},
		{"invalid", t0, &durationpb.Duration{Seconds: 1, Nanos: -5}, 0, -1},
		{"at the end of time", late, durationpb.New(maxClearAfter), maxClearAfter, math.MaxInt64},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Apply(ctx, []store.Batch{{Node: "n1", StreamID: "s1", Received: tt.when,
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

// TestResolveQuietChunks resolves a backlog of faults of several nodes,
// more than one call takes: each call resolves at most one chunk, in one
// transaction, each fault once, and a node whose faults span two calls
// changes health once, in the call that resolves its last fault.
func TestResolveQuietChunks(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const nodes, parts = 3, store.QuietChunk/2 + 1
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

	resolved := map[uint64]bool{}
	health := map[string]int{}
	var perCall []int
	for call := 0; ; call++ {
		if call > nodes*parts/store.QuietChunk+1 {
			t.Fatalf("still resolving after %d calls: %v", call, perCall)
		}
		evs, err := s.ResolveQuiet(ctx, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			switch ev.GetType() {
			case hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED:
				if resolved[ev.GetFault().GetId()] {
					t.Errorf("fault %d resolved twice", ev.GetFault().GetId())
				}
				resolved[ev.GetFault().GetId()] = true
				n++
			case hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED:
				health[ev.GetNode()]++
				// Its last open fault went in this very call.
				if open, _, err := s.ListFaults(ctx, store.FaultFilter{Node: ev.GetNode()}, store.Page{}); err != nil || len(open) != 0 {
					t.Errorf("node %s changed health with %d faults open, %v", ev.GetNode(), len(open), err)
				}
			}
		}
		perCall = append(perCall, n)
		if n < store.QuietChunk {
			break
		}
	}
	if want := fmt.Sprint([]int{store.QuietChunk, nodes*parts - store.QuietChunk}); fmt.Sprint(perCall) != want {
		t.Errorf("faults resolved per call %v, want %s", perCall, want)
	}
	if len(resolved) != nodes*parts || len(health) != nodes {
		t.Errorf("%d faults resolved, health changes %v; want %d, one per node", len(resolved), health, nodes*parts)
	}
	for node, n := range health {
		if n != 1 {
			t.Errorf("node %s changed health %d times", node, n)
		}
	}
	open, _, err := s.ListFaults(ctx, store.FaultFilter{}, store.Page{})
	if err != nil || len(open) != 0 {
		t.Errorf("open faults after the pass: %d, %v", len(open), err)
	}
}

// TestMigration0004 opens a version 3 database written while due_at
// counted from the agent's clock: a fault of an agent a year ahead would
// stay open for a year, one of an agent hours behind would resolve at the
// next pass. After the upgrade both count their quiet time from the node's
// last sign of life on the collector's clock; a disconnected node's fault
// still waits for it; a resolved fault stays resolved.
func TestMigration0004(t *testing.T) {
	known, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db")
	db := rawWriter(t, path)
	if _, err := migrate(t.Context(), db, known[:3], time.Unix(0, 0), discard()); err != nil {
		t.Fatal(err)
	}
	connected := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	last := connected.Add(3 * time.Hour) // the node's last batch
	const (
		ahead  = 365 * 24 * time.Hour
		behind = -2 * time.Hour
		clear  = time.Hour
	)
	part := func(name string) string { return partKey(diskPart(name)) }
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO nodes (name, health, connected, connected_at, first_seen, last_seen, open_faults) VALUES ('n1', 3, 1, %d, 0, %d, 2)`,
			connected.UnixNano(), last.UnixNano()),
		fmt.Sprintf(`INSERT INTO nodes (name, health, connected, connected_at, first_seen, last_seen, open_faults) VALUES ('away', 3, 0, %d, 0, %d, 1)`,
			connected.UnixNano(), last.UnixNano()),
		// due_at as version 3 wrote it: MAX(last_seen, connected_at) + clear.
		fmt.Sprintf(`INSERT INTO faults (id, node, class, part_key, severity, state, count, first_seen, last_seen, clear_after, due_at)
			VALUES (1, 'n1', 'disk.io_error', '%s', 4, 1, 1, 0, %d, %d, %d)`,
			part("sda"), last.Add(ahead).UnixNano(), int64(clear), last.Add(ahead+clear).UnixNano()),
		fmt.Sprintf(`INSERT INTO faults (id, node, class, part_key, severity, state, count, first_seen, last_seen, clear_after, due_at)
			VALUES (2, 'n1', 'disk.io_error', '%s', 4, 1, 1, 0, %d, %d, %d)`,
			part("sdb"), last.Add(behind).UnixNano(), int64(clear), connected.Add(clear).UnixNano()),
		fmt.Sprintf(`INSERT INTO faults (id, node, class, part_key, severity, state, count, first_seen, last_seen, resolved, clear_after)
			VALUES (3, 'n1', 'disk.io_error', '%s', 4, 2, 1, 0, %d, %d, %d)`,
			part("sdc"), connected.UnixNano(), connected.Add(clear).UnixNano(), int64(clear)),
		fmt.Sprintf(`INSERT INTO faults (id, node, class, part_key, severity, state, count, first_seen, last_seen, clear_after)
			VALUES (4, 'away', 'disk.io_error', '%s', 4, 1, 1, 0, %d, %d)`,
			part("sda"), connected.UnixNano(), int64(clear)),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 3 database: %v", err)
	}
	defer s.Close()
	for id, want := range map[uint64]int64{1: last.Add(clear).UnixNano(), 2: last.Add(clear).UnixNano()} {
		if due, ok := dueOf(t, s, id); !ok || due != want {
			t.Errorf("fault %d due at %d (%v) after upgrade, want %d", id, due, ok, want)
		}
	}
	for _, id := range []uint64{3, 4} {
		if due, ok := dueOf(t, s, id); ok {
			t.Errorf("fault %d due at %d after upgrade, want none", id, due)
		}
	}
	var sources int
	if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM faults WHERE source <> ''`).Scan(&sources); err != nil || sources != 0 {
		t.Errorf("%d faults with a derived source after upgrade (%v), want none", sources, err)
	}
	// The fault of the agent behind is not resolved at once, nor before
	// its clear time after the node's last batch.
	if evs, err := s.ResolveQuiet(t.Context(), last.Add(clear-time.Second)); err != nil || len(evs) != 0 {
		t.Errorf("ResolveQuiet before the clear time = %v, %v; want nothing", evs, err)
	}
	evs, err := s.ResolveQuiet(t.Context(), last.Add(clear))
	var got []uint64
	for _, ev := range evs {
		if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED {
			got = append(got, ev.GetFault().GetId())
		}
	}
	if err != nil || fmt.Sprint(got) != "[1 2]" {
		t.Errorf("ResolveQuiet at the clear time resolved %v, %v; want faults 1 and 2", got, err)
	}
	if f, err := s.GetFault(t.Context(), 1); err != nil || !f.GetLastSeen().AsTime().Equal(last.Add(ahead)) {
		t.Errorf("fault 1 %v, %v: want last_seen the agent's %v", f, err, last.Add(ahead))
	}
}

// TestMigration0006 opens a version 5 database: each fault opened when the
// event that opened or last reopened it was recorded (the receipt of that
// batch, on the collector's clock), or, with no such event left, at its
// latest receipt; events of other kinds and of other faults do not count,
// whatever their time. A report after the upgrade keeps that time.
func TestMigration0006(t *testing.T) {
	known, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db")
	db := rawWriter(t, path)
	if _, err := migrate(t.Context(), db, known[:5], time.Unix(0, 0), discard()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	minute := func(m int) int64 { return t0.Add(time.Duration(m) * time.Minute).UnixNano() }
	agent := t0.Add(-7 * time.Hour).UnixNano() // an agent clock far behind
	const (
		opened     = int64(hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED)
		updated    = int64(hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED)
		resolved   = int64(hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED)
		acked      = int64(hwhealv1.EventType_EVENT_TYPE_FAULT_ACKNOWLEDGED)
		reopened   = int64(hwhealv1.EventType_EVENT_TYPE_FAULT_REOPENED)
		escalated  = int64(hwhealv1.EventType_EVENT_TYPE_REMEDIATION_ESCALATED)
		sevWarning = int64(hwhealv1.Severity_SEVERITY_WARNING)
	)
	part := func(name string) string { return partKey(diskPart(name)) }
	stmts := []string{
		fmt.Sprintf(`INSERT INTO nodes (name, health, connected, connected_at, first_seen, last_seen, open_faults, boot_id) VALUES ('n1', 2, 1, %d, 0, %d, 3, 'b1')`, minute(0), minute(90)),
		`INSERT INTO streams (node, stream_id, acked_seq) VALUES ('n1', 's1', 10)`,
	}
	fault := func(id int, name string, state int, received int64) string {
		return fmt.Sprintf(`INSERT INTO faults (id, node, class, part_key, severity, state, count, first_seen, last_seen, received, mode, clear_after)
			VALUES (%d, 'n1', 'disk.io_error', '%s', %d, %d, 3, %d, %d, %d, 1, %d)`, id, part(name), sevWarning, state, agent, agent, received, int64(24*time.Hour))
	}
	stmts = append(stmts,
		fault(1, "sda", 1, minute(80)), // opened, updated, acknowledged and escalated since
		fault(2, "sdb", 1, minute(85)), // opened, resolved, reopened, updated
		fault(3, "sdc", 1, minute(70)), // its events gone
		fault(4, "sdd", 2, minute(30)), // resolved
	)
	for _, e := range []struct {
		typ, fault int64
		min        int
	}{
		{opened, 1, 10}, {opened, 2, 11}, {opened, 4, 12},
		{resolved, 2, 20}, {updated, 1, 21}, {reopened, 2, 40}, {resolved, 4, 30},
		{acked, 1, 50}, {updated, 2, 85}, {updated, 1, 80}, {escalated, 1, 88},
	} {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO events (time, type, node, fault_id, data) VALUES (%d, %d, 'n1', %d, x'')`, minute(e.min), e.typ, e.fault))
	}
	// An event of a node (no fault), newer than every fault's.
	stmts = append(stmts, fmt.Sprintf(`INSERT INTO events (time, type, node, data) VALUES (%d, %d, 'n1', x'')`, minute(89), int64(hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED)))
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 5 database: %v", err)
	}
	defer s.Close()
	want := map[uint64]struct{ received, opened int64 }{
		1: {minute(80), minute(10)},
		2: {minute(85), minute(40)},
		3: {minute(70), minute(70)},
		4: {minute(30), minute(12)},
	}
	faults, _, err := s.ListFaults(t.Context(), store.FaultFilter{AllStates: true}, store.Page{})
	if err != nil || len(faults) != len(want) {
		t.Fatalf("faults after upgrade = %v, %v; want %d", faults, err, len(want))
	}
	for _, f := range faults {
		w := want[f.GetId()]
		if got := f.GetReceived().AsTime().UnixNano(); f.GetReceived() == nil || got != w.received {
			t.Errorf("fault %d: received %v, want %v", f.GetId(), f.GetReceived().AsTime(), time.Unix(0, w.received).UTC())
		}
		if got := f.GetOpened().AsTime().UnixNano(); f.GetOpened() == nil || got != w.opened {
			t.Errorf("fault %d: opened %v, want %v", f.GetId(), f.GetOpened().AsTime(), time.Unix(0, w.opened).UTC())
		}
		if g, err := s.GetFault(t.Context(), f.GetId()); err != nil || !proto.Equal(g, f) {
			t.Errorf("GetFault(%d) = %v, %v; want the listed %v", f.GetId(), g, err, f)
		}
	}

	// A report of fault 2 after the upgrade: received moves, opened stays.
	recv := t0.Add(100 * time.Minute)
	res, err := s.Apply(t.Context(), []store.Batch{{Node: "n1", StreamID: "s1", Received: recv,
		Reports: []*hwhealv1.Report{clearFault(11, "disk.io_error", diskPart("sdb"), time.Unix(0, agent), durationpb.New(24*time.Hour))}}})
	if err != nil {
		t.Fatal(err)
	}
	if evs := res[0].Events; len(evs) != 1 || evs[0].GetType() != hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED || evs[0].GetFault().GetId() != 2 {
		t.Fatalf("report after upgrade: events %v, want fault 2 updated", evs)
	}
	f := res[0].Events[0].GetFault()
	if !f.GetReceived().AsTime().Equal(recv) || f.GetOpened().AsTime().UnixNano() != minute(40) {
		t.Errorf("fault 2 after a report: received %v, opened %v; want %v, %v", f.GetReceived().AsTime(), f.GetOpened().AsTime(), recv, time.Unix(0, minute(40)).UTC())
	}
}
