-- 0003: the fault lifecycle (rule mode, clear time, quiet resolution,
-- reopening, operators' notes), when each node last connected, the
-- fleet-wide lookup of observations by source, and named event cursors.

-- The mode of the rule that raised the fault (hwheal.v1.RuleMode; SHADOW
-- faults do not count towards health) and its clear time in nanoseconds
-- (0: never resolves by itself), both from the latest report.
ALTER TABLE faults ADD COLUMN mode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE faults ADD COLUMN clear_after INTEGER NOT NULL DEFAULT 0;
-- Times the fault resolved by itself and came back within its clear time;
-- the clear time in force is clear_after << MIN(reopened, 3).
ALTER TABLE faults ADD COLUMN reopened INTEGER NOT NULL DEFAULT 0;
-- hwheal.v1.FaultNote of the operator who acknowledged or resolved it.
-- A resolved row without resolved_by resolved by itself.
ALTER TABLE faults ADD COLUMN acknowledged BLOB;
ALTER TABLE faults ADD COLUMN resolved_by BLOB;
-- When the fault resolves for lack of evidence: MAX(last_seen, the node's
-- connected_at) plus the clear time in force. NULL while that cannot
-- happen: no clear time, the fault resolved, or its node disconnected
-- (written on every change of any of them). So the faults due are one
-- range of a small index, whatever the size of the fault history.
ALTER TABLE faults ADD COLUMN due_at INTEGER;
CREATE INDEX faults_due ON faults (due_at) WHERE due_at IS NOT NULL;

-- The newest row of a key, in one lookup: its open fault, or else the
-- resolved row a report may reopen and whose kernel record mark a new row
-- starts from. (faults_open_key stays: it is what guarantees one open row
-- per key.)
CREATE INDEX faults_key ON faults (node, class, part_key, id);

-- Health counts open faults by mode (shadow ones do not count) and
-- severity; this covers that aggregate as the old index covered the one
-- without mode.
DROP INDEX faults_open_severity;
CREATE INDEX faults_open_health ON faults (node, mode, severity) WHERE state = 1;

-- When the node's agent last said hello: quiet time counts from it. Nodes
-- connected at the upgrade count from their last sign of life.
ALTER TABLE nodes ADD COLUMN connected_at INTEGER;
UPDATE nodes SET connected_at = last_seen WHERE connected = 1;

-- Peer rules read one source across the fleet: the table is keyed by
-- source first, so that read is one range of the table in node order, and
-- a node's own readings (LatestObservations) go through observations_node,
-- which is (node, source, part_key) since the table is WITHOUT ROWID. An
-- index on source alone would cost a lookup into the table per reading.
CREATE TABLE observations_latest_0003 (
	node        TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	source      TEXT NOT NULL,
	part_key    TEXT NOT NULL,
	time        INTEGER,
	observation BLOB NOT NULL,    -- hwheal.v1.Observation
	PRIMARY KEY (source, node, part_key)
) WITHOUT ROWID;
INSERT INTO observations_latest_0003 (node, source, part_key, time, observation)
	SELECT node, source, part_key, time, observation FROM observations_latest;
DROP TABLE observations_latest;
ALTER TABLE observations_latest_0003 RENAME TO observations_latest;
CREATE INDEX observations_node ON observations_latest (node);

-- Named positions in the event log (e.g. the last event each webhook
-- target was sent).
CREATE TABLE cursors (
	name     TEXT PRIMARY KEY NOT NULL,
	event_id INTEGER NOT NULL,
	updated  INTEGER NOT NULL
) WITHOUT ROWID;
