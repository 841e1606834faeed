package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// orNow returns t, or the store's clock when t is zero or cannot be stored.
func (s *Store) orNow(t time.Time) time.Time {
	if validNanoTime(t) {
		return t
	}
	return s.now()
}

// write runs fn in one transaction on the writer connection.
//
// fn gets a context without cancellation for its statements: with a
// cancellable one, the driver starts a goroutine per statement to watch it,
// which costs more than the statement itself. Cancellation still ends the
// transaction (database/sql rolls it back when ctx is done) and callers
// that loop check ctx between steps.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, st *txStmts) error) error {
	// Close waits for writes in progress and later ones get ErrClosed,
	// rather than a nil statement set.
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.st == nil {
		return store.ErrClosed
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	qctx := context.WithoutCancel(ctx)
	if err := fn(qctx, s.st.in(qctx, tx)); err != nil {
		return errors.Join(err, rollback(tx))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// Hello records an agent's connection: it registers a new node or updates a
// known one (labels replaced, inventory replaced when the hello carries one,
// an empty boot id leaves the stored one, the guard always replaced), marks
// it connected and returns the acknowledged sequence number of the hello's
// stream id.
func (s *Store) Hello(ctx context.Context, h store.Hello) (store.HelloResult, error) {
	var res store.HelloResult
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		var err error
		res, err = s.hello(ctx, st, h)
		return err
	})
	if err != nil {
		return store.HelloResult{}, fmt.Errorf("hello from node %q: %w", h.Node, err)
	}
	return res, nil
}

// hello records one hello in the transaction of st.
func (s *Store) hello(ctx context.Context, st *txStmts, h store.Hello) (store.HelloResult, error) {
	var res store.HelloResult
	if h.Node == "" {
		return res, errors.New("empty node name")
	}
	at := s.orNow(h.Time)
	labels, err := labelsJSON(h.Labels)
	if err != nil {
		return res, err
	}
	var inv []byte // nil binds as NULL: keep the stored inventory
	if h.Inventory != nil {
		if inv, err = marshal(h.Inventory); err != nil {
			return res, fmt.Errorf("encode inventory: %w", err)
		}
	}
	var guard []byte // nil binds as NULL: the agent runs no actions
	if h.Guard != nil {
		if guard, err = marshal(h.Guard); err != nil {
			return res, fmt.Errorf("encode guard: %w", err)
		}
	}
	var oldBoot string
	err = st.s(sNodeBoot).QueryRowContext(ctx, h.Node).Scan(&oldBoot)
	isNew := errors.Is(err, sql.ErrNoRows)
	switch {
	case isNew:
		if _, err := st.s(sNodeInsert).ExecContext(ctx, h.Node, labels, h.AgentVersion, h.BootID, nullBytes(inv),
			int64(hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY), nanos(at), nullBytes(guard)); err != nil {
			return res, fmt.Errorf("insert node: %w", err)
		}
	case err != nil:
		return res, fmt.Errorf("read node: %w", err)
	default:
		if _, err := st.s(sNodeUpdate).ExecContext(ctx, h.Node, labels, h.AgentVersion, h.BootID, nullBytes(inv), nanos(at), nullBytes(guard)); err != nil {
			return res, fmt.Errorf("update node: %w", err)
		}
		if _, err := st.s(sLabelsDelete).ExecContext(ctx, h.Node); err != nil {
			return res, fmt.Errorf("delete labels: %w", err)
		}
		// Quiet time counts again from now: a node that was away could
		// not report, and one that just came back has not yet had the
		// chance.
		if _, err := st.s(sDueHello).ExecContext(ctx, h.Node, nanos(at)); err != nil {
			return res, fmt.Errorf("restart quiet time of faults: %w", err)
		}
	}
	for k, v := range h.Labels {
		if _, err := st.s(sLabelInsert).ExecContext(ctx, h.Node, k, v); err != nil {
			return res, fmt.Errorf("insert label %q: %w", k, err)
		}
	}
	if _, err := st.s(sStreamEnsure).ExecContext(ctx, h.Node, h.StreamID); err != nil {
		return res, fmt.Errorf("record stream %q: %w", h.StreamID, err)
	}
	var acked int64
	if err := st.s(sStreamGet).QueryRowContext(ctx, h.Node, h.StreamID).Scan(&acked); err != nil {
		return res, fmt.Errorf("read stream %q: %w", h.StreamID, err)
	}
	res.AckedSeq = uint64(acked)

	var types []hwhealv1.EventType
	switch {
	case isNew:
		types = append(types, hwhealv1.EventType_EVENT_TYPE_NODE_REGISTERED)
	case oldBoot != "" && h.BootID != "" && h.BootID != oldBoot:
		types = append(types, hwhealv1.EventType_EVENT_TYPE_NODE_REBOOTED)
	}
	types = append(types, hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED)
	for _, typ := range types {
		ev := &hwhealv1.Event{Type: typ, Node: h.Node}
		if err := insertEvent(ctx, st, ev, at); err != nil {
			return res, err
		}
		res.Events = append(res.Events, ev)
	}
	return res, nil
}

// Disconnected marks a node's agent as gone. An unknown node is
// store.ErrNotFound.
func (s *Store) Disconnected(ctx context.Context, node string, at time.Time) (*hwhealv1.Event, error) {
	at = s.orNow(at)
	ev := &hwhealv1.Event{Type: hwhealv1.EventType_EVENT_TYPE_NODE_DISCONNECTED, Node: node}
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		res, err := st.s(sNodeDisc).ExecContext(ctx, node, nanos(at))
		if err != nil {
			return fmt.Errorf("update node: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update node: %w", err)
		} else if n == 0 {
			return store.ErrNotFound
		}
		if _, err := st.s(sDueClear).ExecContext(ctx, node); err != nil {
			return fmt.Errorf("stop quiet time of faults: %w", err)
		}
		return insertEvent(ctx, st, ev, at)
	})
	if err != nil {
		return nil, fmt.Errorf("disconnect node %q: %w", node, err)
	}
	return ev, nil
}

// ResetConnections marks every node recorded as connected disconnected,
// with a NODE_DISCONNECTED event each. See store.Store.
func (s *Store) ResetConnections(ctx context.Context, at time.Time) ([]*hwhealv1.Event, error) {
	at = s.orNow(at)
	var evs []*hwhealv1.Event
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		evs = nil
		rows, err := st.s(sNodesConn).QueryContext(ctx)
		if err != nil {
			return fmt.Errorf("list connected nodes: %w", err)
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return fmt.Errorf("list connected nodes: %w", err)
			}
			names = append(names, n)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("list connected nodes: %w", err)
		}
		if _, err := st.s(sNodesDiscAll).ExecContext(ctx); err != nil {
			return fmt.Errorf("disconnect nodes: %w", err)
		}
		if _, err := st.s(sDueClearAll).ExecContext(ctx); err != nil {
			return fmt.Errorf("stop quiet time of faults: %w", err)
		}
		for _, n := range names {
			ev := &hwhealv1.Event{Type: hwhealv1.EventType_EVENT_TYPE_NODE_DISCONNECTED, Node: n}
			if err := insertEvent(ctx, st, ev, at); err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reset connections: %w", err)
	}
	return evs, nil
}

// insertEvent stores ev and sets its id and time.
func insertEvent(ctx context.Context, st *txStmts, ev *hwhealv1.Event, at time.Time) error {
	ev.Id, ev.Time = 0, nil // stored in columns, not in the blob
	data, err := marshal(ev)
	if err != nil {
		return fmt.Errorf("encode %v event: %w", ev.Type, err)
	}
	var faultID sql.NullInt64
	if ev.Fault != nil {
		faultID = sql.NullInt64{Int64: int64(ev.Fault.Id), Valid: true}
	}
	res, err := st.s(sEventInsert).ExecContext(ctx, nanos(at), int64(ev.Type), ev.Node, faultID, data)
	if err != nil {
		return fmt.Errorf("insert %v event: %w", ev.Type, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("insert %v event: %w", ev.Type, err)
	}
	ev.Id = uint64(id)
	ev.Time = timestamppb.New(at)
	return nil
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
