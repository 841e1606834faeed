package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/limits"
)

// Actors the collector writes as.
const (
	actorCollector = "collector"
	actorBreaker   = "breaker"
)

// watchInFlight confirms reboots by a new boot id, times out actions whose
// agent never answered, and sends again the orders nobody took up.
func (p *Planner) watchInFlight(ctx context.Context, s *snapshot) error {
	seen := make(map[string]bool)
	for _, name := range s.names {
		a := s.inFlight(name)
		if a == nil {
			continue
		}
		seen[a.GetId()] = true
		n := s.nodes[name]
		// A reboot is confirmed by the node coming back in a new boot, not
		// by a fixed wait: the agent's hello carries its boot id.
		if a.GetType() == action.Reboot && !a.GetDryRun() && a.GetPlannedBootId() != "" &&
			n.GetBootId() != "" && n.GetBootId() != a.GetPlannedBootId() {
			res := fmt.Sprintf("rebooted: boot id %s -> %s", a.GetPlannedBootId(), n.GetBootId())
			if err := p.move(ctx, s, a, action.Succeeded, actorCollector, res, &res); err != nil {
				return err
			}
			continue
		}
		timeout := a.GetTimeout().AsDuration()
		if timeout <= 0 {
			timeout = action.DefaultTimeout(a.GetType())
		}
		// The agent's clock for the same timeout starts when it takes the
		// order up, a little after dispatch: its own "timed out" report
		// must have the time to arrive before the collector gives up.
		if a.GetDispatched() != nil && s.now.Sub(a.GetDispatched().AsTime()) >= timeout+timeoutGrace(timeout) {
			res := fmt.Sprintf("no final update from the agent within %s of dispatch", timeout+timeoutGrace(timeout))
			if err := p.move(ctx, s, a, action.TimedOut, actorCollector, res, &res); err != nil {
				return err
			}
			continue
		}
		if a.GetState() == action.Dispatched && s.now.Sub(p.lastSent[a.GetId()]) >= p.cfg.ResendAfter && n.GetConnected() {
			p.send(a)
		}
	}
	for id := range p.lastSent {
		if !seen[id] {
			delete(p.lastSent, id)
		}
	}
	return nil
}

// move changes a in the snapshot and the store; a conflict (an agent's
// update or an operator got there first) is not an error: the next pass
// reads the action again.
func (p *Planner) move(ctx context.Context, s *snapshot, a *hwhealv1.Action, to hwhealv1.ActionState, actor, reason string, result *string) error {
	got, err := p.change(ctx, store.ActionChange{
		ID: a.GetId(), From: []hwhealv1.ActionState{a.GetState()}, To: to,
		Actor: actor, Reason: reason, Time: p.cfg.Now(), Result: result,
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		p.log.Debug("action changed meanwhile", "action", a.GetId(), "to", to.String())
		return nil
	}
	if err != nil {
		return fmt.Errorf("move action %s to %s: %w", a.GetId(), to, err)
	}
	s.replace(got)
	p.log.Info("action changed", "action", a.GetId(), "node", a.GetNode(), "type", action.TypeName(a.GetType()),
		"state", action.StateName(to), "reason", reason)
	return nil
}

// expireApprovals applies the policy's expiry outcome to actions nobody
// answered in time: deny, or proceed with planned work at its deadline.
func (p *Planner) expireApprovals(ctx context.Context, s *snapshot) error {
	for _, name := range s.names {
		for _, a := range s.live(name) {
			if a.GetState() != action.AwaitingApproval || a.GetApprovalDeadline() == nil ||
				s.now.Before(a.GetApprovalDeadline().AsTime()) {
				continue
			}
			deadline := a.GetApprovalDeadline().AsTime()
			if a.GetOnExpiry() == hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED {
				reason := fmt.Sprintf("no answer by the approval deadline %s: the policy proceeds with planned work", deadline.Format("2006-01-02T15:04:05Z07:00"))
				got, err := p.change(ctx, store.ActionChange{
					ID: a.GetId(), From: []hwhealv1.ActionState{action.AwaitingApproval}, To: action.Approved,
					Actor: actorCollector, Reason: reason, Time: p.cfg.Now(),
					Approval: note(actorCollector, reason, s.now),
				})
				if err := ignoreConflict(err); err != nil {
					return fmt.Errorf("proceed with action %s: %w", a.GetId(), err)
				}
				s.replace(got)
				continue
			}
			reason := fmt.Sprintf("no approval by the deadline %s", deadline.Format("2006-01-02T15:04:05Z07:00"))
			if err := p.move(ctx, s, a, action.Expired, actorCollector, reason, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// breaker pauses automatic remediation when faults of one class open on
// many nodes at once.
func (p *Planner) breaker(ctx context.Context, s *snapshot) error {
	if s.state.Paused {
		return nil
	}
	var faults []limits.FaultOpen
	for _, name := range s.names {
		for _, f := range s.open[name] {
			if p.cfg.Policy.RuleFor(f.GetFaultClass(), f.GetSeverity()) == nil {
				continue
			}
			faults = append(faults, limits.FaultOpen{Node: name, Class: f.GetFaultClass(), FirstSeen: openedTime(f)})
		}
	}
	// Faults that opened before the last resume were the operator's to
	// judge: they do not trip the breaker again.
	var since time.Time
	if s.state.ResumedBy != nil {
		since = s.state.ResumedBy.GetTime().AsTime()
	}
	tripped, class, nodes, threshold := limits.Storm(p.cfg.Policy.Breaker, faults, len(s.names), since, s.now)
	if !tripped {
		return nil
	}
	reason := fmt.Sprintf("storm breaker: %s opened on %d nodes within %s (threshold %d): a bad rule, a firmware push or a power event, not broken parts; automatic actions pause until an operator resumes",
		class, nodes, p.cfg.Policy.Breaker.Window, threshold)
	err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		evs, _, err := p.cfg.Store.SetPaused(ctx, true, store.Note{Actor: actorBreaker, Reason: reason, Time: p.cfg.Now()})
		return evs, err
	})
	if err != nil {
		return fmt.Errorf("trip the storm breaker: %w", err)
	}
	p.metrics.breakerTrips.Inc()
	p.log.Warn("storm breaker tripped: automatic remediation paused", "class", class, "nodes", nodes, "threshold", threshold)
	s.state.Paused = true
	s.state.PausedBy = note(actorBreaker, reason, s.now)
	return nil
}

func ignoreConflict(err error) error {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// timeoutGrace is how much longer than an action's timeout the collector
// waits for the agent's final update: a tenth, between 10 s and 2 min.
func timeoutGrace(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 10*time.Second), 2*time.Minute)
}
