// Package action owns the action state machine shared by the collector's
// store and planner: which state may follow which, what an agent's update
// moves an action to, and what each state does to its node's service
// state. It is pure (no I/O) so that every writer of an action, the store
// applying an agent's update inside a batch and the planner moving it by
// policy, follows the same rules.
package action

import (
	"strings"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// States, short, for the code that switches on them.
const (
	Proposed         = hwhealv1.ActionState_ACTION_STATE_PROPOSED
	AwaitingApproval = hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL
	Approved         = hwhealv1.ActionState_ACTION_STATE_APPROVED
	Dispatched       = hwhealv1.ActionState_ACTION_STATE_DISPATCHED
	Running          = hwhealv1.ActionState_ACTION_STATE_RUNNING
	Succeeded        = hwhealv1.ActionState_ACTION_STATE_SUCCEEDED
	Failed           = hwhealv1.ActionState_ACTION_STATE_FAILED
	TimedOut         = hwhealv1.ActionState_ACTION_STATE_TIMED_OUT
	Cancelled        = hwhealv1.ActionState_ACTION_STATE_CANCELLED
	Expired          = hwhealv1.ActionState_ACTION_STATE_EXPIRED
	Denied           = hwhealv1.ActionState_ACTION_STATE_DENIED
	Refused          = hwhealv1.ActionState_ACTION_STATE_REFUSED
)

// Types, short.
const (
	Reboot  = hwhealv1.ActionType_ACTION_TYPE_REBOOT
	Offline = hwhealv1.ActionType_ACTION_TYPE_OFFLINE
	Migrate = hwhealv1.ActionType_ACTION_TYPE_MIGRATE
	Online  = hwhealv1.ActionType_ACTION_TYPE_ONLINE
)

// Service states, short.
const (
	InService = hwhealv1.ServiceState_SERVICE_STATE_IN_SERVICE
	Draining  = hwhealv1.ServiceState_SERVICE_STATE_DRAINING
	Off       = hwhealv1.ServiceState_SERVICE_STATE_OFFLINE
	Rebooting = hwhealv1.ServiceState_SERVICE_STATE_REBOOTING
	Migrating = hwhealv1.ServiceState_SERVICE_STATE_MIGRATING
)

// next lists the states each state may move to. Final states move
// nowhere: a late agent update of a timed-out action is recorded, but the
// action stays as it ended.
var next = map[hwhealv1.ActionState][]hwhealv1.ActionState{
	Proposed:         {AwaitingApproval, Approved, Cancelled},
	AwaitingApproval: {Approved, Denied, Expired, Cancelled},
	Approved:         {Dispatched, Cancelled},
	// An agent may answer a dispatch with its final update straight away
	// (a refusal, a dry run, a short runbook whose RUNNING update was
	// merged into the same batch).
	Dispatched: {Running, Succeeded, Failed, Refused, TimedOut},
	Running:    {Succeeded, Failed, TimedOut},
}

// CanMove reports whether an action in state from may move to state to.
func CanMove(from, to hwhealv1.ActionState) bool {
	for _, s := range next[from] {
		if s == to {
			return true
		}
	}
	return false
}

// IsFinal reports whether s ends an action.
func IsFinal(s hwhealv1.ActionState) bool {
	switch s {
	case Succeeded, Failed, TimedOut, Cancelled, Expired, Denied, Refused:
		return true
	}
	return false
}

// InFlight reports whether an action in s has been sent to its agent and
// has not ended: its node is busy with it.
func InFlight(s hwhealv1.ActionState) bool { return s == Dispatched || s == Running }

// Pending reports whether an action in s has not been dispatched yet and
// may still be cancelled.
func Pending(s hwhealv1.ActionState) bool {
	return s == Proposed || s == AwaitingApproval || s == Approved
}

// ForOutcome is the state an agent's update moves an action to: RUNNING
// for progress, or the final state it reports. ok is false for an
// outcome this binary does not know.
func ForOutcome(o hwhealv1.ActionOutcome) (s hwhealv1.ActionState, ok bool) {
	switch o {
	case hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING:
		return Running, true
	case hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED:
		return Succeeded, true
	case hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED:
		return Failed, true
	case hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED:
		return Refused, true
	}
	return 0, false
}

// Normal reads UNSPECIFIED (a node stored before remediation) as
// IN_SERVICE.
func Normal(s hwhealv1.ServiceState) hwhealv1.ServiceState {
	if s == hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED {
		return InService
	}
	return s
}

// OutOfService reports whether a node in service state s takes no work.
func OutOfService(s hwhealv1.ServiceState) bool { return Normal(s) != InService }

// ServiceAt is the service state of the node of an action of type t once
// the action is in state s, where before is the node's service state when
// the action was dispatched (Action.planned_service). ok is false when the
// change leaves the node's service state alone: dry runs, and every state
// before dispatch.
//
//   - While in flight a reboot makes the node REBOOTING, an offline
//     DRAINING, a migrate MIGRATING; an online leaves it as it was until it
//     succeeds.
//   - On success an offline leaves it OFFLINE and an online IN_SERVICE; a
//     reboot or a migrate puts back what it was.
//   - An offline that failed or timed out leaves it DRAINING: it may be
//     half drained, and a person decides. Every other failure, timeout or
//     refusal puts back what it was (a reboot that never came back leaves
//     the node disconnected, which the availability floor counts).
func ServiceAt(t hwhealv1.ActionType, s hwhealv1.ActionState, dryRun bool, before hwhealv1.ServiceState) (hwhealv1.ServiceState, bool) {
	if dryRun {
		return 0, false
	}
	before = Normal(before)
	switch {
	case InFlight(s):
		switch t {
		case Reboot:
			return Rebooting, true
		case Offline:
			return Draining, true
		case Migrate:
			return Migrating, true
		}
		return 0, false
	case s == Succeeded:
		switch t {
		case Offline:
			return Off, true
		case Online:
			return InService, true
		case Reboot, Migrate:
			return before, true
		}
	case s == Failed || s == TimedOut:
		switch t {
		case Offline:
			return Draining, true
		case Reboot, Migrate:
			return before, true
		}
	case s == Refused:
		switch t {
		case Offline, Reboot, Migrate:
			return before, true
		}
	}
	return 0, false
}

// DefaultTimeout is how long an action of type t may take from dispatch to
// its final update when the policy names no timeout.
func DefaultTimeout(t hwhealv1.ActionType) time.Duration {
	switch t {
	case Reboot:
		return 20 * time.Minute
	case Offline:
		return time.Hour
	case Migrate:
		return 2 * time.Hour
	case Online:
		return 30 * time.Minute
	}
	return time.Hour
}

// TypeName is the short name of an action type in policies, the CLI and
// agent configuration: "reboot", "offline", "migrate", "online"; "" for
// UNSPECIFIED and unknown values.
func TypeName(t hwhealv1.ActionType) string {
	switch t {
	case Reboot:
		return "reboot"
	case Offline:
		return "offline"
	case Migrate:
		return "migrate"
	case Online:
		return "online"
	}
	return ""
}

// ParseType is TypeName's inverse; ok is false for any other name.
func ParseType(name string) (hwhealv1.ActionType, bool) {
	for _, t := range []hwhealv1.ActionType{Reboot, Offline, Migrate, Online} {
		if TypeName(t) == name {
			return t, true
		}
	}
	return 0, false
}

// TypeNames lists the short names, in ladder order of harm.
func TypeNames() []string { return []string{"migrate", "reboot", "offline", "online"} }

// TypeLabel is TypeName, or for a type this build does not know the
// enum's own name (its number): what logs, ledgers and environments say.
func TypeLabel(t hwhealv1.ActionType) string {
	if n := TypeName(t); n != "" {
		return n
	}
	return t.String()
}

// StateName is the short name of an action state in audit records, logs,
// messages and hwhealctl --state: "awaiting_approval", "timed_out".
func StateName(s hwhealv1.ActionState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "ACTION_STATE_"))
}

// ServiceName is the short name of a service state: "in_service",
// "offline"; UNSPECIFIED (a node stored before remediation) reads as
// in_service, as Normal says.
func ServiceName(s hwhealv1.ServiceState) string {
	return strings.ToLower(strings.TrimPrefix(Normal(s).String(), "SERVICE_STATE_"))
}

// ApprovalName is the policy's spelling of an approval mode: "auto",
// "required", "two-person"; "" for UNSPECIFIED.
func ApprovalName(m hwhealv1.ApprovalMode) string {
	if m == hwhealv1.ApprovalMode_APPROVAL_MODE_UNSPECIFIED {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(m.String(), "APPROVAL_MODE_")), "_", "-")
}

// Bounds of one ActionUpdate as the collector accepts it: ingest refuses an
// update past any of them with InvalidArgument, and the agent's actuator
// clips what it reports to them, since a refused report holds the agent's
// whole stream up before it is skipped and lost. One set, here, for both
// sides of the wire.
const (
	MaxActionID    = 64
	MaxUpdateSteps = 64
	MaxStepName    = 128
	MaxStepArgs    = 64
	MaxStepArg     = 4096
	MaxStepOutput  = 16 << 10
	// MaxUpdateMessage bounds an update's message and a step's error.
	MaxUpdateMessage = 4096
	// MaxBootID bounds a boot id, in an update or a hello.
	MaxBootID = 64
)
