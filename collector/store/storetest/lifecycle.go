package storetest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/health"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The fault lifecycle: rule mode and clear time, resolution by quiet time
// and by operators, reopening, acknowledgements, derived faults, fleet
// observations and event cursors.

const (
	enforce = hwhealv1.RuleMode_RULE_MODE_ENFORCE
	shadow  = hwhealv1.RuleMode_RULE_MODE_SHADOW

	stOpen     = hwhealv1.FaultState_FAULT_STATE_OPEN
	stResolved = hwhealv1.FaultState_FAULT_STATE_RESOLVED

	evFaultResolved     = hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED
	evFaultReopened     = hwhealv1.EventType_EVENT_TYPE_FAULT_REOPENED
	evFaultAcknowledged = hwhealv1.EventType_EVENT_TYPE_FAULT_ACKNOWLEDGED
)

// ruled is a fault report as the collector passes it to Apply: with the
// mode and clear time of its rule (clear 0: none).
func ruled(r *hwhealv1.Report, mode hwhealv1.RuleMode, clear time.Duration) *hwhealv1.Report {
	f := r.GetFault()
	f.Mode = mode
	if clear > 0 {
		f.ClearAfter = durationpb.New(clear)
	}
	return r
}

// derived is a fault the collector's rules raised (no sequence number).
func derived(class string, sev hwhealv1.Severity, part *hwhealv1.Part, when time.Time, mode hwhealv1.RuleMode, clear time.Duration) *hwhealv1.Fault {
	f := ruled(faultReport(0, class, sev, part, when), mode, clear).GetFault()
	f.Evidence.KernelLog = nil
	return f
}

// after is t0 plus d.
func after(d time.Duration) time.Time { return t0.Add(d) }

func resolveQuiet(t *testing.T, s store.Store, now time.Time) []*hwhealv1.Event {
	t.Helper()
	evs, err := s.ResolveQuiet(ctxOf(t), now)
	if err != nil {
		t.Fatalf("ResolveQuiet(%v): %v", now, err)
	}
	return evs
}

func getFault(t *testing.T, s store.Store, id uint64) *hwhealv1.FaultRecord {
	t.Helper()
	f, err := s.GetFault(ctxOf(t), id)
	if err != nil {
		t.Fatalf("GetFault(%d): %v", id, err)
	}
	return f
}

func wantClear(t *testing.T, what string, f *hwhealv1.FaultRecord, want time.Duration) {
	t.Helper()
	got := f.GetClearAfter()
	switch {
	case want == 0 && got != nil:
		t.Errorf("%s: clear_after %v, want unset", what, got.AsDuration())
	case want != 0 && (got == nil || got.AsDuration() != want):
		t.Errorf("%s: clear_after %v, want %v", what, got.AsDuration(), want)
	}
}

// wantHealth checks a node's stored health and open fault count, and that
// the health is what health.OfFaults says of its listed faults.
func wantHealth(t *testing.T, s store.Store, node string, want hwhealv1.NodeHealth, open uint32) {
	t.Helper()
	n := getNode(t, s, node)
	if n.GetHealth() != want || n.GetOpenFaults() != open {
		t.Errorf("node %s: health %v, %d open faults; want %v, %d", node, n.GetHealth(), n.GetOpenFaults(), want, open)
	}
	if of := health.OfFaults(allFaults(t, s, store.FaultFilter{Node: node, AllStates: true}, 0)); of != n.GetHealth() {
		t.Errorf("node %s: stored health %v, health.OfFaults of its faults %v", node, n.GetHealth(), of)
	}
}

// storedEvent returns the recorded event id.
func storedEvent(t *testing.T, s store.Store, id uint64) *hwhealv1.Event {
	t.Helper()
	evs, err := s.EventsAfter(ctxOf(t), id-1, 1)
	if err != nil || len(evs) != 1 || evs[0].GetId() != id {
		t.Fatalf("EventsAfter(%d, 1) = %v, %v; want event %d", id-1, evs, err, id)
	}
	return evs[0]
}

// wantStored checks that the returned events are the recorded ones.
func wantStored(t *testing.T, s store.Store, evs []*hwhealv1.Event) {
	t.Helper()
	for _, ev := range evs {
		if got := storedEvent(t, s, ev.GetId()); !proto.Equal(got, ev) {
			t.Errorf("event %d:\nstored   %v\nreturned %v", ev.GetId(), got, ev)
		}
	}
}

func testCursors(t *testing.T, s store.Store) {
	ctx := ctxOf(t)
	if id, ok, err := s.Cursor(ctx, "webhook:pager"); err != nil || ok || id != 0 {
		t.Errorf("Cursor of an unknown name = %d, %v, %v; want 0, false, nil", id, ok, err)
	}
	steps := []struct {
		name string
		id   uint64
	}{
		{"webhook:pager", 5},
		{"webhook:chat", 9},
		{"webhook:pager", 3}, // a cursor may move back: a replay to a target
		{"webhook:zero", 0},  // zero is a position, not an absent cursor
		{"webhook:big", math.MaxInt64},
	}
	want := map[string]uint64{}
	for _, st := range steps {
		if err := s.SetCursor(ctx, st.name, st.id); err != nil {
			t.Fatalf("SetCursor(%s, %d): %v", st.name, st.id, err)
		}
		want[st.name] = st.id
		for name, w := range want {
			if id, ok, err := s.Cursor(ctx, name); err != nil || !ok || id != w {
				t.Errorf("after SetCursor(%s, %d): Cursor(%s) = %d, %v, %v; want %d", st.name, st.id, name, id, ok, err, w)
			}
		}
	}
	if err := s.SetCursor(ctx, "", 1); err == nil {
		t.Error("SetCursor with an empty name succeeded")
	}
	if err := s.SetCursor(ctx, "webhook:pager", math.MaxInt64+1); err == nil {
		t.Error("SetCursor above the largest event id succeeded")
	}
	if id, _, _ := s.Cursor(ctx, "webhook:pager"); id != 3 {
		t.Errorf("cursor %d after refused writes, want 3", id)
	}
	// Cursors are not events.
	if evs := allEvents(t, s); len(evs) != 0 {
		t.Errorf("cursors recorded events: %v", evs)
	}
}

func testModeAndClearStored(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	res := apply(t, s, batch("n1", at(10), ruled(faultReport(1, "disk.latency_outlier", sevWarning, disk("sda"), at(10)), shadow, time.Hour)))
	wantTypes(t, "shadow report", res[0].Events, evFaultOpened)
	f := res[0].Events[0].GetFault()
	if f.GetMode() != shadow || f.GetReopened() != 0 || f.GetAcknowledged() != nil || f.GetResolvedBy() != nil {
		t.Errorf("opened fault %v: want mode shadow, never reopened, no notes", f)
	}
	wantClear(t, "opened", f, time.Hour)
	for _, got := range []*hwhealv1.FaultRecord{getFault(t, s, f.GetId()), faultsOf(t, s, "n1")[0]} {
		if !proto.Equal(got, f) {
			t.Errorf("stored fault differs from the event's:\n%v\n%v", got, f)
		}
	}

	// The latest report's mode and clear time win: the rule was promoted.
	res = apply(t, s, batch("n1", at(20), ruled(faultReport(2, "disk.latency_outlier", sevWarning, disk("sda"), at(20)), enforce, 2*time.Hour)))
	wantTypes(t, "enforced report", res[0].Events, evFaultUpdated, evHealthChanged)
	f = res[0].Events[0].GetFault()
	if f.GetMode() != enforce || f.GetCount() != 2 {
		t.Errorf("updated fault %v: want mode enforce, count 2", f)
	}
	wantClear(t, "updated", f, 2*time.Hour)
	wantHealth(t, s, "n1", suspect, 1)

	// A report without them (a rule without a clear time, an agent-side
	// fault the collector has no rule for) leaves them unset.
	res = apply(t, s, batch("n1", at(30), faultReport(3, "disk.latency_outlier", sevWarning, disk("sda"), at(30))))
	f = res[0].Events[0].GetFault()
	if f.GetMode() != hwhealv1.RuleMode_RULE_MODE_UNSPECIFIED {
		t.Errorf("mode %v after a report without one, want unspecified", f.GetMode())
	}
	wantClear(t, "after a report without a clear time", f, 0)
	if got := getFault(t, s, f.GetId()); !proto.Equal(got, f) {
		t.Errorf("GetFault:\n%v\nwant\n%v", got, f)
	}
	// Unspecified counts as enforce.
	wantHealth(t, s, "n1", suspect, 1)

	for _, id := range []uint64{0, f.GetId() + 1, math.MaxUint64} {
		if _, err := s.GetFault(ctxOf(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetFault(%d) error %v, want ErrNotFound", id, err)
		}
	}
}

func testShadowNeverChangesHealth(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	nic := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}

	res := apply(t, s, batch("n1", at(10), ruled(faultReport(1, "disk.media", sevCritical, disk("sda"), at(10)), shadow, 0)))
	wantTypes(t, "shadow critical", res[0].Events, evFaultOpened)
	wantHealth(t, s, "n1", healthy, 1)
	if got := allNodes(t, s, store.NodeFilter{Health: []hwhealv1.NodeHealth{faulty}}, 0); len(got) != 0 {
		t.Errorf("faulty nodes %v with only a shadow fault", got)
	}

	res = apply(t, s, batch("n1", at(20), ruled(faultReport(2, "nic.errors", sevWarning, nic, at(20)), enforce, 0)))
	wantTypes(t, "enforced warning", res[0].Events, evFaultOpened, evHealthChanged)
	warn := res[0].Events[0].GetFault().GetId()
	if hc := res[0].Events[1]; hc.GetOldHealth() != healthy || hc.GetNewHealth() != suspect {
		t.Errorf("health event %v, want healthy -> suspect", hc)
	}
	wantHealth(t, s, "n1", suspect, 2)

	// Another shadow critical, and the shadow one again: still suspect.
	res = apply(t, s, batch("n1", at(30),
		ruled(faultReport(3, "gpu.xid", sevCritical, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_GPU, Name: "gpu0"}, at(30)), shadow, 0),
		ruled(faultReport(4, "disk.media", sevCritical, disk("sda"), at(30)), shadow, 0)))
	wantTypes(t, "more shadow faults", res[0].Events, evFaultOpened, evFaultUpdated)
	wantHealth(t, s, "n1", suspect, 3)

	// Resolving the enforced fault leaves two shadow criticals: healthy.
	evs, err := s.ResolveFault(ctxOf(t), warn, store.Note{Actor: "alice", Reason: "cable reseated", Time: at(40)})
	if err != nil {
		t.Fatal(err)
	}
	wantTypes(t, "resolve the enforced fault", evs, evFaultResolved, evHealthChanged)
	wantHealth(t, s, "n1", healthy, 2)

	// Shadow faults resolve by quiet time like any other, announced,
	// without a health event.
	res = apply(t, s, batch("n1", at(50), ruled(faultReport(5, "disk.media", sevCritical, disk("sda"), at(50)), shadow, time.Minute)))
	wantTypes(t, "shadow with a clear time", res[0].Events, evFaultUpdated)
	evs = resolveQuiet(t, s, at(50).Add(time.Minute))
	wantTypes(t, "shadow quiet", evs, evFaultResolved)
	wantHealth(t, s, "n1", healthy, 1)
}

func testDerivedFaults(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	const (
		io      = "disk.io_error"
		latency = "disk.latency_outlier"
	)
	// A derived fault of the key an agent report opens in the same batch
	// merges into it; one of another class opens its own.
	b := batch("n1", at(10), faultReport(1, io, sevWarning, disk("sda"), at(9)), obsReport(2, "diskstats", disk("sda"), at(9), 500))
	b.Derived = derivedOf(
		derived(io, sevCritical, disk("sda"), at(9), enforce, time.Hour),
		derived(latency, sevWarning, disk("sda"), at(9), shadow, 0),
	)
	res := apply(t, s, b)
	if res[0].AckedSeq != 2 || res[0].Duplicates != 0 {
		t.Errorf("result %+v, want acked 2, no duplicates", res[0])
	}
	wantTypes(t, "reports and derived", res[0].Events, evFaultOpened, evFaultOpened, evHealthChanged)
	merged := res[0].Events[0].GetFault()
	if merged.GetFaultClass() != io || merged.GetCount() != 2 || merged.GetSeverity() != sevCritical || merged.GetMode() != enforce {
		t.Errorf("merged fault %v: want %s counted 2, critical, enforce (the derived one is the latest)", merged, io)
	}
	wantClear(t, "merged", merged, time.Hour)
	if f := res[0].Events[1].GetFault(); f.GetFaultClass() != latency || f.GetMode() != shadow || f.GetCount() != 1 {
		t.Errorf("derived fault %v: want %s, shadow, count 1", f, latency)
	}
	wantHealth(t, s, "n1", faulty, 2)
	seen := getNode(t, s, "n1").GetLastSeen()

	// A batch of derived faults only (a peer rule): no stream, no acked
	// sequence, the node's last_seen stays; the faults merge the same way.
	res = apply(t, s, store.Batch{Node: "n1", Received: at(100), Derived: derivedOf(
		derived(latency, sevWarning, disk("sda"), at(100), shadow, 0),
		derived(latency, sevWarning, disk("sdb"), at(100), shadow, 0),
	)})
	if res[0].AckedSeq != 0 || res[0].Duplicates != 0 {
		t.Errorf("derived-only result %+v, want acked 0, no duplicates", res[0])
	}
	wantTypes(t, "derived only", res[0].Events, evFaultUpdated, evFaultOpened)
	if f := res[0].Events[0].GetFault(); f.GetCount() != 2 {
		t.Errorf("derived fault counted %d, want 2", f.GetCount())
	}
	wantTime(t, "node last_seen after derived faults", getNode(t, s, "n1").GetLastSeen(), seen.AsTime())
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(110)}).AckedSeq; got != 2 {
		t.Errorf("hello on s1 after a derived-only batch: acked %d, want 2", got)
	}
	wantHealth(t, s, "n1", faulty, 3)

	// Derived faults carry the same kernel record check as reports.
	kr := kmsgReport(3, "boot-a", 7, io, disk("sdc"), at(120))
	apply(t, s, batch("n1", at(120), kr))
	again := proto.CloneOf(kr.GetFault())
	res = apply(t, s, store.Batch{Node: "n1", Received: at(121), Derived: derivedOf(again)})
	if res[0].Duplicates != 1 || len(res[0].Events) != 0 {
		t.Errorf("derived fault of a counted kernel record: %+v, want 1 duplicate, no events", res[0])
	}

	// A peer rule may raise a fault for a node that is not connected: it
	// is stored, and its quiet time waits for the node to come back.
	if _, err := s.Disconnected(ctxOf(t), "n1", at(200)); err != nil {
		t.Fatal(err)
	}
	res = apply(t, s, store.Batch{Node: "n1", Received: at(200), Derived: derivedOf(derived("disk.slow", sevWarning, disk("sde"), at(200), enforce, time.Minute))})
	wantTypes(t, "derived fault of a disconnected node", res[0].Events, evFaultOpened)
	slow := res[0].Events[0].GetFault().GetId()
	if evs := resolveQuiet(t, s, at(200).Add(time.Hour)); len(evs) != 0 {
		t.Errorf("resolved %v while the node was away", eventTypes(evs))
	}
	back := at(200).Add(2 * time.Hour)
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: back})
	// Quiet again, but the fault was derived from diskstats readings: it
	// waits for one that no longer shows it.
	if evs := resolveQuiet(t, s, back.Add(time.Hour)); len(evs) != 0 {
		t.Errorf("resolved %v without a newer reading", eventTypes(evs))
	}
	apply(t, s, batch("n1", back.Add(time.Hour), obsReport(4, "diskstats", disk("sde"), back, 1)))
	evs := resolveQuiet(t, s, back.Add(time.Hour))
	if len(evs) != 1 || evs[0].GetType() != evFaultResolved || evs[0].GetFault().GetId() != slow {
		t.Errorf("after the node came back: %v, want fault %d resolved", evs, slow)
	}

	// Errors: an unknown node, agent reports without a stream.
	before := allEvents(t, s)
	if _, err := s.Apply(ctxOf(t), []store.Batch{{Node: "ghost", Received: at(130), Derived: derivedOf(derived(latency, sevWarning, disk("sda"), at(130), enforce, 0))}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("derived faults for an unknown node: error %v, want ErrNotFound", err)
	}
	if _, err := s.Apply(ctxOf(t), []store.Batch{{Node: "n1", Received: at(130), Reports: []*hwhealv1.Report{faultReport(9, io, sevWarning, disk("sdd"), at(130))}}}); err == nil {
		t.Error("agent reports without a stream id were stored")
	}
	if got := allEvents(t, s); len(got) != len(before) {
		t.Errorf("failed Apply calls recorded %d events", len(got)-len(before))
	}
}

func testQuietResolve(t *testing.T, s store.Store) {
	const clear = 10 * time.Minute
	hello(t, s, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0})
	res := apply(t, s, batch("n1", after(time.Minute), ruled(faultReport(1, "disk.io_error", sevWarning, disk("sda"), after(time.Minute)), enforce, clear)))
	id := res[0].Events[0].GetFault().GetId()
	// Another fault without a clear time: only an operator resolves it.
	apply(t, s, batch("n1", after(time.Minute), ruled(faultReport(2, "memory.ue", sevInfo, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "DIMM_A1"}, after(time.Minute)), enforce, 0)))

	if evs := resolveQuiet(t, s, after(time.Minute+clear-time.Second)); len(evs) != 0 {
		t.Errorf("resolved before the clear time: %v", evs)
	}
	// New evidence restarts the clear time.
	apply(t, s, batch("n1", after(5*time.Minute), ruled(faultReport(3, "disk.io_error", sevWarning, disk("sda"), after(5*time.Minute)), enforce, clear)))
	seen := getNode(t, s, "n1").GetLastSeen()
	if evs := resolveQuiet(t, s, after(time.Minute+clear)); len(evs) != 0 {
		t.Errorf("resolved %v after new evidence", eventTypes(evs))
	}
	now := after(5*time.Minute + clear)
	evs := resolveQuiet(t, s, now)
	wantTypes(t, "quiet", evs, evFaultResolved, evHealthChanged)
	if len(evs) == 2 {
		ev := evs[0]
		if ev.GetReason() != "no evidence for 10m0s" || ev.GetActor() != "" || ev.GetNode() != "n1" {
			t.Errorf("resolve event actor %q reason %q node %q; want no actor, %q", ev.GetActor(), ev.GetReason(), ev.GetNode(), "no evidence for 10m0s")
		}
		wantTime(t, "event time", ev.GetTime(), now)
		f := ev.GetFault()
		if f.GetId() != id || f.GetState() != stResolved || f.GetResolvedBy() != nil || f.GetCount() != 2 {
			t.Errorf("resolved fault %v: want id %d resolved by itself, count 2", f, id)
		}
		wantTime(t, "resolved", f.GetResolved(), now)
		if got := getFault(t, s, id); !proto.Equal(got, f) {
			t.Errorf("GetFault:\n%v\nwant the event's\n%v", got, f)
		}
		if hc := evs[1]; hc.GetOldHealth() != suspect || hc.GetNewHealth() != healthy {
			t.Errorf("health event %v, want suspect -> healthy", hc)
		}
		wantStored(t, s, evs)
	}
	wantHealth(t, s, "n1", healthy, 1)
	wantTime(t, "node last_seen (a resolution is not a sign of life)", getNode(t, s, "n1").GetLastSeen(), seen.AsTime())
	if got := allFaults(t, s, store.FaultFilter{State: stResolved}, 0); len(got) != 1 || got[0].GetId() != id {
		t.Errorf("resolved faults %v, want %d", got, id)
	}
	if evs := resolveQuiet(t, s, after(1000*time.Hour)); len(evs) != 0 {
		t.Errorf("second pass resolved %v; the fault without a clear time must stay", eventTypes(evs))
	}

	// Quiet time counts only while the agent can report.
	cases := []struct {
		name string
		away func(node string, at time.Time)
	}{
		{"disconnected", func(node string, at time.Time) {
			if _, err := s.Disconnected(ctxOf(t), node, at); err != nil {
				t.Fatal(err)
			}
		}},
		{"collector restarted", func(_ string, at time.Time) {
			if _, err := s.ResetConnections(ctxOf(t), at); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			node := fmt.Sprintf("away-%d", i)
			base := after(time.Duration(i+1) * 24 * time.Hour)
			hello(t, s, store.Hello{Node: node, StreamID: "s1", BootID: "b1", Time: base})
			res := apply(t, s, batch(node, base, ruled(faultReport(1, "nic.link_flap", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, base), enforce, clear)))
			id := res[0].Events[0].GetFault().GetId()
			c.away(node, base.Add(time.Minute))
			if evs := resolveQuiet(t, s, base.Add(5*time.Hour)); len(evs) != 0 {
				t.Errorf("resolved %v while the node was away", eventTypes(evs))
			}
			back := base.Add(6 * time.Hour)
			hello(t, s, store.Hello{Node: node, StreamID: "s1", BootID: "b1", Time: back})
			if evs := resolveQuiet(t, s, back.Add(clear/2)); len(evs) != 0 {
				t.Errorf("resolved %v just after the node came back", eventTypes(evs))
			}
			evs := resolveQuiet(t, s, back.Add(clear))
			wantTypes(t, "quiet after reconnecting", evs, evFaultResolved, evHealthChanged)
			if len(evs) > 0 && evs[0].GetFault().GetId() != id {
				t.Errorf("resolved fault %d, want %d", evs[0].GetFault().GetId(), id)
			}
		})
	}

	// A hello of a connected node (a new stream before the old one was
	// seen to end) also restarts the quiet time.
	base := after(10 * 24 * time.Hour)
	hello(t, s, store.Hello{Node: "n2", StreamID: "s1", BootID: "b1", Time: base})
	apply(t, s, batch("n2", base, ruled(faultReport(1, "disk.io_error", sevWarning, disk("sda"), base), enforce, clear)))
	hello(t, s, store.Hello{Node: "n2", StreamID: "s2", BootID: "b1", Time: base.Add(clear - time.Minute)})
	if evs := resolveQuiet(t, s, base.Add(clear)); len(evs) != 0 {
		t.Errorf("resolved %v a minute after a new hello", eventTypes(evs))
	}

	// Several nodes due in one call: each fault's event, then its node's
	// health change.
	var nodes []string
	for i := range 3 {
		node := fmt.Sprintf("many-%d", i)
		nodes = append(nodes, node)
		hello(t, s, store.Hello{Node: node, StreamID: "s1", BootID: "b1", Time: base})
		apply(t, s, batch(node, base,
			ruled(faultReport(1, "disk.io_error", sevCritical, disk("sda"), base), enforce, clear),
			ruled(faultReport(2, "disk.io_error", sevWarning, disk("sdb"), base), enforce, clear)))
	}
	evs = resolveQuiet(t, s, base.Add(2*clear))
	perNode := map[string][]hwhealv1.EventType{}
	for _, ev := range evs {
		perNode[ev.GetNode()] = append(perNode[ev.GetNode()], ev.GetType())
	}
	for _, node := range append(nodes, "n2") {
		want := []hwhealv1.EventType{evFaultResolved, evFaultResolved, evHealthChanged}
		if node == "n2" {
			want = []hwhealv1.EventType{evFaultResolved, evHealthChanged}
		}
		if fmt.Sprint(perNode[node]) != fmt.Sprint(want) {
			t.Errorf("events of %s: %v, want %v", node, perNode[node], want)
		}
		wantHealth(t, s, node, healthy, 0)
	}
	wantStored(t, s, evs)
}

func testFlapReopens(t *testing.T, s store.Store) {
	const clear = 10 * time.Minute
	hello(t, s, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0})
	var seq uint64
	report := func(when time.Time) store.BatchResult {
		t.Helper()
		seq++
		return apply(t, s, batch("n1", when, ruled(faultReport(seq, "nic.link_flap", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, when), enforce, clear)))[0]
	}
	res := report(t0)
	id := res.Events[0].GetFault().GetId()

	// Each time it comes back within its clear time of resolving, the same
	// fault reopens and its clear time doubles, to at most 8 times.
	last := t0
	for i, eff := range []time.Duration{clear, 2 * clear, 4 * clear, 8 * clear, 8 * clear} {
		if evs := resolveQuiet(t, s, last.Add(eff-time.Second)); len(evs) != 0 {
			t.Fatalf("round %d: resolved a second before its clear time %v", i, eff)
		}
		resolvedAt := last.Add(eff)
		evs := resolveQuiet(t, s, resolvedAt)
		wantTypes(t, fmt.Sprintf("round %d: quiet", i), evs, evFaultResolved, evHealthChanged)
		if len(evs) > 0 && evs[0].GetReason() != "no evidence for "+eff.String() {
			t.Errorf("round %d: reason %q, want %q", i, evs[0].GetReason(), "no evidence for "+eff.String())
		}
		last = resolvedAt.Add(eff) // at the very end of the window
		res := report(last)
		wantTypes(t, fmt.Sprintf("round %d: back", i), res.Events, evFaultReopened, evHealthChanged)
		f := res.Events[0].GetFault()
		if f.GetId() != id || f.GetState() != stOpen || f.GetResolved() != nil || f.GetReopened() != uint32(i+1) || f.GetCount() != uint64(i+2) {
			t.Errorf("round %d: reopened fault %v; want id %d open, reopened %d, count %d", i, f, id, i+1, i+2)
		}
		wantClear(t, fmt.Sprintf("round %d: reopened", i), f, min(2*eff, 8*clear))
		wantTime(t, "first_seen", f.GetFirstSeen(), t0)
		wantTime(t, "last_seen", f.GetLastSeen(), last)
		if got := getFault(t, s, id); !proto.Equal(got, f) {
			t.Errorf("round %d: GetFault\n%v\nwant the event's\n%v", i, got, f)
		}
		wantStored(t, s, res.Events)
	}
	if got := allFaults(t, s, store.FaultFilter{AllStates: true}, 0); len(got) != 1 {
		t.Errorf("%d fault rows after flapping, want 1", len(got))
	}

	// Back after its window: a new fault.
	eff := 8 * clear
	resolvedAt := last.Add(eff)
	wantTypes(t, "last quiet", resolveQuiet(t, s, resolvedAt), evFaultResolved, evHealthChanged)
	res = report(resolvedAt.Add(eff + time.Second))
	wantTypes(t, "after the window", res.Events, evFaultOpened, evHealthChanged)
	f := res.Events[0].GetFault()
	if f.GetId() == id || f.GetReopened() != 0 || f.GetCount() != 1 {
		t.Errorf("new fault %v: want a new id, never reopened, count 1", f)
	}
	wantClear(t, "new fault", f, clear)
	if old := getFault(t, s, id); old.GetState() != stResolved {
		t.Errorf("old fault %v, want resolved", old)
	}

	// A report the agent held back, timed before the resolution and
	// received within the window, reopens: the evidence was there after
	// all.
	resolvedAt2 := resolvedAt.Add(eff + time.Second + clear)
	wantTypes(t, "quiet", resolveQuiet(t, s, resolvedAt2), evFaultResolved, evHealthChanged)
	seq++
	res = apply(t, s, batch("n1", resolvedAt2.Add(time.Minute), ruled(faultReport(seq, "nic.link_flap", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, resolvedAt), enforce, clear)))[0]
	wantTypes(t, "late report", res.Events, evFaultReopened, evHealthChanged)
	if got := res.Events[0].GetFault(); got.GetId() != f.GetId() {
		t.Errorf("late report reopened %d, want %d", got.GetId(), f.GetId())
	}
}

func testReopenCarriesKernelMark(t *testing.T, s store.Store) {
	const (
		clear = 10 * time.Minute
		io    = "disk.io_error"
	)
	hello(t, s, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0})
	kr := func(seq uint64, kseq uint64, when time.Time) *hwhealv1.Report {
		return ruled(kmsgReport(seq, "boot-a", kseq, io, disk("sda"), when), enforce, clear)
	}
	res := apply(t, s, batch("n1", t0, kr(1, 100, t0)))
	id := res[0].Events[0].GetFault().GetId()
	wantTypes(t, "quiet", resolveQuiet(t, s, t0.Add(clear)), evFaultResolved, evHealthChanged)

	// Reinstalled: a new stream re-reads the ring. Record 100 was counted
	// by the resolved fault: neither a reopen nor a new fault.
	hello(t, s, store.Hello{Node: "n1", StreamID: "s2", BootID: "b1", Time: t0.Add(clear + time.Minute)})
	res = apply(t, s, streamBatch("n1", "s2", t0.Add(clear+time.Minute), kr(1, 100, t0)))
	if res[0].Duplicates != 1 || len(res[0].Events) != 0 || res[0].AckedSeq != 1 {
		t.Errorf("re-read record after resolution: %+v, want 1 duplicate, no events, acked 1", res[0])
	}
	if f := getFault(t, s, id); f.GetState() != stResolved || f.GetCount() != 1 {
		t.Errorf("fault after a re-read record %v, want still resolved, count 1", f)
	}
	// A new record reopens it, and the mark moves.
	when := t0.Add(clear + 2*time.Minute)
	res = apply(t, s, streamBatch("n1", "s2", when, kr(2, 100, when), kr(3, 101, when), kr(4, 101, when)))
	if res[0].Duplicates != 2 {
		t.Errorf("batch with record 100, 101 twice: %d duplicates, want 2", res[0].Duplicates)
	}
	wantTypes(t, "new record", res[0].Events, evFaultReopened, evHealthChanged)
	if f := getFault(t, s, id); f.GetState() != stOpen || f.GetCount() != 2 || f.GetReopened() != 1 {
		t.Errorf("fault after a new record %v, want open, count 2, reopened 1", f)
	}

	// The mark also survives an operator's resolution: a re-read record
	// opens nothing, a new one opens a new fault.
	if _, err := s.ResolveFault(ctxOf(t), id, store.Note{Actor: "alice", Reason: "disk replaced", Time: when.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	res = apply(t, s, streamBatch("n1", "s2", when.Add(2*time.Minute), kr(5, 101, when)))
	if res[0].Duplicates != 1 || len(res[0].Events) != 0 {
		t.Errorf("re-read record after an operator's resolution: %+v, want 1 duplicate, no events", res[0])
	}
	res = apply(t, s, streamBatch("n1", "s2", when.Add(2*time.Minute), kr(6, 102, when.Add(2*time.Minute))))
	wantTypes(t, "new record after an operator's resolution", res[0].Events, evFaultOpened, evHealthChanged)
	if f := res[0].Events[0].GetFault(); f.GetId() == id {
		t.Errorf("operator-resolved fault %d reopened", id)
	}
}

func testOperatorResolve(t *testing.T, s store.Store) {
	hello(t, s, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0})
	res := apply(t, s, batch("n1", at(10), ruled(faultReport(1, "disk.media", sevCritical, disk("sda"), at(10)), enforce, time.Hour)))
	id := res[0].Events[0].GetFault().GetId()
	seen := getNode(t, s, "n1").GetLastSeen()
	before := allEvents(t, s)

	for _, n := range []store.Note{{Reason: "no actor", Time: at(20)}, {Actor: "alice", Time: at(20)}} {
		if _, err := s.ResolveFault(ctxOf(t), id, n); err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotOpen) {
			t.Errorf("ResolveFault(%+v) error %v, want a refusal of the note", n, err)
		}
	}
	if got := allEvents(t, s); len(got) != len(before) {
		t.Errorf("refused notes recorded %d events", len(got)-len(before))
	}
	if _, err := s.ResolveFault(ctxOf(t), id+100, store.Note{Actor: "alice", Reason: "r", Time: at(20)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveFault(unknown) error %v, want ErrNotFound", err)
	}

	note := store.Note{Actor: "alice", Reason: "disk replaced, ticket 1234", Time: at(30)}
	evs, err := s.ResolveFault(ctxOf(t), id, note)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes(t, "operator resolve", evs, evFaultResolved, evHealthChanged)
	if len(evs) == 2 {
		ev := evs[0]
		if ev.GetActor() != note.Actor || ev.GetReason() != note.Reason {
			t.Errorf("event actor %q reason %q, want %q %q", ev.GetActor(), ev.GetReason(), note.Actor, note.Reason)
		}
		wantTime(t, "event time", ev.GetTime(), note.Time)
		f := ev.GetFault()
		if f.GetState() != stResolved || f.GetResolvedBy().GetActor() != note.Actor || f.GetResolvedBy().GetReason() != note.Reason {
			t.Errorf("resolved fault %v, want resolved by %s", f, note.Actor)
		}
		wantTime(t, "resolved_by.time", f.GetResolvedBy().GetTime(), note.Time)
		wantTime(t, "resolved", f.GetResolved(), note.Time)
		if got := getFault(t, s, id); !proto.Equal(got, f) {
			t.Errorf("GetFault:\n%v\nwant the event's\n%v", got, f)
		}
		if hc := evs[1]; hc.GetOldHealth() != faulty || hc.GetNewHealth() != healthy {
			t.Errorf("health event %v, want faulty -> healthy", hc)
		}
		wantStored(t, s, evs)
	}
	wantHealth(t, s, "n1", healthy, 0)
	wantTime(t, "node last_seen", getNode(t, s, "n1").GetLastSeen(), seen.AsTime())

	if _, err := s.ResolveFault(ctxOf(t), id, note); !errors.Is(err, store.ErrNotOpen) {
		t.Errorf("ResolveFault of a resolved fault: error %v, want ErrNotOpen", err)
	}
	// Nothing resolves it again by quiet time.
	if evs := resolveQuiet(t, s, at(30).Add(100*time.Hour)); len(evs) != 0 {
		t.Errorf("quiet pass after an operator's resolution: %v", eventTypes(evs))
	}

	// New evidence right after (well within the clear time): a new fault,
	// never the one the operator resolved.
	res = apply(t, s, batch("n1", at(40), ruled(faultReport(2, "disk.media", sevCritical, disk("sda"), at(40)), enforce, time.Hour)))
	wantTypes(t, "new evidence", res[0].Events, evFaultOpened, evHealthChanged)
	if f := res[0].Events[0].GetFault(); f.GetId() == id || f.GetReopened() != 0 || f.GetResolvedBy() != nil {
		t.Errorf("fault after new evidence %v, want a new one", f)
	}
	if old := getFault(t, s, id); old.GetState() != stResolved {
		t.Errorf("operator-resolved fault %v, want still resolved", old)
	}
	wantHealth(t, s, "n1", faulty, 1)

	// Without a time, the note takes the store's clock.
	evs, err = s.ResolveFault(ctxOf(t), res[0].Events[0].GetFault().GetId(), store.Note{Actor: "bob", Reason: "false alarm"})
	if err != nil {
		t.Fatal(err)
	}
	if f := evs[0].GetFault(); f.GetResolvedBy().GetTime() == nil || f.GetResolved() == nil {
		t.Errorf("resolution without a note time: %v, want a time", f)
	}
}

func testAcknowledge(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	res := apply(t, s, batch("n1", at(10), ruled(faultReport(1, "nic.errors", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(10)), enforce, time.Hour)))
	id := res[0].Events[0].GetFault().GetId()

	for _, n := range []store.Note{{Reason: "no actor"}, {Actor: "bob"}} {
		if _, err := s.AcknowledgeFault(ctxOf(t), id, n); err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotOpen) {
			t.Errorf("AcknowledgeFault(%+v) error %v, want a refusal of the note", n, err)
		}
	}
	if _, err := s.AcknowledgeFault(ctxOf(t), id+100, store.Note{Actor: "bob", Reason: "r"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AcknowledgeFault(unknown) error %v, want ErrNotFound", err)
	}

	ack := func(n store.Note) *hwhealv1.FaultRecord {
		t.Helper()
		ev, err := s.AcknowledgeFault(ctxOf(t), id, n)
		if err != nil {
			t.Fatalf("AcknowledgeFault: %v", err)
		}
		if ev.GetType() != evFaultAcknowledged || ev.GetActor() != n.Actor || ev.GetReason() != n.Reason || ev.GetNode() != "n1" {
			t.Errorf("event %v, want FAULT_ACKNOWLEDGED by %s", ev, n.Actor)
		}
		wantTime(t, "event time", ev.GetTime(), n.Time)
		f := ev.GetFault()
		a := f.GetAcknowledged()
		if f.GetId() != id || f.GetState() != stOpen || a.GetActor() != n.Actor || a.GetReason() != n.Reason {
			t.Errorf("acknowledged fault %v, want open, acknowledged by %s: %s", f, n.Actor, n.Reason)
		}
		wantTime(t, "acknowledged.time", a.GetTime(), n.Time)
		if got := getFault(t, s, id); !proto.Equal(got, f) {
			t.Errorf("GetFault:\n%v\nwant the event's\n%v", got, f)
		}
		wantStored(t, s, []*hwhealv1.Event{ev})
		return f
	}
	ack(store.Note{Actor: "bob", Reason: "looking", Time: at(20)})
	wantHealth(t, s, "n1", suspect, 1)
	// Acknowledging again replaces the note.
	acked := ack(store.Note{Actor: "carol", Reason: "ticket 7", Time: at(30)})

	// Later reports keep it, and so does a reopen (the same fault).
	res = apply(t, s, batch("n1", at(40), ruled(faultReport(2, "nic.errors", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(40)), enforce, time.Hour)))
	if got := res[0].Events[0].GetFault().GetAcknowledged(); !proto.Equal(got, acked.GetAcknowledged()) {
		t.Errorf("acknowledgement after a report %v, want %v", got, acked.GetAcknowledged())
	}
	wantTypes(t, "quiet", resolveQuiet(t, s, at(40).Add(time.Hour)), evFaultResolved, evHealthChanged)
	if _, err := s.AcknowledgeFault(ctxOf(t), id, store.Note{Actor: "bob", Reason: "late", Time: at(50)}); !errors.Is(err, store.ErrNotOpen) {
		t.Errorf("AcknowledgeFault of a resolved fault: error %v, want ErrNotOpen", err)
	}
	res = apply(t, s, batch("n1", at(40).Add(time.Hour+time.Minute), ruled(faultReport(3, "nic.errors", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(40).Add(time.Hour+time.Minute)), enforce, time.Hour)))
	wantTypes(t, "reopened", res[0].Events, evFaultReopened, evHealthChanged)
	if got := res[0].Events[0].GetFault().GetAcknowledged(); !proto.Equal(got, acked.GetAcknowledged()) {
		t.Errorf("acknowledgement after a reopen %v, want %v", got, acked.GetAcknowledged())
	}
}

func testFleetObservations(t *testing.T, s store.Store) {
	register(t, s, "n2", map[string]string{"model": "WD Red", "rack": "r2"})
	register(t, s, "n1", map[string]string{"model": "WD Red", "rack": "r1"})
	register(t, s, "n3", map[string]string{"model": "WD Blue"})
	apply(t, s,
		batch("n1", at(10),
			obsReport(1, "diskstats", disk("sdb"), at(1), 12),
			obsReport(2, "diskstats", disk("sda"), at(1), 11),
			obsReport(3, "smart", disk("sda"), at(1), 99)),
		batch("n2", at(10),
			obsReport(1, "diskstats", disk("sda"), at(1), 20),
			obsReport(2, "diskstats", disk("sda"), at(2), 21)), // the later reading wins
		batch("n3", at(10), obsReport(1, "netdev", &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(1), 3)),
	)
	apply(t, s, batch("n2", at(20), obsReport(3, "diskstats", disk("sdc"), at(3), 22)))

	type row struct {
		node, part, rack string
		value            float64
	}
	tests := []struct {
		source string
		want   []row
	}{
		{"diskstats", []row{{"n1", "sda", "r1", 11}, {"n1", "sdb", "r1", 12}, {"n2", "sda", "r2", 21}, {"n2", "sdc", "r2", 22}}},
		{"smart", []row{{"n1", "sda", "r1", 99}}},
		{"netdev", []row{{"n3", "eth0", "", 3}}},
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			obs, err := s.FleetObservations(ctxOf(t), tt.source)
			if err != nil {
				t.Fatal(err)
			}
			var got []row
			for _, o := range obs {
				if o.Observation.GetSource() != tt.source {
					t.Errorf("observation of source %q in %q", o.Observation.GetSource(), tt.source)
				}
				if o.Labels["model"] == "" {
					t.Errorf("node %s without its labels: %v", o.Node, o.Labels)
				}
				got = append(got, row{o.Node, o.Observation.GetPart().GetName(), o.Labels["rack"], o.Observation.GetSamples()[0].GetValue()})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// testLifecycleSurvivesReopen closes and reopens a store in the middle of a
// fault's life: health, faults (mode, clear time, reopen count, notes),
// events and cursors come back the same, and the clear time in force goes
// on counting.
func testLifecycleSurvivesReopen(t *testing.T, reopen func(t *testing.T) store.Store) {
	const clear = 10 * time.Minute
	s := reopen(t)
	hello(t, s, store.Hello{Node: "n1", Labels: map[string]string{"rack": "r1"}, StreamID: "s1", BootID: "b1", Time: t0})
	res := apply(t, s, batch("n1", t0,
		ruled(faultReport(1, "nic.link_flap", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, t0), enforce, clear),
		ruled(faultReport(2, "disk.media", sevCritical, disk("sda"), t0), shadow, 0),
		ruled(faultReport(3, "disk.io_error", sevCritical, disk("sdb"), t0), enforce, 0)))
	flap := res[0].Events[0].GetFault().GetId()
	acked := res[0].Events[1].GetFault().GetId()
	byHand := res[0].Events[2].GetFault().GetId()
	resolveQuiet(t, s, t0.Add(clear))
	back := t0.Add(clear + time.Minute)
	apply(t, s, batch("n1", back, ruled(faultReport(4, "nic.link_flap", sevWarning, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, back), enforce, clear)))
	if _, err := s.AcknowledgeFault(ctxOf(t), acked, store.Note{Actor: "bob", Reason: "trial rule", Time: back}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveFault(ctxOf(t), byHand, store.Note{Actor: "alice", Reason: "replaced", Time: back}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(ctxOf(t), "webhook:pager", 4); err != nil {
		t.Fatal(err)
	}
	wantHealth(t, s, "n1", suspect, 2)
	node := getNode(t, s, "n1")
	faults := allFaults(t, s, store.FaultFilter{AllStates: true}, 0)
	events := allEvents(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if got := getNode(t, s, "n1"); !proto.Equal(got, node) {
		t.Errorf("node after reopen:\n%v\nwant\n%v", got, node)
	}
	wantHealth(t, s, "n1", suspect, 2)
	got := allFaults(t, s, store.FaultFilter{AllStates: true}, 0)
	if len(got) != len(faults) {
		t.Fatalf("%d faults after reopen, want %d", len(got), len(faults))
	}
	for i := range got {
		if !proto.Equal(got[i], faults[i]) {
			t.Errorf("fault %d after reopen:\n%v\nwant\n%v", i, got[i], faults[i])
		}
	}
	if f := getFault(t, s, flap); f.GetReopened() != 1 || f.GetClearAfter().AsDuration() != 2*clear {
		t.Errorf("flapping fault after reopen %v, want reopened 1, clear time %v", f, 2*clear)
	}
	gotEvents := allEvents(t, s)
	if len(gotEvents) != len(events) {
		t.Fatalf("%d events after reopen, want %d", len(gotEvents), len(events))
	}
	for i := range gotEvents {
		if !proto.Equal(gotEvents[i], events[i]) {
			t.Errorf("event %d after reopen:\n%v\nwant\n%v", i, gotEvents[i], events[i])
		}
	}
	if id, ok, err := s.Cursor(ctxOf(t), "webhook:pager"); err != nil || !ok || id != 4 {
		t.Errorf("cursor after reopen = %d, %v, %v; want 4", id, ok, err)
	}
	// The doubled clear time goes on counting from the reopen.
	if evs := resolveQuiet(t, s, back.Add(2*clear-time.Second)); len(evs) != 0 {
		t.Errorf("resolved %v before the doubled clear time", eventTypes(evs))
	}
	evs := resolveQuiet(t, s, back.Add(2*clear))
	wantTypes(t, "quiet after reopen", evs, evFaultResolved, evHealthChanged)
	wantHealth(t, s, "n1", healthy, 1)

	// The collector's times are stored: the flapping fault opened again
	// when it came back, the acknowledged one when it first opened, and
	// an update after the restart keeps that.
	f := getFault(t, s, flap)
	wantTime(t, "flapping fault: opened after reopen", f.GetOpened(), back)
	wantTime(t, "flapping fault: received after reopen", f.GetReceived(), back)
	f = getFault(t, s, acked)
	wantTime(t, "acknowledged fault: opened after reopen", f.GetOpened(), t0)
	later := back.Add(3 * clear)
	res = apply(t, s, batch("n1", later, ruled(faultReport(5, "disk.media", sevCritical, disk("sda"), later.Add(-5*time.Hour)), shadow, 0)))
	wantTypes(t, "update after reopen", res[0].Events, evFaultUpdated)
	if len(res[0].Events) == 1 {
		f = res[0].Events[0].GetFault()
		wantTime(t, "updated after reopen: opened", f.GetOpened(), t0)
		wantTime(t, "updated after reopen: received", f.GetReceived(), later)
	}
}

// derivedOf wraps faults as derived from readings of a test source.
func derivedOf(faults ...*hwhealv1.Fault) []store.DerivedFault {
	out := make([]store.DerivedFault, len(faults))
	for i, f := range faults {
		out[i] = store.DerivedFault{Fault: f, Source: "diskstats"}
	}
	return out
}

// skews are agent clocks against the collector's: quiet time and reopen
// windows must come out the same for each.
var skews = []struct {
	name string
	d    time.Duration
}{
	{"agent in step", 0},
	{"agent 2h behind", -2 * time.Hour},
	{"agent a year ahead", 365 * 24 * time.Hour},
}

// testQuietTimeOnCollectorClock: a fault's quiet time counts from the
// collector's receipt of its latest report, whatever time the agent put on
// it. An agent hours behind must not resolve a fresh critical fault at the
// next pass (node FAULTY to HEALTHY); one a year ahead must not hold it
// open for a year. The fault still shows the agent's times.
func testQuietTimeOnCollectorClock(t *testing.T, s store.Store) {
	const clear = time.Hour
	for i, sk := range skews {
		t.Run(sk.name, func(t *testing.T) {
			node := fmt.Sprint("skew-", i)
			base := after(time.Duration(i) * 24 * time.Hour)
			hello(t, s, store.Hello{Node: node, StreamID: "s1", BootID: "b1", Time: base})
			recv := base.Add(3 * time.Hour)
			res := apply(t, s, batch(node, recv, ruled(faultReport(1, "disk.media", sevCritical, disk("sda"), recv.Add(sk.d)), enforce, clear)))
			wantTypes(t, "report", res[0].Events, evFaultOpened, evHealthChanged)
			f := res[0].Events[0].GetFault()
			wantTime(t, "first_seen (the agent's)", f.GetFirstSeen(), recv.Add(sk.d))
			wantTime(t, "last_seen (the agent's)", f.GetLastSeen(), recv.Add(sk.d))

			for _, now := range []time.Time{recv.Add(5 * time.Second), recv.Add(clear - time.Second)} {
				if evs := ofNode(node, resolveQuiet(t, s, now)); len(evs) != 0 {
					t.Errorf("resolved %v %v after receipt, clear time %v", eventTypes(evs), now.Sub(recv), clear)
				}
			}
			wantHealth(t, s, node, faulty, 1)

			// The agent's clock steps back a day: its next report still
			// restarts the quiet time from its receipt.
			recv2 := recv.Add(clear / 2)
			apply(t, s, batch(node, recv2, ruled(faultReport(2, "disk.media", sevCritical, disk("sda"), recv2.Add(sk.d-24*time.Hour)), enforce, clear)))
			if evs := ofNode(node, resolveQuiet(t, s, recv.Add(clear))); len(evs) != 0 {
				t.Errorf("resolved %v a clear time after the first report, with a newer one received", eventTypes(evs))
			}
			if evs := ofNode(node, resolveQuiet(t, s, recv2.Add(clear-time.Second))); len(evs) != 0 {
				t.Errorf("resolved %v before the clear time after the newer report", eventTypes(evs))
			}
			evs := ofNode(node, resolveQuiet(t, s, recv2.Add(clear)))
			wantTypes(t, "quiet", evs, evFaultResolved, evHealthChanged)
			if len(evs) == 2 {
				if got := evs[0].GetFault(); got.GetId() != f.GetId() || got.GetCount() != 2 {
					t.Errorf("resolved %v, want fault %d counted 2", got, f.GetId())
				}
				wantTime(t, "last_seen after the step back (the latest of the agent's)", evs[0].GetFault().GetLastSeen(), recv.Add(sk.d))
				if hc := evs[1]; hc.GetOldHealth() != faulty || hc.GetNewHealth() != healthy {
					t.Errorf("health event %v, want faulty -> healthy", hc)
				}
			}
		})
	}
}

// testReopenOnCollectorClock: whether a report reopens a fault that
// resolved by itself is decided by when the collector received it, not by
// the agent's time on it: an agent a year ahead must not open a new fault
// (resetting its doubled clear time) for every flap, one days behind must
// not reopen a fault long gone.
func testReopenOnCollectorClock(t *testing.T, s store.Store) {
	const clear = time.Hour
	for i, sk := range skews {
		t.Run(sk.name, func(t *testing.T) {
			node := fmt.Sprint("skew-", i)
			base := after(time.Duration(i) * 24 * time.Hour)
			hello(t, s, store.Hello{Node: node, StreamID: "s1", BootID: "b1", Time: base})
			var seq uint64
			report := func(recv time.Time, skew time.Duration) store.BatchResult {
				t.Helper()
				seq++
				return apply(t, s, batch(node, recv, ruled(faultReport(seq, "nic.link_flap", sevWarning,
					&hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, recv.Add(skew)), enforce, clear)))[0]
			}
			id := report(base, sk.d).Events[0].GetFault().GetId()
			wantTypes(t, "quiet", ofNode(node, resolveQuiet(t, s, base.Add(clear))), evFaultResolved, evHealthChanged)

			// Back within the clear time of the resolution: the same fault.
			back := base.Add(clear + clear/2)
			res := report(back, sk.d)
			wantTypes(t, "back within the window", res.Events, evFaultReopened, evHealthChanged)
			if f := res.Events[0].GetFault(); f.GetId() != id || f.GetReopened() != 1 {
				t.Errorf("fault %v, want %d reopened once", f, id)
			}
			// Its doubled clear time counts from the receipt too.
			if evs := ofNode(node, resolveQuiet(t, s, back.Add(2*clear-time.Second))); len(evs) != 0 {
				t.Errorf("resolved %v before the doubled clear time", eventTypes(evs))
			}
			resolved := back.Add(2 * clear)
			wantTypes(t, "quiet again", ofNode(node, resolveQuiet(t, s, resolved)), evFaultResolved, evHealthChanged)

			// Received after the window, even with a time days before the
			// resolution (the agent's clock stepped back): a new fault.
			res = report(resolved.Add(2*clear+time.Minute), sk.d-3*24*time.Hour)
			wantTypes(t, "back after the window", res.Events, evFaultOpened, evHealthChanged)
			if f := res.Events[0].GetFault(); f.GetId() == id || f.GetReopened() != 0 {
				t.Errorf("fault %v, want a new one", f)
			}
		})
	}
}

func nvme(name string) *hwhealv1.Part {
	return disk(name)
}

// testDerivedNeedsReading: a fault a rule derived from readings resolves
// only once a reading of its source and part, taken at least its clear
// time after it was last seen, is stored: silence is not recovery (a drive
// that stopped answering, a source that died, a part that vanished).
// Readings of another source or another part say nothing about it. Faults
// from agent reports resolve by quiet time alone, as before.
func testDerivedNeedsReading(t *testing.T, s store.Store) {
	const (
		clear = 2 * time.Hour
		class = "nvme.critical_warning"
	)
	fromSmart := func(f *hwhealv1.Fault) []store.DerivedFault {
		return []store.DerivedFault{{Fault: f, Source: "smart"}}
	}

	t.Run("silence holds it, a newer clean reading resolves it", func(t *testing.T) {
		hello(t, s, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0})
		raised := at(60)
		b := batch("n1", raised, obsReport(1, "smart", nvme("nvme0"), raised, 8))
		b.Derived = fromSmart(derived(class, sevCritical, nvme("nvme0"), raised, enforce, clear))
		res := apply(t, s, b)
		wantTypes(t, "one reading with critical_warning 8", res[0].Events, evFaultOpened, evHealthChanged)
		id := res[0].Events[0].GetFault().GetId()

		// Then nothing at all, however long.
		for _, d := range []time.Duration{clear, 10 * clear, 1000 * time.Hour} {
			if evs := resolveQuiet(t, s, raised.Add(d)); len(evs) != 0 {
				t.Fatalf("resolved %v after %v of silence", eventTypes(evs), d)
			}
		}
		wantHealth(t, s, "n1", faulty, 1)

		// Readings that say nothing about it: another source of the part,
		// the same source of another part, and its own source and part
		// taken a second before its clear time had passed (the rule need
		// not have re-raised it yet).
		recv := raised.Add(1001 * time.Hour)
		apply(t, s, batch("n1", recv,
			obsReport(2, "hwmon", nvme("nvme0"), raised.Add(3*clear), 40),
			obsReport(3, "smart", nvme("nvme1"), raised.Add(3*clear), 0)))
		if evs := resolveQuiet(t, s, recv); len(evs) != 0 {
			t.Errorf("resolved %v on readings of another source or part", eventTypes(evs))
		}
		apply(t, s, batch("n1", recv, obsReport(4, "smart", nvme("nvme0"), raised.Add(clear-time.Second), 0)))
		if evs := resolveQuiet(t, s, recv); len(evs) != 0 {
			t.Errorf("resolved %v on a reading within the clear time of the fault", eventTypes(evs))
		}
		wantHealth(t, s, "n1", faulty, 1)

		// A reading a clear time after: resolved at the next pass.
		apply(t, s, batch("n1", recv.Add(time.Minute), obsReport(5, "smart", nvme("nvme0"), raised.Add(clear), 0)))
		evs := resolveQuiet(t, s, recv.Add(time.Minute))
		wantTypes(t, "clean reading", evs, evFaultResolved, evHealthChanged)
		if len(evs) == 2 {
			want := "no evidence for 2h0m0s: a newer smart reading does not show it"
			if f := evs[0].GetFault(); f.GetId() != id || evs[0].GetReason() != want {
				t.Errorf("resolved fault %d reason %q, want %d, %q", f.GetId(), evs[0].GetReason(), id, want)
			}
			wantStored(t, s, evs)
		}
		wantHealth(t, s, "n1", healthy, 0)

		// Raised again within its window: reopened, its clear time doubled
		// and still waiting for a reading, now 4 h after.
		again := raised.Add(clear + time.Hour)
		b = batch("n1", recv.Add(2*time.Hour), obsReport(6, "smart", nvme("nvme0"), again, 8))
		b.Derived = fromSmart(derived(class, sevCritical, nvme("nvme0"), again, enforce, clear))
		wantTypes(t, "raised again", apply(t, s, b)[0].Events, evFaultReopened, evHealthChanged)
		later := recv.Add(100 * time.Hour)
		apply(t, s, batch("n1", later, obsReport(7, "smart", nvme("nvme0"), again.Add(2*clear-time.Second), 0)))
		if evs := resolveQuiet(t, s, later); len(evs) != 0 {
			t.Errorf("resolved %v on a reading before the doubled clear time", eventTypes(evs))
		}
		apply(t, s, batch("n1", later, obsReport(8, "smart", nvme("nvme0"), again.Add(2*clear), 0)))
		wantTypes(t, "clean reading after the doubled clear time", resolveQuiet(t, s, later), evFaultResolved, evHealthChanged)
	})

	// The reading is compared with the fault's last_seen, both on the
	// agent's clock: a day behind the collector's, here.
	t.Run("agent clock behind", func(t *testing.T) {
		const skew = -24 * time.Hour
		hello(t, s, store.Hello{Node: "n2", StreamID: "s1", BootID: "b1", Time: t0})
		recv := at(60)
		b := batch("n2", recv, obsReport(1, "smart", nvme("nvme0"), recv.Add(skew), 8))
		b.Derived = fromSmart(derived(class, sevCritical, nvme("nvme0"), recv.Add(skew), enforce, clear))
		apply(t, s, b)
		apply(t, s, batch("n2", recv.Add(clear), obsReport(2, "smart", nvme("nvme0"), recv.Add(clear+skew), 0)))
		if evs := resolveQuiet(t, s, recv.Add(clear-time.Second)); len(evs) != 0 {
			t.Errorf("resolved %v before its quiet time", eventTypes(evs))
		}
		wantTypes(t, "clean reading", resolveQuiet(t, s, recv.Add(clear)), evFaultResolved, evHealthChanged)
	})

	// A fault from agent reports (or derived without a source) has no
	// reading to wait for: quiet time alone resolves it.
	t.Run("agent fault", func(t *testing.T) {
		hello(t, s, store.Hello{Node: "n3", StreamID: "s1", BootID: "b1", Time: t0})
		apply(t, s, batch("n3", at(60), ruled(faultReport(1, class, sevCritical, nvme("nvme0"), at(60)), enforce, clear)))
		b := store.Batch{Node: "n3", Received: at(60), Derived: []store.DerivedFault{{Fault: derived(class, sevCritical, nvme("nvme1"), at(60), enforce, clear)}}}
		apply(t, s, b)
		if evs := resolveQuiet(t, s, at(60).Add(clear-time.Second)); len(evs) != 0 {
			t.Errorf("resolved %v before the clear time", eventTypes(evs))
		}
		evs := resolveQuiet(t, s, at(60).Add(clear))
		wantTypes(t, "quiet", evs, evFaultResolved, evFaultResolved, evHealthChanged)
		if len(evs) > 0 && evs[0].GetReason() != "no evidence for 2h0m0s" {
			t.Errorf("reason %q, want %q", evs[0].GetReason(), "no evidence for 2h0m0s")
		}
	})

	// An agent report of a fault a rule derived from readings keeps it
	// waiting for a reading, and so does a derived report of a fault the
	// agent raised: the agent's reports are covered by the quiet time, the
	// readings' only by a reading.
	t.Run("agent and derived reports of one fault", func(t *testing.T) {
		hello(t, s, store.Hello{Node: "n4", StreamID: "s1", BootID: "b1", Time: t0})
		raised := at(60)
		b := batch("n4", raised, obsReport(1, "smart", nvme("nvme0"), raised, 8))
		b.Derived = fromSmart(derived(class, sevCritical, nvme("nvme0"), raised, enforce, clear))
		apply(t, s, b)
		last := raised.Add(time.Hour)
		apply(t, s, batch("n4", last, ruled(faultReport(2, class, sevCritical, nvme("nvme0"), last), enforce, clear)))

		apply(t, s, batch("n4", last, ruled(faultReport(3, class, sevCritical, nvme("nvme1"), last), enforce, clear)))
		b = store.Batch{Node: "n4", Received: last, Derived: fromSmart(derived(class, sevCritical, nvme("nvme1"), last, enforce, clear))}
		apply(t, s, b)

		if evs := resolveQuiet(t, s, last.Add(100*time.Hour)); len(evs) != 0 {
			t.Errorf("resolved %v without a reading", eventTypes(evs))
		}
		// Clean readings, the first too early for the agent's report.
		recv := last.Add(101 * time.Hour)
		apply(t, s, batch("n4", recv, obsReport(4, "smart", nvme("nvme0"), last.Add(clear-time.Second), 0), obsReport(5, "smart", nvme("nvme1"), last.Add(clear), 0)))
		evs := resolveQuiet(t, s, recv)
		wantTypes(t, "clean readings", evs, evFaultResolved)
		if len(evs) == 1 && partKeyName(evs[0].GetFault()) != "nvme1" {
			t.Errorf("resolved the fault of %s, want nvme1's", partKeyName(evs[0].GetFault()))
		}
		wantHealth(t, s, "n4", faulty, 1)
	})
}

// ofNode returns the events of node among evs: the subtests of a
// conformance test share a store.
func ofNode(node string, evs []*hwhealv1.Event) []*hwhealv1.Event {
	var out []*hwhealv1.Event
	for _, ev := range evs {
		if ev.GetNode() == node {
			out = append(out, ev)
		}
	}
	return out
}

func partKeyName(f *hwhealv1.FaultRecord) string { return f.GetPart().GetName() }

// testQuietOneChunkPerCall: a backlog of faults due is resolved
// store.QuietChunk at a time, one call each, so that the caller can let
// other writes in between; the node's health changes in the call that
// resolves its last fault.
func testQuietOneChunkPerCall(t *testing.T, s store.Store) {
	const extra = 3
	hello(t, s, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0})
	var reps []*hwhealv1.Report
	for i := range store.QuietChunk + extra {
		reps = append(reps, ruled(faultReport(uint64(i+1), "disk.io_error", sevWarning, disk(fmt.Sprint("sd", i)), t0), enforce, time.Minute))
	}
	apply(t, s, batch("n1", t0, reps...))
	now := t0.Add(time.Minute)

	evs := resolveQuiet(t, s, now)
	if n := len(evs); n != store.QuietChunk || evs[n-1].GetType() != evFaultResolved {
		t.Errorf("first call: %d events ending in %v, want %d faults resolved", n, evs[n-1].GetType(), store.QuietChunk)
	}
	wantHealth(t, s, "n1", suspect, extra)
	evs = resolveQuiet(t, s, now)
	want := append(slices.Repeat([]hwhealv1.EventType{evFaultResolved}, extra), evHealthChanged)
	wantTypes(t, "second call", evs, want...)
	wantHealth(t, s, "n1", healthy, 0)
	if evs := resolveQuiet(t, s, now); len(evs) != 0 {
		t.Errorf("third call: %v", eventTypes(evs))
	}
}

// hourSkews are agent clocks hours off the collector's, as an RTC reset by
// a power event leaves them.
var hourSkews = []struct {
	name string
	d    time.Duration
}{
	{"agent in step", 0},
	{"agent 5h behind", -5 * time.Hour},
	{"agent 5h ahead", 5 * time.Hour},
}

// testFaultTimesOnCollectorClock: a fault's received and opened are the
// collector's receipt times (Batch.Received), whatever clock the agent
// keeps: remediation compares them with its own action times, and the
// storm breaker counts the faults that opened within a window. received is
// the latest batch that reported the fault (a derived fault's too); opened
// is the batch that opened it, kept across updates, an acknowledgement, a
// resolution and an escalation, and moved by a reopen. Every read of the
// fault (the events, stored and returned, GetFault, ListFaults) says the
// same.
func testFaultTimesOnCollectorClock(t *testing.T, s store.Store) {
	const clear = time.Hour
	nic := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}
	for i, sk := range hourSkews {
		t.Run(sk.name, func(t *testing.T) {
			node := fmt.Sprint("skew-", i)
			base := after(time.Duration(i) * 24 * time.Hour)
			hello(t, s, store.Hello{Node: node, StreamID: "s1", BootID: "b1", Time: base})
			var seq uint64
			report := func(recv time.Time) store.BatchResult {
				t.Helper()
				seq++
				res := apply(t, s, batch(node, recv, ruled(faultReport(seq, "nic.link_flap", sevWarning, nic, recv.Add(sk.d)), enforce, clear)))[0]
				wantStored(t, s, res.Events)
				return res
			}
			// check checks the times of f, the fault of an event just
			// returned, and that the store reads back the same record.
			check := func(what string, f *hwhealv1.FaultRecord, received, opened time.Time) {
				t.Helper()
				wantTime(t, what+": received", f.GetReceived(), received)
				wantTime(t, what+": opened", f.GetOpened(), opened)
				if got := getFault(t, s, f.GetId()); !proto.Equal(got, f) {
					t.Errorf("%s: GetFault\n%v\nwant the event's\n%v", what, got, f)
				}
				for _, got := range allFaults(t, s, store.FaultFilter{Node: node, AllStates: true}, 0) {
					if got.GetId() == f.GetId() && !proto.Equal(got, f) {
						t.Errorf("%s: ListFaults\n%v\nwant the event's\n%v", what, got, f)
					}
				}
			}

			recv1 := base.Add(3 * time.Hour)
			res := report(recv1)
			wantTypes(t, "first report", res.Events, evFaultOpened, evHealthChanged)
			f := res.Events[0].GetFault()
			id := f.GetId()
			check("opened", f, recv1, recv1)
			wantTime(t, "first_seen (the agent's)", f.GetFirstSeen(), recv1.Add(sk.d))

			recv2 := recv1.Add(10 * time.Minute)
			res = report(recv2)
			wantTypes(t, "second report", res.Events, evFaultUpdated)
			check("updated", res.Events[0].GetFault(), recv2, recv1)

			// Derived faults take the receipt of their batch too: one
			// updates the fault, one opens another.
			recv3 := recv1.Add(20 * time.Minute)
			res = apply(t, s, store.Batch{Node: node, Received: recv3, Derived: []store.DerivedFault{
				{Fault: derived("nic.link_flap", sevWarning, nic, recv3.Add(sk.d), enforce, clear)},
				{Fault: derived("disk.latency", sevWarning, disk("sda"), recv3.Add(sk.d), enforce, clear)},
			}})[0]
			wantStored(t, s, res.Events)
			wantTypes(t, "derived", res.Events, evFaultUpdated, evFaultOpened)
			if len(res.Events) == 2 {
				check("updated by a derived fault", res.Events[0].GetFault(), recv3, recv1)
				check("opened by a derived fault", res.Events[1].GetFault(), recv3, recv3)
			}

			ack, err := s.AcknowledgeFault(ctxOf(t), id, store.Note{Actor: "bob", Reason: "looking", Time: recv3.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			wantStored(t, s, []*hwhealv1.Event{ack})
			check("acknowledged", ack.GetFault(), recv3, recv1)

			evs := ofNode(node, resolveQuiet(t, s, recv3.Add(clear)))
			wantStored(t, s, evs)
			wantTypes(t, "quiet", evs, evFaultResolved, evFaultResolved, evHealthChanged)
			for _, ev := range evs {
				if ev.GetFault().GetId() == id {
					check("resolved", ev.GetFault(), recv3, recv1)
				}
			}

			// Back within its clear time: reopened, so it opened again at
			// this receipt, while first_seen stays the agent's first.
			recv4 := recv3.Add(clear + clear/2)
			res = report(recv4)
			wantTypes(t, "back", res.Events, evFaultReopened, evHealthChanged)
			f = res.Events[0].GetFault()
			if f.GetId() != id {
				t.Fatalf("reopened fault %d, want %d", f.GetId(), id)
			}
			check("reopened", f, recv4, recv4)
			wantTime(t, "first_seen after the reopen (the agent's)", f.GetFirstSeen(), recv1.Add(sk.d))

			recv5 := recv4.Add(5 * time.Minute)
			res = report(recv5)
			wantTypes(t, "after the reopen", res.Events, evFaultUpdated)
			check("updated after the reopen", res.Events[0].GetFault(), recv5, recv4)

			evs, err = s.Escalate(ctxOf(t), id, "policy:r1", "ladder exhausted", recv5.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			wantStored(t, s, evs)
			wantTypes(t, "escalate", evs, evEscalated)
			if len(evs) == 1 {
				check("escalated", evs[0].GetFault(), recv5, recv4)
			}

			evs, err = s.ResolveFault(ctxOf(t), id, store.Note{Actor: "alice", Reason: "replaced", Time: recv5.Add(2 * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			wantStored(t, s, evs)
			check("resolved by hand", evs[0].GetFault(), recv5, recv4)

			// An operator's resolution is never reopened: a new fault.
			recv6 := recv5.Add(3 * time.Minute)
			res = report(recv6)
			wantTypes(t, "after an operator's resolution", res.Events, evFaultOpened, evHealthChanged)
			if f := res.Events[0].GetFault(); f.GetId() == id {
				t.Errorf("operator-resolved fault %d reopened", id)
			}
			check("new fault", res.Events[0].GetFault(), recv6, recv6)
		})
	}
}
