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

// ResolveQuiet resolves up to store.QuietChunk open faults whose clear time
// has run out (see store.Store), in one transaction. It reads one range of
// the faults_due index: due_at is kept on every write to be the time a
// fault's quiet time ends, or NULL when it cannot (no clear time, or its
// node disconnected), so the cost is that of the faults due, not of the
// fault table. A fault derived from readings adds one lookup of the newest
// reading of its source and part by the key of observations_latest. Such a
// fault that is due but has no reading clearing it stays in the range and
// is looked at again on every pass until a reading comes (or a report
// moves its due_at): a pass costs those held faults too, under a
// microsecond each (BenchmarkResolveQuiet/1000_held).
func (s *Store) ResolveQuiet(ctx context.Context, now time.Time) ([]*hwhealv1.Event, error) {
	now = s.orNow(now)
	var evs []*hwhealv1.Event
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		var err error
		evs, err = resolveDue(ctx, st, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("resolve quiet faults: %w", err)
	}
	return evs, nil
}

// resolveDue resolves up to store.QuietChunk faults due at now and returns
// their events.
func resolveDue(ctx context.Context, st *txStmts, now time.Time) ([]*hwhealv1.Event, error) {
	rows, err := st.s(sFaultsDue).QueryContext(ctx, nanos(now), store.QuietChunk)
	if err != nil {
		return nil, fmt.Errorf("find faults due: %w", err)
	}
	type due struct {
		id     int64
		source string
	}
	var (
		nodes  []string
		byNode = map[string][]due{}
	)
	for rows.Next() {
		var (
			d    due
			node string
		)
		if err := rows.Scan(&d.id, &node, &d.source); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find faults due: %w", err)
		}
		if _, ok := byNode[node]; !ok {
			nodes = append(nodes, node)
		}
		byNode[node] = append(byNode[node], d)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("find faults due: %w", err)
	}

	var evs []*hwhealv1.Event
	for _, node := range nodes {
		old, err := nodeHealth(ctx, st, node)
		if err != nil {
			return nil, err
		}
		for _, d := range byNode[node] {
			rec, err := resolveRow(ctx, st, d.id, now, nil)
			if err != nil {
				return nil, err
			}
			reason := "no evidence for " + rec.GetClearAfter().AsDuration().String()
			if d.source != "" {
				reason += ": a newer " + d.source + " reading does not show it"
			}
			ev := &hwhealv1.Event{
				Type:   hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED,
				Node:   node,
				Fault:  rec,
				Reason: reason,
			}
			if err := insertEvent(ctx, st, ev, now); err != nil {
				return nil, err
			}
			evs = append(evs, ev)
		}
		ev, err := setHealth(ctx, st, node, old, now, false)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			evs = append(evs, ev)
		}
	}
	return evs, nil
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
