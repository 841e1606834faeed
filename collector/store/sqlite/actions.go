package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/pkg/textclip"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds on the text an agent's update stores besides a step's output: an
// agent is not trusted to keep them.
const (
	maxStepName    = 256
	maxStepArgs    = 64
	maxStepArg     = 1 << 10
	maxStepError   = 1 << 10
	maxAuditText   = 1 << 10 // a message or error quoted in an audit record
	maxAgentID     = 256     // an action id an agent sent
	maxAgentBootID = 128
)

// CreateAction stores a new action. See store.Remediation.
func (s *Store) CreateAction(ctx context.Context, in *hwhealv1.Action) ([]*hwhealv1.Event, error) {
	if err := checkNewAction(in); err != nil {
		return nil, fmt.Errorf("create action %q: %w", in.GetId(), err)
	}
	a := proto.CloneOf(in)
	now := s.now()
	created := tsTime(a.GetCreated(), now)
	a.Created = timestamppb.New(created)
	a.Updated = timestamppb.New(tsTime(a.GetUpdated(), created))
	var evs []*hwhealv1.Event
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		ev, err := createAction(ctx, st, a, created)
		evs = []*hwhealv1.Event{ev}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create action %q: %w", in.GetId(), err)
	}
	return evs, nil
}

// createAction stores a checked new action a, created at created, in the
// transaction of st and returns its event.
func createAction(ctx context.Context, st *txStmts, a *hwhealv1.Action, created time.Time) (*hwhealv1.Event, error) {
	svc, boot, err := nodeService(ctx, st, a.GetNode())
	if err != nil {
		return nil, err
	}
	if a.GetPlannedBootId() == "" && a.GetPlannedService() == hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED {
		a.PlannedBootId, a.PlannedService = boot, svc
	}
	blob, err := marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode action: %w", err)
	}
	res, err := st.s(sActionInsert).ExecContext(ctx, a.GetId(), a.GetNode(), int64(a.GetType()), int64(a.GetState()), a.GetRule(),
		nanos(created), nanos(a.GetUpdated().AsTime()), blob)
	if err != nil {
		return nil, fmt.Errorf("insert action: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("insert action: %w", err)
	} else if n == 0 {
		return nil, store.ErrExists
	}
	d := newDetail().str("type", action.TypeName(a.GetType())).str("state", action.StateName(a.GetState())).str("reason", a.GetReason()).
		str("rule", a.GetRule()).str("fault_class", a.GetFaultClass()).uints("fault_ids", a.GetFaultIds()).
		time("approval_deadline", a.GetApprovalDeadline())
	if a.GetApproval() != hwhealv1.ApprovalMode_APPROVAL_MODE_UNSPECIFIED {
		d.str("approval", enumName(a.GetApproval().String(), "APPROVAL_MODE_"))
	}
	if a.GetOnExpiry() != hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_UNSPECIFIED {
		d.str("on_expiry", enumName(a.GetOnExpiry().String(), "EXPIRY_OUTCOME_"))
	}
	d.time("not_before", a.GetNotBefore()).bool("dry_run", a.GetDryRun())
	if t := a.GetTimeout(); t != nil {
		d.str("timeout", t.AsDuration().String())
	}
	if _, err := appendAudit(ctx, st, auditRec{actor: a.GetRequestedBy(), kind: "action.created", node: a.GetNode(), actionID: a.GetId(), detail: d.String()}, created); err != nil {
		return nil, err
	}
	ev := &hwhealv1.Event{
		Type:   hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED,
		Node:   a.GetNode(),
		Action: a,
		Actor:  a.GetRequestedBy(),
		Reason: a.GetReason(),
	}
	if err := insertEvent(ctx, st, ev, created); err != nil {
		return nil, err
	}
	return ev, nil
}

// checkNewAction checks what CreateAction requires of an action.
func checkNewAction(a *hwhealv1.Action) error {
	switch {
	case a == nil:
		return errors.New("no action")
	case a.GetId() == "" || !utf8.ValidString(a.GetId()):
		return errors.New("an action needs an id")
	case a.GetNode() == "":
		return errors.New("an action needs a node")
	case a.GetRequestedBy() == "":
		return errors.New("an action needs requested_by: who or what asked for it")
	case action.TypeName(a.GetType()) == "":
		return fmt.Errorf("unknown action type %v", a.GetType())
	case !action.Pending(a.GetState()):
		return fmt.Errorf("a new action is proposed, awaiting approval or approved, not %v", a.GetState())
	case len(a.GetSteps()) > 0:
		return errors.New("a new action has no steps: they come from its agent")
	}
	return nil
}

// ChangeAction applies one change to an action. See store.Remediation and
// store.ActionChange.
func (s *Store) ChangeAction(ctx context.Context, ch store.ActionChange) (*hwhealv1.Action, []*hwhealv1.Event, error) {
	if err := checkChange(ch); err != nil {
		return nil, nil, fmt.Errorf("change action %q: %w", ch.ID, err)
	}
	at := s.orNow(ch.Time)
	var (
		out *hwhealv1.Action
		evs []*hwhealv1.Event
	)
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		var err error
		out, evs, err = changeAction(ctx, st, ch, at)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("change action %q to %v: %w", ch.ID, ch.To, err)
	}
	return out, evs, nil
}

// checkChange checks what ChangeAction requires of a change before it
// reads the action.
func checkChange(ch store.ActionChange) error {
	switch {
	case ch.ID == "":
		return errors.New("no action id")
	case ch.Actor == "":
		return errors.New("a change needs an actor")
	case ch.To == hwhealv1.ActionState_ACTION_STATE_UNSPECIFIED:
		return errors.New("a change needs a state to move to")
	}
	for _, f := range ch.From {
		if f != ch.To && !action.CanMove(f, ch.To) {
			return fmt.Errorf("an action cannot move from %v to %v", f, ch.To)
		}
	}
	return nil
}

// changeAction applies ch at time at in the transaction of st and returns
// the action after it, with its steps, and the events recorded.
func changeAction(ctx context.Context, st *txStmts, ch store.ActionChange, at time.Time) (*hwhealv1.Action, []*hwhealv1.Event, error) {
	a, err := loadAction(ctx, st, ch.ID)
	if err != nil {
		return nil, nil, err
	}
	cur := a.GetState()
	if len(ch.From) > 0 && !slices.Contains(ch.From, cur) ||
		len(ch.From) == 0 && cur != ch.To && !action.CanMove(cur, ch.To) ||
		cur == ch.To && action.IsFinal(cur) {
		return nil, nil, fmt.Errorf("action is %v: %w", cur, store.ErrConflict)
	}
	moved := cur != ch.To
	d := newDetail()
	if moved {
		d.str("from", action.StateName(cur)).str("to", action.StateName(ch.To))
	} else {
		d.str("state", action.StateName(cur))
	}
	d.str("reason", ch.Reason)
	changed := moved
	if ch.Approval != nil {
		n := proto.CloneOf(ch.Approval)
		if n.GetActor() == "" {
			n.Actor = ch.Actor
		}
		if n.GetTime() == nil {
			n.Time = timestamppb.New(at)
		}
		a.Approvals = append(a.Approvals, n)
		a.ApprovedBy = append(a.ApprovedBy, n.GetActor())
		d.str("approver", n.GetActor()).str("approval_reason", n.GetReason()).int("approvals", int64(len(a.GetApprovals())))
		changed = true
	}
	if ch.NotBefore != nil {
		var nb *timestamppb.Timestamp
		if !ch.NotBefore.IsZero() {
			nb = timestamppb.New(*ch.NotBefore)
		}
		if !proto.Equal(nb, a.GetNotBefore()) {
			a.NotBefore = nb
			if nb == nil {
				d.str("not_before", "none")
			} else {
				d.time("not_before", nb)
			}
			changed = true
		}
	}
	if ch.Waiting != nil && *ch.Waiting != a.GetWaiting() {
		a.Waiting = *ch.Waiting
		d.str("waiting", a.Waiting)
		if a.Waiting == "" {
			d.bool("waiting_cleared", true)
		}
		changed = true
	}
	if ch.Result != nil && *ch.Result != a.GetResult() {
		a.Result = *ch.Result
		d.str("result", a.Result)
		changed = true
	}
	if !changed {
		steps, err := loadSteps(ctx, st, a.GetId())
		if err != nil {
			return nil, nil, err
		}
		a.Steps = steps
		return a, nil, nil
	}

	kind := "action.updated"
	switch {
	case moved:
		kind = store.AuditKind(ch.To)
	case ch.Approval != nil:
		kind = "action.approval"
	}
	if moved {
		a.State = ch.To
		if cur == action.Approved && ch.Waiting == nil {
			a.Waiting = ""
		}
		if ch.To == action.Dispatched {
			svc, boot, err := nodeService(ctx, st, a.GetNode())
			if err != nil {
				return nil, nil, err
			}
			// The planner checked an automatic action against a snapshot
			// of the node in the boot it was planned in; a hello of a new
			// boot since then must not be adopted here, or the agent's
			// refusal of an order for another boot guards nothing.
			if planned := a.GetPlannedBootId(); a.GetRule() != "" && planned != "" && boot != planned {
				return nil, nil, fmt.Errorf("node %q is in boot %q, the action was planned in boot %q: %w",
					a.GetNode(), boot, planned, store.ErrConflict)
			}
			a.Dispatched = timestamppb.New(at)
			a.PlannedBootId, a.PlannedService = boot, svc
			d.str("planned_boot_id", boot).str("planned_service", action.ServiceName(svc))
		}
		if action.IsFinal(ch.To) {
			a.Finished = timestamppb.New(at)
			if ch.Result == nil && a.GetResult() == "" {
				a.Result = ch.Reason
			}
		}
		switch ch.To {
		case action.Denied, action.Cancelled, action.Expired, action.TimedOut:
			a.Decision = &hwhealv1.ActionNote{Actor: ch.Actor, Time: timestamppb.New(at), Reason: ch.Reason}
		}
	}
	a.Updated = timestamppb.New(at)
	c := &change{a: a, from: cur, at: at, actor: ch.Actor, evActor: ch.Actor, evReason: ch.Reason, kind: kind, d: d}
	evs, err := c.commit(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	steps, err := loadSteps(ctx, st, a.GetId())
	if err != nil {
		return nil, nil, err
	}
	out := proto.CloneOf(a)
	out.Steps = steps
	return out, evs, nil
}

// change is an action changed in memory, to be written with its audit
// records and events.
type change struct {
	a    *hwhealv1.Action // after the change, without steps
	from hwhealv1.ActionState
	at   time.Time
	// actor of the audit records; evActor and evReason of the events.
	actor, evActor, evReason string
	// audits go before the record of the change itself (an agent's steps
	// before the state they led to).
	audits []auditRec
	// kind and d are the record of the change itself; the service state
	// change, if any, is added to d.
	kind string
	d    *detail
	// added are the steps the change added: the event's action carries
	// only these.
	added []*hwhealv1.ActionStep
	// restore puts the node back in the service state the action was
	// dispatched from: an agent said it ran nothing (a dry run the
	// collector did not order).
	restore bool
}

// commit writes the action, changes its node's service state when the
// action moved to a state that sets it, and records the audit records and
// events.
func (c *change) commit(ctx context.Context, st *txStmts) ([]*hwhealv1.Event, error) {
	a := c.a
	moved := a.GetState() != c.from
	var svcEv *hwhealv1.Event
	if moved || c.restore {
		want, ok := action.ServiceAt(a.GetType(), a.GetState(), a.GetDryRun(), a.GetPlannedService())
		if c.restore {
			want, ok = action.Normal(a.GetPlannedService()), true
		}
		if ok {
			cur, _, err := nodeService(ctx, st, a.GetNode())
			if err != nil {
				return nil, err
			}
			if cur != want {
				if _, err := st.s(sNodeServiceSet).ExecContext(ctx, a.GetNode(), int64(want), nanos(c.at)); err != nil {
					return nil, fmt.Errorf("set service state of node %q: %w", a.GetNode(), err)
				}
				c.d.str("service_from", action.ServiceName(cur)).str("service_to", action.ServiceName(want))
				svcEv = &hwhealv1.Event{
					Type:       hwhealv1.EventType_EVENT_TYPE_NODE_SERVICE_CHANGED,
					Node:       a.GetNode(),
					OldService: cur,
					NewService: want,
					Actor:      c.evActor,
					Reason:     fmt.Sprintf("action %s %s", a.GetId(), action.StateName(a.GetState())),
				}
			}
		}
	}
	blob, err := marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode action: %w", err)
	}
	if moved {
		_, err = st.s(sActionUpdate).ExecContext(ctx, a.GetId(), int64(a.GetState()), nanos(c.at), blob)
	} else {
		_, err = st.s(sActionTouch).ExecContext(ctx, a.GetId(), nanos(c.at), blob)
	}
	if err != nil {
		return nil, fmt.Errorf("update action: %w", err)
	}
	for _, r := range c.audits {
		if _, err := appendAudit(ctx, st, r, c.at); err != nil {
			return nil, err
		}
	}
	if c.kind != "" {
		r := auditRec{actor: c.actor, kind: c.kind, node: a.GetNode(), actionID: a.GetId(), detail: c.d.String()}
		if _, err := appendAudit(ctx, st, r, c.at); err != nil {
			return nil, err
		}
	}
	ea := proto.CloneOf(a)
	ea.Steps = c.added
	evs := []*hwhealv1.Event{{
		Type:   hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED,
		Node:   a.GetNode(),
		Action: ea,
		Actor:  c.evActor,
		Reason: c.evReason,
	}}
	if svcEv != nil {
		evs = append(evs, svcEv)
	}
	for _, ev := range evs {
		if err := insertEvent(ctx, st, ev, c.at); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// applyUpdate applies one agent's ActionUpdate, sent by node and received
// at received, as store.Batch.Reports says, and returns its events.
func applyUpdate(ctx context.Context, st *txStmts, node string, u *hwhealv1.ActionUpdate, received time.Time) ([]*hwhealv1.Event, error) {
	agent := "agent:" + node
	id := u.GetActionId()
	a, err := loadAction(ctx, st, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	outcome := enumName(u.GetOutcome().String(), "ACTION_OUTCOME_")
	message := textclip.Head(u.GetMessage(), maxAuditText, "")
	if a == nil || a.GetNode() != node {
		why := "unknown action"
		if a != nil {
			why = "action of node " + a.GetNode()
		}
		d := newDetail().str("why", why).str("outcome", outcome).str("message", message).int("steps", int64(len(u.GetSteps())))
		r := auditRec{actor: agent, kind: "action.unknown_update", node: node, actionID: textclip.Head(id, maxAgentID, ""), detail: d.String()}
		_, err := appendAudit(ctx, st, r, received)
		return nil, err
	}
	cur := a.GetState()
	to, known := action.ForOutcome(u.GetOutcome())
	if action.IsFinal(cur) || !known || to != cur && !action.CanMove(cur, to) {
		kind := "action.invalid_update"
		if action.IsFinal(cur) {
			kind = "action.late_update"
		}
		d := newDetail().str("state", action.StateName(cur)).str("outcome", outcome).str("message", message).
			int("steps", int64(len(u.GetSteps()))).bool("dry_run", u.GetDryRun())
		_, err := appendAudit(ctx, st, auditRec{actor: agent, kind: kind, node: node, actionID: id, detail: d.String()}, received)
		return nil, err
	}

	c := &change{a: a, from: cur, at: received, actor: agent, evReason: message}
	dryMarked := u.GetDryRun() && !a.GetDryRun()
	if dryMarked {
		// Nothing ran, whatever was ordered (the agent's guard is in dry
		// run): the node is back in the service state the dispatch took
		// it from, and stays there.
		a.DryRun = true
		c.restore = true
	}
	if len(u.GetSteps()) > 0 {
		if err := c.addSteps(ctx, st, u.GetSteps()); err != nil {
			return nil, err
		}
	}
	moved := to != cur
	if !moved && len(c.added) == 0 && !dryMarked {
		// Progress without a new step: only dropped steps, if any, are
		// worth a record.
		for _, r := range c.audits {
			if _, err := appendAudit(ctx, st, r, received); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	switch {
	case moved:
		a.State = to
		if action.IsFinal(to) {
			a.Finished = timestamppb.New(received)
			a.Result = textclip.Head(u.GetMessage(), store.MaxStepOutput, "")
		}
		c.kind = store.AuditKind(to)
		c.d = newDetail().str("from", action.StateName(cur)).str("to", action.StateName(to)).str("message", message).
			str("boot_id", textclip.Head(u.GetBootId(), maxAgentBootID, "")).bool("dry_run", u.GetDryRun())
		if u.GetTime() != nil && u.GetTime().CheckValid() == nil {
			c.d.time("agent_time", u.GetTime())
		}
	case dryMarked:
		c.kind, c.d = "action.updated", newDetail().str("state", action.StateName(cur)).bool("dry_run", true)
	}
	a.Updated = timestamppb.New(received)
	return c.commit(ctx, st)
}

// addSteps stores the steps of an update after the action's stored ones,
// bounded, each once by (index, attempt), and queues their audit records.
func (c *change) addSteps(ctx context.Context, st *txStmts, steps []*hwhealv1.ActionStep) error {
	id := c.a.GetId()
	var next int64
	if err := st.s(sStepNext).QueryRowContext(ctx, id).Scan(&next); err != nil {
		return fmt.Errorf("count steps of action %q: %w", id, err)
	}
	dropped := 0
	for _, raw := range steps {
		if next >= store.MaxActionSteps {
			dropped++
			continue
		}
		step := boundStep(raw)
		blob, err := marshal(step)
		if err != nil {
			return fmt.Errorf("encode step %d of action %q: %w", step.GetIndex(), id, err)
		}
		res, err := st.s(sStepInsert).ExecContext(ctx, id, next, int64(step.GetIndex()), int64(step.GetAttempt()), blob)
		if err != nil {
			return fmt.Errorf("store step %d of action %q: %w", step.GetIndex(), id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store step %d of action %q: %w", step.GetIndex(), id, err)
		} else if n == 0 {
			continue // this run of this step is stored already
		}
		next++
		c.added = append(c.added, step)
		c.audits = append(c.audits, auditRec{actor: c.actor, kind: "action.step", node: c.a.GetNode(), actionID: id, detail: stepDetail(step)})
	}
	if dropped > 0 {
		d := newDetail().int("dropped", int64(dropped)).int("limit", store.MaxActionSteps)
		c.audits = append(c.audits, auditRec{actor: c.actor, kind: "action.steps_dropped", node: c.a.GetNode(), actionID: id, detail: d.String()})
	}
	return nil
}

// boundStep is a copy of an agent's step within the store's bounds: the
// end of its output, the start of its other text.
func boundStep(in *hwhealv1.ActionStep) *hwhealv1.ActionStep {
	s := proto.CloneOf(in)
	s.Output = textclip.Tail(s.GetOutput(), store.MaxStepOutput, "")
	s.Name = textclip.Head(s.GetName(), maxStepName, "")
	s.Error = textclip.Head(s.GetError(), maxStepError, "")
	if len(s.Command) > maxStepArgs {
		s.Command = s.Command[:maxStepArgs]
	}
	for i, arg := range s.Command {
		s.Command[i] = textclip.Head(arg, maxStepArg, "")
	}
	return s
}

// stepDetail is the audit detail of one step: what a reader needs to
// follow the runbook, never its output.
func stepDetail(s *hwhealv1.ActionStep) string {
	d := newDetail().uint("index", uint64(s.GetIndex())).str("name", s.GetName()).uint("attempt", uint64(s.GetAttempt())).
		int("exit_code", int64(s.GetExitCode())).bool("timed_out", s.GetTimedOut())
	if du := s.GetDuration(); du != nil && du.CheckValid() == nil {
		d.str("duration", du.AsDuration().String())
	}
	if ts := s.GetStarted(); ts != nil && ts.CheckValid() == nil {
		d.time("started", ts)
	}
	return d.bool("dry_run", s.GetDryRun()).str("error", textclip.Head(s.GetError(), maxAuditText, "")).String()
}

// loadAction reads an action, without its steps, in the transaction of
// st (store.ErrNotFound).
func loadAction(ctx context.Context, st *txStmts, id string) (*hwhealv1.Action, error) {
	var blob []byte
	err := st.s(sActionGet).QueryRowContext(ctx, id).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read action %q: %w", id, err)
	}
	a := &hwhealv1.Action{}
	if err := unmarshalInto(blob, a, fmt.Sprintf("action %q", id)); err != nil {
		return nil, err
	}
	return a, nil
}

// loadSteps reads an action's steps in the transaction of st.
func loadSteps(ctx context.Context, st *txStmts, id string) ([]*hwhealv1.ActionStep, error) {
	rows, err := st.s(sStepsGet).QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read steps of action %q: %w", id, err)
	}
	defer rows.Close()
	var out []*hwhealv1.ActionStep
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("read steps of action %q: %w", id, err)
		}
		step := &hwhealv1.ActionStep{}
		if err := unmarshalInto(b, step, fmt.Sprintf("step of action %q", id)); err != nil {
			return nil, err
		}
		out = append(out, step)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read steps of action %q: %w", id, err)
	}
	return out, nil
}

// nodeService reads a node's service state and boot id
// (store.ErrNotFound).
func nodeService(ctx context.Context, st *txStmts, node string) (hwhealv1.ServiceState, string, error) {
	var (
		svc  int64
		boot string
	)
	err := st.s(sNodeService).QueryRowContext(ctx, node).Scan(&svc, &boot)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("node %q: %w", node, store.ErrNotFound)
	}
	if err != nil {
		return 0, "", fmt.Errorf("read node %q: %w", node, err)
	}
	return action.Normal(hwhealv1.ServiceState(svc)), boot, nil
}

// GetAction returns one action with its steps.
func (s *Store) GetAction(ctx context.Context, id string) (*hwhealv1.Action, error) {
	rows, err := s.r.QueryContext(ctx, actionStepsSQL, id)
	if err != nil {
		return nil, fmt.Errorf("get action %q: %w", id, err)
	}
	defer rows.Close()
	var a *hwhealv1.Action
	for rows.Next() {
		var blob, step []byte
		if err := rows.Scan(&blob, &step); err != nil {
			return nil, fmt.Errorf("get action %q: %w", id, err)
		}
		if a == nil {
			a = &hwhealv1.Action{}
			if err := unmarshalInto(blob, a, fmt.Sprintf("action %q", id)); err != nil {
				return nil, fmt.Errorf("get action %q: %w", id, err)
			}
		}
		if step != nil {
			st := &hwhealv1.ActionStep{}
			if err := unmarshalInto(step, st, fmt.Sprintf("step of action %q", id)); err != nil {
				return nil, fmt.Errorf("get action %q: %w", id, err)
			}
			a.Steps = append(a.Steps, st)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get action %q: %w", id, err)
	}
	if a == nil {
		return nil, fmt.Errorf("get action %q: %w", id, store.ErrNotFound)
	}
	return a, nil
}

// ListActions pages through actions newest first, without their steps.
func (s *Store) ListActions(ctx context.Context, f store.ActionFilter, p store.Page) ([]*hwhealv1.Action, string, error) {
	size := pageSize(p.Size)
	var after *actionKey
	if p.Token != "" {
		k, err := parseActionToken(p.Token)
		if err != nil {
			return nil, "", fmt.Errorf("list actions: %w", err)
		}
		after = &k
	}
	q, args := actionsQuery(f, after, size+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	var (
		out  []*hwhealv1.Action
		last actionKey
		more bool
	)
	for rows.Next() {
		if len(out) == size {
			more = true // the query reads one row past the page
			break
		}
		var (
			k    actionKey
			blob []byte
		)
		if err := rows.Scan(&k.created, &k.id, &blob); err != nil {
			return nil, "", fmt.Errorf("list actions: %w", err)
		}
		a := &hwhealv1.Action{}
		if err := unmarshalInto(blob, a, fmt.Sprintf("action %q", k.id)); err != nil {
			return nil, "", fmt.Errorf("list actions: %w", err)
		}
		out, last = append(out, a), k
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list actions: %w", err)
	}
	var next string
	if more {
		next = actionToken(last)
	}
	return out, next, nil
}

// actionsQuery builds the query of one page of actions (limit rows before
// after, newest first). Each shape walks, backwards, an index that ends in
// (created, id), so a page reads about as many rows as it returns:
//
//   - a node and a rule walk actions_node_rule;
//   - else states that have not ended walk the partial index
//     actions_active, which holds only those (the planner's read on every
//     pass), checking a node per row;
//   - else a node walks actions_node;
//   - else every action, by actions_created.
//
// Other conditions are checked per row.
func actionsQuery(f store.ActionFilter, after *actionKey, limit int) (string, []any) {
	var states []int64
	active := len(f.States) > 0
	for _, st := range f.States {
		if !slices.Contains(states, int64(st)) {
			states = append(states, int64(st))
		}
		if action.IsFinal(st) || st == hwhealv1.ActionState_ACTION_STATE_UNSPECIFIED {
			active = false
		}
	}
	var (
		from  string
		where []string
		args  []any
	)
	switch {
	case f.Node != "" && f.Rule != "":
		from = `actions a INDEXED BY actions_node_rule`
		where = append(where, `a.node = ?`, `a.rule = ?`)
		args = append(args, f.Node, f.Rule)
	case active:
		from = `actions a INDEXED BY actions_active`
		where = append(where, activeSQL)
	case f.Node != "":
		from = `actions a INDEXED BY actions_node`
	default:
		from = `actions a INDEXED BY actions_created`
	}
	if f.Node != "" && f.Rule == "" {
		where = append(where, `a.node = ?`)
		args = append(args, f.Node)
	}
	if f.Rule != "" && f.Node == "" {
		where = append(where, `a.rule = ?`)
		args = append(args, f.Rule)
	}
	if len(states) > 0 {
		where = append(where, `a.state IN (`+placeholders(len(states))+`)`)
		for _, st := range states {
			args = append(args, st)
		}
	}
	if validNanoTime(f.CreatedSince) {
		where = append(where, `a.created >= ?`)
		args = append(args, nanos(f.CreatedSince))
	}
	if after != nil {
		where = append(where, `(a.created, a.id) < (?, ?)`)
		args = append(args, after.created, after.id)
	}
	q := `SELECT a.created, a.id, a.action FROM ` + from
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY a.created DESC, a.id DESC LIMIT ?`
	return q, append(args, limit)
}

// enumName is a proto enum's name without its prefix, in lower case, for
// the audit details of enums remediation/action has no name for.
func enumName(name, prefix string) string { return strings.ToLower(strings.TrimPrefix(name, prefix)) }
