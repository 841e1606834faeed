package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanFault(sc scanner) (*hwhealv1.FaultRecord, error) {
	var (
		r                     hwhealv1.FaultRecord
		id, sev, state, count int64
		first, last           int64
		resolved              sql.NullInt64
		part, evidence        []byte
		mode, clear, reopened int64
		ack, resolvedBy       []byte
		received, opened      int64
	)
	if err := sc.Scan(&id, &r.Node, &r.FaultClass, &part, &sev, &r.Rule, &state, &count, &first, &last, &resolved, &r.Summary, &evidence,
		&mode, &clear, &reopened, &ack, &resolvedBy, &received, &opened); err != nil {
		return nil, err
	}
	r.Id = uint64(id)
	r.Severity = hwhealv1.Severity(sev)
	r.State = hwhealv1.FaultState(state)
	r.Count = uint64(count)
	r.Mode = hwhealv1.RuleMode(mode)
	r.Reopened = uint32(reopened)
	r.ClearAfter = clearAfterPB(time.Duration(clear), r.Reopened)
	var err error
	if r.Acknowledged, err = decodeNote(ack, "acknowledgement", id); err != nil {
		return nil, err
	}
	if r.ResolvedBy, err = decodeNote(resolvedBy, "resolution", id); err != nil {
		return nil, err
	}
	r.FirstSeen, r.LastSeen, r.Resolved = tsFromNanos(first), tsFromNanos(last), tsFromNull(resolved)
	r.Received, r.Opened = tsFromNanos(received), tsFromNanos(opened)
	if part != nil {
		r.Part = &hwhealv1.Part{}
		if err := unmarshalInto(part, r.Part, fmt.Sprintf("part of fault %d", id)); err != nil {
			return nil, err
		}
	}
	if evidence != nil {
		r.Evidence = &hwhealv1.Evidence{}
		if err := unmarshalInto(evidence, r.Evidence, fmt.Sprintf("evidence of fault %d", id)); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

func scanNode(sc scanner, extra ...any) (*hwhealv1.Node, error) {
	var (
		n                         hwhealv1.Node
		labels                    string
		health, first, last, open int64
		connected                 bool
		changed                   sql.NullInt64
		service                   int64
		serviceChanged            sql.NullInt64
		guard                     []byte
	)
	dest := append([]any{&n.Name, &labels, &n.AgentVersion, &n.BootId, &health, &changed, &connected, &first, &last, &open,
		&service, &serviceChanged, &guard}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	n.ServiceState = action.Normal(hwhealv1.ServiceState(service))
	n.ServiceChanged = tsFromNull(serviceChanged)
	if guard != nil {
		n.Guard = &hwhealv1.ActionGuard{}
		if err := unmarshalInto(guard, n.Guard, fmt.Sprintf("guard of node %q", n.Name)); err != nil {
			return nil, err
		}
	}
	l, err := parseLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", n.Name, err)
	}
	n.Labels = l
	n.Health = hwhealv1.NodeHealth(health)
	n.Connected = connected
	n.FirstSeen, n.LastSeen, n.HealthChanged = tsFromNanos(first), tsFromNanos(last), tsFromNull(changed)
	n.OpenFaults = uint32(open)
	return &n, nil
}

// labelConds appends, for each label after the first in key order, a
// condition that the node named by col carries it. Keys are sorted so the
// same filter always gives the same SQL.
func labelConds(col string, labels map[string]string, skip string, where []string, args []any) ([]string, []any) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != skip {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		where = append(where, `EXISTS (SELECT 1 FROM node_labels l WHERE l.node = `+col+` AND l.key = ? AND l.value = ?)`)
		args = append(args, k, labels[k])
	}
	return where, args
}

func firstKey(m map[string]string) string {
	first, ok := "", false
	for k := range m {
		if !ok || k < first {
			first, ok = k, true
		}
	}
	return first
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// ListNodes pages through nodes in name order. Inventories are left out of
// listings (they are the bulk of a node row); GetNode has them.
func (s *Store) ListNodes(ctx context.Context, f store.NodeFilter, p store.Page) ([]*hwhealv1.Node, string, error) {
	size := pageSize(p.Size)
	var after string
	if p.Token != "" {
		var err error
		if after, err = parseNodeToken(p.Token); err != nil {
			return nil, "", fmt.Errorf("list nodes: %w", err)
		}
	}

	q, args := nodesQuery(f, after, size+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var nodes []*hwhealv1.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list nodes: %w", err)
		}
		nodes = append(nodes, n)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list nodes: %w", err)
	}
	var next string
	if len(nodes) > size {
		nodes = nodes[:size]
		next = nodeToken(nodes[size-1].Name)
	}
	return nodes, next, nil
}

// nodesQuery builds the query of one page of nodes (limit rows with name >
// after, in name order). Every shape walks an index that is already in name
// order, so a page reads about as many rows as it returns, whatever the
// size of the fleet and however rare the match, and the plan does not
// depend on the statistics ANALYZE gathers:
//
//   - a label filter walks node_labels (key, value, node) of one label and
//     checks the rest per row;
//   - else a fault class walks the open faults of that class by node;
//   - else several health states are one ordered walk of nodes_health per
//     state, merged (an IN list over that index would sort every match),
//     and several service states without a health state likewise of
//     nodes_service;
//   - else the nodes themselves, by name, by (health, name) or by
//     (service_state, name).
func nodesQuery(f store.NodeFilter, after string, limit int) (string, []any) {
	cols := `n.` + strings.ReplaceAll(strings.ReplaceAll(nodeCols, "\n\t", " "), ", ", ", n.")
	var health, service []int64
	for _, h := range f.Health {
		if !slices.Contains(health, int64(h)) {
			health = append(health, int64(h))
		}
	}
	for _, sv := range f.ServiceStates {
		if v := int64(action.Normal(sv)); !slices.Contains(service, v) {
			service = append(service, v)
		}
	}
	in := func(col string, vals []int64, where []string, args []any) ([]string, []any) {
		if len(vals) == 0 {
			return where, args
		}
		where = append(where, col+` IN (`+placeholders(len(vals))+`)`)
		for _, v := range vals {
			args = append(args, v)
		}
		return where, args
	}
	var (
		from, key, groupBy string
		where              []string
		args               []any
	)
	switch {
	case len(f.Labels) > 0:
		k := firstKey(f.Labels)
		// CROSS JOIN keeps SQLite from reordering the loops.
		from, key = `node_labels l0 CROSS JOIN nodes n ON n.name = l0.node`, `l0.node`
		where = append(where, `l0.key = ?`, `l0.value = ?`)
		args = append(args, k, f.Labels[k])
		where, args = labelConds("l0.node", f.Labels, k, where, args)
	case f.FaultClass != "":
		// A node with several open faults of the class (several parts)
		// appears once: the group is one node, in index order.
		from, key, groupBy = `faults f0 CROSS JOIN nodes n ON n.name = f0.node`, `f0.node`, ` GROUP BY f0.node`
		where = append(where, `f0.class = ?`, `f0.state = 1`)
		args = append(args, f.FaultClass)
	case len(health) > 1 || len(health) == 0 && len(service) > 1:
		idx, col, vals, other, otherVals := `nodes_health`, `n.health`, health, `n.service_state`, service
		if len(health) == 0 {
			idx, col, vals, other, otherVals = `nodes_service`, `n.service_state`, service, `n.health`, nil
		}
		var arms []string
		for _, v := range vals {
			w := []string{col + ` = ?`}
			args = append(args, v)
			if after != "" {
				w = append(w, `n.name > ?`)
				args = append(args, after)
			}
			w, args = in(other, otherVals, w, args)
			arm := `SELECT ` + cols + ` FROM nodes n INDEXED BY ` + idx + ` WHERE ` + strings.Join(w, ` AND `)
			arms = append(arms, `SELECT * FROM (`+arm+` ORDER BY n.name LIMIT ?)`)
			args = append(args, limit)
		}
		args = append(args, limit)
		return strings.Join(arms, ` UNION ALL `) + ` ORDER BY name LIMIT ?`, args
	default:
		from, key = `nodes n`, `n.name`
		// With a service state filter SQLite could take either index of
		// one state; name the one that keeps the page order.
		switch {
		case len(service) > 0 && len(health) == 1:
			from = `nodes n INDEXED BY nodes_health`
		case len(service) == 1:
			from = `nodes n INDEXED BY nodes_service`
		}
	}
	if after != "" {
		where = append(where, key+` > ?`)
		args = append(args, after)
	}
	where, args = in(`n.health`, health, where, args)
	where, args = in(`n.service_state`, service, where, args)
	if f.FaultClass != "" && !strings.HasPrefix(from, "faults") {
		where = append(where, `EXISTS (SELECT 1 FROM faults f WHERE f.node = n.name AND f.class = ? AND f.state = 1)`)
		args = append(args, f.FaultClass)
	}
	q := `SELECT ` + cols + ` FROM ` + from
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += groupBy + ` ORDER BY ` + key + ` LIMIT ?`
	args = append(args, limit)
	return q, args
}

// GetNode returns a node with its inventory.
func (s *Store) GetNode(ctx context.Context, name string) (*hwhealv1.Node, error) {
	var inv []byte
	n, err := scanNode(s.r.QueryRowContext(ctx, `SELECT `+nodeCols+`, inventory FROM nodes WHERE name = ?`, name), &inv)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get node %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get node %q: %w", name, err)
	}
	if inv != nil {
		n.Inventory = &hwhealv1.Inventory{}
		if err := unmarshalInto(inv, n.Inventory, "inventory"); err != nil {
			return nil, fmt.Errorf("get node %q: %w", name, err)
		}
	}
	return n, nil
}

// ListFaults pages through faults in id order (the order they were first
// seen by the collector).
func (s *Store) ListFaults(ctx context.Context, f store.FaultFilter, p store.Page) ([]*hwhealv1.FaultRecord, string, error) {
	size := pageSize(p.Size)
	var after int64
	if p.Token != "" {
		var err error
		if after, err = parseFaultToken(p.Token); err != nil {
			return nil, "", fmt.Errorf("list faults: %w", err)
		}
	}
	where := []string{`f.id > ?`}
	args := []any{after}
	if !f.AllStates {
		state := f.State
		if state == hwhealv1.FaultState_FAULT_STATE_UNSPECIFIED {
			state = hwhealv1.FaultState_FAULT_STATE_OPEN
		}
		where = append(where, `f.state = ?`)
		args = append(args, int64(state))
	}
	if f.Node != "" {
		where = append(where, `f.node = ?`)
		args = append(args, f.Node)
	}
	if f.FaultClass != "" {
		where = append(where, `f.class = ?`)
		args = append(args, f.FaultClass)
	}
	if f.MinSeverity != hwhealv1.Severity_SEVERITY_UNSPECIFIED {
		where = append(where, `f.severity >= ?`)
		args = append(args, int64(f.MinSeverity))
	}
	where, args = labelConds("f.node", f.Labels, "", where, args)
	args = append(args, size+1)
	q := `SELECT ` + faultCols + ` FROM faults f WHERE ` + strings.Join(where, ` AND `) + ` ORDER BY f.id LIMIT ?`

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list faults: %w", err)
	}
	defer rows.Close()
	var faults []*hwhealv1.FaultRecord
	for rows.Next() {
		r, err := scanFault(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list faults: %w", err)
		}
		faults = append(faults, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list faults: %w", err)
	}
	var next string
	if len(faults) > size {
		faults = faults[:size]
		next = faultToken(int64(faults[size-1].Id))
	}
	return faults, next, nil
}

// LatestObservations returns the newest observation of each source and part
// of a node, ordered by source and part. An unknown node is
// store.ErrNotFound.
func (s *Store) LatestObservations(ctx context.Context, node string) ([]*hwhealv1.Observation, error) {
	rows, err := s.r.QueryContext(ctx, latestObsSQL, node)
	if err != nil {
		return nil, fmt.Errorf("latest observations of node %q: %w", node, err)
	}
	defer rows.Close()
	var out []*hwhealv1.Observation
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("latest observations of node %q: %w", node, err)
		}
		o := &hwhealv1.Observation{}
		if err := unmarshalInto(b, o, "observation"); err != nil {
			return nil, fmt.Errorf("latest observations of node %q: %w", node, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latest observations of node %q: %w", node, err)
	}
	if len(out) == 0 {
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM nodes WHERE name = ?`, node).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("latest observations of node %q: %w", node, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("latest observations of node %q: %w", node, err)
		}
	}
	return out, nil
}

// EventsAfter returns up to limit events with id > afterID in id order
// (limit <= 0 means 100; at most 1000).
func (s *Store) EventsAfter(ctx context.Context, afterID uint64, limit int) ([]*hwhealv1.Event, error) {
	limit = pageSize(limit)
	if afterID > 1<<63-1 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, time, data FROM events WHERE id > ? ORDER BY id LIMIT ?`, int64(afterID), limit)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", afterID, err)
	}
	defer rows.Close()
	var out []*hwhealv1.Event
	for rows.Next() {
		var (
			id, t int64
			data  []byte
		)
		if err := rows.Scan(&id, &t, &data); err != nil {
			return nil, fmt.Errorf("events after %d: %w", afterID, err)
		}
		ev := &hwhealv1.Event{}
		if err := unmarshalInto(data, ev, fmt.Sprintf("event %d", id)); err != nil {
			return nil, fmt.Errorf("events after %d: %w", afterID, err)
		}
		ev.Id, ev.Time = uint64(id), tsFromNanos(t)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events after %d: %w", afterID, err)
	}
	return out, nil
}

// FleetObservations returns the newest observation of source for every part
// of every node, with the node's labels, in node and part order. It is one
// range of the table, which is keyed by source first (migration 0003); a
// source no node reports gives none and no error.
func (s *Store) FleetObservations(ctx context.Context, source string) ([]store.NodeObservation, error) {
	return s.fleetObservations(ctx, fleetObsSQL, source)
}

// fleetObservations runs FleetObservations with query q (a benchmark gives
// it the unindexed baseline).
func (s *Store) fleetObservations(ctx context.Context, q, source string) ([]store.NodeObservation, error) {
	rows, err := s.r.QueryContext(ctx, q, source)
	if err != nil {
		return nil, fmt.Errorf("fleet observations of %q: %w", source, err)
	}
	defer rows.Close()
	var (
		out        []store.NodeObservation
		lastNode   string
		lastLabels map[string]string
	)
	for rows.Next() {
		var (
			node, labels string
			b            []byte
		)
		if err := rows.Scan(&node, &labels, &b); err != nil {
			return nil, fmt.Errorf("fleet observations of %q: %w", source, err)
		}
		// Rows come in node order: the labels are decoded once per node.
		if node != lastNode || out == nil {
			l, err := parseLabels(labels)
			if err != nil {
				return nil, fmt.Errorf("fleet observations of %q: node %q: %w", source, node, err)
			}
			lastNode, lastLabels = node, l
		}
		o := &hwhealv1.Observation{}
		if err := unmarshalInto(b, o, fmt.Sprintf("observation of node %q", node)); err != nil {
			return nil, fmt.Errorf("fleet observations of %q: %w", source, err)
		}
		out = append(out, store.NodeObservation{Node: node, Labels: lastLabels, Observation: o})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet observations of %q: %w", source, err)
	}
	return out, nil
}
