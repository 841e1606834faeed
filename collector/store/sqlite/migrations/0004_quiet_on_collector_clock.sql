-- 0004: quiet time counts on the collector's clock, and a fault derived
-- from readings resolves only on a reading that no longer shows it.

-- When the collector received the fault's latest report (nanoseconds, its
-- own clock). due_at counts from it: last_seen is the agent's clock, and an
-- agent hours behind would resolve a fresh fault at the next pass, one a
-- year ahead would keep it open for a year. last_seen stays for display
-- and for comparing with readings, which carry the agent's clock too.
--
-- Receipt times were not kept before: an open fault takes its node's
-- last_seen, which is on the collector's clock and not before the receipt
-- of any report of the node, so an upgrade may hold a fault up to one
-- clear time longer, never resolve it earlier. Resolved rows take their
-- last_seen; only open rows count quiet time from this column.
ALTER TABLE faults ADD COLUMN received INTEGER NOT NULL DEFAULT 0;
UPDATE faults SET received = CASE WHEN state = 1
	THEN COALESCE((SELECT n.last_seen FROM nodes n WHERE n.name = faults.node), last_seen)
	ELSE last_seen END;
-- due_at as the store now writes it: MAX(received, connected_at) plus the
-- clear time in force, saturating at the largest time.
UPDATE faults SET due_at = (
	SELECT CASE WHEN MAX(faults.received, COALESCE(n.connected_at, 0)) > 9223372036854775807 - (faults.clear_after << MIN(faults.reopened, 3))
		THEN 9223372036854775807
		ELSE MAX(faults.received, COALESCE(n.connected_at, 0)) + (faults.clear_after << MIN(faults.reopened, 3)) END
	FROM nodes n WHERE n.name = faults.node)
	WHERE due_at IS NOT NULL;

-- The observation source whose readings a collector rule derived the fault
-- from (store.DerivedFault), '' for a fault only agent reports raised. Set
-- by the latest derived report and kept across agent reports and reopens:
-- such a fault resolves only once observations_latest holds a reading of
-- that source, node and part taken at least its clear time after its
-- last_seen (silence is not recovery). Faults stored before this migration
-- have none: they resolve by quiet time alone, as they did.
ALTER TABLE faults ADD COLUMN source TEXT NOT NULL DEFAULT '';
