// Package store defines what the collector keeps and the one interface its
// storage backends implement: nodes and their persisted health, the fault
// table and each fault's lifecycle (open, updated, resolved by quiet time
// or by an operator, reopened when it flaps), the latest observation per
// part, the event log, named cursors into it and each agent stream's
// acknowledged sequence number; and for remediation (see Remediation) each
// node's service state, the actions and their steps, the remediation
// switch and the audit log. Backends live below it (sqlite; postgres
// later) and all of them pass the conformance suite in storetest.
package store

import (
	"context"
	"errors"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// ErrNotFound is returned when a named object does not exist.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("store is closed")

// ErrBadPageToken is returned for a page token the store did not issue.
var ErrBadPageToken = errors.New("invalid page token")

// ErrNotOpen is returned by an operator's change to a fault that is no
// longer open (acknowledging or resolving a resolved fault).
var ErrNotOpen = errors.New("fault is not open")

// QuietChunk is the most faults one Store.ResolveQuiet call resolves.
const QuietChunk = 500

// Hello is what the store records when an agent connects.
type Hello struct {
	Node         string
	Labels       map[string]string
	AgentVersion string
	BootID       string
	StreamID     string
	Inventory    *hwhealv1.Inventory
	// Guard is the agent's remediation guard; nil when it runs no
	// actions. Stored with the node, replacing the previous one.
	Guard *hwhealv1.ActionGuard
	Time  time.Time
}

// HelloResult tells the ingest layer where the agent's stream stands.
type HelloResult struct {
	// AckedSeq is the highest sequence number of Hello.StreamID already
	// stored (0 for a new stream id).
	AckedSeq uint64
	// Events recorded by the hello: NODE_REGISTERED for a new node,
	// NODE_REBOOTED when the boot id changed, NODE_CONNECTED always.
	Events []*hwhealv1.Event
}

// DerivedFault is a fault a collector rule raised from readings, with the
// observation source whose readings are its evidence.
//
// The rules re-raise a condition that still holds at least once per quarter
// of its clear time, so a newer reading of that source and part that did
// not re-raise it is evidence the condition is gone; silence is not (a
// drive that stopped answering, a source that died, a part that vanished
// has not healed). Such a fault resolves by quiet time only once a reading
// of Source for its node and part, taken at least its clear time after the
// fault was last seen, is stored (see Store.ResolveQuiet).
//
// A fault keeps the source of the latest derived report merged into it,
// across reopens. An agent report merged into it does not remove it: the
// agent's evidence is covered by the quiet time (it re-raises while the
// condition holds), the readings' evidence is not, so a fault any rule
// ever derived from readings needs a reading to resolve. Only a fault no
// derived report reached (or derived with an empty Source) resolves by
// quiet time alone.
type DerivedFault struct {
	Fault  *hwhealv1.Fault
	Source string
}

// Batch is the reports one agent stream sent, to be stored together, and
// the faults the collector's rules derived from them.
type Batch struct {
	Node string
	// StreamID is the agent stream the reports came on. Empty for a batch
	// that carries only Derived faults (a peer or outlier rule raising a
	// fault for a node outside any agent stream): no stream is touched and
	// the node's last_seen stays, since the node itself said nothing.
	StreamID string
	// Reports in increasing sequence order. An ActionUpdate report moves
	// its action as Remediation.ChangeAction would (remediation/action:
	// ForOutcome, CanMove, ServiceAt, with the action's planned_service as
	// the state before), appends its steps, records ACTION_CHANGED and one
	// audit record per step and per state change by "agent:<node>"; a
	// RUNNING update of a RUNNING action appends steps only (and records
	// nothing when it brings none). On a final state the update's message
	// is the action's result and finished is set. A dry-run update marks
	// the action dry-run: nothing ran, so the node's service state stays.
	// Steps are bounded (MaxActionSteps, MaxStepOutput) and named by
	// (index, attempt): one already stored is not added again. An update
	// of an action already final is recorded (audit "action.late_update")
	// without changing it; one of an action unknown or of another node is
	// dropped with an audit record "action.unknown_update"; one whose
	// outcome the action's state cannot move to (or an outcome this
	// binary does not know) is dropped with "action.invalid_update".
	// None of these three records an event. Reports whose sequence number
	// is not above the stream's acknowledged one are duplicates: the store
	// drops them. So is a fault report whose kernel log record (boot id and
	// kmsg sequence) the newest fault of the same node, class and part
	// already counted, open or resolved: an agent that re-read its ring
	// after a crash or a reinstall.
	//
	// The collector sets Fault.mode and Fault.clear_after of every fault
	// report from its rules before Apply; the latest report of a fault
	// gives the stored values.
	Reports []*hwhealv1.Report
	// Derived are faults the collector's rules raised from this batch's
	// observations (or from the fleet's, for peer rules). They have no
	// sequence number and are stored after the reports exactly as fault
	// reports are: merged into the open fault of the same node, class and
	// part, with the same kernel record check and the same events.
	Derived []DerivedFault
	// Received is the collector's time of receipt (zero: the store's
	// clock). Quiet time and reopen windows count from it, never from the
	// times the agent put on its reports: an agent clock hours behind must
	// not resolve a fresh fault, nor one a year ahead keep it open forever.
	// A fault's first and last seen keep the agent's times (for display,
	// and to compare with its readings, which carry the same clock), or
	// Received when a report has none. Its received and opened
	// (FaultRecord) are on the collector's clock, for remediation to
	// compare with its own times: received is the latest Received of the
	// batches that reported the fault (by an agent report or a derived
	// fault), opened the Received of the batch that opened it or last
	// reopened it, kept across updates.
	Received time.Time
}

// BatchResult is the outcome of one Batch.
type BatchResult struct {
	// AckedSeq is the stream's acknowledged sequence number after the batch.
	AckedSeq uint64
	// Duplicates counts the reports dropped as already stored.
	Duplicates int
	// Events recorded by the batch, with their ids: FAULT_OPENED,
	// FAULT_REOPENED or FAULT_UPDATED (one per fault per batch),
	// NODE_HEALTH_CHANGED, then ACTION_CHANGED (its action carrying only
	// the steps the update added) and NODE_SERVICE_CHANGED per action
	// update, in report order.
	Events []*hwhealv1.Event
}

// Note is an operator's word on a fault, or on the remediation switch
// (SetPaused): who, why and when (zero: the store's clock). Actor and
// Reason are required on a fault; SetPaused requires only Actor.
type Note struct {
	Actor, Reason string
	Time          time.Time
}

// NodeObservation is the latest observation of one part of a node, with the
// node's labels: what peer rules compare across the fleet.
type NodeObservation struct {
	Node string
	// Labels of the node. The entries of one node share one map: treat it
	// as read-only.
	Labels      map[string]string
	Observation *hwhealv1.Observation
}

// NodeFilter selects nodes. Zero values select everything.
type NodeFilter struct {
	Health     []hwhealv1.NodeHealth
	Labels     map[string]string
	FaultClass string // nodes with an open fault of this class
	// Nodes in one of these service states (UNSPECIFIED matches
	// IN_SERVICE).
	ServiceStates []hwhealv1.ServiceState
}

// FaultFilter selects faults. The zero value selects open faults.
type FaultFilter struct {
	Node        string
	FaultClass  string
	State       hwhealv1.FaultState // UNSPECIFIED means OPEN
	AllStates   bool
	MinSeverity hwhealv1.Severity
	Labels      map[string]string
}

// Page asks for one page of a listing.
type Page struct {
	Size  int    // 1..1000; the store clamps it
	Token string // empty for the first page
}

// Store is the collector's storage. Every method is safe for concurrent use.
type Store interface {
	Remediation

	// Hello records an agent's connection and returns where its stream
	// stands. The node's quiet time starts again: its faults cannot
	// resolve for lack of evidence before their clear time has passed
	// since the hello.
	Hello(ctx context.Context, h Hello) (HelloResult, error)
	// Disconnected marks a node's agent as gone and records
	// NODE_DISCONNECTED. A disconnected node's faults never resolve for
	// lack of evidence: it cannot send any.
	Disconnected(ctx context.Context, node string, at time.Time) (*hwhealv1.Event, error)
	// ResetConnections marks every node recorded as connected as
	// disconnected and records NODE_DISCONNECTED for each. A collector calls
	// it at start: streams do not outlive the process that served them, and
	// a crash leaves no chance to record their end.
	ResetConnections(ctx context.Context, at time.Time) ([]*hwhealv1.Event, error)
	// Apply stores several batches in one transaction: this is how the
	// collector writes in bulk. Results are in the order of batches. Fault
	// reports and derived faults upsert the open fault of the same node,
	// class and part (count, last seen, severity raised, latest evidence,
	// mode and clear time). Without an open one, a fault whose newest row
	// resolved by itself (not by an operator) at most that row's clear time
	// before the batch was received is reopened (FAULT_REOPENED, reopened
	// counted, so its clear time doubles); otherwise a new fault opens.
	// Observations replace the latest reading of their node, source and
	// part; node health is recomputed for every node whose faults changed.
	Apply(ctx context.Context, batches []Batch) ([]BatchResult, error)

	// ResolveQuiet resolves open faults with a clear time whose evidence
	// has been gone for it, at most QuietChunk of them, in one transaction:
	// the store's writer is shared with every agent's batches, so a backlog
	// (a collector that was down for a day) is worked off in short steps.
	// Callers call again while it returns QuietChunk FAULT_RESOLVED events.
	//
	// A fault is due when now is at least its clear time after the later
	// of the receipt of its latest report (Batch.Received) and its node's
	// last hello, and its node is connected (quiet time counts only while
	// the agent can report, and only on the collector's clock). The clear
	// time is the fault's, doubled per reopen up to 8 times. A fault with a
	// derived source (see DerivedFault) must also have a stored reading of
	// that source for its node and part whose time is at least its last
	// seen plus that clear time (both on the agent's clock); until then it
	// stays open however long it has been quiet.
	//
	// Each resolution records FAULT_RESOLVED with reason "no evidence for
	// <clear time>" (a derived fault's adds ": a newer <source> reading
	// does not show it"), and NODE_HEALTH_CHANGED where a node's health
	// changes. Zero now means the store's clock.
	ResolveQuiet(ctx context.Context, now time.Time) ([]*hwhealv1.Event, error)
	// GetFault returns one fault by id (ErrNotFound).
	GetFault(ctx context.Context, id uint64) (*hwhealv1.FaultRecord, error)
	// AcknowledgeFault records an operator's acknowledgement of an open
	// fault (ErrNotOpen otherwise), replacing an earlier one, and records
	// FAULT_ACKNOWLEDGED with the note's actor and reason.
	AcknowledgeFault(ctx context.Context, id uint64, note Note) (*hwhealv1.Event, error)
	// ResolveFault resolves an open fault by hand (ErrNotOpen otherwise):
	// FAULT_RESOLVED with the note's actor and reason, and
	// NODE_HEALTH_CHANGED when the node's health changes. A fault an
	// operator resolved never reopens: new evidence opens a new fault.
	ResolveFault(ctx context.Context, id uint64, note Note) ([]*hwhealv1.Event, error)

	// Cursor returns the event id stored under name by SetCursor; ok is
	// false when there is none.
	Cursor(ctx context.Context, name string) (id uint64, ok bool, err error)
	// SetCursor stores a position in the event log under name (e.g. the
	// last event a webhook target was sent), replacing the previous one.
	SetCursor(ctx context.Context, name string, id uint64) error

	ListNodes(ctx context.Context, f NodeFilter, p Page) (nodes []*hwhealv1.Node, next string, err error)
	GetNode(ctx context.Context, name string) (*hwhealv1.Node, error)
	ListFaults(ctx context.Context, f FaultFilter, p Page) (faults []*hwhealv1.FaultRecord, next string, err error)
	// LatestObservations returns the newest observation of each source and
	// part of a node.
	LatestObservations(ctx context.Context, node string) ([]*hwhealv1.Observation, error)
	// FleetObservations returns the newest observation of source for every
	// part of every node, with the node's labels, ordered by node and part:
	// the input of the collector's peer (outlier) rules.
	FleetObservations(ctx context.Context, source string) ([]NodeObservation, error)
	// EventsAfter returns up to limit recorded events with id > afterID, in
	// id order.
	EventsAfter(ctx context.Context, afterID uint64, limit int) ([]*hwhealv1.Event, error)

	Close() error
}
