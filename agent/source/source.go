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
