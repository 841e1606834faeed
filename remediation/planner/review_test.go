package planner

import (
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// A fault that never clears by itself stays open after its reboot worked.
// Without new evidence it must not be rebooted again, however long ago the
// reboot was: the ladder remembers beyond the pass's lookback.
func TestLadderRemembersPastLookback(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 50%
rules:
  - name: gpu-gone
    classes: [gpu.fallen_off_bus]
    ladder:
      - action: reboot
        approval: auto
`)
	w.hello("n1", "boot-1", nil)
	w.hello("n2", "boot-1", nil)
	w.raise("n1", "gpu.fallen_off_bus", critical)
	w.pass()
	a := w.only("n1")
	w.hello("n1", "boot-2", nil)
	w.pass()
	w.wantState(a.GetId(), action.Succeeded)
	for range 4 {
		w.advance(5 * 24 * time.Hour)
		w.hello("n1", "boot-2", nil) // connected all along
		w.pass()
	}
	if as := w.actions("n1"); len(as) != 1 {
		t.Fatalf("%d actions 20 days after a reboot that worked, without new evidence; want 1: %v", len(as), as)
	}
}

// A denial holds while its fault is open, also past the lookback.
func TestDenialRemembered(t *testing.T) {
	w := newWorld(t, `
rules:
  - name: ue
    classes: [memory.ue]
    ladder:
      - action: offline
        approval: required
`)
	w.hello("n1", "b", nil)
	w.raise("n1", "memory.ue", critical)
	w.pass()
	a := w.only("n1")
	if _, err := w.p.Deny(w.ctx, a.GetId(), "bob", "not now, customer event"); err != nil {
		t.Fatal(err)
	}
	w.advance(20 * 24 * time.Hour)
	w.raise("n1", "memory.ue", critical) // the same open fault, evidence again
	w.pass()
	if as := w.actions("n1"); len(as) != 1 {
		t.Fatalf("a denied fault was proposed again: %v", as)
	}
}

// Reboots that hang: the node never comes back, the action times out, and
// the node must still count as out of service while its agent is away, or
// one hung reboot after another takes the fleet out one limit at a time.
func TestHungRebootHoldsTheLimit(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 1
breaker:
  enabled: false
rules:
  - name: lockup
    classes: [kernel.lockup]
    ladder:
      - action: reboot
        approval: auto
        timeout: 10m
`)
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		w.hello(n, "boot-1", nil)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		w.raise(n, "kernel.lockup", critical)
	}
	w.pass()
	var first *hwhealv1.Action
	for _, n := range []string{"n1", "n2", "n3"} {
		if as := w.actions(n); len(as) == 1 && as[0].GetState() == action.Dispatched {
			first = as[0]
		}
	}
	if first == nil {
		t.Fatal("no reboot dispatched")
	}
	w.disconnect(first.GetNode()) // going down, and never back
	w.advance(15 * time.Minute)
	w.pass()
	w.wantState(first.GetId(), action.TimedOut)
	w.pass()
	for _, n := range []string{"n1", "n2", "n3"} {
		for _, a := range w.actions(n) {
			if a.GetId() != first.GetId() && a.GetState() != action.Approved {
				t.Fatalf("%s: %s while %s is still down after its reboot: %v", n, a.GetState(), first.GetNode(), a)
			}
		}
	}
	// Back in a new boot: the limit frees and the next reboot goes.
	w.hello(first.GetNode(), "boot-2", nil)
	w.pass()
	dispatched := 0
	for _, n := range []string{"n1", "n2", "n3"} {
		for _, a := range w.actions(n) {
			if a.GetState() == action.Dispatched {
				dispatched++
			}
		}
	}
	if dispatched != 1 {
		t.Fatalf("%d reboots dispatched once the node is back, want 1", dispatched)
	}
}

// Dry-run is the kill switch: a collector restarted with a dry-run policy
// does not run what was approved before.
func TestDryRunHoldsApprovedActions(t *testing.T) {
	const pol = `
windows:
  - {name: night, schedule: "0 22 * * *", duration: 4h, timezone: UTC}
rules:
  - name: ce
    classes: [memory.ce_storm]
    windows: [night]
    ladder:
      - action: offline
        approval: auto
`
	w := newWorld(t, pol)
	w.hello("n1", "b", nil)
	w.raise("n1", "memory.ce_storm", warning)
	w.pass()
	a := w.wantState(w.only("n1").GetId(), action.Approved)
	w.restart("dry_run: true\n" + pol)
	w.advance(12 * time.Hour)
	w.pass()
	a = w.wantState(a.GetId(), action.Cancelled)
	if !strings.Contains(a.GetResult(), "dry-run") || len(w.ordersTo("n1")) != 0 {
		t.Fatalf("result %q, orders %v", a.GetResult(), w.ordersTo("n1"))
	}
	// Its replacement is a dry run.
	w.pass()
	as := w.actions("n1")
	if len(as) != 2 || !as[0].GetDryRun() && !as[1].GetDryRun() {
		t.Fatalf("after the switch to dry-run: %v", as)
	}
	// A step that now needs approval is not run on the old approval either.
	w2 := newWorld(t, pol)
	w2.hello("n1", "b", nil)
	w2.raise("n1", "memory.ce_storm", warning)
	w2.pass()
	b := w2.only("n1")
	w2.restart(strings.Replace(pol, "approval: auto", "approval: required", 1))
	w2.advance(12 * time.Hour)
	w2.pass()
	if b = w2.wantState(b.GetId(), action.Cancelled); !strings.Contains(b.GetResult(), "required approval") {
		t.Fatalf("result %q", b.GetResult())
	}
}

// A person's request nobody answered never proceeds, whatever the policy's
// default expiry says.
func TestManualRequestNeverProceedsUnanswered(t *testing.T) {
	w := newWorld(t, `
approval:
  ttl: 1h
  on_expiry: proceed
manual:
  reboot: two-person
`)
	w.hello("n1", "b", nil)
	a, err := w.p.Request(w.ctx, "n1", action.Reboot, "just because", "mallory", false)
	if err != nil {
		t.Fatal(err)
	}
	w.advance(61 * time.Minute)
	w.pass()
	w.wantState(a.GetId(), action.Expired)
	if len(w.ordersTo("n1")) != 0 {
		t.Fatal("an unanswered request was dispatched")
	}
}

// Two approvers at once on a two-person action of a policy: both count,
// and the action is approved.
func TestConcurrentApprovals(t *testing.T) {
	w := newWorld(t, `
rules:
  - name: hot
    classes: [cpu.thermal]
    ladder:
      - action: offline
        approval: two-person
`)
	w.hello("n1", "b", nil)
	w.raise("n1", "cpu.thermal", critical)
	w.pass()
	a := w.only("n1")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []string{"alice", "bob"} {
		wg.Go(func() { _, errs[i] = w.p.Approve(w.ctx, a.GetId(), who, "ok", time.Time{}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if a = w.wantState(a.GetId(), action.Approved); len(a.GetApprovedBy()) != 2 {
		t.Fatalf("approved by %v", a.GetApprovedBy())
	}
}

// An agent clock far off does not make the planner see new evidence after
// a reboot that worked, nor blind the storm breaker: the planner reads the
// collector's receipt times.
func TestAgentClockSkew(t *testing.T) {
	w := newWorld(t, `
limits:
  max_out_of_service: 50%
rules:
  - name: lockup
    classes: [kernel.lockup]
    ladder:
      - action: reboot
        approval: auto
      - action: offline
        approval: auto
`)
	w.hello("n1", "boot-1", nil)
	w.hello("n2", "boot-1", nil)
	w.raiseAt("n1", "kernel.lockup", w.clock().Add(30*time.Minute)) // agent clock half an hour ahead
	w.pass()
	a := w.only("n1")
	w.hello("n1", "boot-2", nil)
	w.pass()
	w.wantState(a.GetId(), action.Succeeded)
	w.advance(time.Minute)
	w.pass()
	if as := w.actions("n1"); len(as) != 1 {
		t.Fatalf("a clock ahead read as new evidence after the reboot: %v", as)
	}

	b := newWorld(t, `
breaker: {nodes: 3, window: 10m}
rules:
  - name: ce
    classes: [memory.ce_storm]
    ladder:
      - action: offline
        approval: required
`)
	for _, n := range []string{"a", "b", "c", "d"} {
		b.hello(n, "x", nil)
		b.raiseAt(n, "memory.ce_storm", b.clock().Add(-6*time.Hour)) // RTCs reset by a power event
	}
	b.pass()
	if st, _ := b.st.RemediationState(b.ctx); !st.Paused {
		t.Fatal("the breaker did not trip on a storm from agents whose clocks are hours behind")
	}
}

// raiseAt reports a fault timed by the agent's clock at t.
func (w *world) raiseAt(node, class string, at time.Time) {
	w.t.Helper()
	w.apply(node, &hwhealv1.Report{Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: class, Severity: critical, Rule: "test-" + class,
		Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NODE, Name: node},
		Time: timestamppb.New(at), Mode: hwhealv1.RuleMode_RULE_MODE_ENFORCE,
	}}})
}
