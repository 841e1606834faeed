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
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Apply stores batches in one transaction. A batch for a node that never
// said hello fails the whole call with store.ErrNotFound (the ingest layer
// records the hello first, so this is a bug, not a case to skip), and
// nothing of the call is stored.
//
// Besides reports at or below the stream's acknowledged sequence, Apply
// drops as duplicates the fault reports of a kernel log record the newest
// fault of the same key has counted already: same evidence.kernel_log boot
// id, sequence at or below the highest merged into the fault (see
// pendingFault.seen). Without an open fault of the key, the mark is carried
// from its newest resolved row, so that a record re-read after its fault
// resolved (an agent reinstalled, re-reading its ring) neither reopens that
// fault nor opens a new one.
func (s *Store) Apply(ctx context.Context, batches []store.Batch) ([]store.BatchResult, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	results := make([]store.BatchResult, len(batches))
	err := s.write(ctx, func(qctx context.Context, st *txStmts) error {
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

// maxClearAfter bounds a fault's clear time: eight times it, added to any
// storable time, must stay within int64 nanoseconds. A longer clear time
// (a rule that means "never") is stored as this.
const maxClearAfter = 5 * 365 * 24 * time.Hour

// maxReopenShift is how many times a fault's clear time doubles at most:
// to 8 times the rule's.
const maxReopenShift = 3

// clearAfterOf returns a fault's clear time, bounded to 0..maxClearAfter.
func clearAfterOf(f *hwhealv1.Fault) time.Duration {
	d := f.GetClearAfter()
	if d == nil || d.CheckValid() != nil {
		return 0
	}
	return min(max(d.AsDuration(), 0), maxClearAfter)
}

// effClear is the clear time in force of a fault of clear time base that
// reopened reopened times: doubled per reopen, at most 8 times base.
func effClear(base time.Duration, reopened uint32) time.Duration {
	return base << min(reopened, maxReopenShift)
}

// clearAfterPB is FaultRecord.clear_after: the clear time in force, unset
// when the fault never resolves by itself.
func clearAfterPB(base time.Duration, reopened uint32) *durationpb.Duration {
	if base <= 0 {
		return nil
	}
	return durationpb.New(effClear(base, reopened))
}

// addSat is a + d, saturating at the largest int64.
func addSat(a int64, d time.Duration) int64 {
	if int64(d) > 0 && a > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return a + int64(d)
}

// nodeConn is what a fault's due time needs of its node.
type nodeConn struct {
	connected   bool
	connectedAt int64 // nanoseconds
}

// dueAt is the due_at of an open fault whose latest report the collector
// received at received (see migrations 0003 and 0004): NULL when it cannot
// resolve by itself now.
func (c nodeConn) dueAt(received int64, base time.Duration, reopened uint32) sql.NullInt64 {
	if base <= 0 || !c.connected {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: addSat(max(received, c.connectedAt), effClear(base, reopened)), Valid: true}
}

type faultKey struct{ class, part string }

// pendingFault is a fault as the batch leaves it: reports of the same key
// merge here and are written once per batch.
type pendingFault struct {
	key         faultKey
	rec         *hwhealv1.FaultRecord
	first, last time.Time // the agent's clock
	// received is when the collector received the latest report merged
	// (nanoseconds, its own clock): quiet time counts from it. opened is
	// when it received the report that opened the fault or last reopened
	// it (see migration 0006).
	received, opened int64
	// source is the observation source of the latest derived report
	// merged, kept across agent reports and reopens ("" if none): see
	// store.DerivedFault.
	source string
	// isNew: no row is open for the key and none was reopened (yet): the
	// fault is inserted. reopen: the newest resolved row is reopened.
	isNew, reopen bool
	// merged says a report of this batch was merged: a fault that only
	// duplicates reached is neither written nor announced.
	merged bool
	// The newest kernel log record merged into the fault (or into the
	// newest resolved row of its key): its boot id ("" for none) and
	// sequence number.
	kmsgBoot string
	kmsgSeq  uint64
	// clearAfter is the clear time of the latest report (rec.ClearAfter
	// is the one in force).
	clearAfter time.Duration
	// prev is the newest resolved row of the key when none is open.
	prev *resolvedFault
}

// resolvedFault is the newest resolved row of a key, which the first report
// of the key may reopen.
type resolvedFault struct {
	rec          *hwhealv1.FaultRecord
	first, last  time.Time
	received     int64
	source       string
	resolved     time.Time
	selfResolved bool
	clearAfter   time.Duration // in force when it resolved
}

// reopenedBy reports whether a report the collector received at received
// reopens rf: it resolved by itself, not by an operator, and received is at
// most its clear time after it resolved. Both times are the collector's:
// the report's own time is the agent's clock, which would make a report
// of a skewed agent reopen (and double the clear time of) every later
// fault, or never reopen a flapping one.
func (rf *resolvedFault) reopenedBy(received int64) bool {
	return rf != nil && rf.selfResolved && rf.clearAfter > 0 &&
		received <= addSat(nanos(rf.resolved), rf.clearAfter)
}

type obsKey struct{ source, part string }

func (s *Store) applyBatch(ctx context.Context, st *txStmts, b *store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	received := s.orNow(b.Received)
	// A batch of derived faults only speaks for the collector, not for
	// the node or any of its streams.
	fromNode := b.StreamID != ""
	if !fromNode && len(b.Reports) > 0 {
		return res, errors.New("agent reports without a stream id")
	}

	var (
		oldHealth int64
		stored    sql.NullInt64
		conn      nodeConn
	)
	if err := st.s(sNodeHealthGet).QueryRowContext(ctx, b.Node, b.StreamID).Scan(&oldHealth, &stored, &conn.connected, &conn.connectedAt); errors.Is(err, sql.ErrNoRows) {
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
		updates   []*hwhealv1.ActionUpdate
	)
	// take merges one fault report, derived from readings of source when
	// that is not empty; dup says it was a kernel record counted already.
	take := func(f *hwhealv1.Fault, source string) (dup bool, err error) {
		key := faultKey{class: f.GetFaultClass(), part: partKey(f.GetPart())}
		pf := faults[key]
		if pf == nil {
			if pf, err = loadFault(ctx, st, b.Node, key); err != nil {
				return false, err
			}
			if faults == nil {
				faults = make(map[faultKey]*pendingFault)
			}
			faults[key] = pf
		}
		if pf.seen(f) {
			return true, nil
		}
		if !pf.merged {
			faultList = append(faultList, pf)
		}
		pf.merge(f, tsTime(f.GetTime(), received), nanos(received), source)
		return false, nil
	}
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
			// A kernel record counted already, delivered again under
			// another stream sequence number: dropped, but acknowledged
			// (acked has moved past it) so the agent does not resend it.
			dup, err := take(r.GetFault(), "")
			if err != nil {
				return res, err
			}
			if dup {
				res.Duplicates++
			}
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
		case r.GetActionUpdate() != nil:
			// Applied in sequence order after the faults: each moves its
			// action by itself, with its own records.
			updates = append(updates, r.GetActionUpdate())
		}
	}
	for _, d := range b.Derived {
		f := d.Fault
		if f == nil {
			continue
		}
		dup, err := take(f, d.Source)
		if err != nil {
			return res, err
		}
		if dup {
			res.Duplicates++
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
		if _, err := st.s(sObsUpsert).ExecContext(ctx, b.Node, key.source, key.part, nanos(t), data); err != nil {
			return res, fmt.Errorf("store observation of %s %s: %w", key.source, key.part, err)
		}
	}

	for _, pf := range faultList {
		if err := pf.store(ctx, st, b.Node, conn); err != nil {
			return res, err
		}
		typ := hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED
		switch {
		case pf.isNew:
			typ = hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED
		case pf.reopen:
			typ = hwhealv1.EventType_EVENT_TYPE_FAULT_REOPENED
		}
		ev := &hwhealv1.Event{Type: typ, Node: b.Node, Fault: pf.rec}
		if err := insertEvent(ctx, st, ev, received); err != nil {
			return res, err
		}
		res.Events = append(res.Events, ev)
	}

	if len(faultList) > 0 {
		ev, err := setHealth(ctx, st, b.Node, hwhealv1.NodeHealth(oldHealth), received, fromNode)
		if err != nil {
			return res, err
		}
		if ev != nil {
			res.Events = append(res.Events, ev)
		}
	} else if fromNode {
		if _, err := st.s(sNodeSeen).ExecContext(ctx, b.Node, nanos(received)); err != nil {
			return res, fmt.Errorf("update node last seen: %w", err)
		}
	}

	for _, u := range updates {
		evs, err := applyUpdate(ctx, st, b.Node, u, received)
		if err != nil {
			return res, fmt.Errorf("update of action %q: %w", u.GetActionId(), err)
		}
		res.Events = append(res.Events, evs...)
	}

	// The acknowledgement is written in the transaction of what it
	// acknowledges: an update replayed after it is a duplicate by its
	// sequence number, never applied twice.
	if fromNode && (acked > uint64(stored.Int64) || !stored.Valid) {
		if _, err := st.s(sStreamAck).ExecContext(ctx, b.Node, b.StreamID, int64(acked)); err != nil {
			return res, fmt.Errorf("update stream: %w", err)
		}
	}
	res.AckedSeq = acked
	return res, nil
}

// setHealth recomputes node's health and open fault count from its open
// faults, at time at, and records NODE_HEALTH_CHANGED (returned) when the
// health differs from old. fromNode says the change came from the node's
// own reports, which also move its last_seen.
func setHealth(ctx context.Context, st *txStmts, node string, old hwhealv1.NodeHealth, at time.Time, fromNode bool) (*hwhealv1.Event, error) {
	var open, maxSev, enforced int64
	if err := st.s(sOpenFaults).QueryRowContext(ctx, node).Scan(&open, &maxSev, &enforced); err != nil {
		return nil, fmt.Errorf("count open faults of node %q: %w", node, err)
	}
	newHealth := health.Of(hwhealv1.Severity(maxSev), int(enforced))
	seen := int64(0)
	if fromNode {
		seen = 1
	}
	if _, err := st.s(sNodeHealthSet).ExecContext(ctx, node, int64(newHealth), nanos(at), open, seen); err != nil {
		return nil, fmt.Errorf("update health of node %q: %w", node, err)
	}
	if newHealth == old {
		return nil, nil
	}
	ev := &hwhealv1.Event{
		Type:      hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED,
		Node:      node,
		OldHealth: old,
		NewHealth: newHealth,
	}
	if err := insertEvent(ctx, st, ev, at); err != nil {
		return nil, err
	}
	return ev, nil
}

// loadFault returns the open fault of key on node, or a new one to be
// inserted, carrying the newest resolved row of the key (if any): the first
// report may reopen it, and its kernel record mark carries over.
func loadFault(ctx context.Context, st *txStmts, node string, key faultKey) (*pendingFault, error) {
	var (
		id, state, sev, count, first, last, kseq int64
		resolved, clearAfter, reopened           int64
		received, opened                         int64
		rule, summary, kboot, source             string
		self                                     bool
		ack                                      []byte
	)
	err := st.s(sFaultLast).QueryRowContext(ctx, node, key.class, key.part).Scan(&id, &state, &sev, &count, &first, &last, &rule, &summary,
		&kboot, &kseq, &resolved, &self, &clearAfter, &reopened, &ack, &received, &opened, &source)
	if errors.Is(err, sql.ErrNoRows) {
		return newFault(node, key), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read fault %s on %s: %w", key.class, key.part, err)
	}
	rec := &hwhealv1.FaultRecord{
		Id:         uint64(id),
		Node:       node,
		FaultClass: key.class,
		Severity:   hwhealv1.Severity(sev),
		Rule:       rule,
		State:      hwhealv1.FaultState_FAULT_STATE_OPEN,
		Count:      uint64(count),
		Summary:    summary,
		Reopened:   uint32(reopened),
	}
	if rec.Acknowledged, err = decodeNote(ack, "acknowledgement", id); err != nil {
		return nil, err
	}
	if hwhealv1.FaultState(state) == hwhealv1.FaultState_FAULT_STATE_OPEN {
		return &pendingFault{
			key:      key,
			rec:      rec,
			first:    time.Unix(0, first),
			last:     time.Unix(0, last),
			received: received,
			opened:   opened,
			source:   source,
			kmsgBoot: kboot,
			kmsgSeq:  uint64(kseq), // stored as the int64 bit pattern
		}, nil
	}
	pf := newFault(node, key)
	pf.kmsgBoot, pf.kmsgSeq = kboot, uint64(kseq)
	pf.prev = &resolvedFault{
		rec:          rec,
		first:        time.Unix(0, first),
		last:         time.Unix(0, last),
		received:     received,
		source:       source,
		resolved:     time.Unix(0, resolved),
		selfResolved: self,
		clearAfter:   effClear(time.Duration(clearAfter), uint32(reopened)),
	}
	return pf, nil
}

// newFault is a fault of key on node to be inserted.
func newFault(node string, key faultKey) *pendingFault {
	return &pendingFault{
		key:   key,
		isNew: true,
		rec: &hwhealv1.FaultRecord{
			Node:       node,
			FaultClass: key.class,
			State:      hwhealv1.FaultState_FAULT_STATE_OPEN,
		},
	}
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

// merge counts one report of the fault, timed t by the agent and received
// by the collector at received, derived from readings of source (or an
// agent report, source ""): the severity only rises, the seen-times widen,
// and what the report says about the part, rule, summary and evidence
// replaces what an older report said (an empty field says nothing new).
// The mode and clear time are the latest report's, always: the collector
// sets them from its rules.
//
// The first report merged into a fault with no open row decides whether it
// reopens the newest resolved row of its key or opens a new one; either
// way the fault opened when the collector received it.
func (pf *pendingFault) merge(f *hwhealv1.Fault, t time.Time, received int64, source string) {
	if !pf.merged && pf.isNew {
		if pf.prev.reopenedBy(received) {
			p := pf.prev
			pf.isNew, pf.reopen = false, true
			pf.rec, pf.first, pf.last = p.rec, p.first, p.last
			pf.received, pf.source = p.received, p.source
			if pf.rec.Reopened < math.MaxUint32 {
				pf.rec.Reopened++
			}
		} else {
			pf.first, pf.last = t, t
		}
		pf.opened = received
	}
	r := pf.rec
	pf.merged = true
	pf.received = max(pf.received, received)
	if source != "" {
		pf.source = source
	}
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
	r.Mode = f.GetMode()
	pf.clearAfter = clearAfterOf(f)
}

func (pf *pendingFault) store(ctx context.Context, st *txStmts, node string, conn nodeConn) error {
	r := pf.rec
	r.FirstSeen, r.LastSeen = timestamppb.New(pf.first), timestamppb.New(pf.last)
	r.Received, r.Opened = tsFromNanos(pf.received), tsFromNanos(pf.opened)
	r.ClearAfter = clearAfterPB(pf.clearAfter, r.Reopened)
	due := conn.dueAt(pf.received, pf.clearAfter, r.Reopened)
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
		res, err := st.s(sFaultInsert).ExecContext(ctx, node, pf.key.class, pf.key.part, nullBytes(part), int64(r.Severity), r.Rule,
			int64(r.Count), nanos(pf.first), nanos(pf.last), r.Summary, nullBytes(ev), pf.kmsgBoot, int64(pf.kmsgSeq),
			int64(r.Mode), int64(pf.clearAfter), due, pf.received, pf.source, pf.opened)
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
	upd := sFaultUpdate
	if pf.reopen {
		upd = sFaultReopen
	}
	if _, err := st.s(upd).ExecContext(ctx, int64(r.Id), nullBytes(part), int64(r.Severity), r.Rule,
		int64(r.Count), nanos(pf.first), nanos(pf.last), r.Summary, nullBytes(ev), pf.kmsgBoot, int64(pf.kmsgSeq),
		int64(r.Mode), int64(pf.clearAfter), int64(r.Reopened), due, pf.received, pf.source, pf.opened); err != nil {
		return fmt.Errorf("update fault %d: %w", r.Id, err)
	}
	if r.Part != nil && r.Evidence != nil {
		return nil
	}
	// No report of the batch carried them: the record (and its event)
	// shows the stored ones.
	var storedPart, storedEv []byte
	if err := st.s(sFaultBlobs).QueryRowContext(ctx, int64(r.Id)).Scan(&storedPart, &storedEv); err != nil {
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

// decodeNote decodes a stored FaultNote (nil stays nil).
func decodeNote(b []byte, what string, id int64) (*hwhealv1.FaultNote, error) {
	if b == nil {
		return nil, nil
	}
	n := &hwhealv1.FaultNote{}
	if err := unmarshalInto(b, n, fmt.Sprintf("%s of fault %d", what, id)); err != nil {
		return nil, err
	}
	return n, nil
}
