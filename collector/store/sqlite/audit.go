package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/pkg/auditchain"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// auditHead is the last record of the audit log as a transaction sees it.
type auditHead struct {
	loaded bool
	id     uint64
	hash   []byte
}

// auditRec is an audit record before the store numbers and hashes it.
type auditRec struct {
	actor, kind, node, actionID string
	detail                      string
}

// appendAudit appends r at time at, as the next record of the log: its id
// is the head's plus one and its prev_hash the head's hash, both read from
// the table in this transaction.
func appendAudit(ctx context.Context, st *txStmts, r auditRec, at time.Time) (*hwhealv1.AuditRecord, error) {
	h := &st.audit
	if !h.loaded {
		var id int64
		err := st.s(sAuditHead).QueryRowContext(ctx).Scan(&id, &h.hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			h.id, h.hash = 0, auditchain.Genesis
		case err != nil:
			return nil, fmt.Errorf("read head of audit log: %w", err)
		default:
			h.id = uint64(id)
		}
		h.loaded = true
	}
	if r.detail == "" {
		r.detail = "{}"
	}
	rec := &hwhealv1.AuditRecord{
		Id:       h.id + 1,
		Time:     timestamppb.New(at),
		Actor:    r.actor,
		Kind:     r.kind,
		Node:     r.node,
		ActionId: r.actionID,
		Detail:   r.detail,
		PrevHash: h.hash,
	}
	rec.Hash = auditchain.Hash(rec.PrevHash, rec.Id, at, rec.Actor, rec.Kind, rec.Node, rec.ActionId, rec.Detail)
	if _, err := st.s(sAuditInsert).ExecContext(ctx, int64(rec.Id), nanos(at), rec.Actor, rec.Kind, rec.Node, rec.ActionId,
		rec.Detail, rec.PrevHash, rec.Hash); err != nil {
		return nil, fmt.Errorf("append audit record %s: %w", rec.Kind, err)
	}
	h.id, h.hash = rec.Id, rec.Hash
	return rec, nil
}

// AppendAudit adds one record to the audit log.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (*hwhealv1.AuditRecord, error) {
	if e.Actor == "" || e.Kind == "" {
		return nil, errors.New("append audit record: actor and kind are required")
	}
	d := strings.TrimSpace(e.Detail)
	if d == "" {
		d = "{}"
	}
	var buf bytes.Buffer
	if !strings.HasPrefix(d, "{") || json.Compact(&buf, []byte(d)) != nil {
		return nil, fmt.Errorf("append audit record %s: detail is not a JSON object", e.Kind)
	}
	at := s.orNow(e.Time)
	var rec *hwhealv1.AuditRecord
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		var err error
		rec, err = appendAudit(ctx, st, auditRec{actor: e.Actor, kind: e.Kind, node: e.Node, actionID: e.ActionID, detail: buf.String()}, at)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append audit record %s: %w", e.Kind, err)
	}
	return rec, nil
}

// auditCols are the columns scanAudit reads, in its order.
const auditCols = `id, time, actor, kind, node, action_id, detail, prev_hash, hash`

func scanAudit(sc scanner) (*hwhealv1.AuditRecord, error) {
	var (
		r     hwhealv1.AuditRecord
		id, t int64
	)
	if err := sc.Scan(&id, &t, &r.Actor, &r.Kind, &r.Node, &r.ActionId, &r.Detail, &r.PrevHash, &r.Hash); err != nil {
		return nil, err
	}
	r.Id, r.Time = uint64(id), tsFromNanos(t)
	return &r, nil
}

// ListAudit pages through audit records in id order. A filter walks
// audit_node or audit_action, which are in id order within a node or an
// action.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter, p store.Page) ([]*hwhealv1.AuditRecord, string, error) {
	size := pageSize(p.Size)
	var after int64
	if p.Token != "" {
		var err error
		if after, err = parseIDToken(p.Token, tokenKindAudit); err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
	}
	q, args := auditQuery(f, after, size+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []*hwhealv1.AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	var next string
	if len(out) > size {
		out = out[:size]
		next = idToken(tokenKindAudit, int64(out[size-1].Id))
	}
	return out, next, nil
}

// auditQuery is one page of audit records with id > after.
func auditQuery(f store.AuditFilter, after int64, limit int) (string, []any) {
	where := []string{`id > ?`}
	args := []any{after}
	if f.Node != "" {
		where = append(where, `node = ?`)
		args = append(args, f.Node)
	}
	if f.ActionID != "" {
		where = append(where, `action_id = ?`)
		args = append(args, f.ActionID)
	}
	from := `audit`
	switch {
	case f.ActionID != "":
		from = `audit INDEXED BY audit_action`
	case f.Node != "":
		from = `audit INDEXED BY audit_node`
	}
	return `SELECT ` + auditCols + ` FROM ` + from + ` WHERE ` + strings.Join(where, ` AND `) + ` ORDER BY id LIMIT ?`, append(args, limit)
}

// RemediationState returns the remediation switch.
func (s *Store) RemediationState(ctx context.Context) (store.RemediationState, error) {
	var (
		rs          store.RemediationState
		paused      bool
		by, resumed []byte
	)
	if err := s.r.QueryRowContext(ctx, `SELECT paused, paused_by, resumed_by FROM remediation_state WHERE id = 1`).Scan(&paused, &by, &resumed); err != nil {
		return rs, fmt.Errorf("read remediation state: %w", err)
	}
	return remState(paused, by, resumed)
}

func remState(paused bool, by, resumed []byte) (store.RemediationState, error) {
	rs := store.RemediationState{Paused: paused}
	var err error
	if rs.PausedBy, err = decodeActionNote(by, "pause"); err != nil {
		return rs, err
	}
	if rs.ResumedBy, err = decodeActionNote(resumed, "resume"); err != nil {
		return rs, err
	}
	return rs, nil
}

func decodeActionNote(b []byte, what string) (*hwhealv1.ActionNote, error) {
	if b == nil {
		return nil, nil
	}
	n := &hwhealv1.ActionNote{}
	if err := unmarshalInto(b, n, what); err != nil {
		return nil, err
	}
	return n, nil
}

// SetPaused pauses or resumes automatic remediation. See store.Remediation.
func (s *Store) SetPaused(ctx context.Context, paused bool, n store.Note) ([]*hwhealv1.Event, bool, error) {
	verb := "resume"
	if paused {
		verb = "pause"
	}
	if n.Actor == "" {
		return nil, false, fmt.Errorf("%s remediation: the note needs an actor", verb)
	}
	at := s.orNow(n.Time)
	note := &hwhealv1.ActionNote{Actor: n.Actor, Time: timestamppb.New(at), Reason: n.Reason}
	var evs []*hwhealv1.Event
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		evs = nil
		var (
			was         bool
			by, resumed []byte
		)
		if err := st.s(sRemGet).QueryRowContext(ctx).Scan(&was, &by, &resumed); err != nil {
			return fmt.Errorf("read remediation state: %w", err)
		}
		if was == paused {
			return nil
		}
		nb, err := marshal(note)
		if err != nil {
			return fmt.Errorf("encode note: %w", err)
		}
		typ, kind := hwhealv1.EventType_EVENT_TYPE_REMEDIATION_RESUMED, "remediation.resumed"
		if paused {
			typ, kind = hwhealv1.EventType_EVENT_TYPE_REMEDIATION_PAUSED, "remediation.paused"
			by = nb
		} else {
			by, resumed = nil, nb
		}
		if _, err := st.s(sRemSet).ExecContext(ctx, paused, nullBytes(by), nullBytes(resumed)); err != nil {
			return fmt.Errorf("write remediation state: %w", err)
		}
		if _, err := appendAudit(ctx, st, auditRec{actor: n.Actor, kind: kind, detail: newDetail().str("reason", n.Reason).String()}, at); err != nil {
			return err
		}
		ev := &hwhealv1.Event{Type: typ, Actor: n.Actor, Reason: n.Reason}
		if err := insertEvent(ctx, st, ev, at); err != nil {
			return err
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("%s remediation: %w", verb, err)
	}
	return evs, len(evs) > 0, nil
}

// Escalate records once per fault that remediation gave it up to people.
func (s *Store) Escalate(ctx context.Context, id uint64, actor, reason string, at time.Time) ([]*hwhealv1.Event, error) {
	if actor == "" {
		return nil, fmt.Errorf("escalate fault %d: actor is required", id)
	}
	rid, ok := faultID(id)
	if !ok {
		return nil, fmt.Errorf("escalate fault %d: %w", id, store.ErrNotFound)
	}
	at = s.orNow(at)
	var evs []*hwhealv1.Event
	err := s.write(ctx, func(ctx context.Context, st *txStmts) error {
		evs = nil
		rec, err := scanFault(st.s(sFaultGet).QueryRowContext(ctx, rid))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read fault: %w", err)
		}
		res, err := st.s(sEscalate).ExecContext(ctx, rid, nanos(at))
		if err != nil {
			return fmt.Errorf("record escalation: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("record escalation: %w", err)
		} else if n == 0 {
			return nil // escalated before
		}
		d := newDetail().uint("fault_id", id).str("fault_class", rec.GetFaultClass()).str("part", partName(rec.GetPart())).
			str("reason", reason)
		if _, err := appendAudit(ctx, st, auditRec{actor: actor, kind: "remediation.escalated", node: rec.GetNode(), detail: d.String()}, at); err != nil {
			return err
		}
		ev := &hwhealv1.Event{
			Type:   hwhealv1.EventType_EVENT_TYPE_REMEDIATION_ESCALATED,
			Node:   rec.GetNode(),
			Fault:  rec,
			Actor:  actor,
			Reason: reason,
		}
		if err := insertEvent(ctx, st, ev, at); err != nil {
			return err
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("escalate fault %d: %w", id, err)
	}
	return evs, nil
}

// partName is how an audit record names a part.
func partName(p *hwhealv1.Part) string {
	switch {
	case p.GetName() != "":
		return p.GetName()
	case p.GetPciAddress() != "":
		return p.GetPciAddress()
	}
	return p.GetSerial()
}

// detail builds an audit record's detail: a compact JSON object whose keys
// keep the order they were added in, so that records read the same way.
// Empty strings, zero times and false are left out.
type detail struct{ b []byte }

func newDetail() *detail { return &detail{b: []byte{'{'}} }

func (d *detail) key(k string) {
	if len(d.b) > 1 {
		d.b = append(d.b, ',')
	}
	d.b = appendJSONString(d.b, k)
	d.b = append(d.b, ':')
}

func (d *detail) str(k, v string) *detail {
	if v != "" {
		d.key(k)
		d.b = appendJSONString(d.b, v)
	}
	return d
}

func (d *detail) int(k string, v int64) *detail {
	d.key(k)
	d.b = strconv.AppendInt(d.b, v, 10)
	return d
}

func (d *detail) uint(k string, v uint64) *detail {
	d.key(k)
	d.b = strconv.AppendUint(d.b, v, 10)
	return d
}

func (d *detail) bool(k string, v bool) *detail {
	if v {
		d.key(k)
		d.b = append(d.b, "true"...)
	}
	return d
}

func (d *detail) time(k string, ts *timestamppb.Timestamp) *detail {
	if ts != nil {
		d.str(k, ts.AsTime().UTC().Format(time.RFC3339Nano))
	}
	return d
}

func (d *detail) uints(k string, vs []uint64) *detail {
	if len(vs) == 0 {
		return d
	}
	d.key(k)
	d.b = append(d.b, '[')
	for i, v := range vs {
		if i > 0 {
			d.b = append(d.b, ',')
		}
		d.b = strconv.AppendUint(d.b, v, 10)
	}
	d.b = append(d.b, ']')
	return d
}

func (d *detail) String() string { return string(append(d.b, '}')) }

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; <, > and & stay as they are.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
