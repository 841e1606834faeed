// Package smart is the agent's SMART source: every interval (30 minutes by
// default, like smartd) it reads the health of every SATA, SAS and NVMe
// drive under <root>/sys/block and emits one observation per drive, with
// every value the drive reports (pkg/smart.ReadingSamples). It raises no
// faults: the collector's smart rules (agent/detect/rules/hardware.yaml)
// judge the readings, so that what a drive says about itself becomes a
// fault in one place, with one clear time, also when replayed offline.
//
// Drives are read natively (NativeReader: NVMe health log, ATA SMART
// through SAT pass-through) and, for drives the native reader cannot talk
// to (SAS disks, USB bridges, RAID volumes), with smartctl 7+ where it is
// installed (SmartctlReader); Config.Prefer turns the order around. Both
// fill pkg/smart's one model, so what follows does not depend on the
// reader.
//
// The source never wakes a drive: a drive the kernel has runtime-suspended
// is not touched, an ATA drive is asked CHECK POWER MODE before anything
// else and left alone in standby, and smartctl runs with -n standby. It
// never reads a log the drive keeps errors in (no NVMe error log, no
// smartctl -l), and sends no command a drive may reject. Drives are read
// in parallel, at most Config.Parallel at a time, each within
// Config.Timeout: a drive that hangs is reported as timed out once per
// interval, is not asked again while its read is stuck, and holds up no
// other drive and no later interval.
package smart

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/periodic"
	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = smart.ObservationSource

// Defaults for Config's zero values.
const (
	DefaultInterval = 30 * time.Minute
	DefaultTimeout  = 10 * time.Second
	DefaultParallel = 4
)

// Reader names for Config.Prefer.
const (
	PreferNative   = "native"
	PreferSmartctl = "smartctl"
)

// Config configures the source.
type Config struct {
	// Root is where /sys and /dev are found: "/" on a host, a fixture tree
	// in tests. Empty means "/".
	Root string
	// Interval between readings; 0 means DefaultInterval.
	Interval time.Duration
	// Timeout for reading one drive; 0 means DefaultTimeout.
	Timeout time.Duration
	// Parallel is how many drives are read at once; 0 means
	// DefaultParallel.
	Parallel int
	// Prefer is the reader tried first: PreferNative (the default: no
	// process per drive, and the drive's raw pages) or PreferSmartctl
	// (smartctl's drive database names vendor attributes and knows
	// firmware quirks). The other reads the drives the first cannot.
	Prefer string
	// Smartctl is the smartctl binary; empty looks it up on PATH.
	Smartctl string
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
	// Readers, when set, replaces the built-in readers, tried in order:
	// the seam tests use.
	Readers []Reader
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error {
	var errs []error
	if err := periodic.ValidateInterval(Name, c.Interval); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s: Timeout %v is negative", Name, c.Timeout))
	}
	if c.Parallel < 0 {
		errs = append(errs, fmt.Errorf("%s: Parallel %d is negative", Name, c.Parallel))
	}
	switch c.Prefer {
	case "", PreferNative, PreferSmartctl:
	default:
		errs = append(errs, fmt.Errorf("%s: Prefer %q is neither %q nor %q", Name, c.Prefer, PreferNative, PreferSmartctl))
	}
	return errors.Join(errs...)
}

// Source reads SMART periodically. It implements source.Source and
// source.Prober.
type Source struct {
	root     string
	interval time.Duration
	timeout  time.Duration
	parallel int
	readers  []Reader
	log      *slog.Logger
	invalid  error
	errs     atomic.Uint64

	busy busy // drives whose read has not returned, Run's and Probe's

	mu          sync.Mutex
	unsupported map[string]bool // disks no reader can read, logged once
}

var _ source.Prober = (*Source)(nil)

// New returns a source for cfg with defaults filled in. An invalid cfg is
// reported by Run and Probe.
func New(cfg Config) *Source {
	s := &Source{
		root:        cmp.Or(cfg.Root, "/"),
		interval:    cmp.Or(cfg.Interval, DefaultInterval),
		timeout:     cmp.Or(cfg.Timeout, DefaultTimeout),
		parallel:    cmp.Or(cfg.Parallel, DefaultParallel),
		readers:     cfg.Readers,
		log:         cfg.Logger,
		invalid:     cfg.Validate(),
		busy:        busy{since: map[string]time.Time{}},
		unsupported: map[string]bool{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("source", Name)
	if s.readers == nil {
		native, smartctl := Reader(NewNativeReader()), Reader(NewSmartctlReader(cfg.Smartctl))
		s.readers = []Reader{native, smartctl}
		if cfg.Prefer == PreferSmartctl {
			s.readers = []Reader{smartctl, native}
		}
	}
	return s
}

// Name implements source.Source.
func (s *Source) Name() string { return Name }

// Interval is the time between readings, defaults applied.
func (s *Source) Interval() time.Duration { return s.interval }

// Errors is the number of readings in which some drive could not be read.
func (s *Source) Errors() uint64 { return s.errs.Load() }

// Run reads every drive at once and then every interval until ctx is done.
// It returns nil on cancellation, and when the first reading finds nothing
// it can ever read (no drive, no permission, no reader for the drives),
// which it logs once.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	if s.invalid != nil {
		return s.invalid
	}
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	for first := true; ; first = false {
		if ctx.Err() != nil {
			return nil
		}
		rd := s.read(ctx)
		if ctx.Err() != nil {
			return nil // a reading cut short by shutdown says nothing
		}
		if first && rd.unavailable != "" {
			s.log.Info("nothing to read, source stopped", "reason", rd.unavailable)
			return nil
		}
		s.noteUnsupported(rd)
		for _, o := range rd.observations() {
			sink.Observe(o)
		}
		if err := rd.err(); err != nil {
			s.errs.Add(1)
			s.log.Error("read SMART", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// noteUnsupported logs, once per drive, a drive no reader can read (a
// RAID volume without smartctl, say): it is skipped quietly after that.
func (s *Source) noteUnsupported(rd *reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rd.results {
		if r.unsupported() && !s.unsupported[r.disk.Name] {
			s.unsupported[r.disk.Name] = true
			s.log.Info("disk not readable, skipped", "disk", r.disk.Name, "reason", r.err)
		}
	}
}

// Probe reads every drive once, under the same rules as Run (nothing
// woken, the same timeouts), for `hwheal-agent inspect`: the readings, no
// faults (the collector judges them), and a note of what was read.
func (s *Source) Probe(ctx context.Context) source.Probe {
	p := source.Probe{Source: Name}
	if s.invalid != nil {
		p.Unavailable = s.invalid.Error()
		return p
	}
	rd := s.read(ctx)
	if rd.unavailable != "" {
		p.Unavailable = rd.unavailable
		return p
	}
	p.Observations = rd.observations()
	var read, standby, failed int
	for _, r := range rd.results {
		switch {
		case r.unsupported():
		case r.err != nil:
			failed++
		case r.rep.Standby:
			standby++
		default:
			read++
		}
		if r.err != nil {
			p.Errors = append(p.Errors, r.err.Error())
		}
	}
	if rd.discoverErr != nil {
		p.Errors = append(p.Errors, rd.discoverErr.Error())
	}
	p.Notes = append(p.Notes, fmt.Sprintf("%d drives read, %d left in standby, %d not read; the collector's smart rules judge the readings", read, standby, failed))
	return p
}

// errTimeout marks a drive whose read did not finish in time.
var errTimeout = errors.New("SMART read timed out")

// result is one drive's outcome in one reading.
type result struct {
	disk     Disk
	rep      *smart.Report
	reader   string
	err      error
	timedOut bool
	at       time.Time
}

// unsupported tells whether no reader can talk to the drive: not a
// failure, and nothing to observe.
func (r result) unsupported() bool { return r.err != nil && errors.Is(r.err, ErrNotSupported) }

// reading is one pass over every drive.
type reading struct {
	results     []result
	discoverErr error
	// unavailable says why there is nothing to read on this host at all.
	unavailable string
}

// err joins the failures of the reading: drives that could not be read
// (not those no reader supports).
func (rd *reading) err() error {
	errs := []error{rd.discoverErr}
	for _, r := range rd.results {
		if !r.unsupported() {
			errs = append(errs, r.err)
		}
	}
	return errors.Join(errs...)
}

// observations has one observation per drive some reader supports.
func (rd *reading) observations() []*hwhealv1.Observation {
	out := make([]*hwhealv1.Observation, 0, len(rd.results))
	for _, r := range rd.results {
		if !r.unsupported() {
			out = append(out, observation(r))
		}
	}
	return out
}

func (s *Source) read(ctx context.Context) *reading {
	rd := &reading{}
	disks, err := Discover(s.root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rd.unavailable = err.Error()
		return rd
	case err != nil:
		rd.discoverErr = err
	case len(disks) == 0:
		rd.unavailable = noDisks(s.root)
		return rd
	}
	rd.results = s.readAll(ctx, disks)
	rd.unavailable = whyUnavailable(rd.results)
	return rd
}

// whyUnavailable says why no drive can ever be read, when every drive
// failed for the same lasting reason; "" otherwise.
func whyUnavailable(results []result) string {
	if len(results) == 0 {
		return ""
	}
	perm, unsupported := 0, 0
	for _, r := range results {
		switch {
		case r.err == nil:
			return ""
		case isPermission(r.err):
			perm++
		case errors.Is(r.err, ErrNotSupported):
			unsupported++
		}
	}
	first := results[0].err.Error()
	switch len(results) {
	case perm:
		return "permission denied (SMART needs root: CAP_SYS_RAWIO and CAP_SYS_ADMIN): " + first
	case unsupported:
		msgs := make([]string, 0, len(results))
		for _, r := range results {
			msgs = append(msgs, r.err.Error())
		}
		return "no reader can read these disks: " + strings.Join(msgs, "; ")
	}
	return ""
}

// readAll reads the drives, at most s.parallel at a time, each within
// s.timeout, and returns one result per drive in drive order.
func (s *Source) readAll(ctx context.Context, disks []Disk) []result {
	results := make([]result, len(disks))
	sem := make(chan struct{}, s.parallel)
	var wg sync.WaitGroup
	for i, d := range disks {
		if since, ok := s.busy.start(d.Name); !ok {
			// Its last read is stuck in the kernel: asking again would
			// only stack another one up behind it.
			results[i] = result{disk: d, timedOut: true, at: time.Now(),
				err: fmt.Errorf("%s: %w: the read started %v ago has not returned", d.Name, errTimeout, time.Since(since).Round(time.Second))}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.readOne(ctx, d, sem)
		}()
	}
	wg.Wait()
	return results
}

// readOne reads d once a slot in sem is free. The read itself runs on its
// own goroutine, which is left behind if it outlives its timeout (an ioctl
// cannot be cancelled); d stays busy until it returns.
func (s *Source) readOne(ctx context.Context, d Disk, sem chan struct{}) result {
	res := result{disk: d}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		s.busy.done(d.Name)
		res.err, res.at = fmt.Errorf("%s: %w", d.Name, ctx.Err()), time.Now()
		return res
	}
	defer func() { <-sem }()
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	type outcome struct {
		rep    *smart.Report
		reader string
		err    error
	}
	ch := make(chan outcome, 1)
	go func() {
		rep, reader, err := s.readDisk(rctx, d)
		// Not busy any more before anyone hears of it: the next reading
		// may start as soon as this one is in.
		s.busy.done(d.Name)
		ch <- outcome{rep, reader, err}
	}()
	var o outcome
	select {
	case o = <-ch:
	case <-rctx.Done():
		select {
		case o = <-ch: // it answered just in time
		default:
			o.err = rctx.Err()
		}
	}
	res.rep, res.reader, res.err, res.at = o.rep, o.reader, o.err, time.Now()
	if res.err != nil && errors.Is(res.err, context.DeadlineExceeded) && ctx.Err() == nil {
		res.timedOut = true
		res.err = fmt.Errorf("%s: %w after %v (%w)", d.Name, errTimeout, s.timeout, res.err)
	}
	return res
}

// readDisk asks the readers in order until one can read d.
func (s *Source) readDisk(ctx context.Context, d Disk) (*smart.Report, string, error) {
	if runtimeSuspended(d) {
		return &smart.Report{Standby: true, PowerMode: "STANDBY (OS)", Device: d.Path, Model: d.Model, Serial: d.Serial, Protocol: d.Protocol}, "", nil
	}
	var errs []error
	for _, r := range s.readers {
		rep, err := r.Read(ctx, d)
		if err == nil && rep == nil {
			err = fmt.Errorf("%s: the reader returned neither a report nor an error", d.Name)
		}
		if err == nil {
			return rep, r.Name(), nil
		}
		if !errors.Is(err, ErrNotSupported) {
			return nil, r.Name(), fmt.Errorf("%s: %w", r.Name(), err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", r.Name(), err))
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("%s: %w: no reader configured", d.Name, ErrNotSupported)
	}
	return nil, "", errors.Join(errs...)
}

// busy tracks the drives whose read has not returned.
type busy struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// start marks name busy; ok is false, with the time its read started,
// when it is already.
func (b *busy) start(name string) (since time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, found := b.since[name]; found {
		return t, false
	}
	b.since[name] = time.Now()
	return time.Time{}, true
}

func (b *busy) done(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.since, name)
}

func (b *busy) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.since)
}
