// Package storetest is the conformance suite of store.Store: every storage
// backend runs it from its own tests, so that the collector behaves the
// same whichever store it is given.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... a new, empty store ... })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Opener returns a new, empty store. The suite closes it.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite, each subtest on a store of its own.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"HelloRegisters", testHelloRegisters},
		{"HelloUpdatesKnownNode", testHelloUpdatesKnownNode},
		{"HelloReboot", testHelloReboot},
		{"HelloRejectsEmptyNode", testHelloRejectsEmptyNode},
		{"Disconnected", testDisconnected},
		{"ResetConnections", testResetConnections},
		{"AckedSeqPerStream", testAckedSeqPerStream},
		{"DuplicatesDroppedOnReplay", testDuplicatesDroppedOnReplay},
		{"KernelRecordCountedOnce", testKernelRecordCountedOnce},
		{"FaultMergesSamePart", testFaultMergesSamePart},
		{"FaultSeparatesParts", testFaultSeparatesParts},
		{"FaultTimeFallsBackToReceived", testFaultTimeFallsBack},
		{"SeverityDrivesHealth", testSeverityDrivesHealth},
		{"ObservationsLatest", testObservationsLatest},
		{"ApplyUnknownNodeRollsBack", testApplyUnknownNodeRollsBack},
		{"ApplyEmptyAndCanceled", testApplyEmptyAndCanceled},
		{"ApplyManyBatchesOneCall", testApplyManyBatchesOneCall},
		{"ListNodesPagination", testListNodesPagination},
		{"ListFaultsFilters", testListFaultsFilters},
		{"BadPageToken", testBadPageToken},
		{"NotFound", testNotFound},
		{"EventsAfter", testEventsAfter},
		{"Concurrent", testConcurrent},
		{"Cursors", testCursors},
		{"ModeAndClearStored", testModeAndClearStored},
		{"ShadowNeverChangesHealth", testShadowNeverChangesHealth},
		{"DerivedFaults", testDerivedFaults},
		{"QuietResolve", testQuietResolve},
		{"QuietResolveOneChunkPerCall", testQuietOneChunkPerCall},
		{"QuietTimeOnCollectorClock", testQuietTimeOnCollectorClock},
		{"ReopenOnCollectorClock", testReopenOnCollectorClock},
		{"FaultTimesOnCollectorClock", testFaultTimesOnCollectorClock},
		{"DerivedFaultNeedsReading", testDerivedNeedsReading},
		{"FlapReopens", testFlapReopens},
		{"ReopenCarriesKernelMark", testReopenCarriesKernelMark},
		{"OperatorResolve", testOperatorResolve},
		{"Acknowledge", testAcknowledge},
		{"FleetObservations", testFleetObservations},
		{"ActionLifecycle", testActionLifecycle},
		{"ActionCreateErrors", testActionCreateErrors},
		{"ActionConflicts", testActionConflicts},
		{"ActionFieldChanges", testActionFieldChanges},
		{"ServiceStates", testServiceStates},
		{"LateUnknownInvalidUpdates", testLateUnknownInvalidUpdates},
		{"UpdateNotAppliedTwice", testUpdateNotAppliedTwice},
		{"StepBounds", testStepBounds},
		{"AuditChain", testAuditChain},
		{"RemediationPause", testRemediationPause},
		{"Escalate", testEscalate},
		{"ListActions", testListActions},
		{"NodeServiceFilter", testNodeServiceFilter},
		{"HelloGuard", testHelloGuard},
		{"DispatchKeepsPlannedBoot", testDispatchKeepsPlannedBoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// RunDurable runs the tests that close a store and open it again. fresh
// makes a new, empty database and returns an opener bound to it: every call
// of the opener returns a new handle on that same database.
func RunDurable(t *testing.T, fresh func(t *testing.T) (reopen func(t *testing.T) store.Store)) {
	t.Run("SurvivesReopen", func(t *testing.T) { testSurvivesReopen(t, fresh(t)) })
	t.Run("LifecycleSurvivesReopen", func(t *testing.T) { testLifecycleSurvivesReopen(t, fresh(t)) })
	t.Run("RemediationSurvivesReopen", func(t *testing.T) { testRemediationSurvivesReopen(t, fresh(t)) })
}

// t0 has whole microseconds so that every backend stores it exactly.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func ctxOf(t *testing.T) context.Context { return t.Context() }

func hello(t *testing.T, s store.Store, h store.Hello) store.HelloResult {
	t.Helper()
	if h.Time.IsZero() {
		h.Time = t0
	}
	res, err := s.Hello(ctxOf(t), h)
	if err != nil {
		t.Fatalf("Hello(%s): %v", h.Node, err)
	}
	return res
}

// register says hello for node on stream "s1" with boot id "b1".
func register(t *testing.T, s store.Store, node string, labels map[string]string) {
	t.Helper()
	hello(t, s, store.Hello{Node: node, Labels: labels, StreamID: "s1", BootID: "b1", AgentVersion: "v1"})
}

func apply(t *testing.T, s store.Store, batches ...store.Batch) []store.BatchResult {
	t.Helper()
	res, err := s.Apply(ctxOf(t), batches)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(batches) {
		t.Fatalf("Apply returned %d results for %d batches", len(res), len(batches))
	}
	return res
}

func batch(node string, received time.Time, reports ...*hwhealv1.Report) store.Batch {
	return store.Batch{Node: node, StreamID: "s1", Reports: reports, Received: received}
}

func disk(name string) *hwhealv1.Part {
	return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name}
}

func faultReport(seq uint64, class string, sev hwhealv1.Severity, part *hwhealv1.Part, when time.Time) *hwhealv1.Report {
	f := &hwhealv1.Fault{
		FaultClass: class,
		Severity:   sev,
		Part:       part,
		Rule:       class + ".rule",
		Summary:    fmt.Sprintf("%s on %s (seq %d)", class, part.GetName(), seq),
		Evidence: &hwhealv1.Evidence{
			KernelLog: &hwhealv1.KernelLogRecord{Level: proto.Uint32(3), Sequence: seq, Message: fmt.Sprintf("error %d", seq)},
			Captures:  map[string]string{"device": part.GetName()},
		},
	}
	if !when.IsZero() {
		f.Time = timestamppb.New(when)
	}
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: f}}
}

func obsReport(seq uint64, source string, part *hwhealv1.Part, when time.Time, v float64) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
		Time:    timestamppb.New(when),
		Source:  source,
		Part:    part,
		Samples: []*hwhealv1.Sample{{Name: "value", Value: v}},
	}}}
}

const (
	sevInfo     = hwhealv1.Severity_SEVERITY_INFO
	sevWarning  = hwhealv1.Severity_SEVERITY_WARNING
	sevCritical = hwhealv1.Severity_SEVERITY_CRITICAL

	healthy = hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
	suspect = hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT
	faulty  = hwhealv1.NodeHealth_NODE_HEALTH_FAULTY

	evRegistered    = hwhealv1.EventType_EVENT_TYPE_NODE_REGISTERED
	evConnected     = hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED
	evDisconnected  = hwhealv1.EventType_EVENT_TYPE_NODE_DISCONNECTED
	evRebooted      = hwhealv1.EventType_EVENT_TYPE_NODE_REBOOTED
	evHealthChanged = hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED
	evFaultOpened   = hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED
	evFaultUpdated  = hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED
)

func eventTypes(evs []*hwhealv1.Event) []hwhealv1.EventType {
	out := make([]hwhealv1.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.GetType()
	}
	return out
}

func wantTypes(t *testing.T, what string, evs []*hwhealv1.Event, want ...hwhealv1.EventType) {
	t.Helper()
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Errorf("%s: event types %v, want %v", what, got, want)
	}
}

func wantTime(t *testing.T, what string, ts *timestamppb.Timestamp, want time.Time) {
	t.Helper()
	if ts == nil {
		t.Errorf("%s: no time, want %v", what, want)
		return
	}
	if got := ts.AsTime(); !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func getNode(t *testing.T, s store.Store, name string) *hwhealv1.Node {
	t.Helper()
	n, err := s.GetNode(ctxOf(t), name)
	if err != nil {
		t.Fatalf("GetNode(%s): %v", name, err)
	}
	return n
}

// allNodes pages through ListNodes with page size size and fails on a
// repeated or out-of-order node.
func allNodes(t *testing.T, s store.Store, f store.NodeFilter, size int) []string {
	t.Helper()
	var names []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListNodes: pagination does not end")
		}
		nodes, next, err := s.ListNodes(ctxOf(t), f, store.Page{Size: size, Token: tok})
		if err != nil {
			t.Fatalf("ListNodes(%+v, page %d): %v", f, pages, err)
		}
		if size > 0 && len(nodes) > size {
			t.Fatalf("ListNodes: page of %d nodes, size %d", len(nodes), size)
		}
		if next != "" && len(nodes) == 0 {
			t.Fatal("ListNodes: empty page with a next token")
		}
		for _, n := range nodes {
			if len(names) > 0 && n.GetName() <= names[len(names)-1] {
				t.Fatalf("ListNodes: %q after %q: not in order or repeated", n.GetName(), names[len(names)-1])
			}
			names = append(names, n.GetName())
		}
		if next == "" {
			return names
		}
		tok = next
	}
}

func allFaults(t *testing.T, s store.Store, f store.FaultFilter, size int) []*hwhealv1.FaultRecord {
	t.Helper()
	var out []*hwhealv1.FaultRecord
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListFaults: pagination does not end")
		}
		faults, next, err := s.ListFaults(ctxOf(t), f, store.Page{Size: size, Token: tok})
		if err != nil {
			t.Fatalf("ListFaults(%+v): %v", f, err)
		}
		if size > 0 && len(faults) > size {
			t.Fatalf("ListFaults: page of %d faults, size %d", len(faults), size)
		}
		for _, r := range faults {
			if len(out) > 0 && r.GetId() <= out[len(out)-1].GetId() {
				t.Fatalf("ListFaults: id %d after %d", r.GetId(), out[len(out)-1].GetId())
			}
			out = append(out, r)
		}
		if next == "" {
			return out
		}
		tok = next
	}
}

func allEvents(t *testing.T, s store.Store) []*hwhealv1.Event {
	t.Helper()
	var out []*hwhealv1.Event
	var after uint64
	for {
		evs, err := s.EventsAfter(ctxOf(t), after, 7)
		if err != nil {
			t.Fatalf("EventsAfter(%d): %v", after, err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		after = evs[len(evs)-1].GetId()
	}
}

func faultsOf(t *testing.T, s store.Store, node string) []*hwhealv1.FaultRecord {
	t.Helper()
	return allFaults(t, s, store.FaultFilter{Node: node}, 0)
}

func testHelloRegisters(t *testing.T, s store.Store) {
	inv := &hwhealv1.Inventory{SystemSerial: "SER1", CpuCores: 64, Disks: []*hwhealv1.InventoryDisk{{Name: "sda", Serial: "WD-1"}}}
	res := hello(t, s, store.Hello{
		Node: "n1", Labels: map[string]string{"rack": "r1", "zone": "a"}, AgentVersion: "1.2.3",
		BootID: "boot-a", StreamID: "st", Inventory: inv, Time: at(5),
	})
	if res.AckedSeq != 0 {
		t.Errorf("AckedSeq = %d, want 0", res.AckedSeq)
	}
	wantTypes(t, "first hello", res.Events, evRegistered, evConnected)
	for i, ev := range res.Events {
		if ev.GetId() == 0 || (i > 0 && ev.GetId() <= res.Events[i-1].GetId()) {
			t.Errorf("event %d: id %d not increasing from previous", i, ev.GetId())
		}
		if ev.GetNode() != "n1" {
			t.Errorf("event %d: node %q", i, ev.GetNode())
		}
		wantTime(t, "event time", ev.GetTime(), at(5))
	}
	n := getNode(t, s, "n1")
	if n.GetName() != "n1" || n.GetAgentVersion() != "1.2.3" || n.GetBootId() != "boot-a" || !n.GetConnected() {
		t.Errorf("node = %v", n)
	}
	if got := n.GetLabels(); len(got) != 2 || got["rack"] != "r1" || got["zone"] != "a" {
		t.Errorf("labels = %v", got)
	}
	if n.GetHealth() != healthy || n.GetOpenFaults() != 0 {
		t.Errorf("health %v, open faults %d; want healthy, 0", n.GetHealth(), n.GetOpenFaults())
	}
	if !proto.Equal(n.GetInventory(), inv) {
		t.Errorf("inventory = %v, want %v", n.GetInventory(), inv)
	}
	wantTime(t, "first_seen", n.GetFirstSeen(), at(5))
	wantTime(t, "last_seen", n.GetLastSeen(), at(5))
}

func testHelloUpdatesKnownNode(t *testing.T, s store.Store) {
	inv1 := &hwhealv1.Inventory{SystemSerial: "A"}
	hello(t, s, store.Hello{Node: "n1", Labels: map[string]string{"rack": "r1", "old": "x"}, BootID: "b", StreamID: "s", Inventory: inv1, Time: at(0)})
	res := hello(t, s, store.Hello{Node: "n1", Labels: map[string]string{"rack": "r2"}, AgentVersion: "v2", BootID: "b", StreamID: "s", Time: at(10)})
	wantTypes(t, "second hello", res.Events, evConnected)

	n := getNode(t, s, "n1")
	if got := n.GetLabels(); len(got) != 1 || got["rack"] != "r2" {
		t.Errorf("labels = %v, want replaced by {rack: r2}", got)
	}
	if !proto.Equal(n.GetInventory(), inv1) {
		t.Errorf("inventory = %v, want kept %v when the hello has none", n.GetInventory(), inv1)
	}
	if n.GetAgentVersion() != "v2" {
		t.Errorf("agent version %q, want v2", n.GetAgentVersion())
	}
	wantTime(t, "first_seen", n.GetFirstSeen(), at(0))
	wantTime(t, "last_seen", n.GetLastSeen(), at(10))

	// The label index follows the replacement.
	if got := allNodes(t, s, store.NodeFilter{Labels: map[string]string{"old": "x"}}, 0); len(got) != 0 {
		t.Errorf("nodes with removed label old=x: %v", got)
	}
	if got := allNodes(t, s, store.NodeFilter{Labels: map[string]string{"rack": "r1"}}, 0); len(got) != 0 {
		t.Errorf("nodes with old label rack=r1: %v", got)
	}
	if got := allNodes(t, s, store.NodeFilter{Labels: map[string]string{"rack": "r2"}}, 0); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("nodes with rack=r2: %v", got)
	}

	inv2 := &hwhealv1.Inventory{SystemSerial: "B", Dimms: []*hwhealv1.InventoryDimm{{Label: "DIMM_A1"}}}
	hello(t, s, store.Hello{Node: "n1", BootID: "b", StreamID: "s", Inventory: inv2, Time: at(20)})
	n = getNode(t, s, "n1")
	if !proto.Equal(n.GetInventory(), inv2) {
		t.Errorf("inventory = %v, want replaced by %v", n.GetInventory(), inv2)
	}
	if len(n.GetLabels()) != 0 {
		t.Errorf("labels = %v, want none after a hello without labels", n.GetLabels())
	}
}

func testHelloReboot(t *testing.T, s store.Store) {
	tests := []struct {
		name      string
		boots     []string
		lastTypes []hwhealv1.EventType
		wantBoot  string
	}{
		{"same boot", []string{"b1", "b1"}, []hwhealv1.EventType{evConnected}, "b1"},
		{"new boot", []string{"b1", "b2"}, []hwhealv1.EventType{evRebooted, evConnected}, "b2"},
		{"from empty", []string{"", "b2"}, []hwhealv1.EventType{evConnected}, "b2"},
		{"to empty keeps boot", []string{"b1", ""}, []hwhealv1.EventType{evConnected}, "b1"},
		{"empty then new", []string{"b1", "", "b3"}, []hwhealv1.EventType{evRebooted, evConnected}, "b3"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := fmt.Sprintf("reboot-%d", i)
			var res store.HelloResult
			for j, b := range tt.boots {
				res = hello(t, s, store.Hello{Node: node, BootID: b, StreamID: "s", Time: at(j)})
			}
			wantTypes(t, "last hello", res.Events, tt.lastTypes...)
			if got := getNode(t, s, node).GetBootId(); got != tt.wantBoot {
				t.Errorf("boot id %q, want %q", got, tt.wantBoot)
			}
		})
	}
}

func testHelloRejectsEmptyNode(t *testing.T, s store.Store) {
	if _, err := s.Hello(ctxOf(t), store.Hello{StreamID: "s", Time: t0}); err == nil {
		t.Error("Hello with an empty node name succeeded")
	}
}

func testDisconnected(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	ev, err := s.Disconnected(ctxOf(t), "n1", at(30))
	if err != nil {
		t.Fatalf("Disconnected: %v", err)
	}
	if ev.GetType() != evDisconnected || ev.GetNode() != "n1" || ev.GetId() == 0 {
		t.Errorf("event = %v", ev)
	}
	wantTime(t, "event time", ev.GetTime(), at(30))
	n := getNode(t, s, "n1")
	if n.GetConnected() {
		t.Error("node still connected")
	}
	wantTime(t, "last_seen", n.GetLastSeen(), at(30))

	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(40)})
	if !getNode(t, s, "n1").GetConnected() {
		t.Error("node not connected after a new hello")
	}
	if _, err := s.Disconnected(ctxOf(t), "nope", at(50)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Disconnected(unknown) = %v, want ErrNotFound", err)
	}
}

func testResetConnections(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	register(t, s, "n3", nil)
	if _, err := s.Disconnected(ctxOf(t), "n2", at(30)); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ResetConnections(ctxOf(t), at(40))
	if err != nil {
		t.Fatalf("ResetConnections: %v", err)
	}
	var got []string
	for _, ev := range evs {
		if ev.GetType() != evDisconnected || ev.GetId() == 0 {
			t.Errorf("event %v", ev)
		}
		got = append(got, ev.GetNode())
	}
	if strings.Join(got, ",") != "n1,n3" {
		t.Errorf("reset nodes %v, want n1,n3 (n2 was already disconnected)", got)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if getNode(t, s, n).GetConnected() {
			t.Errorf("%s still connected", n)
		}
	}
	if evs, err := s.ResetConnections(ctxOf(t), at(50)); err != nil || len(evs) != 0 {
		t.Errorf("second reset: %v, %v; want no events", evs, err)
	}
}

func testAckedSeqPerStream(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	var reports []*hwhealv1.Report
	for i := uint64(1); i <= 5; i++ {
		reports = append(reports, obsReport(i, "diskstats", disk("sda"), at(int(i)), float64(i)))
	}
	res := apply(t, s, batch("n1", at(6), reports...))
	if res[0].AckedSeq != 5 || res[0].Duplicates != 0 {
		t.Errorf("batch result %+v, want acked 5, no duplicates", res[0])
	}
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1"}).AckedSeq; got != 5 {
		t.Errorf("hello on s1: acked %d, want 5", got)
	}
	// A wiped state directory makes a new stream id: its numbers restart
	// and are not duplicates.
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s2"}).AckedSeq; got != 0 {
		t.Errorf("hello on new stream s2: acked %d, want 0", got)
	}
	b := batch("n1", at(10), faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(9)),
		faultReport(2, "disk.io_error", sevWarning, disk("sda"), at(9)), faultReport(3, "disk.io_error", sevWarning, disk("sda"), at(9)))
	b.StreamID = "s2"
	res = apply(t, s, b)
	if res[0].AckedSeq != 3 || res[0].Duplicates != 0 {
		t.Errorf("s2 batch result %+v, want acked 3, no duplicates", res[0])
	}
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1"}).AckedSeq; got != 5 {
		t.Errorf("hello on s1 after s2 writes: acked %d, want 5", got)
	}
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s2"}).AckedSeq; got != 3 {
		t.Errorf("hello on s2: acked %d, want 3", got)
	}
	// The same stream id on another node is another stream.
	register(t, s, "n2", nil)
	if got := hello(t, s, store.Hello{Node: "n2", BootID: "b1", StreamID: "s2"}).AckedSeq; got != 0 {
		t.Errorf("hello of n2 on s2: acked %d, want 0", got)
	}
}

func testDuplicatesDroppedOnReplay(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	var reports []*hwhealv1.Report
	for i := uint64(1); i <= 10; i++ {
		if i%2 == 0 {
			reports = append(reports, faultReport(i, "disk.io_error", sevWarning, disk("sda"), at(int(i))))
		} else {
			reports = append(reports, obsReport(i, "diskstats", disk("sda"), at(int(i)), float64(i)))
		}
	}
	res := apply(t, s, batch("n1", at(20), reports...))
	if res[0].AckedSeq != 10 || res[0].Duplicates != 0 {
		t.Fatalf("first apply: %+v, want acked 10, no duplicates", res[0])
	}
	eventsBefore := allEvents(t, s)

	res = apply(t, s, batch("n1", at(30), reports...))
	if res[0].AckedSeq != 10 || res[0].Duplicates != 10 || len(res[0].Events) != 0 {
		t.Errorf("replay: acked %d, duplicates %d, events %v; want 10, 10, none", res[0].AckedSeq, res[0].Duplicates, eventTypes(res[0].Events))
	}
	faults := faultsOf(t, s, "n1")
	if len(faults) != 1 || faults[0].GetCount() != 5 {
		t.Fatalf("faults after replay = %v, want one with count 5", faults)
	}
	wantTime(t, "fault last_seen after replay", faults[0].GetLastSeen(), at(10))
	if got := allEvents(t, s); len(got) != len(eventsBefore) {
		t.Errorf("replay recorded %d events", len(got)-len(eventsBefore))
	}
	obs, err := s.LatestObservations(ctxOf(t), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].GetSamples()[0].GetValue() != 9 {
		t.Errorf("latest observations after replay = %v, want sda = 9", obs)
	}

	// A partial overlap: 8..10 are duplicates, 11 and 12 are new.
	overlap := append(slices.Clone(reports[7:]),
		faultReport(11, "disk.io_error", sevWarning, disk("sda"), at(11)),
		obsReport(12, "diskstats", disk("sda"), at(12), 12))
	res = apply(t, s, batch("n1", at(40), overlap...))
	if res[0].AckedSeq != 12 || res[0].Duplicates != 3 {
		t.Errorf("overlap: acked %d, duplicates %d; want 12, 3", res[0].AckedSeq, res[0].Duplicates)
	}
	if got := faultsOf(t, s, "n1"); len(got) != 1 || got[0].GetCount() != 6 {
		t.Errorf("faults after overlap = %v, want one with count 6", got)
	}

	// Out-of-order reports inside a batch are duplicates too.
	res = apply(t, s, batch("n1", at(50),
		faultReport(14, "disk.io_error", sevWarning, disk("sda"), at(14)),
		faultReport(13, "disk.io_error", sevWarning, disk("sda"), at(13))))
	if res[0].AckedSeq != 14 || res[0].Duplicates != 1 {
		t.Errorf("out of order: acked %d, duplicates %d; want 14, 1", res[0].AckedSeq, res[0].Duplicates)
	}
}

// kmsgReport is a fault raised from kernel log record (boot, kseq),
// delivered as stream sequence number seq.
func kmsgReport(seq uint64, boot string, kseq uint64, class string, part *hwhealv1.Part, when time.Time) *hwhealv1.Report {
	r := faultReport(seq, class, sevWarning, part, when)
	kl := r.GetFault().GetEvidence().GetKernelLog()
	kl.BootId, kl.Sequence = boot, kseq
	return r
}

// streamBatch is batch on another stream than "s1".
func streamBatch(node, stream string, received time.Time, reports ...*hwhealv1.Report) store.Batch {
	b := batch(node, received, reports...)
	b.StreamID = stream
	return b
}

func testKernelRecordCountedOnce(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	const (
		io    = "disk.io_error"
		bootA = "boot-a"
		bootB = "boot-b"
	)
	// check applies batches and compares each result with want (acked
	// sequence, duplicates, event types), then the count of the fault of
	// class on part of n1.
	type result struct {
		acked  uint64
		dups   int
		events []hwhealv1.EventType
	}
	check := func(what string, want []result, class string, part *hwhealv1.Part, wantCount uint64, batches ...store.Batch) {
		t.Helper()
		res := apply(t, s, batches...)
		for i, r := range res {
			if r.AckedSeq != want[i].acked || r.Duplicates != want[i].dups {
				t.Errorf("%s: batch %d: acked %d, duplicates %d; want %d, %d", what, i, r.AckedSeq, r.Duplicates, want[i].acked, want[i].dups)
			}
			wantTypes(t, fmt.Sprintf("%s: batch %d", what, i), r.Events, want[i].events...)
		}
		var got []uint64
		for _, f := range allFaults(t, s, store.FaultFilter{Node: "n1", FaultClass: class}, 0) {
			if proto.Equal(f.GetPart(), part) {
				got = append(got, f.GetCount())
			}
		}
		if len(got) != 1 || got[0] != wantCount {
			t.Errorf("%s: counts of %s on %s %v, want one fault counted %d", what, class, part.GetName(), got, wantCount)
		}
	}
	none := []hwhealv1.EventType(nil)

	check("first delivery", []result{{1, 0, []hwhealv1.EventType{evFaultOpened, evHealthChanged}}}, io, disk("sda"), 1,
		batch("n1", at(10), kmsgReport(1, bootA, 100, io, disk("sda"), at(1))))
	opened := getNode(t, s, "n1")
	eventsBefore := allEvents(t, s)
	faultBefore := faultsOf(t, s, "n1")[0]

	// The agent was killed after spooling the fault and before saving its
	// kmsg cursor: it reads record 100 again and sends it as seq 2, later.
	check("same record, same stream", []result{{2, 1, none}}, io, disk("sda"), 1,
		batch("n1", at(20), kmsgReport(2, bootA, 100, io, disk("sda"), at(2))))
	if got := allEvents(t, s); len(got) != len(eventsBefore) {
		t.Errorf("a dropped record recorded %d events", len(got)-len(eventsBefore))
	}
	// Nothing of the dropped report reached the fault, its time included.
	if got := faultsOf(t, s, "n1"); len(got) != 1 || !proto.Equal(got[0], faultBefore) {
		t.Errorf("fault after a dropped record:\n%v\nwant unchanged\n%v", got, faultBefore)
	}
	n := getNode(t, s, "n1")
	if n.GetHealth() != opened.GetHealth() || n.GetOpenFaults() != 1 || !proto.Equal(n.GetHealthChanged(), opened.GetHealthChanged()) {
		t.Errorf("node after a dropped record %v, want health %v since %v, 1 open fault", n, opened.GetHealth(), opened.GetHealthChanged().AsTime())
	}
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(20)}).AckedSeq; got != 2 {
		t.Errorf("hello on s1 after a dropped record: acked %d, want 2 (the duplicate is acknowledged)", got)
	}

	// Reinstalled with a wiped state directory: a new stream id whose
	// numbers restart, re-reading the whole ring. Record 100 was counted
	// and 90, below it in the same boot, was read before it: both are
	// dropped. 101 is new; it comes twice in the batch and counts once.
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s2", Time: at(30)})
	check("new stream re-reads the ring", []result{{4, 3, []hwhealv1.EventType{evFaultUpdated}}}, io, disk("sda"), 2,
		streamBatch("n1", "s2", at(30),
			kmsgReport(1, bootA, 90, io, disk("sda"), at(3)),
			kmsgReport(2, bootA, 100, io, disk("sda"), at(3)),
			kmsgReport(3, bootA, 101, io, disk("sda"), at(4)),
			kmsgReport(4, bootA, 101, io, disk("sda"), at(4))))
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s2", Time: at(30)}).AckedSeq; got != 4 {
		t.Errorf("hello on s2: acked %d, want 4", got)
	}

	// A later record of the same boot counts, in a batch after.
	check("later record", []result{{5, 0, []hwhealv1.EventType{evFaultUpdated}}}, io, disk("sda"), 3,
		streamBatch("n1", "s2", at(40), kmsgReport(5, bootA, 150, io, disk("sda"), at(5))))

	// After a reboot the kernel numbers records from 0 again: a lower
	// sequence of the new boot counts, and is then the mark.
	check("new boot, lower sequence", []result{{7, 1, []hwhealv1.EventType{evFaultUpdated}}}, io, disk("sda"), 4,
		streamBatch("n1", "s2", at(50),
			kmsgReport(6, bootB, 5, io, disk("sda"), at(6)),
			kmsgReport(7, bootB, 5, io, disk("sda"), at(6))))

	// A report without a boot id (a saved log, a fault not from the kernel
	// log) names no record: it counts every time, and leaves the mark.
	noBoot := func(seq uint64) *hwhealv1.Report { return kmsgReport(seq, "", 5, io, disk("sda"), at(7)) }
	noEvidence := faultReport(10, io, sevWarning, disk("sda"), at(7))
	noEvidence.GetFault().Evidence = nil
	check("no boot id", []result{{11, 1, []hwhealv1.EventType{evFaultUpdated}}}, io, disk("sda"), 7,
		streamBatch("n1", "s2", at(60), noBoot(8), noBoot(9), noEvidence,
			kmsgReport(11, bootB, 5, io, disk("sda"), at(7))))

	// One record may raise faults of several classes and parts: each is
	// its own fault and counts it once.
	check("same record, other class", []result{{13, 1, []hwhealv1.EventType{evFaultOpened}}}, "disk.media", disk("sda"), 1,
		streamBatch("n1", "s2", at(70),
			kmsgReport(12, bootB, 5, "disk.media", disk("sda"), at(8)),
			kmsgReport(13, bootB, 5, "disk.media", disk("sda"), at(8))))
	check("same record, other part", []result{{14, 0, []hwhealv1.EventType{evFaultOpened}}}, io, disk("sdb"), 1,
		streamBatch("n1", "s2", at(70), kmsgReport(14, bootB, 5, io, disk("sdb"), at(8))))
	check("sda unchanged", []result{{15, 1, none}}, io, disk("sda"), 7,
		streamBatch("n1", "s2", at(70), kmsgReport(15, bootB, 4, io, disk("sda"), at(8))))

	// Records name themselves within a node only.
	if res := apply(t, s, batch("n2", at(80), kmsgReport(1, bootB, 5, io, disk("sda"), at(8)))); res[0].Duplicates != 0 ||
		faultsOf(t, s, "n2")[0].GetCount() != 1 {
		t.Errorf("n2, same boot and sequence as n1's: %+v, want counted", res[0])
	}

	// Two streams of the node in one call: the second batch sees the
	// record the first merged.
	check("two streams, one call", []result{{3, 0, []hwhealv1.EventType{evFaultUpdated}}, {16, 1, none}}, io, disk("sda"), 8,
		batch("n1", at(90), kmsgReport(3, bootB, 6, io, disk("sda"), at(9))),
		streamBatch("n1", "s2", at(90), kmsgReport(16, bootB, 6, io, disk("sda"), at(9))))

	// Sequence numbers are compared over the whole uint64 range.
	const big = uint64(1)<<63 + 5
	check("sequence above int64", []result{{19, 2, []hwhealv1.EventType{evFaultUpdated}}}, io, disk("sda"), 9,
		streamBatch("n1", "s2", at(95),
			kmsgReport(17, bootB, big, io, disk("sda"), at(9)),
			kmsgReport(18, bootB, big, io, disk("sda"), at(9)),
			kmsgReport(19, bootB, big-1, io, disk("sda"), at(9))))
	check("sequence above int64, stored", []result{{21, 1, []hwhealv1.EventType{evFaultUpdated}}}, io, disk("sda"), 10,
		streamBatch("n1", "s2", at(96),
			kmsgReport(20, bootB, big, io, disk("sda"), at(9)),
			kmsgReport(21, bootB, big+1, io, disk("sda"), at(9))))
}

func testFaultMergesSamePart(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	res := apply(t, s, batch("n1", at(100),
		faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(12)),
		faultReport(2, "disk.io_error", sevWarning, disk("sda"), at(10)), // earlier than the first: widens first_seen
		faultReport(3, "disk.io_error", sevWarning, disk("sda"), at(15)),
	))
	wantTypes(t, "first batch", res[0].Events, evFaultOpened, evHealthChanged)
	opened := res[0].Events[0].GetFault()
	if opened.GetCount() != 3 || opened.GetId() == 0 {
		t.Errorf("opened fault = %v, want count 3 and an id", opened)
	}

	// The serial, unknown in the first reports, does not make another part.
	withSerial := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda", Serial: "WD-123", Model: "WD Red"}
	r4 := faultReport(4, "disk.io_error", sevWarning, withSerial, at(20))
	r5 := faultReport(5, "disk.io_error", sevWarning, withSerial, at(18))
	res = apply(t, s, batch("n1", at(200), r4, r5))
	wantTypes(t, "second batch", res[0].Events, evFaultUpdated)
	updated := res[0].Events[0].GetFault()
	if updated.GetId() != opened.GetId() || updated.GetCount() != 5 {
		t.Errorf("updated fault id %d count %d, want id %d count 5", updated.GetId(), updated.GetCount(), opened.GetId())
	}

	faults := faultsOf(t, s, "n1")
	if len(faults) != 1 {
		t.Fatalf("%d faults, want 1: %v", len(faults), faults)
	}
	f := faults[0]
	if f.GetId() != opened.GetId() || f.GetCount() != 5 || f.GetState() != hwhealv1.FaultState_FAULT_STATE_OPEN {
		t.Errorf("fault = %v", f)
	}
	if f.GetNode() != "n1" || f.GetFaultClass() != "disk.io_error" || f.GetRule() != "disk.io_error.rule" {
		t.Errorf("fault identity = %v", f)
	}
	wantTime(t, "first_seen", f.GetFirstSeen(), at(10))
	wantTime(t, "last_seen", f.GetLastSeen(), at(20))
	if f.GetResolved() != nil {
		t.Errorf("open fault has resolved time %v", f.GetResolved())
	}
	// The latest report (by sequence) gives the part, summary and evidence.
	if !proto.Equal(f.GetPart(), withSerial) {
		t.Errorf("part = %v, want %v", f.GetPart(), withSerial)
	}
	if f.GetSummary() != r5.GetFault().GetSummary() || !proto.Equal(f.GetEvidence(), r5.GetFault().GetEvidence()) {
		t.Errorf("summary %q evidence %v; want those of the last report", f.GetSummary(), f.GetEvidence())
	}
	if !proto.Equal(f, updated) {
		t.Errorf("listed fault differs from the event's:\n%v\n%v", f, updated)
	}
	if n := getNode(t, s, "n1"); n.GetOpenFaults() != 1 {
		t.Errorf("open faults %d, want 1", n.GetOpenFaults())
	}

	// A report that says nothing of the evidence or summary keeps the
	// latest ones that did; the part it names replaces the stored one.
	bare := faultReport(6, "disk.io_error", sevWarning, disk("sda"), at(25))
	bare.GetFault().Evidence, bare.GetFault().Summary = nil, ""
	res = apply(t, s, batch("n1", at(300), bare))
	wantTypes(t, "bare report", res[0].Events, evFaultUpdated)
	for _, got := range []*hwhealv1.FaultRecord{res[0].Events[0].GetFault(), faultsOf(t, s, "n1")[0]} {
		if got.GetCount() != 6 || got.GetSummary() != r5.GetFault().GetSummary() || !proto.Equal(got.GetEvidence(), r5.GetFault().GetEvidence()) {
			t.Errorf("after a report without evidence: count %d summary %q evidence %v; want 6 and those of seq 5", got.GetCount(), got.GetSummary(), got.GetEvidence())
		}
		if !proto.Equal(got.GetPart(), disk("sda")) {
			t.Errorf("part %v, want the latest reported %v", got.GetPart(), disk("sda"))
		}
		wantTime(t, "last_seen", got.GetLastSeen(), at(25))
	}
}

func testFaultSeparatesParts(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	nic := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "sda"} // same name, other kind
	gpuByPCI := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_GPU, PciAddress: "0000:3b:00.0"}
	gpuByPCI2 := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_GPU, PciAddress: "0000:af:00.0"}
	apply(t, s,
		batch("n1", at(100),
			faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(1)),
			faultReport(2, "disk.io_error", sevWarning, disk("sdb"), at(2)),
			faultReport(3, "disk.media", sevWarning, disk("sda"), at(3)),
			faultReport(4, "disk.io_error", sevWarning, nic, at(4)),
			faultReport(5, "gpu.xid", sevWarning, gpuByPCI, at(5)),
			faultReport(6, "gpu.xid", sevWarning, gpuByPCI2, at(6)),
			faultReport(7, "gpu.xid", sevWarning, gpuByPCI, at(7)),
			faultReport(8, "disk.io_error", sevWarning, disk("sdb"), at(8)),
		),
		batch("n2", at(100), faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(1))),
	)
	counts := map[string]uint64{}
	for _, f := range faultsOf(t, s, "n1") {
		p := f.GetPart()
		counts[fmt.Sprintf("%s/%v/%s%s", f.GetFaultClass(), p.GetKind(), p.GetName(), p.GetPciAddress())] = f.GetCount()
	}
	want := map[string]uint64{
		"disk.io_error/PART_KIND_DISK/sda":   1,
		"disk.io_error/PART_KIND_DISK/sdb":   2,
		"disk.media/PART_KIND_DISK/sda":      1,
		"disk.io_error/PART_KIND_NIC/sda":    1,
		"gpu.xid/PART_KIND_GPU/0000:3b:00.0": 2,
		"gpu.xid/PART_KIND_GPU/0000:af:00.0": 1,
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("faults of n1 by class/kind/name: %v, want %v", counts, want)
	}
	if got := faultsOf(t, s, "n2"); len(got) != 1 || got[0].GetCount() != 1 {
		t.Errorf("faults of n2 = %v, want one with count 1", got)
	}
	if n := getNode(t, s, "n1"); n.GetOpenFaults() != 6 {
		t.Errorf("n1 open faults %d, want 6", n.GetOpenFaults())
	}
}

func testFaultTimeFallsBack(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	res := apply(t, s, batch("n1", at(77), faultReport(1, "kernel.lockup", sevCritical, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NODE}, time.Time{})))
	f := res[0].Events[0].GetFault()
	wantTime(t, "first_seen", f.GetFirstSeen(), at(77))
	wantTime(t, "last_seen", f.GetLastSeen(), at(77))
	wantTime(t, "event time", res[0].Events[0].GetTime(), at(77))
	wantTime(t, "node last_seen", getNode(t, s, "n1").GetLastSeen(), at(77))
}

func testSeverityDrivesHealth(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)

	res := apply(t, s, batch("n1", at(10), faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(9))))
	wantTypes(t, "warning", res[0].Events, evFaultOpened, evHealthChanged)
	hc := res[0].Events[1]
	if hc.GetOldHealth() != healthy || hc.GetNewHealth() != suspect || hc.GetNode() != "n1" {
		t.Errorf("health event %v, want n1 healthy -> suspect", hc)
	}
	n := getNode(t, s, "n1")
	if n.GetHealth() != suspect {
		t.Errorf("health %v, want suspect", n.GetHealth())
	}
	wantTime(t, "health_changed", n.GetHealthChanged(), at(10))

	res = apply(t, s, batch("n1", at(20), faultReport(2, "disk.media", sevWarning, disk("sdb"), at(19))))
	wantTypes(t, "second warning", res[0].Events, evFaultOpened)
	wantTime(t, "health_changed unchanged", getNode(t, s, "n1").GetHealthChanged(), at(10))

	res = apply(t, s, batch("n1", at(30), faultReport(3, "disk.io_error", sevCritical, disk("sda"), at(29))))
	wantTypes(t, "critical", res[0].Events, evFaultUpdated, evHealthChanged)
	if f := res[0].Events[0].GetFault(); f.GetSeverity() != sevCritical {
		t.Errorf("severity %v, want raised to critical", f.GetSeverity())
	}
	if hc := res[0].Events[1]; hc.GetOldHealth() != suspect || hc.GetNewHealth() != faulty {
		t.Errorf("health event %v, want suspect -> faulty", hc)
	}
	n = getNode(t, s, "n1")
	if n.GetHealth() != faulty || n.GetOpenFaults() != 2 {
		t.Errorf("health %v open %d, want faulty 2", n.GetHealth(), n.GetOpenFaults())
	}
	wantTime(t, "health_changed", n.GetHealthChanged(), at(30))

	// Severity never falls back on a lesser report.
	res = apply(t, s, batch("n1", at(40), faultReport(4, "disk.io_error", sevWarning, disk("sda"), at(39))))
	wantTypes(t, "lesser report", res[0].Events, evFaultUpdated)
	if f := res[0].Events[0].GetFault(); f.GetSeverity() != sevCritical {
		t.Errorf("severity %v after a warning report, want still critical", f.GetSeverity())
	}

	// Informational faults are listed but leave the node healthy.
	res = apply(t, s, batch("n2", at(10), faultReport(1, "nic.info", sevInfo, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(9))))
	wantTypes(t, "info", res[0].Events, evFaultOpened)
	n = getNode(t, s, "n2")
	if n.GetHealth() != healthy || n.GetOpenFaults() != 1 {
		t.Errorf("n2 health %v open %d, want healthy 1", n.GetHealth(), n.GetOpenFaults())
	}

	// Several faults in one batch: at most one health event.
	register(t, s, "n3", nil)
	res = apply(t, s, batch("n3", at(10),
		faultReport(1, "a", sevWarning, disk("sda"), at(1)),
		faultReport(2, "b", sevCritical, disk("sdb"), at(2)),
		faultReport(3, "a", sevWarning, disk("sda"), at(3)),
	))
	wantTypes(t, "mixed batch", res[0].Events, evFaultOpened, evFaultOpened, evHealthChanged)
	if hc := res[0].Events[2]; hc.GetOldHealth() != healthy || hc.GetNewHealth() != faulty {
		t.Errorf("health event %v, want healthy -> faulty", hc)
	}
}

func testObservationsLatest(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	eth0 := &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}
	apply(t, s, batch("n1", at(10),
		obsReport(1, "diskstats", disk("sda"), at(1), 1),
		obsReport(2, "diskstats", disk("sdb"), at(2), 2),
		obsReport(3, "smart", disk("sda"), at(3), 3),
		obsReport(4, "netdev", eth0, at(4), 4),
	))
	apply(t, s, batch("n1", at(20),
		obsReport(5, "diskstats", disk("sda"), at(5), 5),
		obsReport(6, "diskstats", disk("sda"), at(6), 6), // two in one batch: the later wins
	))
	obs, err := s.LatestObservations(ctxOf(t), "n1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, o := range obs {
		got[o.GetSource()+"/"+o.GetPart().GetName()] = o.GetSamples()[0].GetValue()
	}
	want := map[string]float64{"diskstats/sda": 6, "diskstats/sdb": 2, "smart/sda": 3, "netdev/eth0": 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("latest = %v, want %v", got, want)
	}
	for _, o := range obs {
		if o.GetSource() == "diskstats" && o.GetPart().GetName() == "sda" {
			wantTime(t, "latest time", o.GetTime(), at(6))
		}
	}
	if n := getNode(t, s, "n1"); n.GetOpenFaults() != 0 || n.GetHealth() != healthy {
		t.Errorf("observations changed health: %v", n)
	}
	obs, err = s.LatestObservations(ctxOf(t), "n2")
	if err != nil || len(obs) != 0 {
		t.Errorf("LatestObservations(n2) = %v, %v; want none, no error", obs, err)
	}
	if _, err := s.LatestObservations(ctxOf(t), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestObservations(unknown) error %v, want ErrNotFound", err)
	}
}

func testApplyUnknownNodeRollsBack(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	before := allEvents(t, s)
	_, err := s.Apply(ctxOf(t), []store.Batch{
		batch("n1", at(10), faultReport(1, "disk.io_error", sevCritical, disk("sda"), at(1))),
		batch("ghost", at(10), faultReport(1, "disk.io_error", sevCritical, disk("sda"), at(1))),
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Apply with an unknown node: error %v, want ErrNotFound", err)
	}
	// Nothing of the call is stored, not even the good batch.
	if got := faultsOf(t, s, "n1"); len(got) != 0 {
		t.Errorf("faults stored from a failed Apply: %v", got)
	}
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1"}).AckedSeq; got != 0 {
		t.Errorf("acked seq %d after a failed Apply, want 0", got)
	}
	if got := allEvents(t, s); len(got) != len(before)+1 { // +1: the hello just above
		t.Errorf("%d events after a failed Apply and a hello, want %d", len(got), len(before)+1)
	}
	if n := getNode(t, s, "n1"); n.GetHealth() != healthy {
		t.Errorf("health %v after a failed Apply", n.GetHealth())
	}
}

func testApplyEmptyAndCanceled(t *testing.T, s store.Store) {
	res, err := s.Apply(ctxOf(t), nil)
	if err != nil || len(res) != 0 {
		t.Errorf("Apply(nil) = %v, %v", res, err)
	}
	register(t, s, "n1", nil)
	ctx, cancel := context.WithCancel(ctxOf(t))
	cancel()
	if _, err := s.Apply(ctx, []store.Batch{batch("n1", at(1), faultReport(1, "x", sevCritical, disk("sda"), at(1)))}); err == nil {
		t.Error("Apply with a canceled context succeeded")
	}
	if got := faultsOf(t, s, "n1"); len(got) != 0 {
		t.Errorf("faults stored by a canceled Apply: %v", got)
	}
	// An empty batch still says the node is alive and keeps its stream.
	res = apply(t, s, batch("n1", at(99)))
	if res[0].AckedSeq != 0 || res[0].Duplicates != 0 {
		t.Errorf("empty batch result %+v", res[0])
	}
	wantTime(t, "last_seen", getNode(t, s, "n1").GetLastSeen(), at(99))
}

func testApplyManyBatchesOneCall(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	// Two batches of one stream in one call: the second sees the first's
	// acknowledgement, and each gets its own events.
	res := apply(t, s,
		batch("n1", at(10), faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(1)), faultReport(2, "disk.io_error", sevWarning, disk("sda"), at(2))),
		batch("n2", at(10), obsReport(1, "diskstats", disk("sda"), at(1), 1)),
		batch("n1", at(11), faultReport(2, "disk.io_error", sevWarning, disk("sda"), at(2)), faultReport(3, "disk.io_error", sevCritical, disk("sda"), at(3))),
	)
	if res[0].AckedSeq != 2 || res[1].AckedSeq != 1 || res[2].AckedSeq != 3 || res[2].Duplicates != 1 {
		t.Errorf("results %+v", res)
	}
	wantTypes(t, "batch 0", res[0].Events, evFaultOpened, evHealthChanged)
	wantTypes(t, "batch 1", res[1].Events)
	wantTypes(t, "batch 2", res[2].Events, evFaultUpdated, evHealthChanged)
	if f := res[2].Events[0].GetFault(); f.GetCount() != 3 || f.GetSeverity() != sevCritical {
		t.Errorf("fault after the second batch: %v", f)
	}
	var ids []uint64
	for _, r := range res {
		for _, e := range r.Events {
			ids = append(ids, e.GetId())
		}
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("event ids across batches %v, want increasing", ids)
	}
}

// fleet registers n nodes named node-000.. with labels rack=r(i%10) and
// zone=a|b, gives every 7th a critical fault and every 11th (not 7th) a
// warning, and returns the expected health of each node.
func fleet(t *testing.T, s store.Store, n int) map[string]hwhealv1.NodeHealth {
	want := map[string]hwhealv1.NodeHealth{}
	var batches []store.Batch
	for i := range n {
		name := fmt.Sprintf("node-%03d", i)
		register(t, s, name, map[string]string{"rack": fmt.Sprintf("r%d", i%10), "zone": string(rune('a' + i%2))})
		want[name] = healthy
		switch {
		case i%7 == 0:
			batches = append(batches, batch(name, at(1), faultReport(1, "memory.ue", sevCritical, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "DIMM_A1"}, at(1))))
			want[name] = faulty
		case i%11 == 0:
			batches = append(batches, batch(name, at(1), faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(1))))
			want[name] = suspect
		}
	}
	apply(t, s, batches...)
	return want
}

func testListNodesPagination(t *testing.T, s store.Store) {
	want := fleet(t, s, 250)
	// A second open fault of the same class must not list its node twice.
	apply(t, s, batch("node-011", at(2), faultReport(2, "disk.io_error", sevWarning, disk("sdb"), at(2))))
	names := func(keep func(name string, i int) bool) []string {
		var out []string
		for i := range 250 {
			name := fmt.Sprintf("node-%03d", i)
			if keep(name, i) {
				out = append(out, name)
			}
		}
		return out
	}

	first, next, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 100 || next == "" {
		t.Errorf("default page: %d nodes, next %q; want 100 and a token", len(first), next)
	}

	tests := []struct {
		name   string
		filter store.NodeFilter
		size   int
		want   []string
	}{
		{"all by 100", store.NodeFilter{}, 100, names(func(string, int) bool { return true })},
		{"all by 1", store.NodeFilter{}, 1, names(func(string, int) bool { return true })},
		{"all in one page", store.NodeFilter{}, 1000, names(func(string, int) bool { return true })},
		{"rack r3", store.NodeFilter{Labels: map[string]string{"rack": "r3"}}, 7, names(func(_ string, i int) bool { return i%10 == 3 })},
		{"rack r3 zone b", store.NodeFilter{Labels: map[string]string{"rack": "r3", "zone": "b"}}, 4, names(func(_ string, i int) bool { return i%10 == 3 && i%2 == 1 })},
		{"rack r3 zone a", store.NodeFilter{Labels: map[string]string{"rack": "r3", "zone": "a"}}, 4, nil},
		{"zone a", store.NodeFilter{Labels: map[string]string{"zone": "a"}}, 100, names(func(_ string, i int) bool { return i%2 == 0 })},
		{"no such label", store.NodeFilter{Labels: map[string]string{"rack": "r99"}}, 10, nil},
		{"faulty", store.NodeFilter{Health: []hwhealv1.NodeHealth{faulty}}, 10, names(func(n string, _ int) bool { return want[n] == faulty })},
		{"suspect or faulty", store.NodeFilter{Health: []hwhealv1.NodeHealth{suspect, faulty}}, 10, names(func(n string, _ int) bool { return want[n] != healthy })},
		{"healthy", store.NodeFilter{Health: []hwhealv1.NodeHealth{healthy}}, 100, names(func(n string, _ int) bool { return want[n] == healthy })},
		{"healthy or suspect, repeated", store.NodeFilter{Health: []hwhealv1.NodeHealth{suspect, healthy, suspect}}, 7, names(func(n string, _ int) bool { return want[n] != faulty })},
		{"all three states", store.NodeFilter{Health: []hwhealv1.NodeHealth{healthy, suspect, faulty}}, 33, names(func(string, int) bool { return true })},
		{"fault class and healthy", store.NodeFilter{FaultClass: "disk.io_error", Health: []hwhealv1.NodeHealth{healthy}}, 3, nil},
		{"fault class and suspect or faulty", store.NodeFilter{FaultClass: "disk.io_error", Health: []hwhealv1.NodeHealth{suspect, faulty}}, 2, names(func(n string, _ int) bool { return want[n] == suspect })},
		{"zone b faulty", store.NodeFilter{Labels: map[string]string{"zone": "b"}, Health: []hwhealv1.NodeHealth{faulty}}, 5, names(func(n string, i int) bool { return i%2 == 1 && want[n] == faulty })},
		{"fault class", store.NodeFilter{FaultClass: "disk.io_error"}, 3, names(func(n string, _ int) bool { return want[n] == suspect })},
		{"fault class and rack", store.NodeFilter{FaultClass: "memory.ue", Labels: map[string]string{"rack": "r0"}}, 3, names(func(_ string, i int) bool { return i%7 == 0 && i%10 == 0 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allNodes(t, s, tt.filter, tt.size)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %d nodes %v\nwant %d %v", len(got), got, len(tt.want), tt.want)
			}
		})
	}

	// Listed nodes carry their health, labels and open fault count.
	nodes, _, err := s.ListNodes(ctxOf(t), store.NodeFilter{Labels: map[string]string{"rack": "r0", "zone": "a"}}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		wantOpen := uint32(0)
		if want[n.GetName()] != healthy {
			wantOpen = 1
		}
		if n.GetHealth() != want[n.GetName()] || n.GetOpenFaults() != wantOpen || n.GetLabels()["rack"] != "r0" || !n.GetConnected() {
			t.Errorf("listed node %v: want health %v, %d open faults", n, want[n.GetName()], wantOpen)
		}
	}
}

func testListFaultsFilters(t *testing.T, s store.Store) {
	fleet(t, s, 60)
	// node-000 also gets an info fault and a second disk fault.
	apply(t, s, batch("node-000", at(5),
		faultReport(2, "nic.info", sevInfo, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "eth0"}, at(5)),
		faultReport(3, "disk.io_error", sevWarning, disk("sdb"), at(5))))

	all := allFaults(t, s, store.FaultFilter{}, 0)
	count := func(keep func(f *hwhealv1.FaultRecord) bool) int {
		n := 0
		for _, f := range all {
			if keep(f) {
				n++
			}
		}
		return n
	}
	// 0,7,...,56: 9 memory.ue; 11,22,33,44,55: 5 disk.io_error; node-000: 2 more.
	if len(all) != 16 {
		t.Fatalf("%d open faults, want 16", len(all))
	}
	tests := []struct {
		name   string
		filter store.FaultFilter
		size   int
		want   int
	}{
		{"open by 3", store.FaultFilter{}, 3, 16},
		{"explicit open", store.FaultFilter{State: hwhealv1.FaultState_FAULT_STATE_OPEN}, 5, 16},
		{"resolved", store.FaultFilter{State: hwhealv1.FaultState_FAULT_STATE_RESOLVED}, 5, 0},
		{"all states", store.FaultFilter{AllStates: true, State: hwhealv1.FaultState_FAULT_STATE_RESOLVED}, 5, 16},
		{"node", store.FaultFilter{Node: "node-000"}, 1, 3},
		{"class", store.FaultFilter{FaultClass: "memory.ue"}, 4, 9},
		{"min warning", store.FaultFilter{MinSeverity: sevWarning}, 4, 15},
		{"min critical", store.FaultFilter{MinSeverity: sevCritical}, 4, 9},
		{"rack r1", store.FaultFilter{Labels: map[string]string{"rack": "r1"}}, 2, count(func(f *hwhealv1.FaultRecord) bool {
			var i int
			fmt.Sscanf(f.GetNode(), "node-%d", &i)
			return i%10 == 1
		})},
		{"rack r0 zone a class disk", store.FaultFilter{Labels: map[string]string{"rack": "r0", "zone": "a"}, FaultClass: "disk.io_error"}, 2, 1},
		{"node and min critical", store.FaultFilter{Node: "node-000", MinSeverity: sevCritical}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allFaults(t, s, tt.filter, tt.size)
			if len(got) != tt.want {
				t.Errorf("%d faults, want %d: %v", len(got), tt.want, got)
			}
			for _, f := range got {
				if tt.filter.Node != "" && f.GetNode() != tt.filter.Node ||
					tt.filter.FaultClass != "" && f.GetFaultClass() != tt.filter.FaultClass ||
					f.GetSeverity() < tt.filter.MinSeverity {
					t.Errorf("fault %v does not match %+v", f, tt.filter)
				}
			}
		})
	}
}

func testBadPageToken(t *testing.T, s store.Store) {
	fleet(t, s, 30)
	_, nodeTok, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{Size: 2})
	if err != nil || nodeTok == "" {
		t.Fatalf("ListNodes: token %q, %v", nodeTok, err)
	}
	_, faultTok, err := s.ListFaults(ctxOf(t), store.FaultFilter{}, store.Page{Size: 2})
	if err != nil || faultTok == "" {
		t.Fatalf("ListFaults: token %q, %v", faultTok, err)
	}
	for _, tok := range []string{"garbage!!", "AAAA", "====", "\x00", "bm9kZQ", faultTok} {
		if _, _, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListNodes(token %q) error %v, want ErrBadPageToken", tok, err)
		}
	}
	for _, tok := range []string{"garbage!!", "AAAA", "====", "\x00", "bm9kZQ", nodeTok} {
		if _, _, err := s.ListFaults(ctxOf(t), store.FaultFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListFaults(token %q) error %v, want ErrBadPageToken", tok, err)
		}
	}
}

func testNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetNode(ctxOf(t), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetNode(unknown) error %v, want ErrNotFound", err)
	}
	if _, err := s.Disconnected(ctxOf(t), "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Disconnected(unknown) error %v, want ErrNotFound", err)
	}
	if _, err := s.Apply(ctxOf(t), []store.Batch{batch("nope", t0)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Apply(unknown node) error %v, want ErrNotFound", err)
	}
	// Nothing leaked from the failed calls.
	if nodes, _, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{}); err != nil || len(nodes) != 0 {
		t.Errorf("ListNodes = %v, %v; want empty", nodes, err)
	}
	if evs, err := s.EventsAfter(ctxOf(t), 0, 10); err != nil || len(evs) != 0 {
		t.Errorf("EventsAfter = %v, %v; want empty", evs, err)
	}
}

func testEventsAfter(t *testing.T, s store.Store) {
	var recorded []*hwhealv1.Event
	recorded = append(recorded, hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(1)}).Events...)
	recorded = append(recorded, hello(t, s, store.Hello{Node: "n2", BootID: "b1", StreamID: "s1", Time: at(2)}).Events...)
	for _, r := range apply(t, s,
		batch("n1", at(3), faultReport(1, "disk.io_error", sevWarning, disk("sda"), at(3))),
		batch("n2", at(3), faultReport(1, "memory.ue", sevCritical, disk("sda"), at(3))),
	) {
		recorded = append(recorded, r.Events...)
	}
	recorded = append(recorded, hello(t, s, store.Hello{Node: "n1", BootID: "b2", StreamID: "s1", Time: at(4)}).Events...)
	ev, err := s.Disconnected(ctxOf(t), "n2", at(5))
	if err != nil {
		t.Fatal(err)
	}
	recorded = append(recorded, ev)

	got := allEvents(t, s)
	if len(got) != len(recorded) {
		t.Fatalf("EventsAfter returned %d events, the calls returned %d", len(got), len(recorded))
	}
	for i := range got {
		if !proto.Equal(got[i], recorded[i]) {
			t.Errorf("event %d:\nstored   %v\nreturned %v", i, got[i], recorded[i])
		}
		if i > 0 && got[i].GetId() <= got[i-1].GetId() {
			t.Errorf("event %d: id %d after %d", i, got[i].GetId(), got[i-1].GetId())
		}
	}
	wantTypes(t, "all events", got,
		evRegistered, evConnected, evRegistered, evConnected,
		evFaultOpened, evHealthChanged, evFaultOpened, evHealthChanged,
		evRebooted, evConnected, evDisconnected)

	mid := got[3].GetId()
	some, err := s.EventsAfter(ctxOf(t), mid, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 2 || some[0].GetId() != got[4].GetId() || some[1].GetId() != got[5].GetId() {
		t.Errorf("EventsAfter(%d, 2) = %v, want events 4 and 5", mid, some)
	}
	if rest, err := s.EventsAfter(ctxOf(t), got[len(got)-1].GetId(), 10); err != nil || len(rest) != 0 {
		t.Errorf("EventsAfter(last) = %v, %v; want none", rest, err)
	}
	if def, err := s.EventsAfter(ctxOf(t), 0, 0); err != nil || len(def) != len(got) {
		t.Errorf("EventsAfter(0, 0) = %d events, %v; want the default limit to return all %d", len(def), err, len(got))
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const (
		writers  = 6
		nodesPer = 5
		rounds   = 20
		readers  = 4
	)
	for w := range writers {
		for n := range nodesPer {
			register(t, s, fmt.Sprintf("w%d-n%d", w, n), map[string]string{"writer": fmt.Sprint(w)})
		}
	}
	ctx := ctxOf(t)
	done := make(chan struct{})
	var wg, rwg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				var batches []store.Batch
				for n := range nodesPer {
					seq := uint64(2*r + 1)
					batches = append(batches, batch(fmt.Sprintf("w%d-n%d", w, n), at(r),
						faultReport(seq, "disk.io_error", sevWarning, disk("sda"), at(r)),
						obsReport(seq+1, "diskstats", disk("sda"), at(r), float64(r))))
				}
				if _, err := s.Apply(ctx, batches); err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, r, err)
					return
				}
				if r%5 == 0 {
					if _, err := s.Hello(ctx, store.Hello{Node: fmt.Sprintf("w%d-n0", w), BootID: "b1", StreamID: "s1",
						Labels: map[string]string{"writer": fmt.Sprint(w)}, Time: at(r)}); err != nil {
						errs <- fmt.Errorf("writer %d hello: %w", w, err)
						return
					}
				}
			}
		})
	}
	for r := range readers {
		rwg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, _, err := s.ListNodes(ctx, store.NodeFilter{Labels: map[string]string{"writer": fmt.Sprint(r)}}, store.Page{Size: 3}); err != nil {
					errs <- fmt.Errorf("reader %d: ListNodes: %w", r, err)
					return
				}
				if _, _, err := s.ListFaults(ctx, store.FaultFilter{MinSeverity: sevWarning}, store.Page{Size: 10}); err != nil {
					errs <- fmt.Errorf("reader %d: ListFaults: %w", r, err)
					return
				}
				if _, err := s.EventsAfter(ctx, 0, 50); err != nil {
					errs <- fmt.Errorf("reader %d: EventsAfter: %w", r, err)
					return
				}
				if _, err := s.GetNode(ctx, fmt.Sprintf("w%d-n1", r)); err != nil {
					errs <- fmt.Errorf("reader %d: GetNode: %w", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	faults := allFaults(t, s, store.FaultFilter{}, 1000)
	if len(faults) != writers*nodesPer {
		t.Errorf("%d faults, want %d", len(faults), writers*nodesPer)
	}
	for _, f := range faults {
		if f.GetCount() != rounds {
			t.Errorf("fault of %s: count %d, want %d", f.GetNode(), f.GetCount(), rounds)
		}
	}
	// Every write's events are there once, in id order.
	evs := allEvents(t, s)
	opened := 0
	for _, e := range evs {
		if e.GetType() == evFaultOpened {
			opened++
		}
	}
	if opened != writers*nodesPer {
		t.Errorf("%d FAULT_OPENED events, want %d", opened, writers*nodesPer)
	}
}

func testSurvivesReopen(t *testing.T, reopen func(t *testing.T) store.Store) {
	s := reopen(t)
	inv := &hwhealv1.Inventory{SystemSerial: "S1"}
	hello(t, s, store.Hello{Node: "n1", Labels: map[string]string{"rack": "r1"}, BootID: "b1", StreamID: "s1", Inventory: inv, Time: at(1)})
	apply(t, s, batch("n1", at(10),
		faultReport(1, "disk.io_error", sevCritical, disk("sda"), at(2)),
		obsReport(2, "diskstats", disk("sda"), at(3), 42)))
	lastBefore := allEvents(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	n := getNode(t, s, "n1")
	if n.GetHealth() != faulty || n.GetOpenFaults() != 1 || n.GetLabels()["rack"] != "r1" || !proto.Equal(n.GetInventory(), inv) {
		t.Errorf("node after reopen = %v", n)
	}
	if f := faultsOf(t, s, "n1"); len(f) != 1 || f[0].GetSeverity() != sevCritical {
		t.Errorf("faults after reopen = %v", f)
	}
	if obs, err := s.LatestObservations(ctxOf(t), "n1"); err != nil || len(obs) != 1 || obs[0].GetSamples()[0].GetValue() != 42 {
		t.Errorf("observations after reopen = %v, %v", obs, err)
	}
	evs := allEvents(t, s)
	if len(evs) != len(lastBefore) {
		t.Errorf("%d events after reopen, want %d", len(evs), len(lastBefore))
	}
	res := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(20)})
	if res.AckedSeq != 2 {
		t.Errorf("acked seq after reopen %d, want 2", res.AckedSeq)
	}
	if len(lastBefore) > 0 && res.Events[0].GetId() <= lastBefore[len(lastBefore)-1].GetId() {
		t.Errorf("event id %d after reopen, not above %d", res.Events[0].GetId(), lastBefore[len(lastBefore)-1].GetId())
	}
	// A replay after the restart is still recognised.
	r := apply(t, s, batch("n1", at(30), faultReport(1, "disk.io_error", sevCritical, disk("sda"), at(2))))
	if r[0].Duplicates != 1 {
		t.Errorf("replay after reopen: %d duplicates, want 1", r[0].Duplicates)
	}
	// So is a kernel record counted before it, under a new stream.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = reopen(t)
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s2", Time: at(40)})
	r = apply(t, s, streamBatch("n1", "s2", at(40), kmsgReport(1, "b1", 7, "disk.io_error", disk("sda"), at(2))))
	if r[0].Duplicates != 0 {
		t.Errorf("first delivery of a kernel record: %d duplicates, want 0", r[0].Duplicates)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = reopen(t)
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s3", Time: at(50)})
	r = apply(t, s, streamBatch("n1", "s3", at(50), kmsgReport(1, "b1", 7, "disk.io_error", disk("sda"), at(2))))
	if r[0].Duplicates != 1 || r[0].AckedSeq != 1 {
		t.Errorf("kernel record again after reopen: %+v, want 1 duplicate, acked 1", r[0])
	}
	if f := faultsOf(t, s, "n1"); len(f) != 1 || f[0].GetCount() != 2 {
		t.Errorf("faults after the kernel record twice = %v, want one counted 2", f)
	}
}
