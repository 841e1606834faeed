package planner

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/approval"
)

const (
	running   = hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING
	succeeded = hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED
	failed    = hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED
	refused   = hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED
	critical  = hwhealv1.Severity_SEVERITY_CRITICAL
	warning   = hwhealv1.Severity_SEVERITY_WARNING
)

const lockupPolicy = `
limits:
  max_out_of_service: 50%
cooldowns:
  reboot: 1h
rules:
  - name: kernel-lockup
    classes: [kernel.lockup]
    escalate_within: 24h
    ladder:
      - action: reboot
        approval: auto
        timeout: 20m
      - action: offline
        approval: required
        ttl: 4h
        on_expiry: deny
`

// The ladder: a lockup leads to a reboot at once; the reboot is confirmed
// by the node's new boot id; the lockup coming back within 24 h leads to an
// offline that waits for an approver.
func TestLadderRebootThenOffline(t *testing.T) {
	w := newWorld(t, lockupPolicy)
	w.hello("n1", "boot-1", nil)
	w.hello("n2", "boot-1", nil)
	w.raise("n1", "kernel.lockup", critical)
	w.pass()

	a := w.wantState(w.only("n1").GetId(), action.Dispatched)
	if a.GetType() != action.Reboot || a.GetRule() != "kernel-lockup" || a.GetRequestedBy() != "policy:kernel-lockup" || len(a.GetFaultIds()) != 1 {
		t.Fatalf("action = %v", a)
	}
	orders := w.ordersTo("n1")
	if len(orders) != 1 || orders[0].GetId() != a.GetId() || orders[0].GetBootId() != "boot-1" || orders[0].GetTimeout().AsDuration() != 20*time.Minute {
		t.Fatalf("orders = %v", orders)
	}
	if n := w.node("n1"); n.GetServiceState() != action.Rebooting {
		t.Fatalf("service state = %v, want REBOOTING", n.GetServiceState())
	}
	w.update("n1", a.GetId(), running, "")
	w.advance(3 * time.Minute)
	w.hello("n1", "boot-2", nil)
	w.pass()
	a = w.wantState(a.GetId(), action.Succeeded)
	if !strings.Contains(a.GetResult(), "boot-1 -> boot-2") {
		t.Fatalf("result = %q", a.GetResult())
	}
	if n := w.node("n1"); n.GetServiceState() != action.InService {
		t.Fatalf("service state after the reboot = %v, want IN_SERVICE", n.GetServiceState())
	}
	// Quiet: the fault is still open (no evidence since), and nothing else
	// is proposed.
	w.advance(time.Hour)
	w.pass()
	if n := len(w.actions("n1")); n != 1 {
		t.Fatalf("%d actions after a quiet hour, want 1", n)
	}
	// The lockup comes back within 24 h: the next step, which needs an
	// approver.
	w.advance(2 * time.Hour)
	w.raise("n1", "kernel.lockup", critical)
	w.pass()
	as := w.actions("n1")
	off := ofType(as, action.Offline)
	if len(as) != 2 || off == nil {
		t.Fatalf("actions = %v, want the reboot and an offline", as)
	}
	if off.GetType() != action.Offline || off.GetState() != action.AwaitingApproval || off.GetLadderStep() != 1 ||
		off.GetApprovalDeadline().AsTime() != w.clock().Add(4*time.Hour) {
		t.Fatalf("second step = %v", off)
	}
	// Nobody answers: the policy says deny.
	w.advance(4 * time.Hour)
	w.pass()
	w.wantState(off.GetId(), action.Expired)
	// Expired is a no while the fault is open: not proposed again.
	w.advance(time.Hour)
	w.raise("n1", "kernel.lockup", critical)
	w.pass()
	if n := len(w.actions("n1")); n != 2 {
		t.Fatalf("%d actions after an expired step, want 2", n)
	}
}

// A step that fails, or that the agent's guard refuses, leads to the next.
func TestRefusedStepLeadsToNext(t *testing.T) {
	w := newWorld(t, strings.Replace(lockupPolicy, "approval: required", "approval: auto", 1))
	w.hello("n1", "boot-1", nil)
	w.hello("n2", "boot-1", nil)
	w.raise("n1", "kernel.lockup", critical)
	w.pass()
	reboot := w.only("n1")
	w.update("n1", reboot.GetId(), refused, "local guard: 2 reboots started in the last 24h0m0s (max 2): refusing a reboot loop")
	w.wantState(reboot.GetId(), action.Refused)
	if n := w.node("n1"); n.GetServiceState() != action.InService {
		t.Fatalf("service state after a refusal = %v", n.GetServiceState())
	}
	w.pass()
	as := w.actions("n1")
	off := ofType(as, action.Offline)
	if len(as) != 2 || off == nil || off.GetState() != action.Dispatched {
		t.Fatalf("after the refusal: %v", as)
	}
	w.update("n1", off.GetId(), succeeded, "", &hwhealv1.ActionStep{Index: 0, Name: "lb-weight-zero", Attempt: 1})
	if n := w.node("n1"); n.GetServiceState() != action.Off {
		t.Fatalf("service state after offline = %v, want OFFLINE", n.GetServiceState())
	}
	// Out of service: automation leaves it to people, whatever evidence
	// comes.
	w.raise("n1", "kernel.lockup", critical)
	w.pass()
	if n := len(w.actions("n1")); n != 2 {
		t.Fatalf("%d actions on an offline node, want 2", n)
	}
}

// The ladder used up: a person takes over, told once.
func TestLadderExhaustedEscalatesOnce(t *testing.T) {
	w := newWorld(t, `
rules:
  - name: kernel-lockup
    classes: [kernel.lockup]
    ladder:
      - action: reboot
        approval: auto
`)
	w.hello("n1", "boot-1", nil)
	w.hello("n2", "boot-1", nil)
	w.raise("n1", "kernel.lockup", critical)
	w.pass()
	a := w.only("n1")
	w.update("n1", a.GetId(), failed, "systemctl reboot: exit status 1")
	for range 3 {
		w.pass()
	}
	if n := len(w.actions("n1")); n != 1 {
		t.Fatalf("%d actions, want 1", n)
	}
	escalated := 0
	for _, ev := range w.events {
		if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_REMEDIATION_ESCALATED {
			escalated++
		}
	}
	if escalated != 1 {
		t.Fatalf("%d escalations, want 1", escalated)
	}
}

// Before it acts, the planner checks the fault is still open and the node
// still the one it planned for.
func TestRecheckBeforeDispatch(t *testing.T) {
	t.Run("fault resolved", func(t *testing.T) {
		w := newWorld(t, `
rules:
  - name: ce
    classes: [memory.ce_storm]
    windows: [night]
    ladder:
      - action: offline
        approval: auto
windows:
  - name: night
    schedule: "0 22 * * *"
    duration: 4h
    timezone: UTC
`)
		w.hello("n1", "boot-1", nil)
		w.raise("n1", "memory.ce_storm", warning)
		w.pass()
		a := w.wantState(w.only("n1").GetId(), action.Approved)
		if !strings.Contains(a.GetWaiting(), "window night") {
			t.Fatalf("waiting = %q, want the window", a.GetWaiting())
		}
		faults, _, err := w.st.ListFaults(w.ctx, store.FaultFilter{Node: "n1"}, store.Page{Size: 10})
		if err != nil || len(faults) != 1 {
			t.Fatal(faults, err)
		}
		if _, err := w.st.ResolveFault(w.ctx, faults[0].GetId(), store.Note{Actor: "alice", Reason: "DIMM reseated"}); err != nil {
			t.Fatal(err)
		}
		w.advance(12 * time.Hour) // 22:00: the window opens
		w.pass()
		a = w.wantState(a.GetId(), action.Cancelled)
		if !strings.Contains(a.GetResult(), "resolved before dispatch") || len(w.ordersTo("n1")) != 0 {
			t.Fatalf("result %q, orders %v", a.GetResult(), w.ordersTo("n1"))
		}
	})
	t.Run("node rebooted", func(t *testing.T) {
		w := newWorld(t, `
rules:
  - name: ce
    classes: [memory.ce_storm]
    ladder:
      - action: offline
        approval: required
`)
		w.hello("n1", "boot-1", nil)
		w.raise("n1", "memory.ce_storm", warning)
		w.pass()
		a := w.only("n1")
		w.hello("n1", "boot-2", nil) // rebooted by itself meanwhile
		if _, err := w.p.Approve(w.ctx, a.GetId(), "bob", "go", time.Time{}); err != nil {
			t.Fatal(err)
		}
		w.pass()
		a = w.wantState(a.GetId(), action.Cancelled)
		if !strings.Contains(a.GetResult(), "rebooted since the action was planned") {
			t.Fatalf("result = %q", a.GetResult())
		}
	})
}

// Limits hold however many faults arrive: with 20 nodes and at most 10%
// out of service, two offlines run and the rest wait, saying why.
func TestLimitsHoldDispatch(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 10%
  domains:
    - label: rack
      max_out_of_service: 1
breaker:
  enabled: false
rules:
  - name: ce
    classes: [memory.ce_storm]
    ladder:
      - action: offline
        approval: auto
`)
	for i := range 20 {
		w.hello(fmt.Sprintf("n%02d", i), "b", map[string]string{"rack": fmt.Sprintf("r%d", i%4)})
	}
	for i := range 8 {
		w.raise(fmt.Sprintf("n%02d", i), "memory.ce_storm", warning)
	}
	w.pass()
	w.pass()
	dispatched, waiting := 0, 0
	racks := map[string]int{}
	for i := range 8 {
		a := w.only(fmt.Sprintf("n%02d", i))
		switch a.GetState() {
		case action.Dispatched:
			dispatched++
			racks[fmt.Sprint(i%4)]++
		case action.Approved:
			waiting++
			if !strings.HasPrefix(a.GetWaiting(), "limit: ") {
				t.Errorf("%s waits for %q, want a limit", a.GetNode(), a.GetWaiting())
			}
		default:
			t.Errorf("%s is %s", a.GetNode(), a.GetState())
		}
	}
	if dispatched != 2 || waiting != 6 {
		t.Fatalf("dispatched %d, waiting %d; want 2 and 6", dispatched, waiting)
	}
	for r, n := range racks {
		if n > 1 {
			t.Fatalf("rack %s has %d nodes out, limit 1", r, n)
		}
	}
	st, err := w.p.Status(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetOutOfService() != 2 || st.GetMaxOutOfService() != 2 || st.GetInFlight() != 2 || st.GetNodes() != 20 {
		t.Fatalf("status = %v", st)
	}
}

// The breaker: one class on many nodes at once pauses every automatic
// action; manual ones still go; after resume, the same faults do not trip
// it again.
func TestStormBreakerPauses(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 50%
breaker:
  nodes: 5
  window: 10m
rules:
  - name: ce
    classes: [memory.ce_storm]
    ladder:
      - action: offline
        approval: auto
`)
	for i := range 20 {
		w.hello(fmt.Sprintf("n%02d", i), "b", nil)
	}
	for i := range 8 {
		w.raise(fmt.Sprintf("n%02d", i), "memory.ce_storm", warning)
		w.advance(time.Second)
	}
	w.pass()
	st, err := w.st.RemediationState(w.ctx)
	if err != nil || !st.Paused || st.PausedBy.GetActor() != "breaker" || !strings.Contains(st.PausedBy.GetReason(), "memory.ce_storm opened on 8 nodes") {
		t.Fatalf("state = %+v, %v", st, err)
	}
	for i := range 8 {
		if as := w.actions(fmt.Sprintf("n%02d", i)); len(as) != 0 {
			t.Fatalf("n%02d has actions while the breaker is tripped: %v", i, as)
		}
	}
	// An operator's own request still runs.
	a, err := w.p.Request(w.ctx, "n10", action.Reboot, "fan noise, checking", "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.Approve(w.ctx, a.GetId(), "bob", "ok", time.Time{}); err != nil {
		t.Fatal(err)
	}
	w.pass()
	w.wantState(a.GetId(), action.Dispatched)
	if _, err := w.p.Resume(w.ctx, "carol", "bad firmware rolled back"); err != nil {
		t.Fatal(err)
	}
	w.pass()
	st, _ = w.st.RemediationState(w.ctx)
	if st.Paused {
		t.Fatal("the same faults tripped the breaker again after resume")
	}
	// Limit 50% of 20 = 10 out, one (n10) taken: all 8 go.
	for i := range 8 {
		w.wantState(w.only(fmt.Sprintf("n%02d", i)).GetId(), action.Dispatched)
	}
}

// Two-person approval: the requester's own approval is refused; a second
// approver's is accepted.
func TestTwoPersonApproval(t *testing.T) {
	w := newWorld(t, `
manual:
  reboot: two-person
`)
	w.hello("n1", "b", nil)
	a, err := w.p.Request(w.ctx, "n1", action.Reboot, "BMC says the PSU is flaky", "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetState() != action.AwaitingApproval || a.GetApproval() != hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON {
		t.Fatalf("requested = %v", a)
	}
	if _, err := w.p.Approve(w.ctx, a.GetId(), "alice", "", time.Time{}); !errors.Is(err, approval.ErrSelfApproval) {
		t.Fatalf("self-approval: err = %v, want ErrSelfApproval", err)
	}
	w.pass()
	w.wantState(a.GetId(), action.AwaitingApproval)
	got, err := w.p.Approve(w.ctx, a.GetId(), "bob", "checked with the DC team", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != action.Approved || len(got.GetApprovedBy()) != 1 || got.GetApprovedBy()[0] != "bob" {
		t.Fatalf("approved = %v", got)
	}
	w.pass()
	w.wantState(a.GetId(), action.Dispatched)
	// The refusal is in the audit log.
	recs, _, err := w.st.ListAudit(w.ctx, store.AuditFilter{ActionID: a.GetId()}, store.Page{Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.GetKind()+"/"+r.GetActor())
	}
	want := "action.created/alice action.approval_refused/alice action.approved/bob action.dispatched/collector"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("audit = %v, want %s", kinds, want)
	}
}

// Planned work: a migrate offered with a window runs at the time an
// approver chose, or at the deadline when nobody answers.
func TestPlannedWorkWindow(t *testing.T) {
	pol := `
limits:
  max_out_of_service: 50%
rules:
  - name: disk-predicted
    classes: [disk.media]
    ladder:
      - action: migrate
        approval: required
        ttl: 72h
        on_expiry: proceed
`
	t.Run("approved for later", func(t *testing.T) {
		w := newWorld(t, pol)
		w.hello("n1", "b", nil)
		w.hello("n2", "b", nil)
		w.raise("n1", "disk.media", warning)
		w.pass()
		a := w.only("n1")
		if _, err := w.p.Approve(w.ctx, a.GetId(), "bob", "", w.clock().Add(100*time.Hour)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("approve after the deadline: err = %v, want ErrInvalid", err)
		}
		at := w.clock().Add(10 * time.Hour)
		if _, err := w.p.Approve(w.ctx, a.GetId(), "bob", "tonight", at); err != nil {
			t.Fatal(err)
		}
		w.advance(9 * time.Hour)
		w.pass()
		if a = w.wantState(a.GetId(), action.Approved); !strings.HasPrefix(a.GetWaiting(), "scheduled for ") {
			t.Fatalf("waiting = %q", a.GetWaiting())
		}
		w.advance(time.Hour)
		w.pass()
		w.wantState(a.GetId(), action.Dispatched)
	})
	t.Run("nobody answers", func(t *testing.T) {
		w := newWorld(t, pol)
		w.hello("n1", "b", nil)
		w.hello("n2", "b", nil)
		w.raise("n1", "disk.media", warning)
		w.pass()
		a := w.only("n1")
		w.advance(71 * time.Hour)
		w.pass()
		w.wantState(a.GetId(), action.AwaitingApproval)
		w.advance(time.Hour)
		w.pass()
		a = w.wantState(a.GetId(), action.Dispatched)
		if len(a.GetApprovals()) != 1 || a.GetApprovals()[0].GetActor() != "collector" {
			t.Fatalf("approvals = %v", a.GetApprovals())
		}
	})
}

// An agent that never answers: the action times out; one whose stream
// does not take the order now gets it again later.
func TestTimeoutAndResend(t *testing.T) {
	w := newWorld(t, `
manual:
  offline: auto
`)
	w.hello("n1", "b", nil)
	w.hello("n2", "b", nil)
	w.offline["n1"] = true
	a, err := w.p.Request(w.ctx, "n1", action.Offline, "drain for repair", "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	w.pass()
	w.wantState(a.GetId(), action.Dispatched)
	if len(w.ordersTo("n1")) != 0 {
		t.Fatal("order sent to a stream that takes none")
	}
	w.offline["n1"] = false
	w.advance(10 * time.Second)
	w.pass()
	if n := len(w.ordersTo("n1")); n != 0 {
		t.Fatalf("resent after 10s: %d", n)
	}
	w.advance(30 * time.Second)
	w.pass()
	if n := len(w.ordersTo("n1")); n != 1 {
		t.Fatalf("%d orders after the resend interval, want 1", n)
	}
	pending, err := w.p.Pending(w.ctx, "n1")
	if err != nil || len(pending) != 1 || pending[0].GetId() != a.GetId() {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	w.advance(time.Hour)
	w.pass()
	w.wantState(a.GetId(), action.Dispatched) // the agent gets a grace to say it timed out itself
	w.advance(6 * time.Minute)
	w.pass()
	a = w.wantState(a.GetId(), action.TimedOut)
	if n := w.node("n1"); n.GetServiceState() != action.Draining {
		t.Fatalf("service after a timed-out offline = %v, want DRAINING", n.GetServiceState())
	}
	if pending, _ := w.p.Pending(w.ctx, "n1"); len(pending) != 0 {
		t.Fatalf("pending after timeout = %v", pending)
	}
}

// The weekly cap hands a node to people, and cooldowns space actions.
func TestCapAndCooldown(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 50%
cooldowns:
  reboot: 6h
max_per_node_per_week: 2
rules:
  - name: lockup
    classes: [kernel.lockup]
    escalate_within: 1m
    ladder:
      - action: reboot
        approval: auto
`)
	w.hello("n1", "boot-0", nil)
	w.hello("n2", "b", nil)
	boots := 0
	cycle := func() *hwhealv1.Action {
		t.Helper()
		w.raise("n1", "kernel.lockup", critical)
		w.pass()
		a := w.actions("n1")[0]
		return a
	}
	a := cycle()
	w.wantState(a.GetId(), action.Dispatched)
	boots++
	w.hello("n1", fmt.Sprintf("boot-%d", boots), nil)
	w.pass()
	w.wantState(a.GetId(), action.Succeeded)
	w.advance(time.Hour)
	b := cycle()
	if b.GetId() == a.GetId() {
		t.Fatal("no second action")
	}
	if b = w.wantState(b.GetId(), action.Approved); !strings.HasPrefix(b.GetWaiting(), "cooldown: reboot") {
		t.Fatalf("waiting = %q", b.GetWaiting())
	}
	w.advance(5 * time.Hour)
	w.pass()
	w.wantState(b.GetId(), action.Dispatched)
	boots++
	w.hello("n1", fmt.Sprintf("boot-%d", boots), nil)
	w.pass()
	w.advance(7 * time.Hour)
	c := cycle()
	if c.GetId() != b.GetId() {
		t.Fatalf("a third action within the week: %v", c)
	}
	found := false
	for _, ev := range w.events {
		if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_REMEDIATION_ESCALATED && strings.Contains(ev.GetReason(), "cap 2") {
			found = true
		}
	}
	if !found {
		t.Fatal("no escalation for the weekly cap")
	}
}

// An operator's action wins: after an operator brought a node back online,
// the still-open fault does not take it out again until it shows new
// evidence.
func TestOperatorActionWins(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 50%
manual:
  online: auto
rules:
  - name: ue
    classes: [memory.ue]
    ladder:
      - action: offline
        approval: auto
`)
	w.hello("n1", "b", nil)
	w.hello("n2", "b", nil)
	w.raise("n1", "memory.ue", critical)
	w.pass()
	off := w.only("n1")
	w.update("n1", off.GetId(), succeeded, "")
	w.advance(time.Hour)
	on, err := w.p.Request(w.ctx, "n1", action.Online, "DIMM replaced, ticket 4711", "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	w.pass()
	w.update("n1", on.GetId(), succeeded, "")
	w.advance(time.Hour)
	w.pass()
	w.pass()
	if n := len(w.actions("n1")); n != 2 {
		t.Fatalf("%d actions after the operator's online, want 2", n)
	}
	if s := w.node("n1").GetServiceState(); s != action.InService {
		t.Fatalf("service = %v", s)
	}
	// New evidence after the operator's action: automation again.
	w.raise("n1", "memory.ue", critical)
	w.pass()
	if n := len(w.actions("n1")); n != 3 {
		t.Fatalf("%d actions after new evidence, want 3", n)
	}
}

// Dry run: the whole policy plans and dispatches, but agents are told to
// run nothing, no approval is asked and no node leaves service.
func TestDryRunPolicy(t *testing.T) {
	w := newWorld(t, `
dry_run: true
rules:
  - name: ue
    classes: [memory.ue]
    ladder:
      - action: offline
        approval: two-person
`)
	w.hello("n1", "b", nil)
	w.hello("n2", "b", nil)
	w.raise("n1", "memory.ue", critical)
	w.pass()
	a := w.wantState(w.only("n1").GetId(), action.Dispatched)
	if !a.GetDryRun() || !w.ordersTo("n1")[0].GetDryRun() {
		t.Fatalf("not a dry run: %v", a)
	}
	if s := w.node("n1").GetServiceState(); s != action.InService {
		t.Fatalf("a dry run changed the service state to %v", s)
	}
	w.update("n1", a.GetId(), succeeded, "dry run", &hwhealv1.ActionStep{Name: "lb-weight-zero", DryRun: true})
	if s := w.node("n1").GetServiceState(); s != action.InService {
		t.Fatalf("a dry run's success changed the service state to %v", s)
	}
}

// ofType returns the first action of type t.
func ofType(as []*hwhealv1.Action, t hwhealv1.ActionType) *hwhealv1.Action {
	for _, a := range as {
		if a.GetType() == t {
			return a
		}
	}
	return nil
}

// Shadow faults never lead to an action.
func TestShadowFaultsLeadNowhere(t *testing.T) {
	w := newWorld(t, `
rules:
  - name: ue
    classes: [memory.ue]
    ladder:
      - action: offline
        approval: auto
`)
	w.hello("n1", "b", nil)
	w.apply("n1", &hwhealv1.Report{Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: "memory.ue", Severity: critical, Mode: hwhealv1.RuleMode_RULE_MODE_SHADOW,
		Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "DIMM_A1"},
	}}})
	w.pass()
	if as := w.actions("n1"); len(as) != 0 {
		t.Fatalf("a shadow fault led to %v", as)
	}
}
