-- 0005: remediation. Each node's service state and its agent's guard;
-- actions and the steps their agents reported; the remediation switch;
-- the faults given up to people; and the append-only audit log.

-- hwheal.v1.ServiceState (1: IN_SERVICE, what every node stored before
-- remediation is), when it last changed, and the agent's
-- hwheal.v1.ActionGuard from its last hello (NULL: it runs no actions).
ALTER TABLE nodes ADD COLUMN service_state INTEGER NOT NULL DEFAULT 1;
ALTER TABLE nodes ADD COLUMN service_changed INTEGER;
ALTER TABLE nodes ADD COLUMN guard BLOB;
-- Listing nodes by service state walks it in name (page) order.
CREATE INDEX nodes_service ON nodes (service_state, name);

-- One row per action. The blob is the hwheal.v1.Action without its steps
-- (they are in action_steps); the columns beside it are what listings
-- filter and sort on, written from the same proto on every change.
CREATE TABLE actions (
	id      TEXT PRIMARY KEY NOT NULL,  -- collector-issued
	node    TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	type    INTEGER NOT NULL,           -- hwheal.v1.ActionType
	state   INTEGER NOT NULL,           -- hwheal.v1.ActionState
	rule    TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	action  BLOB NOT NULL
);
-- Listings are newest first: (created, id) walked backwards, fleet-wide
-- or per node.
CREATE INDEX actions_created ON actions (created, id);
CREATE INDEX actions_node ON actions (node, created, id);
-- The actions that have not ended (PROPOSED .. RUNNING are 1..5; every
-- final state is above), which the planner reads on every pass: one walk
-- of a small index, whatever the size of the history. A query uses it by
-- carrying the term "state < 6" as written here.
CREATE INDEX actions_active ON actions (created, id) WHERE state < 6;
-- A node's actions of one rule since a time: cooldowns and weekly caps.
CREATE INDEX actions_node_rule ON actions (node, rule, created, id);

-- The runbook steps agents reported, in the order they came (n from 0),
-- each a hwheal.v1.ActionStep. A step is one run of one runbook step:
-- (index, attempt) names it, so an update delivered twice (a replay
-- under a new stream id) adds it once. Kept apart from the action's blob
-- so that an update appends without rewriting the steps before it, and
-- listings, which do not show steps, never read them.
CREATE TABLE action_steps (
	action_id TEXT NOT NULL REFERENCES actions (id) ON DELETE CASCADE,
	n         INTEGER NOT NULL,
	idx       INTEGER NOT NULL,
	attempt   INTEGER NOT NULL,
	step      BLOB NOT NULL,
	UNIQUE (action_id, n),
	UNIQUE (action_id, idx, attempt)
);

-- The remediation switch: one row.
CREATE TABLE remediation_state (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	paused     INTEGER NOT NULL DEFAULT 0,
	paused_by  BLOB,                    -- hwheal.v1.ActionNote while paused
	resumed_by BLOB                     -- hwheal.v1.ActionNote, the last resume
);
INSERT INTO remediation_state (id, paused) VALUES (1, 0);

-- Faults automatic remediation gave up to people: at most once each.
CREATE TABLE escalations (
	fault_id INTEGER PRIMARY KEY,
	time     INTEGER NOT NULL
);

-- The audit log. Ids are 1, 2, 3, ... without gaps: the store writes each
-- as the previous record's plus one, in the transaction of the change it
-- records, so a transaction that rolls back leaves neither a gap nor a
-- record (no AUTOINCREMENT, whose counter is not the point). prev_hash is
-- the previous record's hash (32 zero bytes for the first); hash is
-- pkg/auditchain.Hash over the record's fields and prev_hash. Not tied to
-- nodes by a foreign key: the log outlives what it talks about.
CREATE TABLE audit (
	id        INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	kind      TEXT NOT NULL,
	node      TEXT NOT NULL DEFAULT '',
	action_id TEXT NOT NULL DEFAULT '',
	detail    TEXT NOT NULL DEFAULT '{}',  -- a JSON object
	prev_hash BLOB NOT NULL,
	hash      BLOB NOT NULL
);
CREATE INDEX audit_node ON audit (node, id);
CREATE INDEX audit_action ON audit (action_id, id);
-- Append-only, against mistakes in this program and in hand-written SQL.
-- Not against someone who drops the triggers: the hash chain is what
-- shows a record changed behind the store's back.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
	BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
	BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
