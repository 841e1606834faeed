// Package store defines what the collector keeps and the one interface its
// storage backends implement: nodes, the fault table, the latest
// observation per part, the event log and each agent stream's acknowledged
// sequence number. Backends live below it (sqlite; postgres later) and all
// of them pass the conformance suite in storetest.
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

// Hello is what the store records when an agent connects.
type Hello struct {
	Node         string
	Labels       map[string]string
	AgentVersion string
	BootID       string
	StreamID     string
	Inventory    *hwhealv1.Inventory
	Time         time.Time
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

// Batch is the reports one agent stream sent, to be stored together.
type Batch struct {
	Node     string
	StreamID string
	// Reports in increasing sequence order. Reports whose sequence number
	// is not above the stream's acknowledged one are duplicates: the store
	// drops them. So is a fault report whose kernel log record (boot id and
	// kmsg sequence) the same open fault already counted: an agent that
	// re-read its ring after a crash or a reinstall.
	Reports []*hwhealv1.Report
	// Received is the collector's time of receipt (fault last-seen when the
	// agent's own time is missing).
	Received time.Time
}

// BatchResult is the outcome of one Batch.
type BatchResult struct {
	// AckedSeq is the stream's acknowledged sequence number after the batch.
	AckedSeq uint64
	// Duplicates counts the reports dropped as already stored.
	Duplicates int
	// Events recorded by the batch, with their ids: FAULT_OPENED,
	// FAULT_UPDATED (at most one per fault per batch), NODE_HEALTH_CHANGED.
	Events []*hwhealv1.Event
}

// NodeFilter selects nodes. Zero values select everything.
type NodeFilter struct {
	Health     []hwhealv1.NodeHealth
	Labels     map[string]string
	FaultClass string // nodes with an open fault of this class
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
	// Hello records an agent's connection and returns where its stream
	// stands.
	Hello(ctx context.Context, h Hello) (HelloResult, error)
	// Disconnected marks a node's agent as gone and records
	// NODE_DISCONNECTED.
	Disconnected(ctx context.Context, node string, at time.Time) (*hwhealv1.Event, error)
	// ResetConnections marks every node recorded as connected as
	// disconnected and records NODE_DISCONNECTED for each. A collector calls
	// it at start: streams do not outlive the process that served them, and
	// a crash leaves no chance to record their end.
	ResetConnections(ctx context.Context, at time.Time) ([]*hwhealv1.Event, error)
	// Apply stores several batches in one transaction: this is how the
	// collector writes in bulk. Results are in the order of batches. Fault
	// reports upsert the open fault of the same node, class and part
	// (count, last seen, severity raised, latest evidence); observations
	// replace the latest reading of their node, source and part; node
	// health is recomputed for every node touched.
	Apply(ctx context.Context, batches []Batch) ([]BatchResult, error)

	ListNodes(ctx context.Context, f NodeFilter, p Page) (nodes []*hwhealv1.Node, next string, err error)
	GetNode(ctx context.Context, name string) (*hwhealv1.Node, error)
	ListFaults(ctx context.Context, f FaultFilter, p Page) (faults []*hwhealv1.FaultRecord, next string, err error)
	// LatestObservations returns the newest observation of each source and
	// part of a node.
	LatestObservations(ctx context.Context, node string) ([]*hwhealv1.Observation, error)
	// EventsAfter returns up to limit recorded events with id > afterID, in
	// id order.
	EventsAfter(ctx context.Context, afterID uint64, limit int) ([]*hwhealv1.Event, error)

	Close() error
}
