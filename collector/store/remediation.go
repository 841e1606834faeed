package store

import (
	"context"
	"errors"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// ErrConflict is returned by ChangeAction when the action is not in one of
// the states the change expected: another writer (an agent's update, an
// operator, the planner) moved it first; or when an automatic action's
// node is no longer in the boot it was planned in at its dispatch. The
// caller reads it again.
var ErrConflict = errors.New("action changed meanwhile")

// ErrExists is returned by CreateAction for an id already stored.
var ErrExists = errors.New("already exists")

// Bounds on what an agent's updates may store: the steps kept per action
// (later ones are dropped, with an audit record "action.steps_dropped")
// and the bytes of a step's output (its end is kept). An agent is not
// trusted to keep them.
const (
	MaxActionSteps = 256
	MaxStepOutput  = 4 << 10
)

// AuditKind is the audit record kind of an action's move to s:
// "action.<state>", the state's name in lower case without its prefix
// ("action.approved", "action.timed_out").
func AuditKind(s hwhealv1.ActionState) string {
	return "action." + action.StateName(s)
}

// ActionFilter selects actions. Zero values select everything.
type ActionFilter struct {
	Node string
	// Actions in one of these states. When every one of them is a state
	// that has not ended (PROPOSED .. RUNNING), the listing reads only the
	// actions that have not ended, whatever the size of the history: how
	// the planner reads its work on every pass.
	States []hwhealv1.ActionState
	Rule   string
	// Only actions created at or after this time.
	CreatedSince time.Time
}

// AuditFilter selects audit records. The zero value selects all.
type AuditFilter struct {
	Node     string
	ActionID string
}

// ActionChange moves one action from one of From to To, with the fields
// that change with it. It is the only way an action changes besides an
// agent's ActionUpdate reports, which Apply handles by the same rules
// (remediation/action).
type ActionChange struct {
	ID string
	// The states the caller saw: the change fails with ErrConflict when
	// the action is in none of them. Empty: any state from which
	// action.CanMove allows To. Every state in From must be To or one
	// that action.CanMove allows to move to To (a From that cannot is
	// the caller's mistake: an error that is not ErrConflict).
	From []hwhealv1.ActionState
	// To is the new state; it may equal the current one for a change of
	// fields only (an approval that does not yet complete a two-person
	// rule, a new Waiting), which action.CanMove does not cover. An action
	// that has ended takes no change of fields: ErrConflict.
	To hwhealv1.ActionState
	// Actor (required) and Reason go into the audit record and the event,
	// and into the action's decision for DENIED, CANCELLED, EXPIRED and
	// TIMED_OUT. On the move to a final state Reason is also the action's
	// result when the change sets none and it has none yet.
	Actor  string
	Reason string
	// Time of the change; zero means the store's clock.
	Time time.Time

	// Approval, when set, is appended to the action's approvals (and its
	// actor to approved_by). An approval without actor or time takes the
	// change's.
	Approval *hwhealv1.ActionNote
	// NotBefore, when set, replaces the action's not_before (a zero time
	// clears it).
	NotBefore *time.Time
	// Waiting, when set, replaces what the action waits for ("" clears
	// it). A change that only sets Waiting records no event and no audit
	// record when the text is unchanged, so the planner may set it every
	// pass. Waiting is cleared when the action leaves APPROVED, unless the
	// change sets it.
	Waiting *string
	// Result, when set, replaces the action's result.
	Result *string
}

// RemediationState is the fleet-wide remediation switch as stored.
type RemediationState struct {
	Paused bool
	// PausedBy is set while paused: who (an operator or "breaker"), when
	// and why.
	PausedBy *hwhealv1.ActionNote
	// ResumedBy is the last resume, kept after it: the storm breaker
	// counts only faults that opened after it.
	ResumedBy *hwhealv1.ActionNote
}

// AuditEntry is an audit record a caller adds outside an action change
// (a refused request, a policy loaded). The store adds the id, the time
// when zero, and the hashes.
type AuditEntry struct {
	// Actor and Kind are required.
	Actor    string
	Kind     string
	Node     string
	ActionID string
	// Detail is a JSON object (empty: "{}"); the store keeps it compacted
	// and refuses anything else.
	Detail string
	Time   time.Time
}

// Remediation is the part of the store that keeps actions, the
// remediation switch and the audit log. Every write that changes an action
// or the switch appends its audit record in the same transaction, so the
// log holds exactly what happened, in the order it happened; each record
// carries the hash of the one before (pkg/auditchain), and ids are 1, 2,
// 3, ... without gaps (a write that fails leaves none).
//
// Audit records of actions: "action.created"; AuditKind(state) for a move
// to a state; "action.approval" for an approval that leaves the state as
// it is; "action.updated" for a change of other fields only (not_before,
// waiting, result); "action.step" for each step an agent reported;
// "action.steps_dropped" when an update brought steps beyond
// MaxActionSteps; "action.late_update", "action.unknown_update" and
// "action.invalid_update" (see Batch.Reports). The detail is a compact
// JSON object of what a reader needs (states from and to, the reason,
// service state from and to, a step's name, exit code and duration, never
// its output).
type Remediation interface {
	// CreateAction stores a new action as given (its ID, unique, set by
	// the caller; its node known; its type set; its state PROPOSED,
	// AWAITING_APPROVAL or APPROVED; requested_by set; created and
	// updated set to now when unset; planned_boot_id and planned_service
	// set from the node when both are unset), records ACTION_CHANGED and
	// an audit record of kind "action.created" by a.requested_by. The
	// event carries the action as stored; a is not changed. ErrExists for
	// an id already stored; ErrNotFound for a node the store does not
	// know.
	CreateAction(ctx context.Context, a *hwhealv1.Action) ([]*hwhealv1.Event, error)
	// ChangeAction applies ch (see ActionChange) and returns the action
	// after it, with its steps. It records ACTION_CHANGED and an audit
	// record of kind AuditKind(To) (e.g. "action.approved"), and changes
	// the node's service state as action.ServiceAt says
	// (NODE_SERVICE_CHANGED). On the move to DISPATCHED it sets dispatched
	// and sets planned_service to the node's current service state, the
	// state ServiceAt later restores. An automatic action (rule set) with
	// a planned_boot_id keeps it: when the node's current boot id differs
	// (it rebooted since the planner checked it), the move fails with
	// ErrConflict and nothing is written, so that the order never carries
	// a boot the planner did not check (the agent refuses an order for a
	// boot other than its own). A manual action, or one without a planned
	// boot, takes the node's current boot id. On the move to a final state
	// it sets finished. A change that changes nothing records nothing and
	// returns no event. ErrNotFound, ErrConflict.
	ChangeAction(ctx context.Context, ch ActionChange) (*hwhealv1.Action, []*hwhealv1.Event, error)
	// GetAction returns one action with its steps (ErrNotFound).
	GetAction(ctx context.Context, id string) (*hwhealv1.Action, error)
	// ListActions lists actions, newest first (by created, then id).
	// Listed actions leave their steps out (they are the bulk of an
	// action); GetAction has them.
	ListActions(ctx context.Context, f ActionFilter, p Page) ([]*hwhealv1.Action, string, error)

	// RemediationState returns the remediation switch.
	RemediationState(ctx context.Context) (RemediationState, error)
	// SetPaused pauses or resumes automatic remediation, recording
	// REMEDIATION_PAUSED or REMEDIATION_RESUMED and an audit record of
	// kind "remediation.paused" or "remediation.resumed" (the node empty).
	// The note's actor is required, its reason may be empty. Pausing a
	// paused store or resuming a running one changes nothing and returns
	// no event (ok false).
	SetPaused(ctx context.Context, paused bool, note Note) (ev []*hwhealv1.Event, ok bool, err error)
	// Escalate records, once per fault id, that automatic remediation gave
	// the fault up to people: REMEDIATION_ESCALATED (the event's fault is
	// the fault) and an audit record of kind "remediation.escalated" by
	// actor (required), both on the fault's node. A second call for the
	// same fault returns no event; an unknown fault is ErrNotFound. Zero
	// at means the store's clock.
	Escalate(ctx context.Context, faultID uint64, actor, reason string, at time.Time) ([]*hwhealv1.Event, error)
	// AppendAudit adds one record to the audit log.
	AppendAudit(ctx context.Context, e AuditEntry) (*hwhealv1.AuditRecord, error)
	// ListAudit lists audit records in id order.
	ListAudit(ctx context.Context, f AuditFilter, p Page) ([]*hwhealv1.AuditRecord, string, error)
}
