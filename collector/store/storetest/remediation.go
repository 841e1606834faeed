package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/pkg/auditchain"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Remediation: actions and their state machine, agents' updates in Apply,
// node service states, the remediation switch, escalations and the audit
// log's hash chain.

const (
	evActionChanged  = hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED
	evServiceChanged = hwhealv1.EventType_EVENT_TYPE_NODE_SERVICE_CHANGED
	evPaused         = hwhealv1.EventType_EVENT_TYPE_REMEDIATION_PAUSED
	evResumed        = hwhealv1.EventType_EVENT_TYPE_REMEDIATION_RESUMED
	evEscalated      = hwhealv1.EventType_EVENT_TYPE_REMEDIATION_ESCALATED

	outRunning   = hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING
	outSucceeded = hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED
	outFailed    = hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED
	outRefused   = hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED
)

// newAction is an action of rule r1 on node, created at created.
func newAction(id, node string, typ hwhealv1.ActionType, state hwhealv1.ActionState, created time.Time) *hwhealv1.Action {
	return &hwhealv1.Action{
		Id:          id,
		Node:        node,
		Type:        typ,
		State:       state,
		Reason:      "fault " + id,
		RequestedBy: "policy:r1",
		Rule:        "r1",
		FaultClass:  "disk.media",
		FaultIds:    []uint64{7},
		Approval:    hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO,
		Created:     timestamppb.New(created),
		Timeout:     durationpb.New(time.Hour),
	}
}

func createAction(t *testing.T, s store.Store, a *hwhealv1.Action) []*hwhealv1.Event {
	t.Helper()
	evs, err := s.CreateAction(ctxOf(t), a)
	if err != nil {
		t.Fatalf("CreateAction(%s): %v", a.GetId(), err)
	}
	return evs
}

func changeAction(t *testing.T, s store.Store, ch store.ActionChange) (*hwhealv1.Action, []*hwhealv1.Event) {
	t.Helper()
	a, evs, err := s.ChangeAction(ctxOf(t), ch)
	if err != nil {
		t.Fatalf("ChangeAction(%s to %v): %v", ch.ID, ch.To, err)
	}
	return a, evs
}

// approvedAction creates an APPROVED action and returns the events.
func approvedAction(t *testing.T, s store.Store, id, node string, typ hwhealv1.ActionType, created time.Time) {
	t.Helper()
	createAction(t, s, newAction(id, node, typ, action.Approved, created))
}

// dispatch moves an approved action to DISPATCHED at when.
func dispatch(t *testing.T, s store.Store, id string, when time.Time) (*hwhealv1.Action, []*hwhealv1.Event) {
	t.Helper()
	return changeAction(t, s, store.ActionChange{ID: id, From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched,
		Actor: "policy:r1", Reason: "within limits", Time: when})
}

func step(index uint32, name string, attempt uint32, exit int32) *hwhealv1.ActionStep {
	return &hwhealv1.ActionStep{
		Index: index, Name: name, Attempt: attempt, ExitCode: exit,
		Command:  []string{"/usr/lib/hwheal/" + name},
		Started:  timestamppb.New(t0),
		Duration: durationpb.New(1500 * time.Millisecond),
		Output:   "output of " + name,
	}
}

func updateReport(seq uint64, id string, outcome hwhealv1.ActionOutcome, msg string, steps ...*hwhealv1.ActionStep) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: &hwhealv1.ActionUpdate{
		ActionId: id, Outcome: outcome, Message: msg, Steps: steps, BootId: "b1", Time: timestamppb.New(t0),
	}}}
}

func getAction(t *testing.T, s store.Store, id string) *hwhealv1.Action {
	t.Helper()
	a, err := s.GetAction(ctxOf(t), id)
	if err != nil {
		t.Fatalf("GetAction(%s): %v", id, err)
	}
	return a
}

// allAudit pages through ListAudit with page size size and fails on a
// record out of id order.
func allAudit(t *testing.T, s store.Store, f store.AuditFilter, size int) []*hwhealv1.AuditRecord {
	t.Helper()
	var out []*hwhealv1.AuditRecord
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListAudit: pagination does not end")
		}
		recs, next, err := s.ListAudit(ctxOf(t), f, store.Page{Size: size, Token: tok})
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", f, err)
		}
		if size > 0 && len(recs) > size {
			t.Fatalf("ListAudit: page of %d records, size %d", len(recs), size)
		}
		if next != "" && len(recs) == 0 {
			t.Fatal("ListAudit: empty page with a next token")
		}
		for _, r := range recs {
			if len(out) > 0 && r.GetId() <= out[len(out)-1].GetId() {
				t.Fatalf("ListAudit: id %d after %d", r.GetId(), out[len(out)-1].GetId())
			}
			out = append(out, r)
		}
		if next == "" {
			return out
		}
		tok = next
	}
}

// verifyAudit checks the whole audit log with auditchain.Verifier, read in
// pages of 7, and returns it.
func verifyAudit(t *testing.T, s store.Store) []*hwhealv1.AuditRecord {
	t.Helper()
	recs := allAudit(t, s, store.AuditFilter{}, 7)
	var v auditchain.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			t.Fatalf("audit chain: %v", err)
		}
		if !json.Valid([]byte(r.GetDetail())) || !strings.HasPrefix(r.GetDetail(), "{") {
			t.Errorf("audit record %d: detail %q is not a JSON object", r.GetId(), r.GetDetail())
		}
	}
	if v.Count() != uint64(len(recs)) {
		t.Fatalf("verified %d records of %d", v.Count(), len(recs))
	}
	return recs
}

func auditKinds(recs []*hwhealv1.AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.GetKind()
	}
	return out
}

// detailOf decodes a record's detail.
func detailOf(t *testing.T, r *hwhealv1.AuditRecord) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.GetDetail()), &m); err != nil {
		t.Fatalf("audit record %d: detail %q: %v", r.GetId(), r.GetDetail(), err)
	}
	return m
}

func wantDetail(t *testing.T, r *hwhealv1.AuditRecord, want map[string]any) {
	t.Helper()
	d := detailOf(t, r)
	for k, v := range want {
		if fmt.Sprint(d[k]) != fmt.Sprint(v) {
			t.Errorf("audit record %d (%s): detail %s = %v, want %v (detail %s)", r.GetId(), r.GetKind(), k, d[k], v, r.GetDetail())
		}
	}
}

func stepNames(steps []*hwhealv1.ActionStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.GetName()
	}
	return out
}

func strPtr(s string) *string { return &s }

// testActionLifecycle follows an offline action from its proposal through
// a two-person approval, a schedule, its dispatch and its agent's updates
// to success: every state, field, event and audit record on the way.
func testActionLifecycle(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	a := newAction("a1", "n1", action.Offline, action.AwaitingApproval, at(10))
	a.RequestedBy = "alice"
	a.Approval = hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON
	a.OnExpiry = hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY
	a.ApprovalDeadline = timestamppb.New(at(3600))
	orig := proto.CloneOf(a)
	evs := createAction(t, s, a)
	if !proto.Equal(a, orig) {
		t.Errorf("CreateAction changed its argument: %v", a)
	}
	wantTypes(t, "create", evs, evActionChanged)
	wantStored(t, s, evs)
	wantTime(t, "create event time", evs[0].GetTime(), at(10))
	if evs[0].GetNode() != "n1" || evs[0].GetAction().GetState() != action.AwaitingApproval || evs[0].GetActor() != "alice" {
		t.Errorf("create event = %v", evs[0])
	}
	got := getAction(t, s, "a1")
	want := proto.CloneOf(orig)
	want.Updated = want.Created
	want.PlannedBootId, want.PlannedService = "b1", action.InService // filled from the node
	if !proto.Equal(got, want) {
		t.Errorf("stored action\n got %v\nwant %v", got, want)
	}

	// The first of two approvals leaves it awaiting approval.
	got, evs = changeAction(t, s, store.ActionChange{ID: "a1", From: []hwhealv1.ActionState{action.AwaitingApproval}, To: action.AwaitingApproval,
		Actor: "bob", Reason: "looks right", Time: at(20), Approval: &hwhealv1.ActionNote{Reason: "looks right"}})
	wantTypes(t, "first approval", evs, evActionChanged)
	if got.GetState() != action.AwaitingApproval || !slices.Equal(got.GetApprovedBy(), []string{"bob"}) || len(got.GetApprovals()) != 1 {
		t.Errorf("after the first approval: %v", got)
	}
	wantTime(t, "approval time", got.GetApprovals()[0].GetTime(), at(20))
	wantTime(t, "updated", got.GetUpdated(), at(20))
	// The second completes it, scheduled for later.
	notBefore := at(500)
	got, evs = changeAction(t, s, store.ActionChange{ID: "a1", From: []hwhealv1.ActionState{action.AwaitingApproval}, To: action.Approved,
		Actor: "carol", Reason: "second approver", Time: at(30), NotBefore: &notBefore,
		Approval: &hwhealv1.ActionNote{Actor: "carol", Time: timestamppb.New(at(29)), Reason: "ok"}})
	wantTypes(t, "second approval", evs, evActionChanged)
	if got.GetState() != action.Approved || !slices.Equal(got.GetApprovedBy(), []string{"bob", "carol"}) {
		t.Errorf("after the second approval: %v", got)
	}
	wantTime(t, "second approval time", got.GetApprovals()[1].GetTime(), at(29))
	wantTime(t, "not_before", got.GetNotBefore(), notBefore)
	// What it waits for: recorded once per text.
	_, evs = changeAction(t, s, store.ActionChange{ID: "a1", To: action.Approved, Actor: "policy:r1", Time: at(40), Waiting: strPtr("window weeknights")})
	wantTypes(t, "waiting", evs, evActionChanged)
	got, evs = changeAction(t, s, store.ActionChange{ID: "a1", To: action.Approved, Actor: "policy:r1", Time: at(50), Waiting: strPtr("window weeknights")})
	wantTypes(t, "the same waiting again", evs)
	if got.GetWaiting() != "window weeknights" {
		t.Errorf("waiting %q", got.GetWaiting())
	}
	wantTime(t, "updated after a change of nothing", got.GetUpdated(), at(40))

	// Dispatch: the node starts draining.
	got, evs = dispatch(t, s, "a1", at(600))
	wantTypes(t, "dispatch", evs, evActionChanged, evServiceChanged)
	wantStored(t, s, evs)
	if got.GetState() != action.Dispatched || got.GetWaiting() != "" || got.GetPlannedBootId() != "b1" || got.GetPlannedService() != action.InService {
		t.Errorf("dispatched action: %v", got)
	}
	wantTime(t, "dispatched", got.GetDispatched(), at(600))
	if ev := evs[1]; ev.GetNode() != "n1" || ev.GetOldService() != action.InService || ev.GetNewService() != action.Draining {
		t.Errorf("service event = %v", ev)
	}
	n := getNode(t, s, "n1")
	if n.GetServiceState() != action.Draining {
		t.Errorf("node service %v, want DRAINING", n.GetServiceState())
	}
	wantTime(t, "service_changed", n.GetServiceChanged(), at(600))

	// The agent's updates.
	res := apply(t, s, batch("n1", at(610), updateReport(1, "a1", outRunning, "started", step(0, "lb-weight-0", 1, 0), step(1, "wait-drain", 1, 0))))
	wantTypes(t, "running", res[0].Events, evActionChanged)
	wantStored(t, s, res[0].Events)
	if ea := res[0].Events[0].GetAction(); ea.GetState() != action.Running || !slices.Equal(stepNames(ea.GetSteps()), []string{"lb-weight-0", "wait-drain"}) {
		t.Errorf("running event action = %v", ea)
	}
	res = apply(t, s, batch("n1", at(620), updateReport(2, "a1", outRunning, "", step(2, "stop-service", 1, 0))))
	wantTypes(t, "steps only", res[0].Events, evActionChanged)
	if ea := res[0].Events[0].GetAction(); ea.GetState() != action.Running || !slices.Equal(stepNames(ea.GetSteps()), []string{"stop-service"}) {
		t.Errorf("steps-only event action = %v", ea)
	}
	res = apply(t, s, batch("n1", at(630), obsReport(3, "diskstats", disk("sda"), at(630), 1),
		updateReport(4, "a1", outSucceeded, "drained and out of service", step(3, "mark-out", 1, 0))))
	wantTypes(t, "succeeded", res[0].Events, evActionChanged, evServiceChanged)
	wantStored(t, s, res[0].Events)
	if res[0].AckedSeq != 4 {
		t.Errorf("acked %d, want 4", res[0].AckedSeq)
	}
	if ev := res[0].Events[1]; ev.GetOldService() != action.Draining || ev.GetNewService() != action.Off {
		t.Errorf("service event = %v", ev)
	}
	got = getAction(t, s, "a1")
	if got.GetState() != action.Succeeded || got.GetResult() != "drained and out of service" {
		t.Errorf("final action: %v", got)
	}
	wantTime(t, "finished", got.GetFinished(), at(630))
	wantTime(t, "updated", got.GetUpdated(), at(630))
	if names := stepNames(got.GetSteps()); !slices.Equal(names, []string{"lb-weight-0", "wait-drain", "stop-service", "mark-out"}) {
		t.Errorf("steps %v", names)
	}
	if !proto.Equal(got.GetSteps()[0], step(0, "lb-weight-0", 1, 0)) {
		t.Errorf("stored step %v, want it as reported", got.GetSteps()[0])
	}
	if n := getNode(t, s, "n1"); n.GetServiceState() != action.Off {
		t.Errorf("node service %v, want OFFLINE", n.GetServiceState())
	}

	recs := verifyAudit(t, s)
	mine := allAudit(t, s, store.AuditFilter{ActionID: "a1"}, 3)
	if len(recs) != len(mine) {
		t.Errorf("records of a1: %d of %d, want all", len(mine), len(recs))
	}
	wantKinds := []string{"action.created", "action.approval", "action.approved", "action.updated", "action.dispatched",
		"action.step", "action.step", "action.running", "action.step", "action.step", "action.succeeded"}
	if got := auditKinds(mine); !slices.Equal(got, wantKinds) {
		t.Fatalf("audit kinds\n got %q\nwant %q", got, wantKinds)
	}
	wantActors := []string{"alice", "bob", "carol", "policy:r1", "policy:r1", "agent:n1", "agent:n1", "agent:n1", "agent:n1", "agent:n1", "agent:n1"}
	for i, r := range mine {
		if r.GetActor() != wantActors[i] || r.GetNode() != "n1" || r.GetActionId() != "a1" {
			t.Errorf("record %d (%s): actor %q node %q action %q; want %q n1 a1", r.GetId(), r.GetKind(), r.GetActor(), r.GetNode(), r.GetActionId(), wantActors[i])
		}
	}
	wantTime(t, "created record time", mine[0].GetTime(), at(10))
	wantTime(t, "succeeded record time", mine[10].GetTime(), at(630))
	wantDetail(t, mine[0], map[string]any{"type": "offline", "state": "awaiting_approval", "approval": "two_person", "rule": "r1", "fault_ids": []any{7.0}})
	wantDetail(t, mine[1], map[string]any{"state": "awaiting_approval", "approver": "bob", "approvals": 1})
	wantDetail(t, mine[2], map[string]any{"from": "awaiting_approval", "to": "approved", "approver": "carol", "reason": "second approver"})
	wantDetail(t, mine[3], map[string]any{"waiting": "window weeknights"})
	wantDetail(t, mine[4], map[string]any{"from": "approved", "to": "dispatched", "service_from": "in_service", "service_to": "draining", "planned_boot_id": "b1"})
	wantDetail(t, mine[5], map[string]any{"index": 0, "name": "lb-weight-0", "attempt": 1, "exit_code": 0, "duration": "1.5s"})
	if strings.Contains(mine[5].GetDetail(), "output of") {
		t.Errorf("step record carries the step's output: %s", mine[5].GetDetail())
	}
	wantDetail(t, mine[10], map[string]any{"from": "running", "to": "succeeded", "message": "drained and out of service", "service_to": "offline"})

	// Listed actions leave their steps out; the event log has every event.
	list, _, err := s.ListActions(ctxOf(t), store.ActionFilter{Node: "n1"}, store.Page{})
	if err != nil || len(list) != 1 || len(list[0].GetSteps()) != 0 || list[0].GetState() != action.Succeeded {
		t.Errorf("ListActions = %v, %v; want a1 without its steps", list, err)
	}
}

func testActionCreateErrors(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	approvedAction(t, s, "a1", "n1", action.Reboot, at(1))
	before := len(verifyAudit(t, s))
	evsBefore := len(allEvents(t, s))
	if _, err := s.CreateAction(ctxOf(t), newAction("a1", "n1", action.Offline, action.Proposed, at(2))); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateAction of a taken id: %v, want ErrExists", err)
	}
	if _, err := s.CreateAction(ctxOf(t), newAction("a2", "ghost", action.Offline, action.Proposed, at(2))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateAction on an unknown node: %v, want ErrNotFound", err)
	}
	bad := map[string]func(a *hwhealv1.Action){
		"no id":            func(a *hwhealv1.Action) { a.Id = "" },
		"no requester":     func(a *hwhealv1.Action) { a.RequestedBy = "" },
		"no type":          func(a *hwhealv1.Action) { a.Type = hwhealv1.ActionType_ACTION_TYPE_UNSPECIFIED },
		"dispatched":       func(a *hwhealv1.Action) { a.State = action.Dispatched },
		"final":            func(a *hwhealv1.Action) { a.State = action.Succeeded },
		"no state":         func(a *hwhealv1.Action) { a.State = hwhealv1.ActionState_ACTION_STATE_UNSPECIFIED },
		"steps already":    func(a *hwhealv1.Action) { a.Steps = []*hwhealv1.ActionStep{step(0, "x", 1, 0)} },
		"no node":          func(a *hwhealv1.Action) { a.Node = "" },
		"unknown type 99":  func(a *hwhealv1.Action) { a.Type = 99 },
		"unknown state 99": func(a *hwhealv1.Action) { a.State = 99 },
	}
	for name, mod := range bad {
		a := newAction("a3", "n1", action.Offline, action.Proposed, at(2))
		mod(a)
		if _, err := s.CreateAction(ctxOf(t), a); err == nil {
			t.Errorf("CreateAction with %s succeeded", name)
		}
	}
	if _, err := s.GetAction(ctxOf(t), "a3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAction of a refused action: %v, want ErrNotFound", err)
	}
	if got := len(verifyAudit(t, s)); got != before {
		t.Errorf("%d audit records after refused creations, want %d", got, before)
	}
	if got := len(allEvents(t, s)); got != evsBefore {
		t.Errorf("%d events after refused creations, want %d", got, evsBefore)
	}
	// Unset times take the store's clock; an action planned from a given
	// boot keeps what the planner saw.
	a := newAction("a4", "n1", action.Reboot, action.Proposed, time.Time{})
	a.Created = nil
	a.PlannedBootId, a.PlannedService = "b0", action.Off
	evs := createAction(t, s, a)
	got := getAction(t, s, "a4")
	if got.GetCreated() == nil || !proto.Equal(got.GetCreated(), got.GetUpdated()) || !proto.Equal(got.GetCreated(), evs[0].GetTime()) {
		t.Errorf("created %v updated %v event time %v: want one time from the store's clock", got.GetCreated(), got.GetUpdated(), evs[0].GetTime())
	}
	if got.GetPlannedBootId() != "b0" || got.GetPlannedService() != action.Off {
		t.Errorf("planned %q %v, want as given", got.GetPlannedBootId(), got.GetPlannedService())
	}
}

func testActionConflicts(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	approvedAction(t, s, "a1", "n1", action.Reboot, at(1))
	before := len(verifyAudit(t, s))
	tests := []struct {
		name     string
		ch       store.ActionChange
		conflict bool // else another error
	}{
		{"from another state", store.ActionChange{ID: "a1", From: []hwhealv1.ActionState{action.AwaitingApproval}, To: action.Approved, Actor: "bob"}, true},
		{"a move the machine has not", store.ActionChange{ID: "a1", To: action.Running, Actor: "bob"}, true},
		{"a move from a final state", store.ActionChange{ID: "a1", To: action.Succeeded, Actor: "bob"}, true},
		{"a From that cannot reach To", store.ActionChange{ID: "a1", From: []hwhealv1.ActionState{action.Approved}, To: action.Running, Actor: "bob"}, false},
		{"no actor", store.ActionChange{ID: "a1", To: action.Cancelled}, false},
		{"no state", store.ActionChange{ID: "a1", Actor: "bob"}, false},
	}
	for _, tt := range tests {
		_, evs, err := s.ChangeAction(ctxOf(t), tt.ch)
		if err == nil || errors.Is(err, store.ErrConflict) != tt.conflict || len(evs) != 0 {
			t.Errorf("%s: %v, %v; want conflict %v", tt.name, evs, err, tt.conflict)
		}
	}
	if _, _, err := s.ChangeAction(ctxOf(t), store.ActionChange{ID: "nope", To: action.Cancelled, Actor: "bob"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ChangeAction of an unknown action: %v, want ErrNotFound", err)
	}
	if got := len(verifyAudit(t, s)); got != before {
		t.Errorf("%d audit records after refused changes, want %d", got, before)
	}
	if got := getAction(t, s, "a1"); got.GetState() != action.Approved {
		t.Errorf("state %v after refused changes", got.GetState())
	}

	// A cancellation: decision, result and finished; then nothing more.
	got, evs := changeAction(t, s, store.ActionChange{ID: "a1", To: action.Cancelled, Actor: "bob", Reason: "disk replaced", Time: at(9)})
	wantTypes(t, "cancel", evs, evActionChanged)
	if d := got.GetDecision(); d.GetActor() != "bob" || d.GetReason() != "disk replaced" || got.GetResult() != "disk replaced" {
		t.Errorf("cancelled action: %v", got)
	}
	wantTime(t, "decision time", got.GetDecision().GetTime(), at(9))
	wantTime(t, "finished", got.GetFinished(), at(9))
	for _, ch := range []store.ActionChange{
		{ID: "a1", To: action.Cancelled, Actor: "bob", Waiting: strPtr("x")},
		{ID: "a1", To: action.Cancelled, Actor: "bob", Approval: &hwhealv1.ActionNote{Actor: "carol"}},
		{ID: "a1", From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched, Actor: "policy:r1"},
	} {
		if _, _, err := s.ChangeAction(ctxOf(t), ch); !errors.Is(err, store.ErrConflict) {
			t.Errorf("change %+v of a cancelled action: %v, want ErrConflict", ch, err)
		}
	}

	// Decisions on each way an action ends by a person or a clock.
	for i, to := range []hwhealv1.ActionState{action.Denied, action.Expired} {
		id := fmt.Sprintf("w%d", i)
		createAction(t, s, newAction(id, "n1", action.Reboot, action.AwaitingApproval, at(1)))
		got, _ := changeAction(t, s, store.ActionChange{ID: id, To: to, Actor: "dave", Reason: "no", Time: at(5)})
		if got.GetDecision().GetActor() != "dave" || got.GetState() != to {
			t.Errorf("%v: %v", to, got)
		}
	}
	approvedAction(t, s, "slow", "n1", action.Offline, at(1))
	dispatch(t, s, "slow", at(2))
	got, evs = changeAction(t, s, store.ActionChange{ID: "slow", From: []hwhealv1.ActionState{action.Dispatched, action.Running}, To: action.TimedOut,
		Actor: "collector", Reason: "no final update within 1h0m0s", Time: at(3602)})
	wantTypes(t, "timed out", evs, evActionChanged) // DRAINING stays: no service change
	if got.GetDecision().GetActor() != "collector" || got.GetResult() != "no final update within 1h0m0s" {
		t.Errorf("timed out action: %v", got)
	}

	// Many dispatchers race for one approved action: exactly one wins.
	approvedAction(t, s, "race", "n1", action.Reboot, at(1))
	const racers = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		won, lost int
	)
	for range racers {
		wg.Go(func() {
			_, _, err := s.ChangeAction(ctxOf(t), store.ActionChange{ID: "race", From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched, Actor: "policy:r1"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrConflict):
				lost++
			default:
				t.Errorf("racing dispatch: %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || lost != racers-1 {
		t.Errorf("racing dispatches: %d won, %d conflicts; want 1, %d", won, lost, racers-1)
	}
	if got := auditKinds(allAudit(t, s, store.AuditFilter{ActionID: "race"}, 0)); !slices.Equal(got, []string{"action.created", "action.dispatched"}) {
		t.Errorf("records of the raced action: %q", got)
	}
	verifyAudit(t, s)
}

func testActionFieldChanges(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	approvedAction(t, s, "a1", "n1", action.Migrate, at(1))
	count := func() int { return len(verifyAudit(t, s)) }
	n0 := count()
	nb := at(100)
	tests := []struct {
		name   string
		ch     store.ActionChange
		record string // "" for none
		check  func(a *hwhealv1.Action) bool
	}{
		{"not before", store.ActionChange{NotBefore: &nb}, "action.updated", func(a *hwhealv1.Action) bool { return a.GetNotBefore().AsTime().Equal(nb) }},
		{"the same not before", store.ActionChange{NotBefore: &nb}, "", func(a *hwhealv1.Action) bool { return a.GetNotBefore() != nil }},
		{"waiting", store.ActionChange{Waiting: strPtr("limit: 5 of 5 nodes out of service")}, "action.updated", func(a *hwhealv1.Action) bool { return a.GetWaiting() != "" }},
		{"the same waiting", store.ActionChange{Waiting: strPtr("limit: 5 of 5 nodes out of service")}, "", nil},
		{"other waiting", store.ActionChange{Waiting: strPtr("freeze")}, "action.updated", func(a *hwhealv1.Action) bool { return a.GetWaiting() == "freeze" }},
		{"waiting cleared", store.ActionChange{Waiting: strPtr("")}, "action.updated", func(a *hwhealv1.Action) bool { return a.GetWaiting() == "" }},
		{"not before cleared", store.ActionChange{NotBefore: &time.Time{}}, "action.updated", func(a *hwhealv1.Action) bool { return a.GetNotBefore() == nil }},
		{"result", store.ActionChange{Result: strPtr("note")}, "action.updated", func(a *hwhealv1.Action) bool { return a.GetResult() == "note" }},
		{"nothing", store.ActionChange{}, "", nil},
		{"a third approval", store.ActionChange{Approval: &hwhealv1.ActionNote{Actor: "erin"}}, "action.approval", func(a *hwhealv1.Action) bool { return slices.Contains(a.GetApprovedBy(), "erin") }},
	}
	for i, tt := range tests {
		ch := tt.ch
		ch.ID, ch.To, ch.Actor, ch.Time = "a1", action.Approved, "policy:r1", at(10+i)
		got, evs := changeAction(t, s, ch)
		recs := verifyAudit(t, s)
		switch {
		case tt.record == "" && (len(evs) != 0 || len(recs) != n0):
			t.Errorf("%s: %d events, %d new records; want none", tt.name, len(evs), len(recs)-n0)
		case tt.record != "" && (len(evs) != 1 || len(recs) != n0+1 || recs[len(recs)-1].GetKind() != tt.record):
			t.Errorf("%s: %d events, records %q; want 1 event and one record %s", tt.name, len(evs), auditKinds(recs[n0:]), tt.record)
		}
		if tt.check != nil && !tt.check(got) {
			t.Errorf("%s: action %v", tt.name, got)
		}
		if tt.record != "" {
			wantTime(t, tt.name+": updated", got.GetUpdated(), at(10+i))
		}
		n0 = len(recs)
	}
	if got := getAction(t, s, "a1"); got.GetState() != action.Approved {
		t.Errorf("state %v after field changes", got.GetState())
	}
}

// testServiceStates runs an action of each type to each end and checks the
// node's service state at dispatch and at the end.
func testServiceStates(t *testing.T, s store.Store) {
	type end struct {
		outcome hwhealv1.ActionOutcome
		timeout bool // ended by ChangeAction TIMED_OUT instead
	}
	tests := []struct {
		name       string
		typ        hwhealv1.ActionType
		offline    bool // the node is OFFLINE before (an offline action ran)
		dryRun     bool // the action is a dry run
		agentDry   bool // the agent says it ran nothing
		end        end
		inFlight   hwhealv1.ServiceState
		final      hwhealv1.ServiceState
		svcChanges int // NODE_SERVICE_CHANGED events of this action
	}{
		{"offline succeeded", action.Offline, false, false, false, end{outcome: outSucceeded}, action.Draining, action.Off, 2},
		{"offline failed", action.Offline, false, false, false, end{outcome: outFailed}, action.Draining, action.Draining, 1},
		{"offline timed out", action.Offline, false, false, false, end{timeout: true}, action.Draining, action.Draining, 1},
		{"offline refused", action.Offline, false, false, false, end{outcome: outRefused}, action.Draining, action.InService, 2},
		{"reboot succeeded", action.Reboot, false, false, false, end{outcome: outSucceeded}, action.Rebooting, action.InService, 2},
		{"reboot failed", action.Reboot, false, false, false, end{outcome: outFailed}, action.Rebooting, action.InService, 2},
		{"reboot timed out", action.Reboot, false, false, false, end{timeout: true}, action.Rebooting, action.InService, 2},
		{"reboot of an offline node", action.Reboot, true, false, false, end{outcome: outSucceeded}, action.Rebooting, action.Off, 2},
		{"migrate succeeded", action.Migrate, false, false, false, end{outcome: outSucceeded}, action.Migrating, action.InService, 2},
		{"migrate failed", action.Migrate, false, false, false, end{outcome: outFailed}, action.Migrating, action.InService, 2},
		{"online of an offline node", action.Online, true, false, false, end{outcome: outSucceeded}, action.Off, action.InService, 1},
		{"online failed", action.Online, true, false, false, end{outcome: outFailed}, action.Off, action.Off, 0},
		{"dry run offline", action.Offline, false, true, false, end{outcome: outSucceeded}, action.InService, action.InService, 0},
		{"dry run reboot", action.Reboot, false, true, true, end{outcome: outSucceeded}, action.InService, action.InService, 0},
		{"agent in dry run", action.Offline, false, false, true, end{outcome: outSucceeded}, action.Draining, action.InService, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := fmt.Sprintf("svc-%d", i)
			register(t, s, node, nil)
			seq := uint64(0)
			report := func(id string, o hwhealv1.ActionOutcome, dry bool, when int) []*hwhealv1.Event {
				seq++
				r := updateReport(seq, id, o, "", step(uint32(seq), "s", 1, 0))
				r.GetActionUpdate().DryRun = dry
				return apply(t, s, batch(node, at(when), r))[0].Events
			}
			if tt.offline {
				approvedAction(t, s, node+"-off", node, action.Offline, at(1))
				dispatch(t, s, node+"-off", at(2))
				report(node+"-off", outSucceeded, false, 3)
				if got := getNode(t, s, node).GetServiceState(); got != action.Off {
					t.Fatalf("node %v after an offline action, want OFFLINE", got)
				}
			}
			id := node + "-a"
			a := newAction(id, node, tt.typ, action.Approved, at(10))
			a.DryRun = tt.dryRun
			createAction(t, s, a)
			_, evs := dispatch(t, s, id, at(20))
			svc := 0
			count := func(evs []*hwhealv1.Event) {
				for _, ev := range evs {
					if ev.GetType() == evServiceChanged {
						svc++
						if ev.GetNode() != node || ev.GetOldService() == ev.GetNewService() {
							t.Errorf("service event %v", ev)
						}
					}
				}
				wantStored(t, s, evs)
			}
			count(evs)
			if got := getNode(t, s, node).GetServiceState(); got != tt.inFlight {
				t.Errorf("dispatched: node %v, want %v", got, tt.inFlight)
			}
			if tt.end.outcome != outRefused { // a refusal comes instead of running
				count(report(id, outRunning, tt.agentDry, 30))
			}
			if tt.end.timeout {
				_, evs = changeAction(t, s, store.ActionChange{ID: id, To: action.TimedOut, Actor: "collector", Reason: "timeout", Time: at(40)})
				count(evs)
			} else {
				count(report(id, tt.end.outcome, tt.agentDry, 40))
			}
			n := getNode(t, s, node)
			if n.GetServiceState() != tt.final {
				t.Errorf("ended: node %v, want %v", n.GetServiceState(), tt.final)
			}
			if svc != tt.svcChanges {
				t.Errorf("%d NODE_SERVICE_CHANGED events, want %d", svc, tt.svcChanges)
			}
			if got := getAction(t, s, id); !action.IsFinal(got.GetState()) || got.GetDryRun() != (tt.dryRun || tt.agentDry) {
				t.Errorf("action %v dry run %v", got.GetState(), got.GetDryRun())
			}
			if listed := allNodes(t, s, store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{tt.final}}, 0); !slices.Contains(listed, node) {
				t.Errorf("node not listed by its service state %v: %v", tt.final, listed)
			}
		})
	}
	verifyAudit(t, s)
}

// testLateUnknownInvalidUpdates: updates that change nothing are recorded
// and dropped.
func testLateUnknownInvalidUpdates(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	approvedAction(t, s, "late", "n1", action.Reboot, at(1))
	dispatch(t, s, "late", at(2))
	changeAction(t, s, store.ActionChange{ID: "late", To: action.TimedOut, Actor: "collector", Reason: "timeout", Time: at(3)})
	approvedAction(t, s, "other", "n2", action.Reboot, at(1))
	dispatch(t, s, "other", at(2))
	approvedAction(t, s, "notsent", "n1", action.Offline, at(1))
	approvedAction(t, s, "sent", "n1", action.Migrate, at(1))
	dispatch(t, s, "sent", at(2))
	before := map[string]*hwhealv1.Action{}
	for _, id := range []string{"late", "other", "notsent", "sent"} {
		before[id] = getAction(t, s, id)
	}
	nodeBefore := getNode(t, s, "n2")
	n0 := len(verifyAudit(t, s))

	weird := updateReport(5, "sent", 99, "from a newer agent", step(0, "x", 1, 0))
	res := apply(t, s, batch("n1", at(10),
		updateReport(1, "late", outSucceeded, "rebooted: boot id b1 -> b2", step(0, "reboot", 1, 0)),
		updateReport(2, "nope", outRunning, ""),
		updateReport(3, "other", outSucceeded, "not mine", step(0, "x", 1, 0)),
		updateReport(4, "notsent", outRunning, "", step(0, "x", 1, 0)),
		weird))
	if len(res[0].Events) != 0 || res[0].AckedSeq != 5 || res[0].Duplicates != 0 {
		t.Errorf("batch result %+v, want no events, acked 5", res[0])
	}
	for id, a := range before {
		if got := getAction(t, s, id); !proto.Equal(got, a) {
			t.Errorf("action %s changed by a dropped update:\n got %v\nwant %v", id, got, a)
		}
	}
	if got := getNode(t, s, "n2"); got.GetServiceState() != nodeBefore.GetServiceState() {
		t.Errorf("n2 service %v, want %v", got.GetServiceState(), nodeBefore.GetServiceState())
	}
	recs := verifyAudit(t, s)[n0:]
	if got := auditKinds(recs); !slices.Equal(got, []string{"action.late_update", "action.unknown_update", "action.unknown_update", "action.invalid_update", "action.invalid_update"}) {
		t.Fatalf("records %q", got)
	}
	for i, id := range []string{"late", "nope", "other", "notsent", "sent"} {
		if r := recs[i]; r.GetActor() != "agent:n1" || r.GetNode() != "n1" || r.GetActionId() != id {
			t.Errorf("record %s: actor %q node %q action %q; want agent:n1 n1 %s", r.GetKind(), r.GetActor(), r.GetNode(), r.GetActionId(), id)
		}
		wantTime(t, "record time", recs[i].GetTime(), at(10))
	}
	wantDetail(t, recs[0], map[string]any{"state": "timed_out", "outcome": "succeeded", "message": "rebooted: boot id b1 -> b2", "steps": 1})
	wantDetail(t, recs[1], map[string]any{"why": "unknown action", "outcome": "running"})
	wantDetail(t, recs[2], map[string]any{"why": "action of node n2"})
	wantDetail(t, recs[3], map[string]any{"state": "approved", "outcome": "running"})
	wantDetail(t, recs[4], map[string]any{"state": "dispatched", "outcome": "99"})
}

// testUpdateNotAppliedTwice: an update replayed (the same sequence number
// in a later Apply or a later batch of the same Apply, or the same steps
// under a new stream id) changes nothing a second time.
func testUpdateNotAppliedTwice(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	approvedAction(t, s, "a1", "n1", action.Offline, at(1))
	dispatch(t, s, "a1", at(2))
	// A dry run, so that the two actions' service states do not mix.
	a2 := newAction("a2", "n1", action.Offline, action.Approved, at(1))
	a2.DryRun = true
	createAction(t, s, a2)
	dispatch(t, s, "a2", at(2))
	reports := []*hwhealv1.Report{
		updateReport(1, "a1", outRunning, "", step(0, "lb-weight-0", 1, 0)),
		updateReport(2, "a1", outSucceeded, "done", step(1, "mark-out", 1, 0)),
		updateReport(3, "a2", outRunning, "", step(0, "lb-weight-0", 1, 0)),
	}
	res := apply(t, s, batch("n1", at(10), reports...))
	if res[0].AckedSeq != 3 || len(res[0].Events) != 4 { // a1: running, succeeded (+ service); a2: running
		t.Fatalf("first delivery: %+v", res[0])
	}
	a1, a2 := getAction(t, s, "a1"), getAction(t, s, "a2")
	n0 := len(verifyAudit(t, s))
	// The hellos below record their own events.
	actionEvents := func() int {
		n := 0
		for _, ev := range allEvents(t, s) {
			if ev.GetType() == evActionChanged || ev.GetType() == evServiceChanged {
				n++
			}
		}
		return n
	}
	ev0 := actionEvents()
	same := func(what string) {
		t.Helper()
		if got := getAction(t, s, "a1"); !proto.Equal(got, a1) {
			t.Errorf("%s: a1 changed:\n got %v\nwant %v", what, got, a1)
		}
		if got := getAction(t, s, "a2"); !proto.Equal(got, a2) {
			t.Errorf("%s: a2 changed:\n got %v\nwant %v", what, got, a2)
		}
		if got := len(verifyAudit(t, s)); got != n0 {
			t.Errorf("%s: %d audit records, want %d", what, got, n0)
		}
		if got := actionEvents(); got != ev0 {
			t.Errorf("%s: %d events, want %d", what, got, ev0)
		}
	}
	// A replay after a reconnect: the same sequence numbers.
	res = apply(t, s, batch("n1", at(20), reports...))
	if res[0].Duplicates != 3 || len(res[0].Events) != 0 || res[0].AckedSeq != 3 {
		t.Errorf("replay: %+v, want 3 duplicates and no events", res[0])
	}
	same("replay")
	// Twice in one Apply.
	res = apply(t, s, batch("n1", at(30), reports[2]), batch("n1", at(30), reports[2]))
	if res[0].Duplicates != 1 || res[1].Duplicates != 1 {
		t.Errorf("replay twice in one Apply: %+v", res)
	}
	same("replay in one Apply")
	if got := hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(35)}).AckedSeq; got != 3 {
		t.Errorf("acked %d, want 3", got)
	}
	// Under a new stream id (an agent whose sequence space restarted but
	// who resends what it had spooled): the running action's step is
	// stored already and is not added again, the finished one is late.
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s2", Time: at(40)})
	res = apply(t, s, streamBatch("n1", "s2", at(40), updateReport(1, "a2", outRunning, "", step(0, "lb-weight-0", 1, 0))))
	if len(res[0].Events) != 0 {
		t.Errorf("the same step under a new stream: events %v", res[0].Events)
	}
	same("the same step under a new stream")
	res = apply(t, s, streamBatch("n1", "s2", at(41), updateReport(2, "a1", outSucceeded, "done", step(1, "mark-out", 1, 0))))
	if len(res[0].Events) != 0 {
		t.Errorf("a final update again under a new stream: events %v", res[0].Events)
	}
	if recs := verifyAudit(t, s); len(recs) != n0+1 || recs[n0].GetKind() != "action.late_update" {
		t.Errorf("records after a final update again: %q", auditKinds(recs[n0:]))
	}
	// A retry of a step is another run of it: stored.
	res = apply(t, s, streamBatch("n1", "s2", at(42), updateReport(3, "a2", outRunning, "", step(0, "lb-weight-0", 2, 0))))
	wantTypes(t, "a retry", res[0].Events, evActionChanged)
	if got := getAction(t, s, "a2").GetSteps(); len(got) != 2 || got[1].GetAttempt() != 2 {
		t.Errorf("steps after a retry: %v", got)
	}
}

// testStepBounds: an agent cannot grow an action without bound.
func testStepBounds(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	approvedAction(t, s, "a1", "n1", action.Offline, at(1))
	dispatch(t, s, "a1", at(2))
	n0 := len(verifyAudit(t, s))
	// Output longer than the bound, cut inside a multi-byte character.
	long := strings.Repeat("é", store.MaxStepOutput) + "the end"
	var steps []*hwhealv1.ActionStep
	for i := range store.MaxActionSteps + 44 {
		st := step(uint32(i), fmt.Sprintf("step-%d", i), 1, 0)
		st.Output = long
		steps = append(steps, st)
	}
	res := apply(t, s, batch("n1", at(10), updateReport(1, "a1", outRunning, "", steps...)))
	wantTypes(t, "many steps", res[0].Events, evActionChanged)
	if got := len(res[0].Events[0].GetAction().GetSteps()); got != store.MaxActionSteps {
		t.Errorf("event carries %d steps, want %d", got, store.MaxActionSteps)
	}
	a := getAction(t, s, "a1")
	if len(a.GetSteps()) != store.MaxActionSteps {
		t.Fatalf("%d steps stored, want %d", len(a.GetSteps()), store.MaxActionSteps)
	}
	for i, st := range a.GetSteps() {
		out := st.GetOutput()
		if len(out) > store.MaxStepOutput || !utf8.ValidString(out) || !strings.HasSuffix(out, "the end") || len(out) < store.MaxStepOutput-4 {
			t.Fatalf("step %d: output of %d bytes (valid %v), want the last %d bytes at most", i, len(out), utf8.ValidString(out), store.MaxStepOutput)
		}
	}
	recs := verifyAudit(t, s)[n0:]
	kinds := auditKinds(recs)
	if len(kinds) != store.MaxActionSteps+2 || kinds[store.MaxActionSteps] != "action.steps_dropped" || kinds[store.MaxActionSteps+1] != "action.running" {
		t.Errorf("%d records, last %q; want %d steps, steps_dropped, running", len(kinds), kinds[max(0, len(kinds)-2):], store.MaxActionSteps)
	} else {
		wantDetail(t, recs[store.MaxActionSteps], map[string]any{"dropped": 44, "limit": store.MaxActionSteps})
	}
	for _, r := range recs {
		if len(r.GetDetail()) > 2048 {
			t.Errorf("record %d: detail of %d bytes", r.GetId(), len(r.GetDetail()))
		}
	}
	// Full: a later step is dropped, recorded, and changes nothing else.
	n1 := len(verifyAudit(t, s))
	res = apply(t, s, batch("n1", at(20), updateReport(2, "a1", outRunning, "", step(999, "late-step", 1, 0))))
	if len(res[0].Events) != 0 {
		t.Errorf("a step past the bound: events %v", res[0].Events)
	}
	if recs := verifyAudit(t, s)[n1:]; !slices.Equal(auditKinds(recs), []string{"action.steps_dropped"}) {
		t.Errorf("records of a step past the bound: %q", auditKinds(recs))
	}
	// The final update still ends it.
	res = apply(t, s, batch("n1", at(30), updateReport(3, "a1", outSucceeded, strings.Repeat("m", 3*store.MaxStepOutput))))
	wantTypes(t, "final", res[0].Events, evActionChanged, evServiceChanged)
	if got := getAction(t, s, "a1"); got.GetState() != action.Succeeded || len(got.GetResult()) > store.MaxStepOutput {
		t.Errorf("final: %v with a result of %d bytes", got.GetState(), len(got.GetResult()))
	}
}

// testAuditChain: a mixed workload leaves a chain that verifies, with ids
// 1, 2, 3, ... even across writes that failed.
func testAuditChain(t *testing.T, s store.Store) {
	if recs := verifyAudit(t, s); len(recs) != 0 {
		t.Fatalf("new store has %d audit records", len(recs))
	}
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	res := apply(t, s, batch("n2", at(1), faultReport(1, "disk.media", sevCritical, disk("sda"), at(1))))
	fault := res[0].Events[0].GetFault().GetId()
	approvedAction(t, s, "a1", "n1", action.Reboot, at(2))
	dispatch(t, s, "a1", at(3))
	apply(t, s, batch("n1", at(4), updateReport(1, "a1", outRunning, "", step(0, "reboot", 1, 0))))
	if _, _, err := s.SetPaused(ctxOf(t), true, store.Note{Actor: "breaker", Reason: "storm of disk.media", Time: at(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Escalate(ctxOf(t), fault, "policy:r1", "ladder exhausted", at(6)); err != nil {
		t.Fatal(err)
	}
	rec, err := s.AppendAudit(ctxOf(t), store.AuditEntry{Actor: "alice", Kind: "request.refused", Node: "n2",
		Detail: ` { "why" : "missing role approver" } `, Time: at(7)})
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if rec.GetDetail() != `{"why":"missing role approver"}` || rec.GetNode() != "n2" || rec.GetActor() != "alice" {
		t.Errorf("appended record %v", rec)
	}
	wantTime(t, "appended record time", rec.GetTime(), at(7))
	if _, err := s.AppendAudit(ctxOf(t), store.AuditEntry{Actor: "collector", Kind: "policy.loaded"}); err != nil {
		t.Fatalf("AppendAudit without detail or time: %v", err)
	}
	apply(t, s, batch("n1", at(8), updateReport(2, "a1", outSucceeded, "rebooted")))

	recs := verifyAudit(t, s)
	wantKinds := []string{"action.created", "action.dispatched", "action.step", "action.running", "remediation.paused",
		"remediation.escalated", "request.refused", "policy.loaded", "action.succeeded"}
	if got := auditKinds(recs); !slices.Equal(got, wantKinds) {
		t.Fatalf("records %q, want %q", got, wantKinds)
	}
	if !proto.Equal(recs[6], rec) {
		t.Errorf("listed %v\nappended %v", recs[6], rec)
	}
	if got := recs[7].GetDetail(); got != "{}" {
		t.Errorf("record without detail: %q, want {}", got)
	}

	// Writes that fail leave no record and no gap.
	approvedAction(t, s, "a2", "n1", action.Offline, at(9))
	dispatch(t, s, "a2", at(9))
	recs = verifyAudit(t, s)
	last := recs[len(recs)-1]
	_, err = s.Apply(ctxOf(t), []store.Batch{
		batch("n1", at(10), updateReport(3, "a2", outRunning, "", step(0, "x", 1, 0), step(1, "y", 1, 0))),
		batch("ghost", at(10), updateReport(1, "a2", outRunning, "")),
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Apply with an unknown node: %v, want ErrNotFound", err)
	}
	if _, _, err := s.ChangeAction(ctxOf(t), store.ActionChange{ID: "a2", From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched, Actor: "x"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("ChangeAction: %v, want ErrConflict", err)
	}
	for _, e := range []store.AuditEntry{
		{Kind: "x"},
		{Actor: "x"},
		{Actor: "x", Kind: "x", Detail: "[1]"},
		{Actor: "x", Kind: "x", Detail: "{"},
		{Actor: "x", Kind: "x", Detail: `"s"`},
	} {
		if _, err := s.AppendAudit(ctxOf(t), e); err == nil {
			t.Errorf("AppendAudit(%+v) succeeded", e)
		}
	}
	if got := getAction(t, s, "a2"); len(got.GetSteps()) != 0 || got.GetState() != action.Dispatched {
		t.Errorf("action after a failed Apply: %v", got)
	}
	next, err := s.AppendAudit(ctxOf(t), store.AuditEntry{Actor: "collector", Kind: "check", Time: at(11)})
	if err != nil {
		t.Fatal(err)
	}
	if next.GetId() != last.GetId()+1 || !slices.Equal(next.GetPrevHash(), last.GetHash()) {
		t.Errorf("record after failed writes: id %d prev %x; want %d %x", next.GetId(), next.GetPrevHash(), last.GetId()+1, last.GetHash())
	}
	// The failed Apply is retried and succeeds: its records follow.
	res = apply(t, s, batch("n1", at(12), updateReport(3, "a2", outRunning, "", step(0, "x", 1, 0), step(1, "y", 1, 0))))
	wantTypes(t, "retried Apply", res[0].Events, evActionChanged)
	all := verifyAudit(t, s)
	for i, r := range all {
		if r.GetId() != uint64(i+1) {
			t.Fatalf("record %d has id %d", i+1, r.GetId())
		}
	}
	if len(all) != int(next.GetId())+3 {
		t.Errorf("%d records, want %d", len(all), next.GetId()+3)
	}

	// Filters: by node and by action, in id order; pages.
	for _, f := range []store.AuditFilter{{Node: "n1"}, {Node: "n2"}, {ActionID: "a1"}, {Node: "n1", ActionID: "a2"}, {Node: "n2", ActionID: "a1"}} {
		var want []*hwhealv1.AuditRecord
		for _, r := range all {
			if (f.Node == "" || r.GetNode() == f.Node) && (f.ActionID == "" || r.GetActionId() == f.ActionID) {
				want = append(want, r)
			}
		}
		for _, size := range []int{0, 1, 3} {
			got := allAudit(t, s, f, size)
			if len(got) != len(want) {
				t.Errorf("ListAudit(%+v, size %d): %d records, want %d", f, size, len(got), len(want))
				continue
			}
			for i := range got {
				if !proto.Equal(got[i], want[i]) {
					t.Errorf("ListAudit(%+v): record %d differs", f, i)
				}
			}
		}
	}
	if got := allAudit(t, s, store.AuditFilter{Node: "n2"}, 0); len(got) != 2 || got[0].GetKind() != "remediation.escalated" {
		t.Errorf("records of n2: %q", auditKinds(got))
	}
	_, nodeTok, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{Size: 1})
	if err != nil || nodeTok == "" {
		t.Fatalf("ListNodes: %q, %v", nodeTok, err)
	}
	for _, tok := range []string{"garbage!!", "AAAA", nodeTok} {
		if _, _, err := s.ListAudit(ctxOf(t), store.AuditFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListAudit(token %q): %v, want ErrBadPageToken", tok, err)
		}
	}
}

func testRemediationPause(t *testing.T, s store.Store) {
	rs, err := s.RemediationState(ctxOf(t))
	if err != nil || rs.Paused || rs.PausedBy != nil || rs.ResumedBy != nil {
		t.Fatalf("new store: %+v, %v; want running", rs, err)
	}
	if _, _, err := s.SetPaused(ctxOf(t), true, store.Note{Reason: "no actor"}); err == nil {
		t.Error("SetPaused without an actor succeeded")
	}
	evs, ok, err := s.SetPaused(ctxOf(t), true, store.Note{Actor: "breaker", Reason: "disk.media on 40 nodes in 5m0s", Time: at(10)})
	if err != nil || !ok {
		t.Fatalf("pause: %v, %v", ok, err)
	}
	wantTypes(t, "pause", evs, evPaused)
	wantStored(t, s, evs)
	if evs[0].GetActor() != "breaker" || evs[0].GetReason() != "disk.media on 40 nodes in 5m0s" || evs[0].GetNode() != "" {
		t.Errorf("pause event %v", evs[0])
	}
	wantTime(t, "pause event", evs[0].GetTime(), at(10))
	rs, err = s.RemediationState(ctxOf(t))
	if err != nil || !rs.Paused || rs.PausedBy.GetActor() != "breaker" || rs.ResumedBy != nil {
		t.Errorf("paused: %+v, %v", rs, err)
	}
	wantTime(t, "paused_by time", rs.PausedBy.GetTime(), at(10))
	// Pausing again keeps who paused first.
	evs, ok, err = s.SetPaused(ctxOf(t), true, store.Note{Actor: "alice", Reason: "me too", Time: at(20)})
	if err != nil || ok || len(evs) != 0 {
		t.Errorf("second pause: %v, %v, %v; want nothing", evs, ok, err)
	}
	if rs, _ := s.RemediationState(ctxOf(t)); rs.PausedBy.GetActor() != "breaker" {
		t.Errorf("paused by %q after a second pause, want breaker", rs.PausedBy.GetActor())
	}
	evs, ok, err = s.SetPaused(ctxOf(t), false, store.Note{Actor: "alice", Time: at(30)})
	if err != nil || !ok {
		t.Fatalf("resume: %v, %v", ok, err)
	}
	wantTypes(t, "resume", evs, evResumed)
	rs, _ = s.RemediationState(ctxOf(t))
	if rs.Paused || rs.PausedBy != nil || rs.ResumedBy.GetActor() != "alice" {
		t.Errorf("resumed: %+v", rs)
	}
	wantTime(t, "resumed_by time", rs.ResumedBy.GetTime(), at(30))
	if evs, ok, err := s.SetPaused(ctxOf(t), false, store.Note{Actor: "bob", Time: at(40)}); err != nil || ok || len(evs) != 0 {
		t.Errorf("second resume: %v, %v, %v; want nothing", evs, ok, err)
	}
	if rs, _ := s.RemediationState(ctxOf(t)); rs.ResumedBy.GetActor() != "alice" {
		t.Errorf("resumed by %q after a second resume, want alice", rs.ResumedBy.GetActor())
	}
	recs := verifyAudit(t, s)
	if got := auditKinds(recs); !slices.Equal(got, []string{"remediation.paused", "remediation.resumed"}) {
		t.Errorf("records %q", got)
	}
	wantDetail(t, recs[0], map[string]any{"reason": "disk.media on 40 nodes in 5m0s"})
	if recs[0].GetActor() != "breaker" || recs[1].GetActor() != "alice" || recs[0].GetNode() != "" {
		t.Errorf("records %v", recs)
	}
}

func testEscalate(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	res := apply(t, s, batch("n1", at(1), faultReport(1, "disk.media", sevCritical, disk("sda"), at(1))))
	f := res[0].Events[0].GetFault()
	evs, err := s.Escalate(ctxOf(t), f.GetId(), "policy:r1", "ladder exhausted", at(5))
	if err != nil {
		t.Fatalf("Escalate: %v", err)
	}
	wantTypes(t, "escalate", evs, evEscalated)
	wantStored(t, s, evs)
	if ev := evs[0]; ev.GetNode() != "n1" || ev.GetFault().GetId() != f.GetId() || ev.GetActor() != "policy:r1" || ev.GetReason() != "ladder exhausted" {
		t.Errorf("escalation event %v", ev)
	}
	wantTime(t, "escalation time", evs[0].GetTime(), at(5))
	if evs, err := s.Escalate(ctxOf(t), f.GetId(), "policy:r1", "again", at(6)); err != nil || len(evs) != 0 {
		t.Errorf("second Escalate: %v, %v; want no event", evs, err)
	}
	if _, err := s.Escalate(ctxOf(t), f.GetId()+100, "policy:r1", "x", at(6)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Escalate of an unknown fault: %v, want ErrNotFound", err)
	}
	if _, err := s.Escalate(ctxOf(t), 0, "policy:r1", "x", at(6)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Escalate of fault 0: %v, want ErrNotFound", err)
	}
	if _, err := s.Escalate(ctxOf(t), f.GetId(), "", "x", at(6)); err == nil {
		t.Error("Escalate without an actor succeeded")
	}
	recs := verifyAudit(t, s)
	if got := auditKinds(recs); !slices.Equal(got, []string{"remediation.escalated"}) {
		t.Fatalf("records %q", got)
	}
	if recs[0].GetNode() != "n1" || recs[0].GetActor() != "policy:r1" {
		t.Errorf("record %v", recs[0])
	}
	wantDetail(t, recs[0], map[string]any{"fault_id": f.GetId(), "fault_class": "disk.media", "part": "sda", "reason": "ladder exhausted"})
}

func testListActions(t *testing.T, s store.Store) {
	register(t, s, "n1", nil)
	register(t, s, "n2", nil)
	states := []hwhealv1.ActionState{action.Proposed, action.AwaitingApproval, action.Approved}
	var all []*hwhealv1.Action
	for i := range 40 {
		node := []string{"n1", "n2"}[i%2]
		// Several actions share a created time: the id orders them.
		a := newAction(fmt.Sprintf("a%02d", i), node, action.Reboot, states[i%3], at(i/3))
		a.Rule = []string{"r1", "r2", ""}[i%3]
		if a.Rule == "" {
			a.RequestedBy = "alice"
		}
		createAction(t, s, a)
		switch i % 5 {
		case 1:
			if a.GetState() == action.Approved {
				dispatch(t, s, a.GetId(), at(100))
			}
		case 2:
			changeAction(t, s, store.ActionChange{ID: a.GetId(), To: action.Cancelled, Actor: "bob", Time: at(100)})
		}
		all = append(all, getAction(t, s, a.GetId()))
	}
	// One of them with steps: listings leave them out.
	approvedAction(t, s, "z-steps", "n1", action.Offline, at(20))
	dispatch(t, s, "z-steps", at(21))
	apply(t, s, batch("n1", at(22), updateReport(1, "z-steps", outRunning, "", step(0, "x", 1, 0))))
	withSteps := getAction(t, s, "z-steps")
	withSteps.Steps = nil
	all = append(all, withSteps)
	newest := func(a, b *hwhealv1.Action) int {
		if c := b.GetCreated().AsTime().Compare(a.GetCreated().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(b.GetId(), a.GetId())
	}
	slices.SortFunc(all, newest)

	active := []hwhealv1.ActionState{action.Proposed, action.AwaitingApproval, action.Approved, action.Dispatched, action.Running}
	tests := []struct {
		name string
		f    store.ActionFilter
	}{
		{"all", store.ActionFilter{}},
		{"node", store.ActionFilter{Node: "n1"}},
		{"not ended", store.ActionFilter{States: active}},
		{"not ended on a node", store.ActionFilter{Node: "n2", States: active}},
		{"in flight", store.ActionFilter{States: []hwhealv1.ActionState{action.Dispatched, action.Running}}},
		{"cancelled", store.ActionFilter{States: []hwhealv1.ActionState{action.Cancelled}}},
		{"cancelled or approved", store.ActionFilter{States: []hwhealv1.ActionState{action.Cancelled, action.Approved}}},
		{"rule", store.ActionFilter{Rule: "r2"}},
		{"node and rule", store.ActionFilter{Node: "n1", Rule: "r1"}},
		{"node, rule and since", store.ActionFilter{Node: "n1", Rule: "r1", CreatedSince: at(6)}},
		{"since", store.ActionFilter{CreatedSince: at(10)}},
		{"not ended since", store.ActionFilter{States: active, CreatedSince: at(7)}},
		{"node, rule, states", store.ActionFilter{Node: "n2", Rule: "r2", States: []hwhealv1.ActionState{action.AwaitingApproval}}},
		{"unknown node", store.ActionFilter{Node: "n9"}},
	}
	for _, tt := range tests {
		var want []string
		for _, a := range all {
			f := tt.f
			if (f.Node == "" || a.GetNode() == f.Node) && (f.Rule == "" || a.GetRule() == f.Rule) &&
				(len(f.States) == 0 || slices.Contains(f.States, a.GetState())) &&
				(f.CreatedSince.IsZero() || !a.GetCreated().AsTime().Before(f.CreatedSince)) {
				want = append(want, a.GetId())
			}
		}
		for _, size := range []int{0, 1, 4} {
			var got []string
			tok := ""
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatalf("%s: pagination does not end", tt.name)
				}
				list, next, err := s.ListActions(ctxOf(t), tt.f, store.Page{Size: size, Token: tok})
				if err != nil {
					t.Fatalf("%s: ListActions: %v", tt.name, err)
				}
				if size > 0 && len(list) > size || next != "" && len(list) == 0 {
					t.Fatalf("%s: page of %d, size %d, next %q", tt.name, len(list), size, next)
				}
				for _, a := range list {
					got = append(got, a.GetId())
					i := slices.IndexFunc(all, func(b *hwhealv1.Action) bool { return b.GetId() == a.GetId() })
					if i < 0 || !proto.Equal(a, all[i]) {
						t.Errorf("%s: listed %v\nwant %v", tt.name, a, all[i])
					}
				}
				if next == "" {
					break
				}
				tok = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s, page size %d:\n got %q\nwant %q", tt.name, size, got, want)
			}
		}
	}
	_, nodeTok, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{Size: 1})
	if err != nil || nodeTok == "" {
		t.Fatalf("ListNodes: %q, %v", nodeTok, err)
	}
	_, auditTok, err := s.ListAudit(ctxOf(t), store.AuditFilter{}, store.Page{Size: 1})
	if err != nil || auditTok == "" {
		t.Fatalf("ListAudit: %q, %v", auditTok, err)
	}
	_, actionTok, err := s.ListActions(ctxOf(t), store.ActionFilter{}, store.Page{Size: 1})
	if err != nil || actionTok == "" {
		t.Fatalf("ListActions: %q, %v", actionTok, err)
	}
	for _, tok := range []string{"garbage!!", "AAAA", nodeTok, auditTok} {
		if _, _, err := s.ListActions(ctxOf(t), store.ActionFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListActions(token %q): %v, want ErrBadPageToken", tok, err)
		}
	}
	for _, tok := range []string{actionTok} {
		if _, _, err := s.ListAudit(ctxOf(t), store.AuditFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListAudit(action token): %v, want ErrBadPageToken", err)
		}
		if _, _, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{Token: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListNodes(action token): %v, want ErrBadPageToken", err)
		}
	}
}

// testNodeServiceFilter: ListNodes by service state, alone and with the
// other filters, in name order across pages.
func testNodeServiceFilter(t *testing.T, s store.Store) {
	nodes := []string{"a", "b", "c", "d", "e", "f"}
	for i, n := range nodes {
		register(t, s, n, map[string]string{"rack": fmt.Sprint("r", i%2)})
	}
	// a, d: OFFLINE; b: DRAINING; e: REBOOTING; c, f: in service.
	for _, n := range []string{"a", "d", "b"} {
		approvedAction(t, s, n+"-off", n, action.Offline, at(1))
		dispatch(t, s, n+"-off", at(2))
		if n != "b" {
			apply(t, s, batch(n, at(3), updateReport(1, n+"-off", outSucceeded, "")))
		}
	}
	approvedAction(t, s, "e-reboot", "e", action.Reboot, at(1))
	dispatch(t, s, "e-reboot", at(2))
	apply(t, s, batch("f", at(3), faultReport(1, "memory.ue", sevCritical, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "DIMM_A1"}, at(3))))

	const (
		in  = hwhealv1.ServiceState_SERVICE_STATE_IN_SERVICE
		off = hwhealv1.ServiceState_SERVICE_STATE_OFFLINE
		dr  = hwhealv1.ServiceState_SERVICE_STATE_DRAINING
		rb  = hwhealv1.ServiceState_SERVICE_STATE_REBOOTING
		uns = hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED
	)
	tests := []struct {
		name string
		f    store.NodeFilter
		want []string
	}{
		{"in service", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{in}}, []string{"c", "f"}},
		{"unspecified reads as in service", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{uns}}, []string{"c", "f"}},
		{"offline", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{off}}, []string{"a", "d"}},
		{"out of service", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{off, dr, rb}}, []string{"a", "b", "d", "e"}},
		{"repeated", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{off, off, uns, in}}, []string{"a", "c", "d", "f"}},
		{"with a label", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{off, dr}, Labels: map[string]string{"rack": "r1"}}, []string{"b", "d"}},
		{"with health", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{in}, Health: []hwhealv1.NodeHealth{faulty}}, []string{"f"}},
		{"with healths", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{in, off}, Health: []hwhealv1.NodeHealth{healthy, faulty}}, []string{"a", "c", "d", "f"}},
		{"with one health, many states", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{in, off}, Health: []hwhealv1.NodeHealth{healthy}}, []string{"a", "c", "d"}},
		{"with a fault class", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{in}, FaultClass: "memory.ue"}, []string{"f"}},
		{"none", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{hwhealv1.ServiceState_SERVICE_STATE_MIGRATING}}, nil},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1, 2} {
			if got := allNodes(t, s, tt.f, size); !slices.Equal(got, tt.want) {
				t.Errorf("%s, page size %d: %v, want %v", tt.name, size, got, tt.want)
			}
		}
	}
	list, _, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]hwhealv1.ServiceState{"a": off, "b": dr, "c": in, "d": off, "e": rb, "f": in}
	for _, n := range list {
		if n.GetServiceState() != want[n.GetName()] {
			t.Errorf("listed %s: service %v, want %v", n.GetName(), n.GetServiceState(), want[n.GetName()])
		}
		if (n.GetServiceChanged() == nil) != (want[n.GetName()] == in) {
			t.Errorf("listed %s: service_changed %v", n.GetName(), n.GetServiceChanged())
		}
		if g := getNode(t, s, n.GetName()); g.GetServiceState() != n.GetServiceState() || !proto.Equal(g.GetServiceChanged(), n.GetServiceChanged()) {
			t.Errorf("GetNode(%s) service %v %v, listed %v %v", n.GetName(), g.GetServiceState(), g.GetServiceChanged(), n.GetServiceState(), n.GetServiceChanged())
		}
	}
}

func testHelloGuard(t *testing.T, s store.Store) {
	g1 := &hwhealv1.ActionGuard{Allowed: []hwhealv1.ActionType{action.Offline, action.Reboot}, MaxReboots: 2, RebootWindow: durationpb.New(24 * time.Hour)}
	g2 := &hwhealv1.ActionGuard{Allowed: []hwhealv1.ActionType{action.Offline}, DryRun: true}
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Guard: g1, Time: at(1)})
	register(t, s, "n2", nil)
	check := func(what string, want *hwhealv1.ActionGuard) {
		t.Helper()
		if got := getNode(t, s, "n1").GetGuard(); !proto.Equal(got, want) {
			t.Errorf("%s: GetNode guard %v, want %v", what, got, want)
		}
		list, _, err := s.ListNodes(ctxOf(t), store.NodeFilter{}, store.Page{})
		if err != nil || len(list) != 2 {
			t.Fatalf("ListNodes: %v, %v", list, err)
		}
		if !proto.Equal(list[0].GetGuard(), want) || list[1].GetGuard() != nil {
			t.Errorf("%s: listed guards %v, %v; want %v, none", what, list[0].GetGuard(), list[1].GetGuard(), want)
		}
		if svc := list[0].GetServiceState(); svc != action.InService {
			t.Errorf("%s: service %v, want IN_SERVICE", what, svc)
		}
	}
	check("first hello", g1)
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Guard: g2, Time: at(2)})
	check("replaced", g2)
	hello(t, s, store.Hello{Node: "n1", BootID: "b1", StreamID: "s1", Time: at(3)})
	check("cleared by a hello without one", nil)
}

// testRemediationSurvivesReopen: actions, steps, service states, the
// switch, escalations and the audit chain are stored, and the chain goes
// on after a restart.
func testRemediationSurvivesReopen(t *testing.T, reopen func(t *testing.T) store.Store) {
	s := reopen(t)
	register(t, s, "n1", nil)
	res := apply(t, s, batch("n1", at(1), faultReport(1, "disk.media", sevCritical, disk("sda"), at(1))))
	fault := res[0].Events[0].GetFault().GetId()
	approvedAction(t, s, "a1", "n1", action.Offline, at(2))
	dispatch(t, s, "a1", at(3))
	apply(t, s, batch("n1", at(4), updateReport(2, "a1", outRunning, "", step(0, "lb-weight-0", 1, 0))))
	if _, _, err := s.SetPaused(ctxOf(t), true, store.Note{Actor: "alice", Reason: "maintenance", Time: at(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Escalate(ctxOf(t), fault, "policy:r1", "x", at(6)); err != nil {
		t.Fatal(err)
	}
	a := getAction(t, s, "a1")
	recs := verifyAudit(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = reopen(t)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if got := getAction(t, s, "a1"); !proto.Equal(got, a) {
		t.Errorf("action after reopen\n got %v\nwant %v", got, a)
	}
	if got := getNode(t, s, "n1").GetServiceState(); got != action.Draining {
		t.Errorf("service after reopen %v", got)
	}
	if rs, err := s.RemediationState(ctxOf(t)); err != nil || !rs.Paused || rs.PausedBy.GetActor() != "alice" {
		t.Errorf("switch after reopen: %+v, %v", rs, err)
	}
	if evs, err := s.Escalate(ctxOf(t), fault, "policy:r1", "x", at(7)); err != nil || len(evs) != 0 {
		t.Errorf("escalation again after reopen: %v, %v", evs, err)
	}
	got := verifyAudit(t, s)
	if len(got) != len(recs) || !proto.Equal(got[len(got)-1], recs[len(recs)-1]) {
		t.Fatalf("%d records after reopen, want %d", len(got), len(recs))
	}
	// The chain goes on from its stored head, and an update replayed
	// after the restart is a duplicate.
	r := apply(t, s, batch("n1", at(8), updateReport(2, "a1", outRunning, "", step(0, "lb-weight-0", 1, 0)),
		updateReport(3, "a1", outSucceeded, "done", step(1, "mark-out", 1, 0))))
	if r[0].Duplicates != 1 {
		t.Errorf("replay after reopen: %d duplicates, want 1", r[0].Duplicates)
	}
	got = verifyAudit(t, s)
	if len(got) != len(recs)+2 || got[len(recs)].GetId() != recs[len(recs)-1].GetId()+1 {
		t.Errorf("records after reopen: %q", auditKinds(got[len(recs):]))
	}
	if a := getAction(t, s, "a1"); a.GetState() != action.Succeeded || len(a.GetSteps()) != 2 {
		t.Errorf("action after the update: %v", a)
	}
}

// testDispatchKeepsPlannedBoot: an automatic action is dispatched only in
// the boot it was planned in. The planner checked it against a snapshot of
// the node; a hello of a new boot between that check and the dispatch must
// make the dispatch fail (ErrConflict, nothing written), not be adopted,
// or the agent's refusal of an order for another boot guards nothing. A
// manual action, or an automatic one planned with no boot id, takes the
// node's boot at dispatch, as does the service state in every case.
func testDispatchKeepsPlannedBoot(t *testing.T, s store.Store) {
	for _, n := range []string{"auto", "manual", "same"} {
		hello(t, s, store.Hello{Node: n, StreamID: "s1", BootID: "boot-a", Time: at(1)})
	}
	hello(t, s, store.Hello{Node: "unbooted", StreamID: "s1", Time: at(1)})
	approvedAction(t, s, "auto", "auto", action.Reboot, at(2))
	man := newAction("manual", "manual", action.Reboot, action.Approved, at(2))
	man.Rule, man.RequestedBy, man.Reason = "", "alice", "by hand"
	createAction(t, s, man)
	approvedAction(t, s, "same", "same", action.Reboot, at(2))
	approvedAction(t, s, "unbooted", "unbooted", action.Reboot, at(2))
	for _, id := range []string{"auto", "manual", "same"} {
		if got := getAction(t, s, id).GetPlannedBootId(); got != "boot-a" {
			t.Fatalf("action %s planned in boot %q, want boot-a", id, got)
		}
	}
	if got := getAction(t, s, "unbooted").GetPlannedBootId(); got != "" {
		t.Fatalf("action on a node without a boot id planned in boot %q, want none", got)
	}
	for _, n := range []string{"auto", "manual", "unbooted"} {
		hello(t, s, store.Hello{Node: n, StreamID: "s1", BootID: "boot-b", Time: at(3)})
	}

	t.Run("automatic, node in a new boot", func(t *testing.T) {
		before := getAction(t, s, "auto")
		recs, evs := len(verifyAudit(t, s)), len(allEvents(t, s))
		got, ev, err := s.ChangeAction(ctxOf(t), store.ActionChange{ID: "auto", From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched,
			Actor: "policy:r1", Reason: "within limits", Time: at(4)})
		if !errors.Is(err, store.ErrConflict) || got != nil || len(ev) != 0 {
			t.Fatalf("dispatch in boot-b of an action planned in boot-a = %v, %v, %v; want ErrConflict", got, ev, err)
		}
		if after := getAction(t, s, "auto"); !proto.Equal(after, before) {
			t.Errorf("action after the refused dispatch\n got %v\nwant %v", after, before)
		}
		if after := getAction(t, s, "auto"); after.GetState() != action.Approved || after.GetDispatched() != nil || after.GetPlannedBootId() != "boot-a" {
			t.Errorf("action after the refused dispatch: %v; want APPROVED, not dispatched, planned in boot-a", after)
		}
		if n := getNode(t, s, "auto"); n.GetServiceState() != action.InService {
			t.Errorf("node service state after the refused dispatch %v, want in service", n.GetServiceState())
		}
		if got := len(verifyAudit(t, s)); got != recs {
			t.Errorf("%d audit records after the refused dispatch, want %d", got, recs)
		}
		if got := len(allEvents(t, s)); got != evs {
			t.Errorf("%d events after the refused dispatch, want %d", got, evs)
		}
		// It can still be ended: the planner cancels it on its next pass.
		got, _ = changeAction(t, s, store.ActionChange{ID: "auto", From: []hwhealv1.ActionState{action.Approved}, To: action.Cancelled,
			Actor: "collector", Reason: "the node rebooted since the action was planned", Time: at(5)})
		if got.GetState() != action.Cancelled || got.GetPlannedBootId() != "boot-a" {
			t.Errorf("cancelled action %v, want planned in boot-a", got)
		}
	})
	tests := []struct {
		name, id, boot string
	}{
		{"manual, node in a new boot", "manual", "boot-b"},
		{"automatic, node in the planned boot", "same", "boot-a"},
		{"automatic, planned without a boot", "unbooted", "boot-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, evs := changeAction(t, s, store.ActionChange{ID: tt.id, From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched,
				Actor: "collector", Reason: "dispatched", Time: at(6)})
			wantTypes(t, "dispatch", evs, evActionChanged, evServiceChanged)
			if got.GetState() != action.Dispatched || got.GetPlannedBootId() != tt.boot || action.Normal(got.GetPlannedService()) != action.InService {
				t.Errorf("dispatched action %v; want planned in %s, in service", got, tt.boot)
			}
			wantTime(t, "dispatched", got.GetDispatched(), at(6))
			if stored := getAction(t, s, tt.id); !proto.Equal(stored, got) {
				t.Errorf("stored action\n got %v\nwant %v", stored, got)
			}
			recs := allAudit(t, s, store.AuditFilter{ActionID: tt.id}, 0)
			if len(recs) == 0 || recs[len(recs)-1].GetKind() != "action.dispatched" {
				t.Fatalf("records of %s: %q", tt.id, auditKinds(recs))
			}
			if d := detailOf(t, recs[len(recs)-1]); d["planned_boot_id"] != tt.boot {
				t.Errorf("dispatch record planned_boot_id %v, want %s", d["planned_boot_id"], tt.boot)
			}
		})
	}
	verifyAudit(t, s)
}
