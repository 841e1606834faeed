package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// faultCols are the columns scanFault reads, in its order.
const faultCols = `id, node, class, part, severity, rule, state, count, first_seen, last_seen, resolved, summary, evidence`

// nodeCols are the columns scanNode reads, in its order.
const nodeCols = `name, labels, agent_version, boot_id, health, health_changed, connected, first_seen, last_seen, open_faults`

// writeStmts are the writer's statements, prepared once on its single
// connection; a transaction binds them with Tx.StmtContext, which reuses
// the prepared statement because the transaction runs on that same
// connection.
type writeStmts struct {
	nodeBoot      *sql.Stmt
	nodeInsert    *sql.Stmt
	nodeUpdate    *sql.Stmt
	labelsDelete  *sql.Stmt
	labelInsert   *sql.Stmt
	streamGet     *sql.Stmt
	streamEnsure  *sql.Stmt
	streamAck     *sql.Stmt
	nodeHealthGet *sql.Stmt
	nodeSeen      *sql.Stmt
	nodeHealthSet *sql.Stmt
	nodeDisc      *sql.Stmt
	nodesConn     *sql.Stmt
	nodesDiscAll  *sql.Stmt
	openFaults    *sql.Stmt
	faultOpen     *sql.Stmt
	faultBlobs    *sql.Stmt
	faultInsert   *sql.Stmt
	faultUpdate   *sql.Stmt
	obsUpsert     *sql.Stmt
	eventInsert   *sql.Stmt
}

var writeSQL = []struct {
	dst func(*writeStmts) **sql.Stmt
	sql string
}{
	{func(w *writeStmts) **sql.Stmt { return &w.nodeBoot }, `SELECT boot_id FROM nodes WHERE name = ?`},
	{func(w *writeStmts) **sql.Stmt { return &w.nodeInsert }, `INSERT INTO nodes
		(name, labels, agent_version, boot_id, inventory, health, health_changed, connected, first_seen, last_seen, open_faults)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?7, ?7, 0)`},
	// An empty boot id or a nil inventory says nothing new: keep the stored one.
	{func(w *writeStmts) **sql.Stmt { return &w.nodeUpdate }, `UPDATE nodes SET
		labels = ?2, agent_version = ?3,
		boot_id = CASE WHEN ?4 = '' THEN boot_id ELSE ?4 END,
		inventory = COALESCE(?5, inventory),
		connected = 1, last_seen = MAX(last_seen, ?6)
		WHERE name = ?1`},
	{func(w *writeStmts) **sql.Stmt { return &w.labelsDelete }, `DELETE FROM node_labels WHERE node = ?`},
	{func(w *writeStmts) **sql.Stmt { return &w.labelInsert }, `INSERT INTO node_labels (node, key, value) VALUES (?, ?, ?)`},
	{func(w *writeStmts) **sql.Stmt { return &w.streamGet }, `SELECT acked_seq FROM streams WHERE node = ? AND stream_id = ?`},
	{func(w *writeStmts) **sql.Stmt { return &w.streamEnsure }, `INSERT INTO streams (node, stream_id, acked_seq) VALUES (?, ?, 0)
		ON CONFLICT (node, stream_id) DO NOTHING`},
	{func(w *writeStmts) **sql.Stmt { return &w.streamAck }, `INSERT INTO streams (node, stream_id, acked_seq) VALUES (?, ?, ?)
		ON CONFLICT (node, stream_id) DO UPDATE SET acked_seq = MAX(acked_seq, excluded.acked_seq)`},
	// The node's health and the stream's acknowledged sequence in one step
	// (NULL for a stream the node never announced).
	{func(w *writeStmts) **sql.Stmt { return &w.nodeHealthGet }, `SELECT n.health, s.acked_seq FROM nodes n
		LEFT JOIN streams s ON s.node = n.name AND s.stream_id = ?2 WHERE n.name = ?1`},
	{func(w *writeStmts) **sql.Stmt { return &w.nodeSeen }, `UPDATE nodes SET last_seen = MAX(last_seen, ?2) WHERE name = ?1`},
	{func(w *writeStmts) **sql.Stmt { return &w.nodeHealthSet }, `UPDATE nodes SET
		health = ?2,
		health_changed = CASE WHEN health = ?2 THEN health_changed ELSE ?3 END,
		open_faults = ?4,
		last_seen = MAX(last_seen, ?3)
		WHERE name = ?1`},
	{func(w *writeStmts) **sql.Stmt { return &w.nodeDisc }, `UPDATE nodes SET connected = 0, last_seen = MAX(last_seen, ?2) WHERE name = ?1`},
	{func(w *writeStmts) **sql.Stmt { return &w.nodesConn }, `SELECT name FROM nodes WHERE connected = 1 ORDER BY name`},
	{func(w *writeStmts) **sql.Stmt { return &w.nodesDiscAll }, `UPDATE nodes SET connected = 0 WHERE connected = 1`},
	{func(w *writeStmts) **sql.Stmt { return &w.openFaults }, `SELECT COUNT(*), COALESCE(MAX(severity), 0) FROM faults WHERE node = ? AND state = 1`},
	// Only what a merge needs; the part and evidence blobs are read back
	// only when no report of the batch replaces them (see faultBlobs).
	{func(w *writeStmts) **sql.Stmt { return &w.faultOpen }, `SELECT id, severity, count, first_seen, last_seen, rule, summary, kmsg_boot, kmsg_seq FROM faults
		WHERE node = ? AND class = ? AND part_key = ? AND state = 1`},
	{func(w *writeStmts) **sql.Stmt { return &w.faultBlobs }, `SELECT part, evidence FROM faults WHERE id = ?`},
	{func(w *writeStmts) **sql.Stmt { return &w.faultInsert }, `INSERT INTO faults
		(node, class, part_key, part, severity, rule, state, count, first_seen, last_seen, summary, evidence, kmsg_boot, kmsg_seq)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)`},
	{func(w *writeStmts) **sql.Stmt { return &w.faultUpdate }, `UPDATE faults SET
		part = COALESCE(?2, part), severity = ?3, rule = ?4, count = ?5, first_seen = ?6, last_seen = ?7, summary = ?8, evidence = COALESCE(?9, evidence),
		kmsg_boot = ?10, kmsg_seq = ?11
		WHERE id = ?1`},
	{func(w *writeStmts) **sql.Stmt { return &w.obsUpsert }, `INSERT INTO observations_latest (node, source, part_key, time, observation)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (node, source, part_key) DO UPDATE SET time = excluded.time, observation = excluded.observation`},
	{func(w *writeStmts) **sql.Stmt { return &w.eventInsert }, `INSERT INTO events (time, type, node, fault_id, data) VALUES (?, ?, ?, ?, ?)`},
}

func prepareWrite(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	w := &writeStmts{}
	for _, q := range writeSQL {
		st, err := db.PrepareContext(ctx, q.sql)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", q.sql, err), w.close())
		}
		*q.dst(w) = st
	}
	return w, nil
}

func (w *writeStmts) close() error {
	var errs []error
	for _, q := range writeSQL {
		if st := *q.dst(w); st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// in binds every statement to tx.
func (w *writeStmts) in(ctx context.Context, tx *sql.Tx) *writeStmts {
	b := &writeStmts{}
	for _, q := range writeSQL {
		*q.dst(b) = tx.StmtContext(ctx, *q.dst(w))
	}
	return b
}
