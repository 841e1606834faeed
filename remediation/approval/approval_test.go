package approval

import (
	"errors"
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestCheck(t *testing.T) {
	awaiting := hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL
	two := hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON
	req := hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED
	tests := []struct {
		name         string
		action       *hwhealv1.Action
		approver     string
		wantComplete bool
		wantErr      error
	}{
		{"required: another approver completes", &hwhealv1.Action{State: awaiting, Approval: req, RequestedBy: "alice"}, "bob", true, nil},
		{"required: the requester with the role completes", &hwhealv1.Action{State: awaiting, Approval: req, RequestedBy: "alice"}, "alice", true, nil},
		{"two-person: the requester is refused", &hwhealv1.Action{State: awaiting, Approval: two, RequestedBy: "alice"}, "alice", false, ErrSelfApproval},
		{"two-person: a second person completes an operator's request", &hwhealv1.Action{State: awaiting, Approval: two, RequestedBy: "alice"}, "bob", true, nil},
		{"two-person: a policy's request needs two approvers, first", &hwhealv1.Action{State: awaiting, Approval: two, RequestedBy: "policy:cpu-thermal"}, "bob", false, nil},
		{"two-person: a policy's request needs two approvers, second", &hwhealv1.Action{State: awaiting, Approval: two, RequestedBy: "policy:cpu-thermal", ApprovedBy: []string{"bob"}}, "carol", true, nil},
		{"two-person: the same approver twice is refused", &hwhealv1.Action{State: awaiting, Approval: two, RequestedBy: "policy:cpu-thermal", ApprovedBy: []string{"bob"}}, "bob", false, ErrAlreadyApproved},
		{"an approved action is not awaiting", &hwhealv1.Action{State: hwhealv1.ActionState_ACTION_STATE_APPROVED, Approval: req, RequestedBy: "alice"}, "bob", false, ErrNotAwaiting},
		{"a denied action is not awaiting", &hwhealv1.Action{State: hwhealv1.ActionState_ACTION_STATE_DENIED, Approval: two, RequestedBy: "alice"}, "bob", false, ErrNotAwaiting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			complete, err := Check(tt.action, tt.approver)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if complete != tt.wantComplete {
				t.Fatalf("complete = %v, want %v", complete, tt.wantComplete)
			}
		})
	}
}

func TestIsPerson(t *testing.T) {
	for actor, want := range map[string]bool{
		"alice": true, "bob@host": true, "policy:kernel-lockup": false, "collector": false,
		"breaker": false, "agent:web-1": false, "": false,
	} {
		if got := IsPerson(actor); got != want {
			t.Errorf("IsPerson(%q) = %v, want %v", actor, got, want)
		}
	}
}
