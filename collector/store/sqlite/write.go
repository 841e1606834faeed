package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hwheal/hwheal/collector/health"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/proto"
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
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, st *writeStmts) error) error {
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
// an empty boot id leaves the stored one), marks it connected and returns
// the acknowledged sequence number of the hello's stream id.
func (s *Store) Hello(ctx context.Context, h store.Hello) (store.HelloResult, error) {
	var res store.HelloResult
	err := s.write(ctx, func(ctx context.Context, st *writeStmts) error {
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
func (s *Store) hello(ctx context.Context, st *writeStmts, h store.Hello) (store.HelloResult, error) {
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
	var oldBoot string
	err = st.nodeBoot.QueryRowContext(ctx, h.Node).Scan(&oldBoot)
	isNew := errors.Is(err, sql.ErrNoRows)
	switch {
	case isNew:
		if _, err := st.nodeInsert.ExecContext(ctx, h.Node, labels, h.AgentVersion, h.BootID, nullBytes(inv),
			int64(hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY), nanos(at)); err != nil {
			return res, fmt.Errorf("insert node: %w", err)
		}
	case err != nil:
		return res, fmt.Errorf("read node: %w", err)
	default:
		if _, err := st.nodeUpdate.ExecContext(ctx, h.Node, labels, h.AgentVersion, h.BootID, nullBytes(inv), nanos(at)); err != nil {
			return res, fmt.Errorf("update node: %w", err)
		}
		if _, err := st.labelsDelete.ExecContext(ctx, h.Node); err != nil {
			return res, fmt.Errorf("delete labels: %w", err)
		}
	}
	for k, v := range h.Labels {
		if _, err := st.labelInsert.ExecContext(ctx, h.Node, k, v); err != nil {
			return res, fmt.Errorf("insert label %q: %w", k, err)
		}
	}
	if _, err := st.streamEnsure.ExecContext(ctx, h.Node, h.StreamID); err != nil {
		return res, fmt.Errorf("record stream %q: %w", h.StreamID, err)
	}
	var acked int64
	if err := st.streamGet.QueryRowContext(ctx, h.Node, h.StreamID).Scan(&acked); err != nil {
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
	err := s.write(ctx, func(ctx context.Context, st *writeStmts) error {
		res, err := st.nodeDisc.ExecContext(ctx, node, nanos(at))
		if err != nil {
			return fmt.Errorf("update node: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update node: %w", err)
		} else if n == 0 {
			return store.ErrNotFound
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
	err := s.write(ctx, func(ctx context.Context, st *writeStmts) error {
		evs = nil
		rows, err := st.nodesConn.QueryContext(ctx)
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
		if _, err := st.nodesDiscAll.ExecContext(ctx); err != nil {
			return fmt.Errorf("disconnect nodes: %w", err)
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
func insertEvent(ctx context.Context, st *writeStmts, ev *hwhealv1.Event, at time.Time) error {
	ev.Id, ev.Time = 0, nil // stored in columns, not in the blob
	data, err := marshal(ev)
	if err != nil {
		return fmt.Errorf("encode %v event: %w", ev.Type, err)
	}
	var faultID sql.NullInt64
	if ev.Fault != nil {
		faultID = sql.NullInt64{Int64: int64(ev.Fault.Id), Valid: true}
	}
	res, err := st.eventInsert.ExecContext(ctx, nanos(at), int64(ev.Type), ev.Node, faultID, data)
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

// Apply stores batches in one transaction. A batch for a node that never
// said hello fails the whole call with store.ErrNotFound (the ingest layer
// records the hello first, so this is a bug, not a case to skip), and
// nothing of the call is stored.
//
// Besides reports at or below the stream's acknowledged sequence, Apply
// drops as duplicates the fault reports of a kernel log record the open
// fault has counted already: same evidence.kernel_log boot id, sequence at
// or below the highest merged into the fault (see pendingFault.seen). Only
// the open fault is consulted, so a report that opens a fault always
// counts. Faults do not resolve yet; when they do, a record re-read after
// its fault resolved would reopen it, and the mark should then be carried
// from the newest resolved row of the same key.
func (s *Store) Apply(ctx context.Context, batches []store.Batch) ([]store.BatchResult, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	results := make([]store.BatchResult, len(batches))
	err := s.write(ctx, func(qctx context.Context, st *writeStmts) error {
		for i := range batches {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := s.applyBatch(qctx, st, &batches[i])
			if err != nil {
				return fmt.Errorf("batch %d of node %q stream %q: %w", i, batches[i].Node, batches[i].StreamID, err)
			}
			results[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply %d batches: %w", len(batches), err)
	}
	return results, nil
}

type faultKey struct{ class, part string }

// pendingFault is an open fault as the batch leaves it: reports of the same
// fault merge here and are written once per batch.
type pendingFault struct {
	key         faultKey
	rec         *hwhealv1.FaultRecord
	first, last time.Time
	isNew       bool
	// merged says a report of this batch was merged: a fault that only
	// duplicates reached is neither written nor announced.
	merged bool
	// The newest kernel log record merged into the fault: its boot id
	// ("" for none) and sequence number.
	kmsgBoot string
	kmsgSeq  uint64
}

type obsKey struct{ source, part string }

func (s *Store) applyBatch(ctx context.Context, st *writeStmts, b *store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	received := s.orNow(b.Received)

	var (
		oldHealth int64
		stored    sql.NullInt64
	)
	if err := st.nodeHealthGet.QueryRowContext(ctx, b.Node, b.StreamID).Scan(&oldHealth, &stored); errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("node %q never said hello: %w", b.Node, store.ErrNotFound)
	} else if err != nil {
		return res, fmt.Errorf("read node and stream: %w", err)
	}
	acked := uint64(stored.Int64)

	var (
		faults    map[faultKey]*pendingFault
		faultList []*pendingFault
		obs       map[obsKey]*hwhealv1.Observation
		obsList   []obsKey
	)
	for _, r := range b.Reports {
		// Reports at or below the acknowledged sequence are stored already
		// (a replay after a reconnect); so is anything out of order.
		if r.GetSeq() <= acked {
			res.Duplicates++
			continue
		}
		if r.GetSeq() > math.MaxInt64 {
			return res, fmt.Errorf("report sequence %d out of range", r.GetSeq())
		}
		acked = r.GetSeq()
		switch {
		case r.GetFault() != nil:
			f := r.GetFault()
			key := faultKey{class: f.GetFaultClass(), part: partKey(f.GetPart())}
			pf := faults[key]
			if pf == nil {
				var err error
				if pf, err = loadOpenFault(ctx, st, b.Node, key); err != nil {
					return res, err
				}
				if faults == nil {
					faults = make(map[faultKey]*pendingFault)
				}
				faults[key] = pf
			}
			// A kernel record counted already, delivered again under
			// another stream sequence number: dropped, but acknowledged
			// (acked has moved past it) so the agent does not resend it.
			if pf.seen(f) {
				res.Duplicates++
				continue
			}
			if !pf.merged {
				faultList = append(faultList, pf)
			}
			pf.merge(f, tsTime(f.GetTime(), received))
		case r.GetObservation() != nil:
			o := r.GetObservation()
			key := obsKey{source: o.GetSource(), part: partKey(o.GetPart())}
			if obs == nil {
				obs = make(map[obsKey]*hwhealv1.Observation)
			}
			if _, seen := obs[key]; !seen {
				obsList = append(obsList, key)
			}
			obs[key] = o // a later sequence number is the newer reading
		}
	}

	for _, key := range obsList {
		o := obs[key]
		t := tsTime(o.GetTime(), received)
		if o.GetTime() == nil || !o.GetTime().AsTime().Equal(t) {
			// The stored reading carries the time it is indexed by.
			o = proto.CloneOf(o)
			o.Time = timestamppb.New(t)
		}
		data, err := marshal(o)
		if err != nil {
			return res, fmt.Errorf("encode observation of %s %s: %w", key.source, key.part, err)
		}
		if _, err := st.obsUpsert.ExecContext(ctx, b.Node, key.source, key.part, nanos(t), data); err != nil {
			return res, fmt.Errorf("store observation of %s %s: %w", key.source, key.part, err)
		}
	}

	for _, pf := range faultList {
		if err := pf.store(ctx, st, b.Node); err != nil {
			return res, err
		}
		typ := hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED
		if pf.isNew {
			typ = hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED
		}
		ev := &hwhealv1.Event{Type: typ, Node: b.Node, Fault: pf.rec}
		if err := insertEvent(ctx, st, ev, received); err != nil {
			return res, err
		}
		res.Events = append(res.Events, ev)
	}

	if len(faultList) > 0 {
		var open, maxSev int64
		if err := st.openFaults.QueryRowContext(ctx, b.Node).Scan(&open, &maxSev); err != nil {
			return res, fmt.Errorf("count open faults: %w", err)
		}
		newHealth := health.Of(hwhealv1.Severity(maxSev), int(open))
		if _, err := st.nodeHealthSet.ExecContext(ctx, b.Node, int64(newHealth), nanos(received), open); err != nil {
			return res, fmt.Errorf("update node health: %w", err)
		}
		if int64(newHealth) != oldHealth {
			ev := &hwhealv1.Event{
				Type:      hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED,
				Node:      b.Node,
				OldHealth: hwhealv1.NodeHealth(oldHealth),
				NewHealth: newHealth,
			}
			if err := insertEvent(ctx, st, ev, received); err != nil {
				return res, err
			}
			res.Events = append(res.Events, ev)
		}
	} else if _, err := st.nodeSeen.ExecContext(ctx, b.Node, nanos(received)); err != nil {
		return res, fmt.Errorf("update node last seen: %w", err)
	}

	if acked > uint64(stored.Int64) || !stored.Valid {
		if _, err := st.streamAck.ExecContext(ctx, b.Node, b.StreamID, int64(acked)); err != nil {
			return res, fmt.Errorf("update stream: %w", err)
		}
	}
	res.AckedSeq = acked
	return res, nil
}

// loadOpenFault returns the open fault of key on node, or a new one to be
// inserted.
func loadOpenFault(ctx context.Context, st *writeStmts, node string, key faultKey) (*pendingFault, error) {
	var (
		id, sev, count, first, last, kseq int64
		rule, summary, kboot              string
	)
	err := st.faultOpen.QueryRowContext(ctx, node, key.class, key.part).Scan(&id, &sev, &count, &first, &last, &rule, &summary, &kboot, &kseq)
	if errors.Is(err, sql.ErrNoRows) {
		return &pendingFault{
			key:   key,
			isNew: true,
			rec: &hwhealv1.FaultRecord{
				Node:       node,
				FaultClass: key.class,
				State:      hwhealv1.FaultState_FAULT_STATE_OPEN,
			},
		}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read open fault %s on %s: %w", key.class, key.part, err)
	}
	return &pendingFault{
		key: key,
		rec: &hwhealv1.FaultRecord{
			Id:         uint64(id),
			Node:       node,
			FaultClass: key.class,
			Severity:   hwhealv1.Severity(sev),
			Rule:       rule,
			State:      hwhealv1.FaultState_FAULT_STATE_OPEN,
			Count:      uint64(count),
			Summary:    summary,
		},
		first:    time.Unix(0, first),
		last:     time.Unix(0, last),
		kmsgBoot: kboot,
		kmsgSeq:  uint64(kseq), // stored as the int64 bit pattern
	}, nil
}

// seen reports whether f is a kernel log record the fault has counted
// already: the same boot as the newest record merged into it, at or below
// its sequence number (kernel sequence numbers only increase within a
// boot). A report without a boot id (a saved log, a fault not from
// /dev/kmsg) names no record and is never seen; neither is a record of
// another boot.
func (pf *pendingFault) seen(f *hwhealv1.Fault) bool {
	kl := f.GetEvidence().GetKernelLog()
	return kl.GetBootId() != "" && kl.GetBootId() == pf.kmsgBoot && kl.GetSequence() <= pf.kmsgSeq
}

// merge counts one report of the fault: the severity only rises, the
// seen-times widen, and what the report says about the part, rule, summary
// and evidence replaces what an older report said (an empty field says
// nothing new).
func (pf *pendingFault) merge(f *hwhealv1.Fault, t time.Time) {
	r := pf.rec
	if r.Count == 0 && pf.isNew {
		pf.first, pf.last = t, t
	}
	pf.merged = true
	r.Count++
	// A record of another boot replaces the mark: the fault keeps one boot,
	// the newest seen, which is the one a re-read ring delivers again.
	if kl := f.GetEvidence().GetKernelLog(); kl.GetBootId() != "" &&
		(kl.GetBootId() != pf.kmsgBoot || kl.GetSequence() > pf.kmsgSeq) {
		pf.kmsgBoot, pf.kmsgSeq = kl.GetBootId(), kl.GetSequence()
	}
	if t.Before(pf.first) {
		pf.first = t
	}
	if t.After(pf.last) {
		pf.last = t
	}
	r.Severity = max(r.Severity, f.GetSeverity())
	if f.GetPart() != nil {
		r.Part = f.GetPart()
	}
	if f.GetRule() != "" {
		r.Rule = f.GetRule()
	}
	if f.GetSummary() != "" {
		r.Summary = f.GetSummary()
	}
	if f.GetEvidence() != nil {
		r.Evidence = f.GetEvidence()
	}
}

func (pf *pendingFault) store(ctx context.Context, st *writeStmts, node string) error {
	r := pf.rec
	r.FirstSeen, r.LastSeen = timestamppb.New(pf.first), timestamppb.New(pf.last)
	part, err := marshal(r.Part)
	if err != nil {
		return fmt.Errorf("encode part of fault %s on %s: %w", pf.key.class, pf.key.part, err)
	}
	ev, err := marshal(r.Evidence)
	if err != nil {
		return fmt.Errorf("encode evidence of fault %s on %s: %w", pf.key.class, pf.key.part, err)
	}
	if r.Part == nil {
		part = nil
	}
	if r.Evidence == nil {
		ev = nil
	}
	if pf.isNew {
		res, err := st.faultInsert.ExecContext(ctx, node, pf.key.class, pf.key.part, nullBytes(part), int64(r.Severity), r.Rule,
			int64(r.Count), nanos(pf.first), nanos(pf.last), r.Summary, nullBytes(ev), pf.kmsgBoot, int64(pf.kmsgSeq))
		if err != nil {
			return fmt.Errorf("insert fault %s on %s: %w", pf.key.class, pf.key.part, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert fault %s on %s: %w", pf.key.class, pf.key.part, err)
		}
		r.Id = uint64(id)
		return nil
	}
	if _, err := st.faultUpdate.ExecContext(ctx, int64(r.Id), nullBytes(part), int64(r.Severity), r.Rule,
		int64(r.Count), nanos(pf.first), nanos(pf.last), r.Summary, nullBytes(ev), pf.kmsgBoot, int64(pf.kmsgSeq)); err != nil {
		return fmt.Errorf("update fault %d: %w", r.Id, err)
	}
	if r.Part != nil && r.Evidence != nil {
		return nil
	}
	// No report of the batch carried them: the record (and its event)
	// shows the stored ones.
	var storedPart, storedEv []byte
	if err := st.faultBlobs.QueryRowContext(ctx, int64(r.Id)).Scan(&storedPart, &storedEv); err != nil {
		return fmt.Errorf("read fault %d: %w", r.Id, err)
	}
	if r.Part == nil && storedPart != nil {
		r.Part = &hwhealv1.Part{}
		if err := unmarshalInto(storedPart, r.Part, fmt.Sprintf("part of fault %d", r.Id)); err != nil {
			return err
		}
	}
	if r.Evidence == nil && storedEv != nil {
		r.Evidence = &hwhealv1.Evidence{}
		if err := unmarshalInto(storedEv, r.Evidence, fmt.Sprintf("evidence of fault %d", r.Id)); err != nil {
			return err
		}
	}
	return nil
}
