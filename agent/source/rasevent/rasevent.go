// Package rasevent is the agent's source of the kernel's RAS tracepoints,
// the signals rasdaemon listens to, read with eBPF and without rasdaemon:
// ras:mc_event (memory errors EDAC placed on a DIMM), mce:mce_record (x86
// machine check banks), ras:aer_event (PCIe AER) and memory_failure_event
// (poisoned pages), wherever the running kernel has them.
//
// The BPF programs (bpf/ras.c, built with bpf2go and committed) copy each
// tracepoint record into a fixed layout on one ring buffer; this package
// decodes the records and turns them into faults named after a part a
// technician can replace: the DIMM label, the CPU, the PCIe device.
// Uncorrected errors raise a fault each (up to a limit per part and
// interval); corrected ones, which can arrive by the thousand a second,
// are counted per part and observed every interval, with at most one info
// fault per part and interval so that the first one shows at once.
//
// Each program is loaded and attached on its own: a kernel without one of
// the tracepoints (built without CONFIG_X86_MCE, CONFIG_PCIEAER, ...) still
// gets the others. The source says once which it attached and why the
// others are absent; where BPF cannot be used at all (no privilege, no
// kernel BTF) it says so once and stops.
package rasevent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = "ras"

// DefaultInterval is how often the counters are observed, and how often
// at most a part's corrected errors raise a fault, when Config.Interval
// is 0.
const DefaultInterval = 60 * time.Second

// Config configures the source.
type Config struct {
	// Interval between observations of the counters, and the window of
	// the per-part fault limits; 0 means DefaultInterval.
	Interval time.Duration
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
	// LoadLock, when set, is held while the programs load: the agent
	// passes one to every eBPF source so that the kernel's BTF is parsed
	// for one load at a time (each parse is several MB of memory).
	LoadLock sync.Locker
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error {
	if c.Interval < 0 {
		return fmt.Errorf("%s: Interval %v is negative", Name, c.Interval)
	}
	return nil
}

// Source reads the RAS tracepoints. It implements source.Prober.
type Source struct {
	interval time.Duration
	log      *slog.Logger
	loadLock sync.Locker
	invalid  error
	// now is the clock of the fault limits.
	now func() time.Time
	// loadedHook, when set (tests only), is called with what Run loaded
	// before it starts reading.
	loadedHook func(*loaded)

	errs atomic.Uint64 // malformed records

	mu        sync.Mutex
	drops     *ebpf.Map // while Run runs
	lastDrops uint64    // when it is not
}

var _ source.Prober = (*Source)(nil)

// New returns a source for cfg with defaults filled in. An invalid cfg is
// reported by Run and Probe.
func New(cfg Config) *Source {
	s := &Source{interval: cfg.Interval, log: cfg.Logger, invalid: cfg.Validate(), now: time.Now, loadLock: cfg.LoadLock}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("source", Name)
	return s
}

// Name implements source.Source.
func (s *Source) Name() string { return Name }

// Errors is the number of malformed records read since the source
// started.
func (s *Source) Errors() uint64 { return s.errs.Load() }

// Dropped is the number of records the BPF programs could not hand over
// because the ring buffer was full, since Run started (the final count
// once it returned).
func (s *Source) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drops != nil {
		if n, err := readDrops(s.drops); err == nil {
			s.lastDrops = n
		}
	}
	return s.lastDrops
}

func (s *Source) setDrops(m *ebpf.Map) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == nil && s.drops != nil {
		if n, err := readDrops(s.drops); err == nil {
			s.lastDrops = n
		}
	}
	s.drops = m
}

// load loads and attaches the programs under the load lock.
func (s *Source) load() (*loaded, error) {
	if s.loadLock != nil {
		s.loadLock.Lock()
		defer s.loadLock.Unlock()
	}
	return load()
}

// Run loads and attaches the programs and reads their records until ctx
// is done. It returns nil on cancellation, and when BPF or every
// tracepoint is unavailable (after saying so once).
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	if s.invalid != nil {
		return s.invalid
	}
	l, err := s.load()
	if err != nil {
		s.log.Info("eBPF unavailable, RAS tracepoints not read, source stopped", "reason", err)
		return nil
	}
	defer l.Close()
	attached, absent, failed := l.statusLine()
	if l.attached() == 0 {
		if failed != "" {
			s.log.Warn("no RAS tracepoint attached, source stopped", "absent", absent, "failed", failed)
		} else {
			s.log.Info("no RAS tracepoint on this kernel, source stopped", "absent", absent)
		}
		return nil
	}
	if failed != "" {
		s.log.Warn("RAS tracepoints attached", "attached", attached, "absent", absent, "failed", failed)
	} else {
		s.log.Info("RAS tracepoints attached", "attached", attached, "absent", absent)
	}
	rd, err := ringbuf.NewReader(l.events)
	if err != nil {
		return fmt.Errorf("%s: open the BPF ring buffer: %w", Name, err)
	}
	s.setDrops(l.drops)
	defer s.setDrops(nil)
	if s.loadedHook != nil {
		s.loadedHook(l)
	}

	records := make(chan any, 64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.read(rd, records, done) })
	defer func() {
		close(done)
		rd.Close()
		wg.Wait()
	}()

	t := newTally(s.interval)
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	var (
		malformed    uint64 // since the last flush
		reportedDrop uint64
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case rec, ok := <-records:
			if !ok {
				return nil
			}
			if err, bad := rec.(error); bad {
				if errors.Is(err, errRead) {
					return fmt.Errorf("%s: %w", Name, err)
				}
				s.errs.Add(1)
				if malformed == 0 {
					s.log.Warn("malformed RAS record", "err", err)
				}
				malformed++
				continue
			}
			if f := s.handle(t, l, rec); f != nil {
				sink.Raise(f)
			}
		case <-ticker.C:
			obs, suppressed := t.flush(s.now())
			for _, o := range obs {
				sink.Observe(o)
			}
			if suppressed > 0 {
				s.log.Info("RAS faults held back by the per-part limit", "suppressed", suppressed, "interval", s.interval)
			}
			if malformed > 1 {
				s.log.Warn("malformed RAS records", "count", malformed, "interval", s.interval)
			}
			malformed = 0
			if d := s.Dropped(); d > reportedDrop {
				s.log.Warn("RAS records lost: BPF ring buffer full", "lost", d-reportedDrop, "total", d)
				reportedDrop = d
			}
			if t.overflow > 0 {
				s.log.Warn("RAS events on too many parts, not all observed", "events", t.overflow, "max_parts", maxParts)
				t.overflow = 0
			}
		}
	}
}

// errRead is a ring buffer read that failed: the source cannot go on.
var errRead = errors.New("read the BPF ring buffer")

// read hands every record of rd to out, decoded, or the decoding error,
// until rd is closed.
func (s *Source) read(rd *ringbuf.Reader, out chan<- any, done <-chan struct{}) {
	defer close(out)
	var rec ringbuf.Record
	for {
		var v any
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			v = fmt.Errorf("%w: %w", errRead, err)
		} else if ev, err := decode(rec.RawSample); err != nil {
			v = err
		} else {
			v = ev
		}
		select {
		case out <- v:
		case <-done:
			return
		}
		if err, ok := v.(error); ok && errors.Is(err, errRead) {
			return
		}
	}
}

// handle counts one decoded record and returns the fault it raises, if
// its part's limit lets it through.
func (s *Source) handle(t *tally, l *loaded, rec any) *hwhealv1.Fault {
	var (
		f finding
		h header
	)
	switch e := rec.(type) {
	case *mcEvent:
		f, h = e.classify(l.rules[kindMCEvent]), e.header
	case *mceRecord:
		f, h = e.classify(l.rules[kindMCERecord]), e.header
	case *aerEvent:
		f, h = e.classify(l.rules[kindAEREvent]), e.header
	case *memoryFailure:
		f, h = e.classify(l.rules[kindMemoryFailure], l.names), e.header
	default:
		return nil
	}
	fault := t.add(f, s.now())
	if fault != nil {
		fault.Time = timestamppb.New(wallTime(h.KtimeNS))
	}
	return fault
}

// wallTime turns the CLOCK_MONOTONIC stamp of a record into wall time.
func wallTime(ktimeNS uint64) time.Time {
	now := time.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return now
	}
	age := time.Duration(ts.Nano() - int64(ktimeNS))
	if age < 0 || ktimeNS > uint64(ts.Nano()) {
		return now
	}
	return now.Add(-age)
}

// Probe loads and attaches the programs, detaches them at once, and says
// what Run would read: Unavailable when BPF or every tracepoint is
// missing; otherwise Notes name each tracepoint attached and each the
// kernel does not have (with the reason), and Errors each that failed to
// load or attach.
func (s *Source) Probe(ctx context.Context) source.Probe {
	p := source.Probe{Source: Name}
	if s.invalid != nil {
		p.Unavailable = s.invalid.Error()
		return p
	}
	if err := ctx.Err(); err != nil {
		p.Errors = append(p.Errors, err.Error())
		return p
	}
	l, err := s.load()
	if err != nil {
		p.Unavailable = "eBPF unavailable: " + err.Error()
		return p
	}
	defer l.Close()
	for _, st := range l.status {
		switch {
		case st.Attached:
			p.Notes = append(p.Notes, "attached "+st.String())
		case st.Absent:
			p.Notes = append(p.Notes, "absent "+st.String())
		default:
			p.Errors = append(p.Errors, st.String())
		}
	}
	if l.attached() == 0 {
		_, absent, failed := l.statusLine()
		p.Unavailable = "no RAS tracepoint on this kernel: " + strings.Trim(absent+"; "+failed, "; ")
	}
	return p
}
