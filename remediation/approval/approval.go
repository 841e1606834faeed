// Package approval owns the approval rules of actions: who may approve an
// action awaiting approval, and when the approvals it has complete its
// mode (auto, required, two-person). It is pure; the planner applies its
// answers through the store.
package approval

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

var (
	// ErrSelfApproval refuses the requester's own approval of a
	// two-person action.
	ErrSelfApproval = errors.New("two-person approval: the requester cannot approve their own action")
	// ErrAlreadyApproved refuses a second approval by the same person.
	ErrAlreadyApproved = errors.New("already approved by this approver")
	// ErrNotAwaiting refuses an approval of an action not awaiting one.
	ErrNotAwaiting = errors.New("action is not awaiting approval")
)

// PolicyActor is the requester of the actions a policy rule proposes.
func PolicyActor(rule string) string { return "policy:" + rule }

// IsPerson reports whether actor names a person rather than the
// collector's own machinery ("policy:<rule>", "collector", "breaker",
// "agent:<node>"): only people count towards a two-person rule.
func IsPerson(actor string) bool {
	if actor == "" || actor == "collector" || actor == "breaker" {
		return false
	}
	return !strings.HasPrefix(actor, "policy:") && !strings.HasPrefix(actor, "agent:")
}

// Check decides whether approver may approve a, and whether the approval
// completes a's approval mode, so that a may move to APPROVED.
//
//   - AUTO and REQUIRED: any approver's approval completes it (under
//     REQUIRED a requester who holds the approver role may approve their
//     own request: one person with the role agreed, which is what the mode
//     asks).
//   - TWO_PERSON: the requester may never approve. It completes once the
//     people among the requester and the approvers are two: one approver
//     for a person's request, two for a policy's.
func Check(a *hwhealv1.Action, approver string) (complete bool, err error) {
	if a.GetState() != hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL {
		return false, fmt.Errorf("%w (it is %s)", ErrNotAwaiting, action.StateName(a.GetState()))
	}
	if slices.Contains(a.GetApprovedBy(), approver) {
		return false, fmt.Errorf("%w: %s", ErrAlreadyApproved, approver)
	}
	switch a.GetApproval() {
	case hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON:
		if approver == a.GetRequestedBy() {
			return false, fmt.Errorf("%w: %s requested action %s; a second approver must approve it", ErrSelfApproval, approver, a.GetId())
		}
		people := map[string]bool{approver: true}
		if IsPerson(a.GetRequestedBy()) {
			people[a.GetRequestedBy()] = true
		}
		for _, p := range a.GetApprovedBy() {
			if IsPerson(p) {
				people[p] = true
			}
		}
		return len(people) >= 2, nil
	default:
		return true, nil
	}
}

// Needed says, for a listing, who still has to approve a.
func Needed(a *hwhealv1.Action) string {
	if a.GetState() != hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL {
		return ""
	}
	if a.GetApproval() == hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON {
		if len(a.GetApprovedBy()) > 0 || IsPerson(a.GetRequestedBy()) {
			return "one more approver (not " + a.GetRequestedBy() + ")"
		}
		return "two approvers"
	}
	return "an approver"
}
