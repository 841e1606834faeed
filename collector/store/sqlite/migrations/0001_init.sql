-- 0001: nodes, their labels and streams, the fault table, the latest
-- observation per part and the event log.
--
-- Times are INTEGER nanoseconds since the Unix epoch (NULL when unknown).
-- Protos are stored as binary blobs (proto.Marshal); the fields queries
-- filter or sort on are columns beside them.

CREATE TABLE nodes (
	name           TEXT PRIMARY KEY NOT NULL,
	labels         TEXT NOT NULL DEFAULT '{}',  -- JSON object, for reading back
	agent_version  TEXT NOT NULL DEFAULT '',
	boot_id        TEXT NOT NULL DEFAULT '',
	inventory      BLOB,                        -- hwheal.v1.Inventory
	health         INTEGER NOT NULL,            -- hwheal.v1.NodeHealth
	health_changed INTEGER,
	connected      INTEGER NOT NULL DEFAULT 0,
	first_seen     INTEGER NOT NULL,
	last_seen      INTEGER NOT NULL,
	-- Maintained by Apply from the fault table, so listing nodes needs no
	-- aggregate over faults.
	open_faults    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX nodes_health ON nodes (health, name);

-- One row per label, so that label filters are index lookups.
CREATE TABLE node_labels (
	node  TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (node, key)
) WITHOUT ROWID;
-- Ends in node: a label filter walks it in node order, which is the order
-- of node pages.
CREATE INDEX node_labels_kv ON node_labels (key, value, node);

-- Acknowledged sequence number of each agent stream.
CREATE TABLE streams (
	node      TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	stream_id TEXT NOT NULL,
	acked_seq INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (node, stream_id)
) WITHOUT ROWID;

CREATE TABLE faults (
	id         INTEGER PRIMARY KEY,
	node       TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	class      TEXT NOT NULL,
	part_key   TEXT NOT NULL,     -- identity of the part, see partKey
	part       BLOB,              -- hwheal.v1.Part, the latest reported
	severity   INTEGER NOT NULL,  -- hwheal.v1.Severity, the highest reported
	rule       TEXT NOT NULL DEFAULT '',
	state      INTEGER NOT NULL,  -- hwheal.v1.FaultState
	count      INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	resolved   INTEGER,
	summary    TEXT NOT NULL DEFAULT '',
	evidence   BLOB               -- hwheal.v1.Evidence, the latest
);
-- At most one open fault per node, class and part: reports of it merge into
-- that row. Resolved rows are history and may repeat the key.
CREATE UNIQUE INDEX faults_open_key ON faults (node, class, part_key) WHERE state = 1;
-- Covers the health recomputation (count and max severity of open faults).
CREATE INDEX faults_open_severity ON faults (node, severity) WHERE state = 1;
-- Listing filters, in id (page) order.
CREATE INDEX faults_node ON faults (node, id);
CREATE INDEX faults_class ON faults (class, id);
-- Nodes with an open fault of a class.
CREATE INDEX faults_open_class ON faults (class, node) WHERE state = 1;

CREATE TABLE observations_latest (
	node        TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	source      TEXT NOT NULL,
	part_key    TEXT NOT NULL,
	time        INTEGER,
	observation BLOB NOT NULL,    -- hwheal.v1.Observation
	PRIMARY KEY (node, source, part_key)
) WITHOUT ROWID;

-- AUTOINCREMENT: an event id is never reused, even after the newest events
-- are deleted, because watchers resume after the last id they saw.
CREATE TABLE events (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	time     INTEGER NOT NULL,
	type     INTEGER NOT NULL,    -- hwheal.v1.EventType
	node     TEXT NOT NULL,
	fault_id INTEGER,
	data     BLOB NOT NULL        -- hwheal.v1.Event without id and time
);
CREATE INDEX events_node ON events (node, id);
