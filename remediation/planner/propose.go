package planner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/approval"
	"github.com/hwheal/hwheal/remediation/policy"
)

// propose creates the actions the policy asks for: for each node in
// service and each rule that covers its open enforced faults, the next
// step of the rule's ladder, or an escalation to people when the ladder or
// the node's weekly cap is used up.
func (p *Planner) propose(ctx context.Context, s *snapshot) error {
	if s.state.Paused {
		return nil
	}
	pol := p.cfg.Policy
	for _, name := range s.names {
		faults := s.open[name]
		if len(faults) == 0 {
			continue
		}
		// Automation acts on nodes in service only: a node drained,
		// offline or rebooting is already being dealt with, and one an
		// operator took out is theirs.
		if action.OutOfService(s.nodes[name].GetServiceState()) || len(s.live(name)) > 0 {
			continue
		}
		byRule := make(map[*policy.Rule][]*hwhealv1.FaultRecord)
		var rules []*policy.Rule
		for _, f := range faults {
			r := pol.RuleFor(f.GetFaultClass(), f.GetSeverity())
			if r == nil {
				continue
			}
			if _, ok := byRule[r]; !ok {
				rules = append(rules, r)
			}
			byRule[r] = append(byRule[r], f)
		}
		// Rules in file order: the first rule's action goes first, and one
		// action per node at a time.
		slices.SortFunc(rules, func(a, b *policy.Rule) int { return a.Line - b.Line })
		for _, r := range rules {
			created, err := p.proposeFor(ctx, s, name, r, byRule[r])
			if err != nil {
				return err
			}
			if created {
				break
			}
		}
	}
	return nil
}

// evidenceTime is when the collector received the fault's latest report,
// on its own clock: the agent's last_seen may be hours off. A record from a
// store without it falls back to last_seen.
func evidenceTime(f *hwhealv1.FaultRecord) time.Time {
	if f.GetReceived() != nil {
		return f.GetReceived().AsTime()
	}
	return f.GetLastSeen().AsTime()
}

// openedTime is when the fault opened (or last reopened), on the
// collector's clock; first_seen for a record without it.
func openedTime(f *hwhealv1.FaultRecord) time.Time {
	if f.GetOpened() != nil {
		return f.GetOpened().AsTime()
	}
	return f.GetFirstSeen().AsTime()
}

// lastActions returns the newest action on the node, and the newest r
// proposed for it, however old: a ladder must not forget that it acted (or
// that people said no) because the action left the pass's lookback. The
// snapshot holds every action of the lookback, so only a node without one
// there costs a lookup.
func (p *Planner) lastActions(ctx context.Context, s *snapshot, name, rule string) (lastAny, last *hwhealv1.Action, err error) {
	for _, a := range s.actions[name] { // newest first
		if lastAny == nil {
			lastAny = a
		}
		if last == nil && a.GetRule() == rule {
			last = a
		}
	}
	newest := func(f store.ActionFilter) (*hwhealv1.Action, error) {
		as, _, err := p.cfg.Store.ListActions(ctx, f, store.Page{Size: 1})
		if err != nil || len(as) == 0 {
			return nil, err
		}
		return as[0], nil
	}
	if lastAny == nil {
		if lastAny, err = newest(store.ActionFilter{Node: name}); err != nil {
			return nil, nil, fmt.Errorf("last action on %s: %w", name, err)
		}
	}
	if last == nil && lastAny != nil {
		if last, err = newest(store.ActionFilter{Node: name, Rule: rule}); err != nil {
			return nil, nil, fmt.Errorf("last action of rule %s on %s: %w", rule, name, err)
		}
	}
	return lastAny, last, nil
}

// ladderStep decides which step of r's ladder, if any, the node's faults
// call for, given the last action r proposed for the node (last) and the
// last action on the node of any kind (lastAny). A step past the end of the
// ladder means the ladder is used up.
//
// All times compared are the collector's: when it received the faults'
// reports, and when its actions were created and finished.
func (p *Planner) ladderStep(lastAny, last *hwhealv1.Action, r *policy.Rule, faults []*hwhealv1.FaultRecord) (step int, ok bool, why string) {
	var evidence time.Time
	ids := make(map[uint64]bool)
	for _, f := range faults {
		if t := evidenceTime(f); t.After(evidence) {
			evidence = t
		}
		ids[f.GetId()] = true
	}
	// An operator's action on the node after the latest evidence wins: the
	// node is theirs until the faults show new evidence.
	if lastAny != nil && lastAny.GetRule() == "" && !evidence.After(lastAny.GetCreated().AsTime()) {
		return 0, false, ""
	}
	// No step yet, or an operator acted on the node since the last one:
	// the ladder starts from its first step.
	if last == nil || (lastAny.GetRule() == "" && lastAny.GetCreated().AsTime().After(last.GetCreated().AsTime())) {
		return 0, true, ""
	}
	ended := last.GetUpdated().AsTime()
	if last.GetFinished() != nil {
		ended = last.GetFinished().AsTime()
	}
	newEvidence := evidence.After(ended)
	within := newEvidence && evidence.Sub(ended) <= r.EscalateWithin
	overlaps := false
	for _, id := range last.GetFaultIds() {
		if ids[id] {
			overlaps = true
		}
	}
	switch last.GetState() {
	case action.Denied, action.Expired:
		// People said no (or said nothing, and the policy says that is a
		// no) to these faults: not again while they are open.
		if overlaps {
			return 0, false, ""
		}
		return 0, true, ""
	case action.Cancelled:
		if overlaps && approval.IsPerson(last.GetDecision().GetActor()) {
			return 0, false, ""
		}
		if strings.HasPrefix(last.GetResult(), policyChanged) {
			return 0, true, "" // the new policy decides afresh
		}
		if overlaps && !newEvidence {
			return 0, false, ""
		}
		return int(last.GetLadderStep()), true, ""
	case action.Succeeded:
		switch {
		case !newEvidence:
			return 0, false, "" // it worked: nothing new since
		case within:
			return int(last.GetLadderStep()) + 1, true, fmt.Sprintf("the fault came back within %s of step %d (%s) of rule %s",
				r.EscalateWithin, last.GetLadderStep()+1, action.TypeName(last.GetType()), r.Name)
		default:
			return 0, true, "" // a new episode
		}
	case action.Failed, action.TimedOut, action.Refused:
		if newEvidence && !within {
			return 0, true, "" // a new episode, long after
		}
		// The step did not work: the next one.
		return int(last.GetLadderStep()) + 1, true, fmt.Sprintf("step %d (%s) of rule %s ended %s",
			last.GetLadderStep()+1, action.TypeName(last.GetType()), r.Name, action.StateName(last.GetState()))
	}
	return 0, false, "" // not ended: live actions were checked before
}

// proposeFor creates the action of r for the node's faults, or escalates.
func (p *Planner) proposeFor(ctx context.Context, s *snapshot, name string, r *policy.Rule, faults []*hwhealv1.FaultRecord) (bool, error) {
	pol := p.cfg.Policy
	lastAny, last, err := p.lastActions(ctx, s, name, r.Name)
	if err != nil {
		return false, err
	}
	step, ok, why := p.ladderStep(lastAny, last, r, faults)
	if !ok {
		return false, nil
	}
	if step >= len(r.Ladder) {
		reason := fmt.Sprintf("rule %s has no step after %d: %s; a person takes it from here", r.Name, len(r.Ladder), why)
		return false, p.escalate(ctx, s, faults, approval.PolicyActor(r.Name), reason)
	}
	dryRun := pol.DryRunFor(r)
	if cap := pol.MaxPerNodePerWeek; cap > 0 && !dryRun {
		n := 0
		for _, a := range s.actions[name] {
			if a.GetRule() != "" && !a.GetDryRun() && a.GetDispatched() != nil && s.now.Sub(a.GetDispatched().AsTime()) < week {
				n++
			}
		}
		if n >= cap {
			reason := fmt.Sprintf("node %s had %d automatic remediations in 7 days (cap %d): a person takes it from here", name, n, cap)
			return false, p.escalate(ctx, s, faults, approval.PolicyActor(r.Name), reason)
		}
	}
	st := r.Ladder[step]
	node := s.nodes[name]
	requester := approval.PolicyActor(r.Name)
	ids := make([]uint64, 0, len(faults))
	var summaries []string
	for _, f := range faults {
		ids = append(ids, f.GetId())
		if len(summaries) < 3 {
			summaries = append(summaries, fmt.Sprintf("fault %d %s: %s", f.GetId(), f.GetFaultClass(), f.GetSummary()))
		}
	}
	slices.Sort(ids)
	reason := fmt.Sprintf("%s; step %d of %d of rule %s", strings.Join(summaries, "; "), step+1, len(r.Ladder), r.Name)
	if why != "" {
		reason += " (" + why + ")"
	}
	a := &hwhealv1.Action{
		Id:             p.cfg.NewID(),
		Node:           name,
		Type:           st.Action,
		Reason:         reason,
		RequestedBy:    requester,
		FaultIds:       ids,
		Rule:           r.Name,
		LadderStep:     uint32(step),
		FaultClass:     faults[0].GetFaultClass(),
		Approval:       st.Approval.Mode,
		OnExpiry:       st.Approval.OnExpiry,
		Timeout:        durationpb.New(st.Timeout),
		DryRun:         dryRun,
		PlannedBootId:  node.GetBootId(),
		PlannedService: action.Normal(node.GetServiceState()),
		// The write's own time, not the pass's: events and audit records
		// keep the order of their ids in time.
		Created: timestamppb.New(p.cfg.Now()),
		Updated: timestamppb.New(p.cfg.Now()),
	}
	p.setApproval(a, st.Approval, s.now)
	if err := p.create(ctx, a); err != nil {
		return false, err
	}
	s.replace(a)
	p.log.Info("action proposed", "action", a.GetId(), "node", name, "type", action.TypeName(a.GetType()),
		"rule", r.Name, "step", step+1, "state", action.StateName(a.GetState()), "dry_run", dryRun)
	return true, nil
}

// setApproval sets a's initial state from its approval: APPROVED at once
// when the mode is auto or the action is a dry run, else awaiting approval
// with a deadline.
func (p *Planner) setApproval(a *hwhealv1.Action, ap policy.Approval, now time.Time) {
	a.Approval = ap.Mode
	a.OnExpiry = ap.OnExpiry
	switch {
	case ap.Mode == hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO:
		a.State = action.Approved
		a.ApprovedBy = []string{a.GetRequestedBy()}
		a.Approvals = []*hwhealv1.ActionNote{note(a.GetRequestedBy(), "approval: auto", now)}
	case a.GetDryRun():
		a.State = action.Approved
		a.ApprovedBy = []string{actorCollector}
		a.Approvals = []*hwhealv1.ActionNote{note(actorCollector,
			fmt.Sprintf("dry run: approval %s skipped, nothing will run", action.ApprovalName(ap.Mode)), now)}
	default:
		a.State = action.AwaitingApproval
		ttl := ap.TTL
		if ttl <= 0 {
			ttl = 24 * time.Hour
		}
		a.ApprovalDeadline = timestamppb.New(now.Add(ttl))
	}
}

func (p *Planner) create(ctx context.Context, a *hwhealv1.Action) error {
	err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		return p.cfg.Store.CreateAction(ctx, a)
	})
	if err != nil {
		return fmt.Errorf("create action on %s: %w", a.GetNode(), err)
	}
	return nil
}

// escalate hands the faults to people, once per fault. The store records
// each fault once; the planner remembers which it already sent there, so a
// node whose ladder is used up costs no write on every pass.
func (p *Planner) escalate(ctx context.Context, s *snapshot, faults []*hwhealv1.FaultRecord, actor, reason string) error {
	for _, f := range faults {
		if p.escalated[f.GetId()] {
			continue
		}
		var n int
		err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
			evs, err := p.cfg.Store.Escalate(ctx, f.GetId(), actor, reason, s.now)
			n = len(evs)
			return evs, err
		})
		if err != nil {
			return fmt.Errorf("escalate fault %d: %w", f.GetId(), err)
		}
		p.escalated[f.GetId()] = true
		if n > 0 {
			p.metrics.escalations.Inc()
			p.log.Warn("fault escalated to people", "fault", f.GetId(), "node", f.GetNode(), "class", f.GetFaultClass(), "reason", reason)
		}
	}
	return nil
}

func note(actor, reason string, t time.Time) *hwhealv1.ActionNote {
	return &hwhealv1.ActionNote{Actor: actor, Reason: reason, Time: timestamppb.New(t)}
}
