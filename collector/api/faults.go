package api

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hwheal/hwheal/collector/auth"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// MaxReasonBytes bounds an operator's reason.
const MaxReasonBytes = 1024

// actor returns who is calling: the user the auth interceptor
// authenticated. A call without one never passed the interceptor (a
// server wired without it) and is refused: every acknowledgement,
// resolution and action says who made it.
func actor(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.User == "" {
		return "", status.Error(codes.Unauthenticated, "no authenticated caller: the fleet API is served without its auth interceptor")
	}
	return id.User, nil
}

// reasonOf checks an operator's reason: required when asked, UTF-8,
// bounded; trimmed.
func reasonOf(reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" && required {
		return "", status.Error(codes.InvalidArgument, "reason is required: say why, for the audit log and the next person")
	}
	if len(reason) > MaxReasonBytes || !utf8.ValidString(reason) {
		return "", status.Errorf(codes.InvalidArgument, "reason must be UTF-8 of at most %d bytes", MaxReasonBytes)
	}
	return reason, nil
}

// note validates an operator request's id and reason.
func note(ctx context.Context, id uint64, reason string) (store.Note, error) {
	if id == 0 {
		return store.Note{}, status.Error(codes.InvalidArgument, "id is required")
	}
	reason, err := reasonOf(reason, true)
	if err != nil {
		return store.Note{}, err
	}
	a, err := actor(ctx)
	if err != nil {
		return store.Note{}, err
	}
	return store.Note{Actor: a, Reason: reason, Time: time.Now()}, nil
}

// GetFault returns one fault, open or resolved.
func (f *Fleet) GetFault(ctx context.Context, req *hwhealv1.GetFaultRequest) (*hwhealv1.GetFaultResponse, error) {
	if req.GetId() == 0 {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	fr, err := f.store.GetFault(ctx, req.GetId())
	if err != nil {
		return nil, f.storeErr("get fault", err)
	}
	return &hwhealv1.GetFaultResponse{Fault: fr}, nil
}

// AcknowledgeFault records that an operator has seen an open fault.
func (f *Fleet) AcknowledgeFault(ctx context.Context, req *hwhealv1.AcknowledgeFaultRequest) (*hwhealv1.AcknowledgeFaultResponse, error) {
	n, err := note(ctx, req.GetId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	var fr *hwhealv1.FaultRecord
	err = f.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		ev, err := f.store.AcknowledgeFault(ctx, req.GetId(), n)
		if err != nil {
			return nil, err
		}
		fr = ev.GetFault()
		return []*hwhealv1.Event{ev}, nil
	})
	if err != nil {
		return nil, f.storeErr("acknowledge fault", err)
	}
	f.logger.Info("fault acknowledged", "id", req.GetId(), "actor", n.Actor, "reason", n.Reason)
	return &hwhealv1.AcknowledgeFaultResponse{Fault: fr}, nil
}

// ResolveFault closes an open fault by hand.
func (f *Fleet) ResolveFault(ctx context.Context, req *hwhealv1.ResolveFaultRequest) (*hwhealv1.ResolveFaultResponse, error) {
	n, err := note(ctx, req.GetId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	var fr *hwhealv1.FaultRecord
	err = f.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		evs, err := f.store.ResolveFault(ctx, req.GetId(), n)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED {
				fr = ev.GetFault()
			}
		}
		return evs, nil
	})
	if err != nil {
		return nil, f.storeErr("resolve fault", err)
	}
	f.logger.Info("fault resolved by an operator", "id", req.GetId(), "actor", n.Actor, "reason", n.Reason)
	return &hwhealv1.ResolveFaultResponse{Fault: fr}, nil
}
