package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// faultCols are the columns scanFault reads, in its order.
const faultCols = `id, node, class, part, severity, rule, state, count, first_seen, last_seen, resolved, summary, evidence,
	mode, clear_after, reopened, acknowledged, resolved_by, received, opened`

// shadowMode is RULE_MODE_SHADOW in SQL: the faults health.Enforced leaves
// out of a node's health.
var shadowMode = strconv.Itoa(int(hwhealv1.RuleMode_RULE_MODE_SHADOW))

// effClearSQL is the clear time in force of a fault row: its clear time
// doubled per reopen, at most 8 times (see effClear).
const effClearSQL = `(clear_after << MIN(reopened, 3))`

// dueSQL is due_at of an open fault row when its node connected at ?2:
// MAX(received, ?2) plus the clear time in force, saturating at the
// largest time (clear_after is bounded by maxClearAfter, so the shift does
// not overflow; the sum could, for a receipt time far in the future).
const dueSQL = `CASE WHEN MAX(received, ?2) > 9223372036854775807 - ` + effClearSQL + `
	THEN 9223372036854775807 ELSE MAX(received, ?2) + ` + effClearSQL + ` END`

// openFaultsSQL counts a node's open faults (node.open_faults), and the
// enforced ones with their highest severity (health).
var openFaultsSQL = `SELECT COUNT(*),
	COALESCE(MAX(CASE WHEN mode <> ` + shadowMode + ` THEN severity END), 0),
	COUNT(CASE WHEN mode <> ` + shadowMode + ` THEN 1 END)
	FROM faults WHERE node = ?1 AND state = 1`

// Queries that tests check the plans of.
const (
	// faultsDueSQL finds the faults ResolveQuiet resolves: one range of
	// the partial index faults_due and, for a fault derived from readings,
	// a lookup of the newest reading of its source and part by the key of
	// observations_latest. The reading must be at least the clear time in
	// force after the fault's last_seen: both are the agent's clock, so
	// they are compared with each other and never with ?1. (Should the sum
	// overflow, SQLite computes it as a REAL: the comparison still holds.)
	faultsDueSQL = `SELECT f.id, f.node, f.source FROM faults f
		WHERE f.due_at <= ?1 AND (f.source = '' OR EXISTS (SELECT 1 FROM observations_latest o
			WHERE o.source = f.source AND o.node = f.node AND o.part_key = f.part_key
			AND o.time >= f.last_seen + (f.clear_after << MIN(f.reopened, 3))))
		ORDER BY f.due_at, f.id LIMIT ?2`
	// faultLastSQL is the newest row of a key: its open fault if it has
	// one (a key's open row is always its newest: a row is inserted only
	// when none is open, and only the newest is reopened), else the row a
	// report may reopen. Only what a merge needs: the part and evidence
	// blobs are read back only when no report of the batch replaces them
	// (see faultBlobs), and the mode is not read since a merge always
	// replaces it.
	faultLastSQL = `SELECT id, state, severity, count, first_seen, last_seen, rule, summary, kmsg_boot, kmsg_seq,
		COALESCE(resolved, 0), resolved_by IS NULL, clear_after, reopened, acknowledged, received, opened, source
		FROM faults WHERE node = ?1 AND class = ?2 AND part_key = ?3 ORDER BY id DESC LIMIT 1`
	// fleetObsSQL is FleetObservations: one range of the table's key
	// (source, node, part_key), in node and part order, and a lookup of
	// each node.
	fleetObsSQL = `SELECT o.node, n.labels, o.observation FROM observations_latest o
		JOIN nodes n ON n.name = o.node WHERE o.source = ?1 ORDER BY o.node, o.part_key`
	// latestObsSQL is LatestObservations: one range of observations_node.
	latestObsSQL = `SELECT observation FROM observations_latest WHERE node = ?1 ORDER BY source, part_key`
	// faultsDueHelloSQL restarts the quiet time of a node's open faults
	// when it connects at ?2.
	faultsDueHelloSQL = `UPDATE faults SET due_at = ` + dueSQL + ` WHERE node = ?1 AND state = 1 AND clear_after > 0`
	// faultsDueClearSQL stops it when the node disconnects.
	faultsDueClearSQL = `UPDATE faults SET due_at = NULL WHERE node = ?1 AND state = 1 AND due_at IS NOT NULL`
	// faultsDueClearAllSQL stops it for every node.
	faultsDueClearAllSQL = `UPDATE faults SET due_at = NULL WHERE due_at IS NOT NULL`
)

// faultSetSQL is what a merge writes to an existing fault row.
const faultSetSQL = `UPDATE faults SET
	part = COALESCE(?2, part), severity = ?3, rule = ?4, count = ?5, first_seen = ?6, last_seen = ?7, summary = ?8, evidence = COALESCE(?9, evidence),
	kmsg_boot = ?10, kmsg_seq = ?11, mode = ?12, clear_after = ?13, reopened = ?14, due_at = ?15, received = ?16, source = ?17,
	opened = ?18`

// nodeCols are the columns scanNode reads, in its order.
const nodeCols = `name, labels, agent_version, boot_id, health, health_changed, connected, first_seen, last_seen, open_faults,
	service_state, service_changed, guard`

// activeSQL is true of the actions that have not ended, written exactly as
// the WHERE of the partial index actions_active so that a query carrying
// it may use that index (checked against remediation/action by a test).
const activeSQL = `a.state < 6`

// Queries of remediation that tests check the plans of.
const (
	// actionStepsSQL reads an action with its steps in one statement (one
	// snapshot): the action's blob repeats on each step's row.
	actionStepsSQL = `SELECT a.action, s.step FROM actions a LEFT JOIN action_steps s ON s.action_id = a.id
		WHERE a.id = ?1 ORDER BY s.n`
	// stepNextSQL is the number of an action's next step: the steps are
	// numbered from 0 without gaps.
	stepNextSQL = `SELECT COALESCE(MAX(n), -1) + 1 FROM action_steps WHERE action_id = ?1`
	// auditHeadSQL is the last record of the audit log.
	auditHeadSQL = `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`
)

// stmtID names one of the writer's statements (see writeSQL).
type stmtID int

const (
	sNodeBoot stmtID = iota
	sNodeInsert
	sNodeUpdate
	sLabelsDelete
	sLabelInsert
	sStreamGet
	sStreamEnsure
	sStreamAck
	sNodeHealthGet
	sDueHello
	sDueClear
	sDueClearAll
	sNodeSeen
	sNodeHealthSet
	sNodeDisc
	sNodesConn
	sNodesDiscAll
	sOpenFaults
	sFaultLast
	sFaultBlobs
	sFaultInsert
	sFaultUpdate
	sFaultReopen
	sFaultsDue
	sFaultResolve
	sFaultAck
	sFaultState
	sObsUpsert
	sEventInsert
	sCursorSet
	sNodeService
	sNodeServiceSet
	sFaultGet
	sActionGet
	sActionInsert
	sActionUpdate
	sActionTouch
	sStepNext
	sStepInsert
	sStepsGet
	sAuditHead
	sAuditInsert
	sRemGet
	sRemSet
	sEscalate
	numStmts
)

// writeStmts are the writer's statements, prepared once on its single
// connection.
type writeStmts [numStmts]*sql.Stmt

// txStmts are the writer's statements in one transaction. Each is bound to
// it with Tx.StmtContext (which reuses the statement prepared on the
// connection, since the transaction runs on that same connection) when
// first used: binding costs a few microseconds each, and most
// transactions (a hello, a cursor, an acknowledgement) use few of them.
type txStmts struct {
	ctx   context.Context
	tx    *sql.Tx
	ps    *writeStmts
	bound writeStmts
	// audit is the head of the audit log as this transaction leaves it,
	// read from the table at its first record: it lives and dies with the
	// transaction, so a rollback cannot leave a wrong head behind.
	audit auditHead
}

// s returns statement id bound to the transaction.
func (t *txStmts) s(id stmtID) *sql.Stmt {
	if t.bound[id] == nil {
		t.bound[id] = t.tx.StmtContext(t.ctx, t.ps[id])
	}
	return t.bound[id]
}

var writeSQL = [numStmts]string{
	sNodeBoot: `SELECT boot_id FROM nodes WHERE name = ?`,
	sNodeInsert: `INSERT INTO nodes
		(name, labels, agent_version, boot_id, inventory, health, health_changed, connected, connected_at, first_seen, last_seen, open_faults, guard)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?7, ?7, ?7, 0, ?8)`,
	// An empty boot id or a nil inventory says nothing new: keep the
	// stored one. The guard is always the hello's: an agent that says
	// none runs no actions.
	sNodeUpdate: `UPDATE nodes SET
		labels = ?2, agent_version = ?3,
		boot_id = CASE WHEN ?4 = '' THEN boot_id ELSE ?4 END,
		inventory = COALESCE(?5, inventory),
		connected = 1, connected_at = ?6, last_seen = MAX(last_seen, ?6),
		guard = ?7
		WHERE name = ?1`,
	sLabelsDelete: `DELETE FROM node_labels WHERE node = ?`,
	sLabelInsert:  `INSERT INTO node_labels (node, key, value) VALUES (?, ?, ?)`,
	sStreamGet:    `SELECT acked_seq FROM streams WHERE node = ? AND stream_id = ?`,
	sStreamEnsure: `INSERT INTO streams (node, stream_id, acked_seq) VALUES (?, ?, 0)
		ON CONFLICT (node, stream_id) DO NOTHING`,
	sStreamAck: `INSERT INTO streams (node, stream_id, acked_seq) VALUES (?, ?, ?)
		ON CONFLICT (node, stream_id) DO UPDATE SET acked_seq = MAX(acked_seq, excluded.acked_seq)`,
	// The node's health, connection and the stream's acknowledged sequence
	// in one step (NULL for a stream the node never announced).
	sNodeHealthGet: `SELECT n.health, s.acked_seq, n.connected, COALESCE(n.connected_at, 0) FROM nodes n
		LEFT JOIN streams s ON s.node = n.name AND s.stream_id = ?2 WHERE n.name = ?1`,
	sDueHello:    faultsDueHelloSQL,
	sDueClear:    faultsDueClearSQL,
	sDueClearAll: faultsDueClearAllSQL,
	sNodeSeen:    `UPDATE nodes SET last_seen = MAX(last_seen, ?2) WHERE name = ?1`,
	// ?5 = 1: the change comes from the node (a report), which also says
	// it is alive; 0: from the collector or an operator, which does not.
	sNodeHealthSet: `UPDATE nodes SET
		health = ?2,
		health_changed = CASE WHEN health = ?2 THEN health_changed ELSE ?3 END,
		open_faults = ?4,
		last_seen = CASE WHEN ?5 THEN MAX(last_seen, ?3) ELSE last_seen END
		WHERE name = ?1`,
	sNodeDisc:     `UPDATE nodes SET connected = 0, last_seen = MAX(last_seen, ?2) WHERE name = ?1`,
	sNodesConn:    `SELECT name FROM nodes WHERE connected = 1 ORDER BY name`,
	sNodesDiscAll: `UPDATE nodes SET connected = 0 WHERE connected = 1`,
	// Every open fault (node.open_faults), and the count and highest
	// severity of those that are enforced (health).
	sOpenFaults: openFaultsSQL,
	sFaultLast:  faultLastSQL,
	sFaultBlobs: `SELECT part, evidence FROM faults WHERE id = ?`,
	sFaultInsert: `INSERT INTO faults
		(node, class, part_key, part, severity, rule, state, count, first_seen, last_seen, summary, evidence, kmsg_boot, kmsg_seq,
		 mode, clear_after, due_at, received, source, opened)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	// Updates an open row. The state is left out of the SET list: SQLite
	// rewrites every index whose columns (its WHERE included) an UPDATE
	// names, and three partial indexes are on state = 1.
	sFaultUpdate: faultSetSQL + ` WHERE id = ?1`,
	// Reopens a resolved row.
	sFaultReopen: faultSetSQL + `, state = 1, resolved = NULL WHERE id = ?1`,
	sFaultsDue:   faultsDueSQL,
	sFaultResolve: `UPDATE faults SET state = 2, resolved = ?2, resolved_by = ?3, due_at = NULL
		WHERE id = ?1 AND state = 1 RETURNING ` + faultCols,
	sFaultAck: `UPDATE faults SET acknowledged = ?2
		WHERE id = ?1 AND state = 1 RETURNING ` + faultCols,
	sFaultState: `SELECT state FROM faults WHERE id = ?`,
	sObsUpsert: `INSERT INTO observations_latest (node, source, part_key, time, observation)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (source, node, part_key) DO UPDATE SET time = excluded.time, observation = excluded.observation`,
	sEventInsert: `INSERT INTO events (time, type, node, fault_id, data) VALUES (?, ?, ?, ?, ?)`,
	sCursorSet: `INSERT INTO cursors (name, event_id, updated) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET event_id = excluded.event_id, updated = excluded.updated`,

	sNodeService:    `SELECT service_state, boot_id FROM nodes WHERE name = ?`,
	sNodeServiceSet: `UPDATE nodes SET service_state = ?2, service_changed = ?3 WHERE name = ?1`,
	sFaultGet:       `SELECT ` + faultCols + ` FROM faults WHERE id = ?`,
	sActionGet:      `SELECT action FROM actions WHERE id = ?`,
	// A taken id inserts nothing: the caller tells ErrExists by the rows
	// affected.
	sActionInsert: `INSERT INTO actions (id, node, type, state, rule, created, updated, action)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
	sActionUpdate: `UPDATE actions SET state = ?2, updated = ?3, action = ?4 WHERE id = ?1`,
	// The same without the state, for a change that keeps it (an agent's
	// steps): naming state would rewrite actions_active, whose WHERE is on
	// it.
	sActionTouch: `UPDATE actions SET updated = ?2, action = ?3 WHERE id = ?1`,
	sStepNext:    stepNextSQL,
	// A step already stored under its (index, attempt) inserts nothing.
	sStepInsert: `INSERT INTO action_steps (action_id, n, idx, attempt, step) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (action_id, idx, attempt) DO NOTHING`,
	sStepsGet:    `SELECT step FROM action_steps WHERE action_id = ? ORDER BY n`,
	sAuditHead:   auditHeadSQL,
	sAuditInsert: `INSERT INTO audit (id, time, actor, kind, node, action_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	sRemGet:      `SELECT paused, paused_by, resumed_by FROM remediation_state WHERE id = 1`,
	sRemSet:      `UPDATE remediation_state SET paused = ?1, paused_by = ?2, resumed_by = ?3 WHERE id = 1`,
	sEscalate:    `INSERT INTO escalations (fault_id, time) VALUES (?, ?) ON CONFLICT (fault_id) DO NOTHING`,
}

func prepareWrite(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	w := &writeStmts{}
	for id, q := range writeSQL {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", q, err), w.close())
		}
		w[id] = st
	}
	return w, nil
}

func (w *writeStmts) close() error {
	var errs []error
	for _, st := range w {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// in returns the statements of transaction tx.
func (w *writeStmts) in(ctx context.Context, tx *sql.Tx) *txStmts {
	return &txStmts{ctx: ctx, tx: tx, ps: w}
}
