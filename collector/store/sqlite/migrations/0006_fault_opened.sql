-- 0006: when each fault opened, or last reopened, on the collector's
-- clock (nanoseconds): the receipt time of the report that opened or
-- reopened it. Remediation compares fault times with its own action times
-- and the storm breaker counts the faults that opened within a window;
-- first_seen is the agent's clock, which may be hours off (an RTC reset by
-- a power event), so neither may use it.
--
-- Rows stored before this migration take the time of their newest
-- FAULT_OPENED (5) or FAULT_REOPENED (10) event: the store records that
-- event in the transaction that opens or reopens the fault, timed with the
-- receipt of the batch that did, so it is exactly what the store now
-- writes. A row whose event is gone from the log takes its received, the
-- receipt of its latest report (the log is never pruned today, so this is
-- for a log trimmed by hand). For an open fault that is never before it
-- opened: it may look younger than it is, which errs towards the storm
-- breaker pausing remediation, never towards missing a storm. The
-- events are read in one pass: the log has no index on fault_id, and a
-- lookup per fault would read it once per fault.
ALTER TABLE faults ADD COLUMN opened INTEGER NOT NULL DEFAULT 0;
UPDATE faults SET opened = received;
UPDATE faults SET opened = e.time
	FROM (SELECT fault_id, time FROM events WHERE id IN
		(SELECT MAX(id) FROM events WHERE fault_id IS NOT NULL AND type IN (5, 10) GROUP BY fault_id)) AS e
	WHERE e.fault_id = faults.id;
