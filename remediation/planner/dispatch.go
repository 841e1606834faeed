package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

const timeFormat = "2006-01-02T15:04:05Z07:00"

// policyChanged starts the reason of an action the collector cancelled
// because the policy changed under it: its faults are proposed again, under
// the new policy, at once. Other cancellations by the collector (the fault
// resolved, the node rebooted) wait for new evidence.
const policyChanged = "policy changed: "

// dispatch sends the approved actions that may go now, oldest first, and
// records for the others what they wait for.
func (p *Planner) dispatch(ctx context.Context, s *snapshot) error {
	var approved []*hwhealv1.Action
	for _, name := range s.names {
		for _, a := range s.live(name) {
			if a.GetState() == action.Approved {
				approved = append(approved, a)
			}
		}
	}
	slices.SortFunc(approved, func(a, b *hwhealv1.Action) int {
		if c := a.GetCreated().AsTime().Compare(b.GetCreated().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	for _, a := range approved {
		waiting, cancel := p.gate(s, a)
		switch {
		case cancel != "":
			res := cancel
			if err := p.move(ctx, s, a, action.Cancelled, actorCollector, cancel, &res); err != nil {
				return err
			}
		case waiting != "":
			if waiting == a.GetWaiting() {
				continue
			}
			got, err := p.change(ctx, store.ActionChange{ID: a.GetId(), From: []hwhealv1.ActionState{action.Approved},
				To: action.Approved, Actor: actorCollector, Time: p.cfg.Now(), Waiting: &waiting})
			if err := ignoreConflict(err); err != nil {
				return fmt.Errorf("record what action %s waits for: %w", a.GetId(), err)
			}
			s.replace(got)
		default:
			if err := p.dispatchOne(ctx, s, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// gate says why a may not be dispatched now (waiting), or why it must not
// be dispatched at all (cancel); both empty: it may go.
func (p *Planner) gate(s *snapshot, a *hwhealv1.Action) (waiting, cancel string) {
	pol := p.cfg.Policy
	name := a.GetNode()
	n, ok := s.nodes[name]
	if !ok {
		return "", "the node is no longer known to the collector"
	}
	automatic := a.GetRule() != ""
	// The policy may have changed since the action was approved (the
	// collector restarted with a new file): dry-run is the kill switch an
	// operator reaches for, and it must hold for what is already queued.
	if !a.GetDryRun() && (pol.DryRun || automatic && pol.DryRunFor(ruleNamed(pol.Rules, a.GetRule()))) {
		return "", policyChanged + "the policy is in dry-run now; it was not when the action was approved"
	}
	if nb := a.GetNotBefore(); nb != nil && s.now.Before(nb.AsTime()) {
		return "scheduled for " + nb.AsTime().Format(timeFormat), ""
	}
	if automatic && s.state.Paused {
		return "remediation is paused: " + s.state.PausedBy.GetReason(), ""
	}
	if other := s.inFlight(name); other != nil {
		return fmt.Sprintf("action %s (%s) is in flight on the node", other.GetId(), action.TypeName(other.GetType())), ""
	}
	if !n.GetConnected() {
		return "the node's agent is not connected", ""
	}
	if n.GetGuard() == nil {
		return "the node's agent runs no actions (it announced no guard)", ""
	}
	if automatic {
		r := ruleNamed(pol.Rules, a.GetRule())
		if r == nil {
			return "", fmt.Sprintf(policyChanged+"rule %s is no longer in the policy", a.GetRule())
		}
		if step := int(a.GetLadderStep()); step >= len(r.Ladder) || r.Ladder[step].Action != a.GetType() {
			return "", fmt.Sprintf(policyChanged+"rule %s no longer has %s as step %d", r.Name, action.TypeName(a.GetType()), step+1)
		}
		if mode := r.Ladder[a.GetLadderStep()].Approval.Mode; stricter(mode, a.GetApproval()) && !a.GetDryRun() {
			return "", fmt.Sprintf(policyChanged+"rule %s now asks for %s approval of this step, not %s", r.Name, action.ApprovalName(mode), action.ApprovalName(a.GetApproval()))
		}
		if w, frozen := pol.Frozen(s.now); frozen {
			return "freeze " + w.Name, ""
		}
		if open, why := pol.WindowOpen(r, s.now); !open {
			return why, ""
		}
		if cd := pol.Cooldown(a.GetType()); cd > 0 && !a.GetDryRun() {
			for _, prev := range s.actions[name] {
				if prev.GetId() == a.GetId() || prev.GetType() != a.GetType() || prev.GetDryRun() || prev.GetDispatched() == nil {
					continue
				}
				// The text must not change from pass to pass: a new text
				// is a new audit record and event.
				if until := prev.GetDispatched().AsTime().Add(cd); s.now.Before(until) {
					return fmt.Sprintf("cooldown: %s %s dispatched at %s (cooldown %s, until %s)", action.TypeName(a.GetType()),
						prev.GetId(), prev.GetDispatched().AsTime().Format(timeFormat), cd, until.Format(timeFormat)), ""
				}
			}
		}
		// Re-check right before acting: the evidence is still there and
		// the node is still the one the action was planned for.
		if len(a.GetFaultIds()) > 0 {
			anyOpen := false
			for _, id := range a.GetFaultIds() {
				if s.openByID[id] != nil {
					anyOpen = true
				}
			}
			if !anyOpen {
				return "", "its faults resolved before dispatch"
			}
		}
		if b := a.GetPlannedBootId(); b != "" && n.GetBootId() != b {
			return "", fmt.Sprintf("the node rebooted since the action was planned (boot id %s -> %s)", b, n.GetBootId())
		}
		if was, is := action.Normal(a.GetPlannedService()), action.Normal(n.GetServiceState()); was != is {
			return "", fmt.Sprintf("the node's service state changed since the action was planned (%s -> %s)", action.ServiceName(was), action.ServiceName(is))
		}
	}
	// What an action waits for is stored with it, and a new text is an
	// audit record and an event: name the limit, not its figures, which
	// change with every node that goes or comes (status has those).
	if takesOut(a) {
		if ok, why := s.fleet.Admit(pol.Limits, name); !ok {
			return "limit: " + limitName(why), ""
		}
	} else if a.GetDryRun() && typeTakesOut(a.GetType()) {
		// A dry run takes nothing out, but says what the limits would do.
		if ok, why := s.fleet.Admit(pol.Limits, name); !ok {
			return "limit (dry run): " + limitName(why), ""
		}
	}
	return "", ""
}

// limitName is the limit a refusal of limits.Fleet.Admit names: the text
// before its colon ("max_out_of_service", "rack=r12", "min_available").
func limitName(why string) string {
	name, _, _ := strings.Cut(why, ":")
	return name + " (figures in hwhealctl status)"
}

// stricter reports whether approval mode a asks more of people than b.
func stricter(a, b hwhealv1.ApprovalMode) bool {
	rank := func(m hwhealv1.ApprovalMode) int {
		switch m {
		case hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON:
			return 3
		case hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED:
			return 2
		case hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO:
			return 1
		}
		return 0
	}
	return rank(a) > rank(b)
}

func (p *Planner) dispatchOne(ctx context.Context, s *snapshot, a *hwhealv1.Action) error {
	empty := ""
	got, err := p.change(ctx, store.ActionChange{
		ID: a.GetId(), From: []hwhealv1.ActionState{action.Approved}, To: action.Dispatched,
		Actor: actorCollector, Reason: "dispatched to the node's agent", Time: p.cfg.Now(), Waiting: &empty,
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// Cancelled meanwhile, or the node came back in a new boot after
		// this pass read it (the store refuses to dispatch an automatic
		// action in another boot than it was planned in): the next pass
		// reads it again and cancels it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("dispatch action %s: %w", a.GetId(), err)
	}
	s.replace(got)
	if takesOut(got) {
		s.fleet.Take(got.GetNode())
	}
	p.metrics.dispatched.WithLabelValues(action.TypeName(got.GetType())).Inc()
	p.log.Info("action dispatched", "action", got.GetId(), "node", got.GetNode(), "type", action.TypeName(got.GetType()),
		"dry_run", got.GetDryRun(), "requested_by", got.GetRequestedBy())
	p.send(got)
	return nil
}

// send hands a's order to its node's stream and notes when.
func (p *Planner) send(a *hwhealv1.Action) {
	p.lastSent[a.GetId()] = p.cfg.Now()
	if !p.cfg.Send(a.GetNode(), Order(a)) {
		p.log.Debug("order not sent now: the node has no stream that takes orders; it goes with its next hello", "action", a.GetId(), "node", a.GetNode())
	}
}

// Order is the order an agent receives for a dispatched action.
func Order(a *hwhealv1.Action) *hwhealv1.ActionOrder {
	timeout := a.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = action.DefaultTimeout(a.GetType())
	}
	var classes []string
	if a.GetFaultClass() != "" {
		classes = []string{a.GetFaultClass()}
	}
	return &hwhealv1.ActionOrder{
		Id:           a.GetId(),
		Type:         a.GetType(),
		Reason:       a.GetReason(),
		FaultIds:     a.GetFaultIds(),
		FaultClasses: classes,
		Timeout:      durationpb.New(timeout),
		DryRun:       a.GetDryRun(),
		BootId:       a.GetPlannedBootId(),
		RequestedBy:  a.GetRequestedBy(),
	}
}
