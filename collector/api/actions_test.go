package api_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/api"
	"github.com/hwheal/hwheal/collector/auth"
	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/pkg/auditchain"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/planner"
	"github.com/hwheal/hwheal/remediation/policy"
)

// Without a planner the decisions answer UNIMPLEMENTED; listings work.
func TestActionsWithoutRemediation(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := asUser(t.Context(), "alice")
	calls := map[string]func() error{
		"RequestAction": func() error {
			_, err := e.client.RequestAction(ctx, &hwhealv1.RequestActionRequest{Node: "n", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, Reason: "r"})
			return err
		},
		"ApproveAction": func() error {
			_, err := e.client.ApproveAction(ctx, &hwhealv1.ApproveActionRequest{Id: "a"})
			return err
		},
		"DenyAction": func() error {
			_, err := e.client.DenyAction(ctx, &hwhealv1.DenyActionRequest{Id: "a", Reason: "r"})
			return err
		},
		"CancelAction": func() error {
			_, err := e.client.CancelAction(ctx, &hwhealv1.CancelActionRequest{Id: "a", Reason: "r"})
			return err
		},
		"PauseRemediation": func() error {
			_, err := e.client.PauseRemediation(ctx, &hwhealv1.PauseRemediationRequest{Reason: "r"})
			return err
		},
		"GetRemediationStatus": func() error {
			_, err := e.client.GetRemediationStatus(ctx, &hwhealv1.GetRemediationStatusRequest{})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), codes.Unimplemented, "remediation") })
	}
	if resp, err := e.client.ListActions(ctx, &hwhealv1.ListActionsRequest{}); err != nil || len(resp.GetActions()) != 0 {
		t.Fatalf("ListActions = %v, %v", resp, err)
	}
	_, err := e.client.GetAction(ctx, &hwhealv1.GetActionRequest{Id: "nope"})
	wantCode(t, err, codes.NotFound)
}

// withPlanner serves the API with a real planner under policy.
func withPlanner(t *testing.T, policyYAML string) *env {
	t.Helper()
	pol, err := policy.Parse([]byte(policyYAML), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, envOpts{remediation: func(s store.Store) api.Remediator {
		p, err := planner.New(planner.Config{
			Store: s, Policy: pol,
			Write: func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error {
				_, err := fn(ctx)
				return err
			},
			Send: func(string, *hwhealv1.ActionOrder) bool { return false },
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}})
}

// The operator's path through the API: request, the requester's own
// approval refused under two-person, a second approver accepted, decisions
// validated, pause and resume, and the audit log verified.
func TestActionsAPI(t *testing.T) {
	e := withPlanner(t, `
manual:
  reboot: two-person
  offline: required
`)
	hello(t, e.store, "web-1", map[string]string{"rack": "r1"})
	alice := asRole(t.Context(), "alice", auth.Approver)
	bob := asRole(t.Context(), "bob", auth.Approver)

	_, err := e.client.RequestAction(alice, &hwhealv1.RequestActionRequest{Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT})
	wantCode(t, err, codes.InvalidArgument, "reason is required")
	_, err = e.client.RequestAction(alice, &hwhealv1.RequestActionRequest{Node: "web-1", Reason: "r"})
	wantCode(t, err, codes.InvalidArgument, "action type")
	_, err = e.client.RequestAction(alice, &hwhealv1.RequestActionRequest{Node: "web-404", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, Reason: "r"})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.RequestAction(t.Context(), &hwhealv1.RequestActionRequest{Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, Reason: "r"})
	wantCode(t, err, codes.Unauthenticated)

	req, err := e.client.RequestAction(alice, &hwhealv1.RequestActionRequest{Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, Reason: "PSU flapping per BMC"})
	if err != nil {
		t.Fatal(err)
	}
	a := req.GetAction()
	if a.GetState() != hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL || a.GetRequestedBy() != "alice" {
		t.Fatalf("requested: %v", a)
	}
	_, err = e.client.ApproveAction(alice, &hwhealv1.ApproveActionRequest{Id: a.GetId()})
	wantCode(t, err, codes.PermissionDenied, "alice requested action", "second approver")
	_, err = e.client.ApproveAction(bob, &hwhealv1.ApproveActionRequest{Id: a.GetId(), At: &timestamppb.Timestamp{Seconds: -1 << 62}})
	wantCode(t, err, codes.InvalidArgument, "at")
	ap, err := e.client.ApproveAction(bob, &hwhealv1.ApproveActionRequest{Id: a.GetId(), Reason: "checked"})
	if err != nil {
		t.Fatal(err)
	}
	if ap.GetAction().GetState() != hwhealv1.ActionState_ACTION_STATE_APPROVED {
		t.Fatalf("approved: %v", ap.GetAction())
	}
	_, err = e.client.ApproveAction(bob, &hwhealv1.ApproveActionRequest{Id: a.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "not awaiting approval")
	_, err = e.client.DenyAction(bob, &hwhealv1.DenyActionRequest{Id: a.GetId(), Reason: "too late"})
	wantCode(t, err, codes.FailedPrecondition, "no longer pending")

	off, err := e.client.RequestAction(alice, &hwhealv1.RequestActionRequest{Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE, Reason: "drain"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.DenyAction(bob, &hwhealv1.DenyActionRequest{Id: off.GetAction().GetId()})
	wantCode(t, err, codes.InvalidArgument, "reason is required")
	den, err := e.client.DenyAction(bob, &hwhealv1.DenyActionRequest{Id: off.GetAction().GetId(), Reason: "not during the sale"})
	if err != nil {
		t.Fatal(err)
	}
	if d := den.GetAction().GetDecision(); den.GetAction().GetState() != hwhealv1.ActionState_ACTION_STATE_DENIED || d.GetActor() != "bob" || d.GetReason() != "not during the sale" {
		t.Fatalf("denied: %v", den.GetAction())
	}
	can, err := e.client.CancelAction(alice, &hwhealv1.CancelActionRequest{Id: a.GetId(), Reason: "fixed by hand"})
	if err != nil || can.GetAction().GetState() != hwhealv1.ActionState_ACTION_STATE_CANCELLED {
		t.Fatalf("cancel: %v, %v", can, err)
	}

	admin := asUser(t.Context(), "carol")
	p, err := e.client.PauseRemediation(admin, &hwhealv1.PauseRemediationRequest{Reason: "firmware rollout"})
	if err != nil || !p.GetStatus().GetPaused() || p.GetStatus().GetPausedBy().GetActor() != "carol" {
		t.Fatalf("pause: %v, %v", p, err)
	}
	st, err := e.client.GetRemediationStatus(alice, &hwhealv1.GetRemediationStatusRequest{})
	if err != nil || !st.GetStatus().GetPaused() || st.GetStatus().GetNodes() != 1 {
		t.Fatalf("status: %v, %v", st, err)
	}
	r, err := e.client.ResumeRemediation(admin, &hwhealv1.ResumeRemediationRequest{Reason: "rollout done"})
	if err != nil || r.GetStatus().GetPaused() || r.GetStatus().GetResumedBy().GetActor() != "carol" {
		t.Fatalf("resume: %v, %v", r, err)
	}

	list, err := e.client.ListActions(alice, &hwhealv1.ListActionsRequest{Node: "web-1", States: []hwhealv1.ActionState{hwhealv1.ActionState_ACTION_STATE_DENIED}})
	if err != nil || len(list.GetActions()) != 1 || list.GetActions()[0].GetId() != off.GetAction().GetId() {
		t.Fatalf("list denied: %v, %v", list, err)
	}
	var v auditchain.Verifier
	kinds := map[string]int{}
	for tok := ""; ; {
		resp, err := e.client.ListAudit(alice, &hwhealv1.ListAuditRequest{PageSize: 3, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range resp.GetRecords() {
			if err := v.Add(rec); err != nil {
				t.Fatal(err)
			}
			kinds[rec.GetKind()]++
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	for _, k := range []string{"action.created", "action.approval_refused", "action.approved", "action.denied", "action.cancelled", "remediation.paused", "remediation.resumed"} {
		if kinds[k] == 0 {
			t.Errorf("no %s record in the audit log: %v", k, kinds)
		}
	}
}
