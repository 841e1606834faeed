// Package source defines what a signal source of the agent is: something
// that turns one kernel interface into observations or kernel log records
// and hands them to a Sink. One package per source lives below it.
package source

import (
	"context"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Sink takes what sources produce. Implementations must not block for long:
// a source that reads the kernel must never be held up by the network.
type Sink interface {
	// Observe takes a periodic reading of one part.
	Observe(*hwhealv1.Observation)
	// Log takes one kernel log record; the agent's detectors run on it.
	Log(kernlog.Record)
	// Raise takes a fault a source detected itself: a failed block request
	// seen by eBPF, a link that flaps, a drive's own SMART verdict. The
	// agent stamps what is missing (time, boot id) and merges one incident
	// seen by two sources (eBPF and the kernel log) into one fault.
	Raise(*hwhealv1.Fault)
}

// Source is one signal source of the agent.
type Source interface {
	// Name is short and stable ("kmsg", "diskstats"): it names the source in
	// logs, metrics and observations.
	Name() string
	// Run reads until ctx is done. It returns nil on cancellation and an
	// error only when the source cannot go on; a source whose interface is
	// absent on this host (fs.ErrNotExist) logs that once and returns nil.
	Run(ctx context.Context, sink Sink) error
}

// Prober is a source that can take one reading on demand. It is what
// `hwheal-agent inspect` prints: what the agent would read on this host,
// and why a source has nothing to read. Probe must not change the host or
// the source's saved state (no cursor advanced, no disk woken up).
type Prober interface {
	Source
	Probe(ctx context.Context) Probe
}

// Probe is one on-demand reading of a source.
type Probe struct {
	// Source is the source's Name.
	Source string
	// Unavailable says why the source has nothing to read on this host
	// ("no EDAC memory controllers under /sys/devices/system/edac/mc",
	// "BPF not permitted: operation not permitted"); empty when it read.
	Unavailable string
	// Observations and Faults are what one reading produced.
	Observations []*hwhealv1.Observation
	Faults       []*hwhealv1.Fault
	// Errors are the parts of the reading that failed (a malformed file):
	// the rest of the reading is still used.
	Errors []string
	// Notes say what the source did, for people: "attached
	// tp_btf/block_rq_complete", "1,204 records in the ring".
	Notes []string
}
