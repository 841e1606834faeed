// Package periodic owns the loop every polling source of the agent runs:
// read once at once, then every interval until the context is done; stop
// quietly (one Info line) when the first reading finds the kernel interface
// absent; log and count a reading that fails and try again at the next tick.
// The sources keep what differs: how to read, and what to say.
package periodic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hwheal/hwheal/agent/source"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Message is a log line: its message and the attributes that go with it.
type Message struct {
	Msg   string
	Attrs []any
}

// Loop describes one periodic source.
type Loop struct {
	// Name names the source: the "source" log attribute and the prefix of
	// configuration errors.
	Name string
	// Interval between readings; 0 means Default, a negative one is an
	// error that Run returns.
	Interval, Default time.Duration
	// Logger receives the loop's logs; nil discards them.
	Logger *slog.Logger
	// Read takes one reading. It may return observations together with an
	// error (a partly malformed reading): both are used.
	Read func(context.Context) ([]*hwhealv1.Observation, error)
	// Absent is logged at Info when the first reading finds nothing to read
	// (an error wrapping fs.ErrNotExist and no observation); Run then
	// returns nil.
	Absent Message
	// Failed is logged at Error, with "err" appended, for every reading
	// that fails.
	Failed Message
}

// ValidateInterval reports an interval no loop can run with, named after
// the source.
func ValidateInterval(name string, interval time.Duration) error {
	if interval < 0 {
		return fmt.Errorf("%s: Interval %v is negative", name, interval)
	}
	return nil
}

// Runner runs a Loop and counts its failed readings. It is safe to call
// Errors while Run runs.
type Runner struct {
	loop    Loop
	log     *slog.Logger
	invalid error
	errs    atomic.Uint64
}

// New returns a runner for l with defaults filled in. An invalid l is
// reported by Run, so that a source's New never fails.
func New(l Loop) *Runner {
	r := &Runner{loop: l, log: l.Logger, invalid: ValidateInterval(l.Name, l.Interval)}
	if r.loop.Interval == 0 {
		r.loop.Interval = l.Default
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("source", l.Name)
	return r
}

// Name is the source's name: a source that embeds its Runner gets
// source.Source's Name, Run and its Errors from it.
func (r *Runner) Name() string { return r.loop.Name }

// Interval is the time between readings, defaults applied.
func (r *Runner) Interval() time.Duration { return r.loop.Interval }

// Errors is the number of readings that failed or were partly malformed
// since the loop started.
func (r *Runner) Errors() uint64 { return r.errs.Load() }

// Run reads once at once and then every interval until ctx is done, and
// hands every observation to sink. It returns nil on cancellation and when
// the interface is absent, and the configuration error if there is one.
func (r *Runner) Run(ctx context.Context, sink source.Sink) error {
	if r.invalid != nil {
		return r.invalid
	}
	ticker := time.NewTicker(r.loop.Interval)
	defer ticker.Stop()
	for first := true; ; first = false {
		if ctx.Err() != nil {
			return nil
		}
		obs, err := r.loop.Read(ctx)
		for _, o := range obs {
			sink.Observe(o)
		}
		switch {
		case err == nil:
		case first && errors.Is(err, fs.ErrNotExist) && len(obs) == 0:
			r.log.Info(r.loop.Absent.Msg, r.loop.Absent.Attrs...)
			return nil
		default:
			r.errs.Add(1)
			r.log.Error(r.loop.Failed.Msg, slices.Concat(r.loop.Failed.Attrs, []any{"err", err})...)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// Probe takes one reading for `hwheal-agent inspect`. An absent interface
// is reported as the source's Absent message and the error that showed it.
func (r *Runner) Probe(ctx context.Context) source.Probe {
	p := source.Probe{Source: r.loop.Name}
	if r.invalid != nil {
		p.Unavailable = r.invalid.Error()
		return p
	}
	obs, err := r.loop.Read(ctx)
	p.Observations = obs
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && len(obs) == 0:
		p.Unavailable = fmt.Sprintf("%s: %v", strings.TrimSuffix(r.loop.Absent.Msg, ", source stopped"), err)
	default:
		p.Errors = append(p.Errors, err.Error())
	}
	return p
}
