package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// quietChunk is how many faults one transaction of ResolveQuiet resolves.
// The writer is shared with every agent's batches, so a backlog (a
// collector that was down for a day) is worked off in short transactions
// rather than one that holds the agents back.
const quietChunk = 500

// ResolveQuiet resolves the open faults whose clear time has run out (see
// store.Store). It reads one range of the faults_due index: due_at is kept
// on every write to be the time a fault resolves, or NULL when it cannot
// (no clear time, or its node disconnected), so the cost is that of the
// faults due, not of the fault table. Faults are resolved in transactions
// of up to quietChunk; on an error, the events of those already committed
// are returned with it.
func (s *Store) ResolveQuiet(ctx context.Context, now time.Time) ([]*hwhealv1.Event, error) {
	now = s.orNow(now)
	var all []*hwhealv1.Event
	for {
		if err := ctx.Err(); err != nil {
			return all, fmt.Errorf("resolve quiet faults: %w", err)
		}
		var (
			evs []*hwhealv1.Event
			n   int
		)
		err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
			var err error
			evs, n, err = resolveDue(ctx, st, now)
			return err
		})
		if err != nil {
			return all, fmt.Errorf("resolve quiet faults: %w", err)
		}
		all = append(all, evs...)
		if n < quietChunk {
			return all, nil
		}
	}
}

// resolveDue resolves up to quietChunk faults due at now and returns their
// events and how many it resolved.
func resolveDue(ctx context.Context, st *txStmts, now time.Time) ([]*hwhealv1.Event, int, error) {
	rows, err := st.s(sFaultsDue).QueryContext(ctx, nanos(now), quietChunk)
	if err != nil {
		return nil, 0, fmt.Errorf("find faults due: %w", err)
	}
	var (
		nodes  []string
		byNode = map[string][]int64{}
		n      int
	)
	for rows.Next() {
		var (
			id   int64
			node string
		)
		if err := rows.Scan(&id, &node); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("find faults due: %w", err)
		}
		if _, ok := byNode[node]; !ok {
			nodes = append(nodes, node)
		}
		byNode[node] = append(byNode[node], id)
		n++
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, 0, fmt.Errorf("find faults due: %w", err)
	}

	var evs []*hwhealv1.Event
	for _, node := range nodes {
		old, err := nodeHealth(ctx, st, node)
		if err != nil {
			return nil, 0, err
		}
		for _, id := range byNode[node] {
			rec, err := resolveRow(ctx, st, id, now, nil)
			if err != nil {
				return nil, 0, err
			}
			ev := &hwhealv1.Event{
				Type:   hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED,
				Node:   node,
				Fault:  rec,
				Reason: "no evidence for " + rec.GetClearAfter().AsDuration().String(),
			}
			if err := insertEvent(ctx, st, ev, now); err != nil {
				return nil, 0, err
			}
			evs = append(evs, ev)
		}
		ev, err := setHealth(ctx, st, node, old, now, false)
		if err != nil {
			return nil, 0, err
		}
		if ev != nil {
			evs = append(evs, ev)
		}
	}
	return evs, n, nil
}

// nodeHealth reads a node's stored health (store.ErrNotFound).
func nodeHealth(ctx context.Context, st *txStmts, node string) (hwhealv1.NodeHealth, error) {
	var (
		h, connectedAt int64
		acked          sql.NullInt64
		connected      bool
	)
	err := st.s(sNodeHealthGet).QueryRowContext(ctx, node, "").Scan(&h, &acked, &connected, &connectedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("node %q: %w", node, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read node %q: %w", node, err)
	}
	return hwhealv1.NodeHealth(h), nil
}

// resolveRow resolves open fault id at at, by an operator when note is set,
// and returns the resolved record: store.ErrNotOpen for a fault that is not
// open, store.ErrNotFound for none.
func resolveRow(ctx context.Context, st *txStmts, id int64, at time.Time, note *hwhealv1.FaultNote) (*hwhealv1.FaultRecord, error) {
	var nb []byte
	if note != nil {
		var err error
		if nb, err = marshal(note); err != nil {
			return nil, fmt.Errorf("encode note on fault %d: %w", id, err)
		}
	}
	rec, err := scanFault(st.s(sFaultResolve).QueryRowContext(ctx, id, nanos(at), nullBytes(nb)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, whyNotOpen(ctx, st, id)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve fault %d: %w", id, err)
	}
	return rec, nil
}

// whyNotOpen is the error for an operator's change that found no open fault
// id: store.ErrNotFound or store.ErrNotOpen.
func whyNotOpen(ctx context.Context, st *txStmts, id int64) error {
	var state int64 // only whether a row exists matters
	err := st.s(sFaultState).QueryRowContext(ctx, id).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return fmt.Errorf("read fault %d: %w", id, err)
	}
	return store.ErrNotOpen
}

// faultID converts a fault id of the API to the row id; ok is false for
// one no row can have.
func faultID(id uint64) (int64, bool) {
	return int64(id), id > 0 && id <= math.MaxInt64
}

// GetFault returns one fault by id.
func (s *Store) GetFault(ctx context.Context, id uint64) (*hwhealv1.FaultRecord, error) {
	rid, ok := faultID(id)
	if !ok {
		return nil, fmt.Errorf("get fault %d: %w", id, store.ErrNotFound)
	}
	rec, err := scanFault(s.r.QueryRowContext(ctx, `SELECT `+faultCols+` FROM faults WHERE id = ?`, rid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get fault %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get fault %d: %w", id, err)
	}
	return rec, nil
}

// noteOf checks an operator's note and returns it as stored, with its time
// (the store's clock when the note has none).
func (s *Store) noteOf(n store.Note) (*hwhealv1.FaultNote, time.Time, error) {
	if n.Actor == "" || n.Reason == "" {
		return nil, time.Time{}, errors.New("an operator's note needs an actor and a reason")
	}
	at := s.orNow(n.Time)
	return &hwhealv1.FaultNote{Actor: n.Actor, Time: timestamppb.New(at), Reason: n.Reason}, at, nil
}

// AcknowledgeFault records an operator's acknowledgement of an open fault.
// It changes neither the fault's lifecycle nor the node's health: the fault
// still resolves when its evidence is gone, and an acknowledgement stays on
// it when it reopens (the same fault, flapping).
func (s *Store) AcknowledgeFault(ctx context.Context, id uint64, n store.Note) (*hwhealv1.Event, error) {
	note, at, err := s.noteOf(n)
	if err != nil {
		return nil, fmt.Errorf("acknowledge fault %d: %w", id, err)
	}
	rid, ok := faultID(id)
	if !ok {
		return nil, fmt.Errorf("acknowledge fault %d: %w", id, store.ErrNotFound)
	}
	nb, err := marshal(note)
	if err != nil {
		return nil, fmt.Errorf("acknowledge fault %d: encode note: %w", id, err)
	}
	var ev *hwhealv1.Event
	err = s.write(ctx, func(ctx context.Context, st *txStmts) error {
		rec, err := scanFault(st.s(sFaultAck).QueryRowContext(ctx, rid, nb))
		if errors.Is(err, sql.ErrNoRows) {
			return whyNotOpen(ctx, st, rid)
		}
		if err != nil {
			return fmt.Errorf("update fault: %w", err)
		}
		ev = &hwhealv1.Event{
			Type:   hwhealv1.EventType_EVENT_TYPE_FAULT_ACKNOWLEDGED,
			Node:   rec.GetNode(),
			Fault:  rec,
			Actor:  n.Actor,
			Reason: n.Reason,
		}
		return insertEvent(ctx, st, ev, at)
	})
	if err != nil {
		return nil, fmt.Errorf("acknowledge fault %d: %w", id, err)
	}
	return ev, nil
}

// ResolveFault resolves an open fault by hand and recomputes its node's
// health.
func (s *Store) ResolveFault(ctx context.Context, id uint64, n store.Note) ([]*hwhealv1.Event, error) {
	note, at, err := s.noteOf(n)
	if err != nil {
		return nil, fmt.Errorf("resolve fault %d: %w", id, err)
	}
	rid, ok := faultID(id)
	if !ok {
		return nil, fmt.Errorf("resolve fault %d: %w", id, store.ErrNotFound)
	}
	var evs []*hwhealv1.Event
	err = s.write(ctx, func(ctx context.Context, st *txStmts) error {
		evs = nil
		rec, err := resolveRow(ctx, st, rid, at, note)
		if err != nil {
			return err
		}
		old, err := nodeHealth(ctx, st, rec.GetNode())
		if err != nil {
			return err
		}
		ev := &hwhealv1.Event{
			Type:   hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED,
			Node:   rec.GetNode(),
			Fault:  rec,
			Actor:  n.Actor,
			Reason: n.Reason,
		}
		if err := insertEvent(ctx, st, ev, at); err != nil {
			return err
		}
		evs = append(evs, ev)
		hc, err := setHealth(ctx, st, rec.GetNode(), old, at, false)
		if err != nil {
			return err
		}
		if hc != nil {
			evs = append(evs, hc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve fault %d: %w", id, err)
	}
	return evs, nil
}

// Cursor returns the event id stored under name.
func (s *Store) Cursor(ctx context.Context, name string) (uint64, bool, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT event_id FROM cursors WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read cursor %q: %w", name, err)
	}
	return uint64(id), true, nil
}

// SetCursor stores id under name. A cursor may move back (an operator
// replaying events to a target).
func (s *Store) SetCursor(ctx context.Context, name string, id uint64) error {
	if name == "" {
		return errors.New("set cursor: empty name")
	}
	if id > math.MaxInt64 {
		return fmt.Errorf("set cursor %q: event id %d out of range", name, id)
	}
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		_, err := st.s(sCursorSet).ExecContext(ctx, name, int64(id), nanos(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("set cursor %q: %w", name, err)
	}
	return nil
}
