//go:build !linux

package blockio

import (
	"errors"
	"log/slog"
	"time"
)

// tracer: eBPF is Linux's.
type tracer struct {
	attach string
	kernel kernelVersion
	ops    map[uint32]string
	prev   map[uint32]histogram
}

func openTracer(string, *slog.Logger) (*tracer, error) {
	return nil, errors.New("eBPF block tracing needs Linux")
}

func (t *tracer) errorsFrom() string                         { return "" }
func (t *tracer) readEvents(func(record), func(error)) error { return nil }
func (t *tracer) drain(func(record), func(error)) error      { return nil }
func (t *tracer) closeReader()                               {}
func (t *tracer) histograms() (map[uint32]histogram, error)  { return nil, nil }
func (t *tracer) forget(uint32)                              {}
func (t *tracer) dropped() (uint64, error)                   { return 0, nil }
func (t *tracer) Close() error                               { return nil }
func monoToWall(uint64) time.Time                            { return time.Now() }

func errnoStatusName(errno int32, v kernelVersion) string {
	if errno == 0 {
		return ""
	}
	return StatusIO
}
