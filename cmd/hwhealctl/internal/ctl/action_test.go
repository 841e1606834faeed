package ctl

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// finishedAction is an offline runbook that ran, with every field set.
func finishedAction() *hwhealv1.Action {
	at := func(min int) *timestamppb.Timestamp {
		return timestamppb.New(fakeNow.Add(time.Duration(min) * time.Minute))
	}
	return &hwhealv1.Action{
		Id: "a-9", Node: "web-7", Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE, State: hwhealv1.ActionState_ACTION_STATE_FAILED,
		Reason: "memory.ce_storm on DIMM B2", RequestedBy: "policy:memory-ce", Rule: "memory-ce", LadderStep: 1, FaultClass: "memory.ce_storm",
		Created: at(-120), Updated: at(-10), FaultIds: []uint64{12, 15},
		Approval: hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON,
		Approvals: []*hwhealv1.ActionNote{
			{Actor: "bob", Time: at(-100), Reason: "ok"},
			{Actor: "carol", Time: at(-95)},
		},
		ApprovedBy: []string{"bob", "carol"}, ApprovalDeadline: at(-60), OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED,
		NotBefore: at(-90), Dispatched: at(-30), Finished: at(-10), Timeout: durationpb.New(time.Hour),
		PlannedBootId: "boot-7", PlannedService: hwhealv1.ServiceState_SERVICE_STATE_IN_SERVICE,
		Result: "step drain-wait failed: exit 1",
		Steps: []*hwhealv1.ActionStep{
			{Index: 0, Name: "lb-weight-0", Command: []string{"lbctl", "weight", "web-7", "0"}, Attempt: 1, Started: at(-30),
				Duration: durationpb.New(1200 * time.Millisecond), ExitCode: 0, Output: "weight set\n"},
			{Index: 1, Name: "drain-wait", Command: []string{"wait-drain", "--max", "5m"}, Attempt: 3, Started: at(-20),
				Duration: durationpb.New(5 * time.Minute), ExitCode: 1, Output: "connections: 12\nconnections: 9\n"},
			{Index: 2, Name: "mark-out", Attempt: 1, ExitCode: -1, TimedOut: true},
			{Index: 3, Name: "notify", Attempt: 1, ExitCode: -1, Error: "exec: \"notify\": executable file not found in $PATH"},
		},
	}
}

func TestAction(t *testing.T) {
	f := &fakeFleet{fakeData: fakeData{reply: finishedAction()}}
	e := startFake(t, f)

	out := e.ctl(t, "vic", "action", "a-9")
	if r := last[*hwhealv1.GetActionRequest](t, f, "GetAction"); r.GetId() != "a-9" {
		t.Errorf("request %v", r)
	}
	// Times are in the reader's zone (fakeZone, UTC+1), with how long ago.
	wantLines(t, out,
		"FIELD VALUE",
		"id a-9",
		"node web-7",
		"action offline",
		"state failed",
		"dry run no",
		"reason memory.ce_storm on DIMM B2",
		"requested by policy:memory-ce",
		"created 2026-03-01T11:00:00+01:00 (2h0m0s ago)",
		"updated 2026-03-01T12:50:00+01:00 (10m0s ago)",
		"rule memory-ce (ladder step 2, class memory.ce_storm)",
		"approval two-person",
		"approval 1 bob at 2026-03-01T11:20:00+01:00 (1h40m0s ago): ok",
		"approval 2 carol at 2026-03-01T11:25:00+01:00 (1h35m0s ago)",
		"approval deadline 2026-03-01T12:00:00+01:00 (1h0m0s ago), then proceed",
		"not before 2026-03-01T11:30:00+01:00 (1h30m0s ago)",
		"dispatched 2026-03-01T12:30:00+01:00 (30m0s ago)",
		"finished 2026-03-01T12:50:00+01:00 (10m0s ago)",
		"timeout 1h0m0s from dispatch",
		"planned on boot boot-7, in_service",
		"result step drain-wait failed: exit 1",
		"evidence faults 12, 15 (hwhealctl fault ID)",
		"Steps (4):",
		"1. lb-weight-0 attempt 1 exit 0 1.2s started 2026-03-01T12:30:00+01:00",
		"$ lbctl weight web-7 0",
		"weight set",
		"2. drain-wait attempt 3 exit 1 5m0s started 2026-03-01T12:40:00+01:00",
		"$ wait-drain --max 5m",
		"connections: 12",
		"connections: 9",
		"3. mark-out attempt 1 timed out",
		"4. notify attempt 1 exit -1",
		`error: exec: "notify": executable file not found in $PATH`,
	)
	// Output is indented under its step, deeper than the command.
	if !strings.Contains(out, "\n       connections: 12\n       connections: 9\n") || !strings.Contains(out, "\n     $ wait-drain --max 5m\n") {
		t.Errorf("step output not indented under its step:\n%s", out)
	}

	t.Run("pending manual", func(t *testing.T) {
		f.update(func(d *fakeData) { d.reply = pendingAction() })
		out := e.ctl(t, "vic", "action", "a-1")
		wantLines(t, out, "dry run yes", "rule manual", "approval two-person",
			"approval deadline 2026-03-02T13:00:00+01:00 (in 24h0m0s), then deny", "evidence -", "Steps (0):")
		for _, absent := range []string{"dispatched", "finished", "decision", "not before", "timeout"} {
			if strings.Contains(out, "\n"+absent) {
				t.Errorf("a pending action shows %q:\n%s", absent, out)
			}
		}
	})

	t.Run("denied", func(t *testing.T) {
		f.update(func(d *fakeData) {
			a := pendingAction()
			a.State = hwhealv1.ActionState_ACTION_STATE_DENIED
			a.Decision = &hwhealv1.ActionNote{Actor: "bob", Time: timestamppb.New(fakeNow), Reason: "not now"}
			d.reply = a
		})
		wantLines(t, e.ctl(t, "vic", "action", "a-1"), "state denied", "decision bob at 2026-03-01T13:00:00+01:00 (now): not now")
	})

	t.Run("unknown", func(t *testing.T) {
		wantErr(t, e.ctlErr(t, "vic", "action", "a-404"), "not_found: action a-404 not found")
	})
}
