// Package api owns FleetService, the collector's API for people and tools:
// nodes with their health and open faults, the fault table, and the fleet
// event stream. It translates between the proto and the store and maps
// store errors to gRPC status codes; it keeps no state of its own.
package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// MaxPageSize is the largest page any listing returns.
const MaxPageSize = 1000

// DefaultPageSize is the page size when a request leaves it at zero.
const DefaultPageSize = 100

// replayPage is how many recorded events WatchEvents reads at a time.
const replayPage = 1000

// Config configures the fleet API.
type Config struct {
	Store  store.Store
	Broker *events.Broker
	Logger *slog.Logger
	// Write runs a store write in the collector's one write order and
	// publishes its events (ingest.Server.Write). Nil runs it here and
	// publishes to Broker: only for tests without ingest.
	Write func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error
	// Remediation serves action requests, decisions and the remediation
	// switch; nil answers them with UNIMPLEMENTED (listings still work).
	Remediation Remediator
}

// Fleet implements hwhealv1.FleetServiceServer.
type Fleet struct {
	hwhealv1.UnimplementedFleetServiceServer
	store  store.Store
	broker *events.Broker
	logger *slog.Logger
	write  func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error
	// remediation is nil when the collector runs without a planner.
	remediation Remediator

	stopOnce sync.Once
	stop     chan struct{}
}

// New returns the fleet API over a store and an event broker.
func New(cfg Config) (*Fleet, error) {
	if cfg.Store == nil || cfg.Broker == nil {
		return nil, errors.New("api: Store and Broker are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{store: cfg.Store, broker: cfg.Broker, logger: cfg.Logger, write: cfg.Write, remediation: cfg.Remediation, stop: make(chan struct{})}
	if f.write == nil {
		f.write = func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error {
			evs, err := fn(ctx)
			if err == nil {
				f.broker.Publish(evs...)
			}
			return err
		}
	}
	return f, nil
}

// StopWatches ends every WatchEvents stream (with UNAVAILABLE), so that a
// graceful stop does not wait for watchers that never leave.
func (f *Fleet) StopWatches() { f.stopOnce.Do(func() { close(f.stop) }) }

func page(size uint32, token string) (store.Page, error) {
	if size > MaxPageSize {
		return store.Page{}, status.Errorf(codes.InvalidArgument, "page_size %d is over the limit of %d", size, MaxPageSize)
	}
	if size == 0 {
		size = DefaultPageSize
	}
	return store.Page{Size: int(size), Token: token}, nil
}

// storeErr maps a store error to a status, logging what the caller is not
// told.
func (f *Fleet) storeErr(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrNotOpen):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrBadPageToken):
		return status.Error(codes.InvalidArgument, "page_token is not valid: pass the next_page_token of the previous response")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, store.ErrClosed):
		return status.Error(codes.Unavailable, op+": collector is shutting down")
	}
	f.logger.Error("store query failed", "op", op, "err", err)
	return status.Error(codes.Internal, op+": store query failed")
}

// ListNodes lists nodes with filters and pagination.
func (f *Fleet) ListNodes(ctx context.Context, req *hwhealv1.ListNodesRequest) (*hwhealv1.ListNodesResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	nodes, next, err := f.store.ListNodes(ctx, store.NodeFilter{
		Health:     req.GetHealth(),
		Labels:     req.GetLabels(),
		FaultClass: req.GetFaultClass(),
	}, p)
	if err != nil {
		return nil, f.storeErr("list nodes", err)
	}
	return &hwhealv1.ListNodesResponse{Nodes: nodes, NextPageToken: next}, nil
}

// GetNode returns one node with its open faults and latest observations.
func (f *Fleet) GetNode(ctx context.Context, req *hwhealv1.GetNodeRequest) (*hwhealv1.GetNodeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	node, err := f.store.GetNode(ctx, req.GetName())
	if err != nil {
		return nil, f.storeErr("get node", err)
	}
	var open []*hwhealv1.FaultRecord
	token := ""
	for {
		faults, next, err := f.store.ListFaults(ctx, store.FaultFilter{Node: req.GetName()}, store.Page{Size: MaxPageSize, Token: token})
		if err != nil {
			return nil, f.storeErr("get node faults", err)
		}
		open = append(open, faults...)
		if next == "" {
			break
		}
		token = next
	}
	obs, err := f.store.LatestObservations(ctx, req.GetName())
	if err != nil {
		return nil, f.storeErr("get node observations", err)
	}
	return &hwhealv1.GetNodeResponse{Node: node, OpenFaults: open, LatestObservations: obs}, nil
}

// ListFaults lists faults with filters and pagination.
func (f *Fleet) ListFaults(ctx context.Context, req *hwhealv1.ListFaultsRequest) (*hwhealv1.ListFaultsResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	faults, next, err := f.store.ListFaults(ctx, store.FaultFilter{
		Node:        req.GetNode(),
		FaultClass:  req.GetFaultClass(),
		State:       req.GetState(),
		AllStates:   req.GetAllStates(),
		MinSeverity: req.GetMinSeverity(),
		Labels:      req.GetLabels(),
	}, p)
	if err != nil {
		return nil, f.storeErr("list faults", err)
	}
	return &hwhealv1.ListFaultsResponse{Faults: faults, NextPageToken: next}, nil
}

type eventFilter struct {
	types map[hwhealv1.EventType]bool
	node  string
	class string
}

func newEventFilter(req *hwhealv1.WatchEventsRequest) eventFilter {
	f := eventFilter{node: req.GetNode(), class: req.GetFaultClass()}
	if len(req.GetTypes()) > 0 {
		f.types = make(map[hwhealv1.EventType]bool, len(req.GetTypes()))
		for _, t := range req.GetTypes() {
			f.types[t] = true
		}
	}
	return f
}

func (f eventFilter) match(ev *hwhealv1.Event) bool {
	if f.types != nil && !f.types[ev.GetType()] {
		return false
	}
	if f.node != "" && ev.GetNode() != f.node {
		return false
	}
	if f.class != "" && ev.GetFault().GetFaultClass() != f.class {
		return false
	}
	return true
}

// WatchEvents replays recorded events after a given id when asked, then
// follows new ones. The subscription is made before the replay so that no
// event falls between the two; ids tell the overlap apart.
func (f *Fleet) WatchEvents(req *hwhealv1.WatchEventsRequest, stream hwhealv1.FleetService_WatchEventsServer) error {
	ctx := stream.Context()
	filter := newEventFilter(req)
	var sub *events.Subscription
	if !req.GetStopAtEnd() {
		sub = f.broker.Subscribe()
		defer sub.Close()
	}
	send := func(ev *hwhealv1.Event) error {
		if !filter.match(ev) {
			return nil
		}
		return stream.Send(&hwhealv1.WatchEventsResponse{Event: ev})
	}
	var last uint64
	if req.AfterId != nil {
		last = req.GetAfterId()
		for {
			evs, err := f.store.EventsAfter(ctx, last, replayPage)
			if err != nil {
				return f.storeErr("replay events", err)
			}
			for _, ev := range evs {
				if err := send(ev); err != nil {
					return err
				}
				last = ev.GetId()
			}
			// Only an empty page ends the replay: EventsAfter returns "up
			// to" limit events, and a backend may cap a page below it.
			if len(evs) == 0 {
				break
			}
		}
	}
	if sub == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.stop:
			return status.Error(codes.Unavailable, "collector is shutting down; resume with after_id")
		case ev := <-sub.C():
			if ev.GetId() <= last {
				continue
			}
			last = ev.GetId()
			if err := send(ev); err != nil {
				return err
			}
		case <-sub.Done():
			if sub.Overflowed() {
				return status.Errorf(codes.ResourceExhausted, "the watcher fell behind the event stream; resume with after_id=%d", last)
			}
			return nil
		}
	}
}
