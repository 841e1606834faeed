// Package kernlog owns the kernel log's record formats: the live /dev/kmsg
// record ("prio,seq,usec,flags;message" plus dictionary lines) and the text
// formats people save kernel logs in (dmesg, dmesg -T, dmesg --time-format
// iso, syslog and journal text). It parses; it does not open files.
package kernlog

import "time"

// Record is one kernel log record, whatever format it was read from.
type Record struct {
	// Level is the syslog level, 0 (emerg) .. 7 (debug); -1 when the format
	// does not carry one.
	Level int
	// Facility is 0 for the kernel and 1 (user) for records written to
	// /dev/kmsg from user space; -1 when the format does not carry one.
	Facility int
	// Seq is the kernel's sequence number (raw kmsg records only).
	Seq uint64
	// Monotonic is the time since boot, when the format carries it.
	Monotonic time.Duration
	// HasMonotonic says whether Monotonic was present.
	HasMonotonic bool
	// Time is the wall-clock time, when the format carries one (dmesg -T,
	// iso, syslog); zero otherwise.
	Time time.Time
	// Continuation is set for a raw record flagged 'c' or '+' (a fragment
	// of the record before it).
	Continuation bool
	// Message is the text of the record without prefix or trailing newline.
	Message string
	// Dict holds the dictionary lines of a raw record (SUBSYSTEM=, DEVICE=).
	Dict map[string]string
}
