-- 0002: the newest kernel log record merged into each fault, so that a
-- record delivered twice under two stream sequence numbers (an agent killed
-- before it saved its kmsg cursor, or reinstalled with a new stream id and
-- re-reading the ring) is counted once. Kernel sequence numbers increase
-- within a boot, so the boot id and the highest sequence are enough: a
-- report of the same boot at or below it is a record already counted.
--
-- kmsg_boot is '' while no report with a boot id has been merged (every row
-- written before this migration): such a row drops nothing. kmsg_seq is the
-- record's uint64 sequence stored as its int64 bit pattern; the store
-- compares it as uint64.
ALTER TABLE faults ADD COLUMN kmsg_boot TEXT NOT NULL DEFAULT '';
ALTER TABLE faults ADD COLUMN kmsg_seq INTEGER NOT NULL DEFAULT 0;
