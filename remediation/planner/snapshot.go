package planner

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/limits"
)

// pageSize is how many rows a pass reads at a time.
const pageSize = 1000

// week is the period of the per-node cap.
const week = 7 * 24 * time.Hour

// snapshot is what one pass knows: read at its start, and updated by the
// pass as it changes actions so that later steps see its own changes.
type snapshot struct {
	now   time.Time
	state store.RemediationState
	nodes map[string]*hwhealv1.Node
	// names in the store's order, for a deterministic pass.
	names []string
	// open holds the node's open enforced faults, by node.
	open     map[string][]*hwhealv1.FaultRecord
	openByID map[uint64]*hwhealv1.FaultRecord
	// actions holds every non-final action and every action created
	// within the lookback, by node, newest first.
	actions map[string][]*hwhealv1.Action
	fleet   *limits.Fleet
}

// lookback is how far back a pass reads finished actions: the weekly cap,
// the longest cooldown and the longest ladder window.
func (p *Planner) lookback() time.Duration {
	d := week
	for _, c := range p.cfg.Policy.Cooldowns {
		d = max(d, c)
	}
	for _, r := range p.cfg.Policy.Rules {
		d = max(d, r.EscalateWithin)
	}
	return d + 24*time.Hour
}

func (p *Planner) load(ctx context.Context) (*snapshot, error) {
	st := p.cfg.Store
	s := &snapshot{
		now:      p.cfg.Now(),
		nodes:    make(map[string]*hwhealv1.Node),
		open:     make(map[string][]*hwhealv1.FaultRecord),
		openByID: make(map[uint64]*hwhealv1.FaultRecord),
		actions:  make(map[string][]*hwhealv1.Action),
	}
	var err error
	if s.state, err = st.RemediationState(ctx); err != nil {
		return nil, fmt.Errorf("read remediation state: %w", err)
	}
	for tok := ""; ; {
		nodes, next, err := st.ListNodes(ctx, store.NodeFilter{}, store.Page{Size: pageSize, Token: tok})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		for _, n := range nodes {
			s.nodes[n.GetName()] = n
			s.names = append(s.names, n.GetName())
		}
		if tok = next; tok == "" {
			break
		}
	}
	for tok := ""; ; {
		faults, next, err := st.ListFaults(ctx, store.FaultFilter{}, store.Page{Size: pageSize, Token: tok})
		if err != nil {
			return nil, fmt.Errorf("list open faults: %w", err)
		}
		for _, f := range faults {
			// Shadow faults never lead to an action.
			if f.GetMode() == hwhealv1.RuleMode_RULE_MODE_SHADOW {
				continue
			}
			s.open[f.GetNode()] = append(s.open[f.GetNode()], f)
			s.openByID[f.GetId()] = f
		}
		if tok = next; tok == "" {
			break
		}
	}
	seen := make(map[string]bool)
	add := func(f store.ActionFilter) error {
		for tok := ""; ; {
			as, next, err := st.ListActions(ctx, f, store.Page{Size: pageSize, Token: tok})
			if err != nil {
				return fmt.Errorf("list actions: %w", err)
			}
			for _, a := range as {
				if !seen[a.GetId()] {
					seen[a.GetId()] = true
					s.actions[a.GetNode()] = append(s.actions[a.GetNode()], a)
				}
			}
			if tok = next; tok == "" {
				return nil
			}
		}
	}
	live := []hwhealv1.ActionState{action.Proposed, action.AwaitingApproval, action.Approved, action.Dispatched, action.Running}
	if err := add(store.ActionFilter{States: live}); err != nil {
		return nil, err
	}
	if err := add(store.ActionFilter{CreatedSince: s.now.Add(-p.lookback())}); err != nil {
		return nil, err
	}
	for _, as := range s.actions {
		// Newest first; among actions created in the same instant (a
		// coarse clock), the later ladder step is the newer one.
		slices.SortStableFunc(as, func(a, b *hwhealv1.Action) int {
			if c := b.GetCreated().AsTime().Compare(a.GetCreated().AsTime()); c != 0 {
				return c
			}
			return int(b.GetLadderStep()) - int(a.GetLadderStep())
		})
	}
	s.fleet = limits.NewFleet(s.limitNodes())
	return s, nil
}

// takesOut reports whether a, not a dry run, takes its node out of service
// while it runs.
func takesOut(a *hwhealv1.Action) bool { return !a.GetDryRun() && typeTakesOut(a.GetType()) }

// typeTakesOut reports whether an action of type t takes its node out of
// service while it runs: all but online.
func typeTakesOut(t hwhealv1.ActionType) bool {
	switch t {
	case action.Reboot, action.Offline, action.Migrate:
		return true
	}
	return false
}

// limitNodes is the fleet as the limits count it. A node is busy while an
// action that takes it out is in flight, and also while it is away after
// such an action ended without success (a reboot that timed out, the node
// never back): its service state says it is back as it was, but it does
// no work until its agent returns, and a string of hung reboots must not
// take the fleet out one limit's worth at a time.
func (s *snapshot) limitNodes() []limits.Node {
	out := make([]limits.Node, 0, len(s.names))
	for _, name := range s.names {
		n := s.nodes[name]
		busy := false
		for i, a := range s.actions[name] { // newest first
			if action.InFlight(a.GetState()) && takesOut(a) {
				busy = true
			}
			if i == 0 && !n.GetConnected() && takesOut(a) && action.IsFinal(a.GetState()) &&
				a.GetDispatched() != nil && a.GetState() != action.Succeeded {
				busy = true
			}
		}
		out = append(out, limits.Node{
			Name:      name,
			Labels:    n.GetLabels(),
			Service:   n.GetServiceState(),
			Connected: n.GetConnected(),
			Health:    n.GetHealth(),
			InFlight:  busy,
		})
	}
	return out
}

// replace puts a changed action back into the snapshot.
func (s *snapshot) replace(a *hwhealv1.Action) {
	if a == nil {
		return
	}
	as := s.actions[a.GetNode()]
	for i, old := range as {
		if old.GetId() == a.GetId() {
			as[i] = a
			return
		}
	}
	s.actions[a.GetNode()] = append([]*hwhealv1.Action{a}, as...)
}

// counts is how many actions await approval and how many are in flight.
func (s *snapshot) counts() (awaiting, inFlight int) {
	for _, as := range s.actions {
		for _, a := range as {
			switch {
			case a.GetState() == action.AwaitingApproval:
				awaiting++
			case action.InFlight(a.GetState()):
				inFlight++
			}
		}
	}
	return awaiting, inFlight
}

// inFlight returns the node's action in flight, if any.
func (s *snapshot) inFlight(node string) *hwhealv1.Action {
	for _, a := range s.actions[node] {
		if action.InFlight(a.GetState()) {
			return a
		}
	}
	return nil
}

// live returns the node's actions not yet ended.
func (s *snapshot) live(node string) []*hwhealv1.Action {
	var out []*hwhealv1.Action
	for _, a := range s.actions[node] {
		if !action.IsFinal(a.GetState()) {
			out = append(out, a)
		}
	}
	return out
}
