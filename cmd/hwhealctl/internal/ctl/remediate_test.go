package ctl

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// pendingAction is a manual request waiting for two people.
func pendingAction() *hwhealv1.Action {
	return &hwhealv1.Action{
		Id: "a-1", Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, State: hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL,
		Reason: "kernel lockups", RequestedBy: "alice", Created: timestamppb.New(fakeNow.Add(-5 * time.Minute)), DryRun: true,
		Approval: hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON, ApprovalDeadline: timestamppb.New(fakeNow.Add(24 * time.Hour)),
		OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY,
	}
}

func TestRemediate(t *testing.T) {
	f := &fakeFleet{fakeData: fakeData{reply: pendingAction()}}
	e := startFake(t, f)

	out := e.ctl(t, "alice", "remediate", "web-1", "--action", "reboot", "--reason", "kernel lockups", "--dry-run")
	req := last[*hwhealv1.RequestActionRequest](t, f, "RequestAction")
	want := &hwhealv1.RequestActionRequest{Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, Reason: "kernel lockups", DryRun: true}
	if !proto.Equal(req, want) {
		t.Errorf("request %v, want %v", req, want)
	}
	wantLines(t, out,
		"action a-1: reboot of web-1 requested by alice (dry run: nothing will run)",
		"awaiting approval (two-person) until 2026-03-02T13:00:00+01:00 (in 24h0m0s), then deny",
		"approve: hwhealctl approve a-1 [--at TIME]",
		"deny: hwhealctl deny a-1 --reason TEXT",
		"follow: hwhealctl action a-1",
	)

	t.Run("approved by policy", func(t *testing.T) {
		f.reset()
		f.update(func(d *fakeData) {
			a := pendingAction()
			a.State, a.Approval, a.DryRun = hwhealv1.ActionState_ACTION_STATE_APPROVED, hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO, false
			a.Waiting = "limit: 5 of 5 nodes out of service"
			d.reply = a
		})
		out := e.ctl(t, "alice", "remediate", "web-1", "--action", "offline", "--reason", "r")
		if r := last[*hwhealv1.RequestActionRequest](t, f, "RequestAction"); r.GetType() != hwhealv1.ActionType_ACTION_TYPE_OFFLINE || r.GetDryRun() {
			t.Errorf("request %v", r)
		}
		wantLines(t, out,
			"approved: dispatched as soon as the limits, windows and freezes allow",
			"waiting for: limit: 5 of 5 nodes out of service",
			"cancel: hwhealctl cancel a-1 --reason TEXT",
		)
	})

	t.Run("json", func(t *testing.T) {
		f.update(func(d *fakeData) { d.reply = pendingAction() })
		var a map[string]any
		if err := json.Unmarshal([]byte(e.ctl(t, "alice", "remediate", "web-1", "--action", "reboot", "--reason", "r", "-o", "json")), &a); err != nil {
			t.Fatal(err)
		}
		if a["id"] != "a-1" || a["state"] != "ACTION_STATE_AWAITING_APPROVAL" || a["requested_by"] != "alice" {
			t.Errorf("-o json: %v", a)
		}
	})

	t.Run("refused before a call", func(t *testing.T) {
		f.reset()
		wantErr(t, e.ctlErr(t, "alice", "remediate", "web-1", "--action", "explode", "--reason", "r"), `--action "explode"`, "migrate, reboot, offline, online")
		wantErr(t, e.ctlErr(t, "alice", "remediate", "web-1", "--action", "reboot"), "--reason is required")
		wantErr(t, e.ctlErr(t, "alice", "remediate", "web-1", "--action", "reboot", "--reason", "  "), "--reason is required")
		wantErr(t, e.ctlErr(t, "alice", "remediate", "--action", "reboot", "--reason", "r"), "accepts 1 arg")
		if calls := f.requests("RequestAction"); len(calls) != 0 {
			t.Errorf("%d requests sent", len(calls))
		}
	})

	t.Run("viewer denied", func(t *testing.T) {
		err := e.ctlErr(t, "vic", "remediate", "web-1", "--action", "reboot", "--reason", "r")
		if err.Error() != "permission_denied: RequestAction needs role operator; vic has viewer" {
			t.Errorf("error %q", err)
		}
	})
}
