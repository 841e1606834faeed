package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/approval"
	"github.com/hwheal/hwheal/remediation/policy"
)

// ErrInvalid wraps a request that can never succeed as it is (a bad
// type, a time outside the approval window).
var ErrInvalid = errors.New("invalid request")

// ErrNotPending refuses to cancel or deny an action that was dispatched
// or has ended.
var ErrNotPending = errors.New("action is no longer pending")

// Request is an operator's request for an action on a node. The policy's
// manual rule for the type says whether it needs approval; a dry run
// (asked for, or the whole policy's) needs none.
func (p *Planner) Request(ctx context.Context, node string, t hwhealv1.ActionType, reason, actor string, dryRun bool) (*hwhealv1.Action, error) {
	if action.TypeName(t) == "" {
		return nil, fmt.Errorf("%w: action type %v: use reboot, offline, migrate or online", ErrInvalid, t)
	}
	n, err := p.cfg.Store.GetNode(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	now := p.cfg.Now()
	ap := p.cfg.Policy.ManualApproval(t)
	// A person's request that nobody answered never runs: "proceed" is
	// for planned work the policy offers, or a requester alone could get
	// a reboot no approver agreed to by waiting.
	ap.OnExpiry = hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY
	timeout := action.DefaultTimeout(t)
	a := &hwhealv1.Action{
		Id:             p.cfg.NewID(),
		Node:           node,
		Type:           t,
		Reason:         reason,
		RequestedBy:    actor,
		DryRun:         dryRun || p.cfg.Policy.DryRun,
		Timeout:        durationpb.New(timeout),
		PlannedBootId:  n.GetBootId(),
		PlannedService: action.Normal(n.GetServiceState()),
		Created:        timestamppb.New(now),
		Updated:        timestamppb.New(now),
	}
	p.setApproval(a, ap, now)
	if err := p.create(ctx, a); err != nil {
		return nil, err
	}
	p.log.Info("action requested", "action", a.GetId(), "node", node, "type", action.TypeName(t), "by", actor,
		"state", action.StateName(a.GetState()), "dry_run", a.GetDryRun())
	p.Wake()
	return a, nil
}

// Approve records an approver's approval of an action awaiting approval;
// when the approvals complete its mode it is approved, to run at once or
// at `at` (non-zero), which must fall before its approval deadline.
func (p *Planner) Approve(ctx context.Context, id, actor, reason string, at time.Time) (*hwhealv1.Action, error) {
	// Whether this approval completes the action's mode depends on the
	// approvals before it: two approvers at once must not both be the
	// first.
	p.approveMu.Lock()
	defer p.approveMu.Unlock()
	a, err := p.cfg.Store.GetAction(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", id, err)
	}
	now := p.cfg.Now()
	complete, err := approval.Check(a, actor)
	if err != nil {
		p.auditRefusal(ctx, a, actor, "action.approval_refused", err.Error())
		return nil, err
	}
	if !at.IsZero() {
		if at.Before(now.Add(-time.Minute)) {
			return nil, fmt.Errorf("%w: --at %s is in the past", ErrInvalid, at.Format(timeFormat))
		}
		if d := a.GetApprovalDeadline(); d != nil && at.After(d.AsTime()) {
			return nil, fmt.Errorf("%w: --at %s is after the approval deadline %s: approve it for a time inside its window", ErrInvalid,
				at.Format(timeFormat), d.AsTime().Format(timeFormat))
		}
	}
	if reason == "" {
		reason = "approved"
	}
	ch := store.ActionChange{
		ID: id, From: []hwhealv1.ActionState{action.AwaitingApproval}, To: action.AwaitingApproval,
		Actor: actor, Reason: reason, Time: now, Approval: note(actor, reason, now),
	}
	if complete {
		ch.To = action.Approved
	}
	// An approver's time stands even when another approval is still
	// needed: the last approver need not repeat it.
	if !at.IsZero() {
		ch.NotBefore = &at
	}
	got, err := p.change(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("approve action %s: %w", id, err)
	}
	p.Wake()
	return got, nil
}

// Deny refuses an action awaiting approval.
func (p *Planner) Deny(ctx context.Context, id, actor, reason string) (*hwhealv1.Action, error) {
	return p.decide(ctx, id, action.Denied, []hwhealv1.ActionState{action.AwaitingApproval}, actor, reason)
}

// Cancel cancels an action not yet dispatched.
func (p *Planner) Cancel(ctx context.Context, id, actor, reason string) (*hwhealv1.Action, error) {
	return p.decide(ctx, id, action.Cancelled, []hwhealv1.ActionState{action.Proposed, action.AwaitingApproval, action.Approved}, actor, reason)
}

func (p *Planner) decide(ctx context.Context, id string, to hwhealv1.ActionState, from []hwhealv1.ActionState, actor, reason string) (*hwhealv1.Action, error) {
	a, err := p.cfg.Store.GetAction(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", id, err)
	}
	ok := false
	for _, s := range from {
		ok = ok || a.GetState() == s
	}
	if !ok {
		return nil, fmt.Errorf("%w: action %s is %s", ErrNotPending, id, action.StateName(a.GetState()))
	}
	got, err := p.change(ctx, store.ActionChange{ID: id, From: []hwhealv1.ActionState{a.GetState()}, To: to, Actor: actor, Reason: reason, Time: p.cfg.Now()})
	if errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("%w: action %s changed meanwhile; look again", ErrNotPending, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%s action %s: %w", action.StateName(to), id, err)
	}
	p.Wake()
	return got, nil
}

// auditRefusal records a refused operator request; a failure to record it
// is logged, the refusal stands.
func (p *Planner) auditRefusal(ctx context.Context, a *hwhealv1.Action, actor, kind, why string) {
	detail, _ := json.Marshal(map[string]string{"reason": why})
	err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		_, err := p.cfg.Store.AppendAudit(ctx, store.AuditEntry{
			Actor: actor, Kind: kind, Node: a.GetNode(), ActionID: a.GetId(),
			Detail: string(detail), Time: p.cfg.Now(),
		})
		return nil, err
	})
	if err != nil {
		p.log.Warn("audit of a refused request failed", "action", a.GetId(), "err", err)
	}
}

// Pause stops every automatic action until Resume.
func (p *Planner) Pause(ctx context.Context, actor, reason string) (*hwhealv1.RemediationStatus, error) {
	return p.setPaused(ctx, true, actor, reason)
}

// Resume lets automatic actions run again. Faults that opened before it do
// not trip the storm breaker again.
func (p *Planner) Resume(ctx context.Context, actor, reason string) (*hwhealv1.RemediationStatus, error) {
	return p.setPaused(ctx, false, actor, reason)
}

func (p *Planner) setPaused(ctx context.Context, paused bool, actor, reason string) (*hwhealv1.RemediationStatus, error) {
	// Not during a pass: a pass read the switch when it started, and must
	// not dispatch after the operator was told remediation is paused.
	p.mu.Lock()
	err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		evs, _, err := p.cfg.Store.SetPaused(ctx, paused, store.Note{Actor: actor, Reason: reason, Time: p.cfg.Now()})
		return evs, err
	})
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	p.log.Warn("remediation switched", "paused", paused, "by", actor, "reason", reason)
	p.Wake()
	return p.Status(ctx)
}

// Status reads the fleet and says where remediation stands.
func (p *Planner) Status(ctx context.Context) (*hwhealv1.RemediationStatus, error) {
	s, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	pol := p.cfg.Policy
	u := s.fleet.Usage(pol.Limits)
	st := &hwhealv1.RemediationStatus{
		Paused:          s.state.Paused,
		PausedBy:        s.state.PausedBy,
		ResumedBy:       s.state.ResumedBy,
		PolicyFile:      pol.File,
		PolicySha256:    pol.SHA256,
		DryRun:          pol.DryRun,
		Nodes:           uint32(u.Nodes),
		OutOfService:    uint32(u.OutOfService),
		MaxOutOfService: uint32(u.MaxOutOfService),
		Available:       uint32(u.Available),
		MinAvailable:    uint32(u.MinAvailable),
		Domains:         u.Domains,
	}
	awaiting, inFlight := s.counts()
	st.AwaitingApproval, st.InFlight = uint32(awaiting), uint32(inFlight)
	return st, nil
}

// Pending returns the orders a node's agent should have: its actions
// dispatched or running. Ingest sends them after every Welcome; the agent
// runs each id at most once, so a repeat is harmless.
func (p *Planner) Pending(ctx context.Context, node string) ([]*hwhealv1.ActionOrder, error) {
	as, _, err := p.cfg.Store.ListActions(ctx, store.ActionFilter{Node: node, States: []hwhealv1.ActionState{action.Dispatched, action.Running}}, store.Page{Size: pageSize})
	if err != nil {
		return nil, err
	}
	out := make([]*hwhealv1.ActionOrder, 0, len(as))
	for i := len(as) - 1; i >= 0; i-- { // oldest first
		out = append(out, Order(as[i]))
	}
	return out, nil
}

func ruleNamed(rules []*policy.Rule, name string) *policy.Rule {
	for _, r := range rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}
