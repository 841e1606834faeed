package api

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/approval"
	"github.com/hwheal/hwheal/remediation/planner"
)

// Remediator is what the fleet API asks of the remediation planner
// (remediation/planner implements it): operators' requests and decisions.
// Listings read the store directly.
type Remediator interface {
	Request(ctx context.Context, node string, t hwhealv1.ActionType, reason, actor string, dryRun bool) (*hwhealv1.Action, error)
	Approve(ctx context.Context, id, actor, reason string, at time.Time) (*hwhealv1.Action, error)
	Deny(ctx context.Context, id, actor, reason string) (*hwhealv1.Action, error)
	Cancel(ctx context.Context, id, actor, reason string) (*hwhealv1.Action, error)
	Pause(ctx context.Context, actor, reason string) (*hwhealv1.RemediationStatus, error)
	Resume(ctx context.Context, actor, reason string) (*hwhealv1.RemediationStatus, error)
	Status(ctx context.Context) (*hwhealv1.RemediationStatus, error)
}

// maxActionID bounds an action id in a request.
const maxActionID = 64

var errNoRemediation = status.Error(codes.Unimplemented, "remediation is not enabled in this collector")

func actionID(id string) error {
	if id == "" {
		return status.Error(codes.InvalidArgument, "id is required")
	}
	if len(id) > maxActionID || !utf8.ValidString(id) {
		return status.Errorf(codes.InvalidArgument, "id must be at most %d bytes of UTF-8", maxActionID)
	}
	return nil
}

// remediationErr maps the planner's and the store's errors to statuses.
func (f *Fleet) remediationErr(op string, err error) error {
	switch {
	case errors.Is(err, approval.ErrSelfApproval):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, approval.ErrAlreadyApproved), errors.Is(err, approval.ErrNotAwaiting),
		errors.Is(err, planner.ErrNotPending), errors.Is(err, store.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, planner.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return f.storeErr(op, err)
}

// ListActions lists actions, newest first.
func (f *Fleet) ListActions(ctx context.Context, req *hwhealv1.ListActionsRequest) (*hwhealv1.ListActionsResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	as, next, err := f.store.ListActions(ctx, store.ActionFilter{Node: req.GetNode(), States: req.GetStates(), Rule: req.GetRule()}, p)
	if err != nil {
		return nil, f.storeErr("list actions", err)
	}
	return &hwhealv1.ListActionsResponse{Actions: as, NextPageToken: next}, nil
}

// GetAction returns one action with its steps.
func (f *Fleet) GetAction(ctx context.Context, req *hwhealv1.GetActionRequest) (*hwhealv1.GetActionResponse, error) {
	if err := actionID(req.GetId()); err != nil {
		return nil, err
	}
	a, err := f.store.GetAction(ctx, req.GetId())
	if err != nil {
		return nil, f.storeErr("get action", err)
	}
	return &hwhealv1.GetActionResponse{Action: a}, nil
}

// RequestAction asks for an action on a node.
func (f *Fleet) RequestAction(ctx context.Context, req *hwhealv1.RequestActionRequest) (*hwhealv1.RequestActionResponse, error) {
	if f.remediation == nil {
		return nil, errNoRemediation
	}
	if req.GetNode() == "" {
		return nil, status.Error(codes.InvalidArgument, "node is required")
	}
	reason, err := reasonOf(req.GetReason(), true)
	if err != nil {
		return nil, err
	}
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	a, err := f.remediation.Request(ctx, req.GetNode(), req.GetType(), reason, who, req.GetDryRun())
	if err != nil {
		return nil, f.remediationErr("request action", err)
	}
	return &hwhealv1.RequestActionResponse{Action: a}, nil
}

// ApproveAction approves an action awaiting approval, now or for later.
func (f *Fleet) ApproveAction(ctx context.Context, req *hwhealv1.ApproveActionRequest) (*hwhealv1.ApproveActionResponse, error) {
	if f.remediation == nil {
		return nil, errNoRemediation
	}
	if err := actionID(req.GetId()); err != nil {
		return nil, err
	}
	reason, err := reasonOf(req.GetReason(), false)
	if err != nil {
		return nil, err
	}
	var at time.Time
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "at: %v", err)
		}
		at = req.GetAt().AsTime()
	}
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	a, err := f.remediation.Approve(ctx, req.GetId(), who, reason, at)
	if err != nil {
		return nil, f.remediationErr("approve action", err)
	}
	return &hwhealv1.ApproveActionResponse{Action: a}, nil
}

// DenyAction refuses an action awaiting approval.
func (f *Fleet) DenyAction(ctx context.Context, req *hwhealv1.DenyActionRequest) (*hwhealv1.DenyActionResponse, error) {
	a, err := f.decide(ctx, req.GetId(), req.GetReason(), "deny action", Remediator.Deny)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.DenyActionResponse{Action: a}, nil
}

// CancelAction cancels an action not yet dispatched.
func (f *Fleet) CancelAction(ctx context.Context, req *hwhealv1.CancelActionRequest) (*hwhealv1.CancelActionResponse, error) {
	a, err := f.decide(ctx, req.GetId(), req.GetReason(), "cancel action", Remediator.Cancel)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.CancelActionResponse{Action: a}, nil
}

func (f *Fleet) decide(ctx context.Context, id, reason, op string, fn func(r Remediator, ctx context.Context, id, who, reason string) (*hwhealv1.Action, error)) (*hwhealv1.Action, error) {
	if f.remediation == nil {
		return nil, errNoRemediation
	}
	if err := actionID(id); err != nil {
		return nil, err
	}
	reason, err := reasonOf(reason, true)
	if err != nil {
		return nil, err
	}
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	a, err := fn(f.remediation, ctx, id, who, reason)
	if err != nil {
		return nil, f.remediationErr(op, err)
	}
	return a, nil
}

// PauseRemediation stops every automatic action until resumed.
func (f *Fleet) PauseRemediation(ctx context.Context, req *hwhealv1.PauseRemediationRequest) (*hwhealv1.PauseRemediationResponse, error) {
	st, err := f.switchRemediation(ctx, req.GetReason(), true)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.PauseRemediationResponse{Status: st}, nil
}

// ResumeRemediation lets automatic actions run again.
func (f *Fleet) ResumeRemediation(ctx context.Context, req *hwhealv1.ResumeRemediationRequest) (*hwhealv1.ResumeRemediationResponse, error) {
	st, err := f.switchRemediation(ctx, req.GetReason(), false)
	if err != nil {
		return nil, err
	}
	return &hwhealv1.ResumeRemediationResponse{Status: st}, nil
}

func (f *Fleet) switchRemediation(ctx context.Context, reason string, pause bool) (*hwhealv1.RemediationStatus, error) {
	if f.remediation == nil {
		return nil, errNoRemediation
	}
	reason, err := reasonOf(reason, true)
	if err != nil {
		return nil, err
	}
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	op, fn := "resume remediation", f.remediation.Resume
	if pause {
		op, fn = "pause remediation", f.remediation.Pause
	}
	st, err := fn(ctx, who, reason)
	if err != nil {
		return nil, f.remediationErr(op, err)
	}
	return st, nil
}

// GetRemediationStatus says where remediation stands.
func (f *Fleet) GetRemediationStatus(ctx context.Context, _ *hwhealv1.GetRemediationStatusRequest) (*hwhealv1.GetRemediationStatusResponse, error) {
	if f.remediation == nil {
		return nil, errNoRemediation
	}
	st, err := f.remediation.Status(ctx)
	if err != nil {
		return nil, f.remediationErr("remediation status", err)
	}
	return &hwhealv1.GetRemediationStatusResponse{Status: st}, nil
}

// ListAudit pages the audit log in id order.
func (f *Fleet) ListAudit(ctx context.Context, req *hwhealv1.ListAuditRequest) (*hwhealv1.ListAuditResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	recs, next, err := f.store.ListAudit(ctx, store.AuditFilter{Node: req.GetNode(), ActionID: req.GetActionId()}, p)
	if err != nil {
		return nil, f.storeErr("list audit", err)
	}
	return &hwhealv1.ListAuditResponse{Records: recs, NextPageToken: next}, nil
}
