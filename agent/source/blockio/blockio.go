// Package blockio is the agent's eBPF disk I/O source. It traces the block
// layer's request tracepoints (block_rq_issue, block_rq_complete and, where
// the kernel has it, block_rq_error) and gives
//
//   - one fault for every failed block request, raised as it happens, with
//     the disk, the sector, the operation and the kernel's name for the
//     status, the same the kernel's own "I/O error, dev sda, sector 2048 op
//     0x0:(READ)" line carries, so the agent can merge the two;
//   - every Interval, one observation per disk: requests, failures and a
//     log2 latency histogram from issue to completion, with estimated p50
//     and p99.
//
// Both name the disk as the other sources do: its kernel name, and the
// model, serial number and controller sysfs gives (diskstats.Identify),
// so that a fault names the drive to replace and the collector compares
// a disk's latency with disks of its own model.
//
// # Attach strategy
//
// tp_btf programs come first: they get the struct request * itself, so the
// in-flight table is keyed by the request's address and the error is the
// block status (blk_status_t, 10 = BLK_STS_IOERR). Where they cannot load
// or attach, classic tracepoints take over: the in-flight key is device +
// sector and the error is the errno the status maps to (-5 = -EIO). Both
// are normalised to the kernel's status names ("I/O", "critical medium",
// "timeout", ...) and operation names (READ, WRITE, FLUSH, ...), so the two
// paths raise identical faults. fentry and kprobes are not used: the target
// machines do not allow them. Both paths need the kernel's BTF (CO-RE).
//
// Failed requests are taken from block_rq_error, which fires exactly where
// the kernel logs the request (not for passthrough or quiet requests); on
// kernels without it, from block_rq_complete with a non-zero status.
//
// The program is loaded once, when Run starts. Where BPF is unavailable
// (not root or no CAP_BPF, no kernel BTF, an old kernel, the tracepoints
// missing) Run logs one line saying why and returns nil: the agent goes on
// with /proc/diskstats and the kernel log.
//
// Failed requests cross to user space through a BPF ring buffer. One that
// finds the buffer full is counted in the kernel and reported by Dropped
// and in the log, never lost silently.
package blockio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Name is the source's name in logs, metrics and observations.
const Name = "blockio"

// Rule names the rule of the faults this source raises.
const Rule = "ebpf-block-rq-error"

// Evidence capture names: those of the kernel log rule blk-io-error
// (device, sector, op, status), and more.
const (
	CaptureDevice    = "device"     // "sda", "loop0": the disk's kernel name
	CaptureSector    = "sector"     // first 512-byte sector of the request
	CaptureOp        = "op"         // READ, WRITE, FLUSH, DISCARD, ...
	CaptureStatus    = "status"     // "I/O", "critical medium", "timeout", ...
	CaptureNrSectors = "nr_sectors" // sectors the failed completion covered
	CaptureDev       = "dev"        // "8:0": the disk's device number
)

// Attach strategies for Config.Attach.
const (
	// AttachAuto tries AttachBTF, then AttachTracepoint.
	AttachAuto = ""
	// AttachBTF uses tp_btf programs on the block tracepoints.
	AttachBTF = "tp_btf"
	// AttachTracepoint uses classic tracepoint programs.
	AttachTracepoint = "tracepoint"
)

// Defaults.
const (
	DefaultInterval    = 60 * time.Second
	DefaultProbeWindow = time.Second
)

// Config configures the source.
type Config struct {
	// Root is where /sys is found, to name disks by their device number
	// (<root>/sys/dev/block/MAJ:MIN) and read their model and serial
	// number. Empty means "/". The BPF programs
	// always trace the running kernel.
	Root string
	// Interval between latency observations; 0 means DefaultInterval.
	Interval time.Duration
	// Attach forces an attach strategy; AttachAuto (empty) picks.
	Attach string
	// ProbeWindow is how long Probe traces before it reads; 0 means
	// DefaultProbeWindow.
	ProbeWindow time.Duration
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
	// LoadLock, when set, is held while the programs load: the agent
	// passes one to every eBPF source so that the kernel's BTF is parsed
	// for one load at a time (each parse is several MB of memory).
	LoadLock sync.Locker
}

// Validate reports a configuration the source cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("%s: Interval %v is negative", Name, c.Interval))
	}
	if c.ProbeWindow < 0 {
		errs = append(errs, fmt.Errorf("%s: ProbeWindow %v is negative", Name, c.ProbeWindow))
	}
	switch c.Attach {
	case AttachAuto, AttachBTF, AttachTracepoint:
	default:
		errs = append(errs, fmt.Errorf("%s: Attach %q is not %q, %q or empty", Name, c.Attach, AttachBTF, AttachTracepoint))
	}
	return errors.Join(errs...)
}

// Source traces block requests. It implements source.Prober.
type Source struct {
	cfg   Config
	log   *slog.Logger
	disks *disks

	errs atomic.Uint64

	mu       sync.Mutex
	running  *tracer // the loaded programs while Run runs
	dropBase uint64  // drops counted by programs since closed
}

var _ source.Prober = (*Source)(nil)

// New returns a source for cfg with defaults filled in. An invalid cfg is
// reported by Run and Probe.
func New(cfg Config) *Source {
	cfg.Interval = cmp.Or(cfg.Interval, DefaultInterval)
	cfg.ProbeWindow = cmp.Or(cfg.ProbeWindow, DefaultProbeWindow)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: log.With("source", Name), disks: newDisks(cmp.Or(cfg.Root, "/"))}
}

// Name implements source.Source.
func (s *Source) Name() string { return Name }

// Errors counts what went wrong while running: records that did not
// decode, histogram reads that failed.
func (s *Source) Errors() uint64 { return s.errs.Load() }

// Dropped counts failed requests the kernel could not hand over because
// the ring buffer was full, since the source was made.
func (s *Source) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropBase
	if s.running != nil {
		d, _ := s.running.dropped()
		n += d
	}
	return n
}

// Attached is the attach strategy in use while Run runs (AttachBTF or
// AttachTracepoint), empty otherwise.
func (s *Source) Attached() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return ""
	}
	return s.running.attach
}

// open loads and attaches the programs under the load lock.
func (s *Source) open() (*tracer, error) {
	if s.cfg.LoadLock != nil {
		s.cfg.LoadLock.Lock()
		defer s.cfg.LoadLock.Unlock()
	}
	return openTracer(s.cfg.Attach, s.log)
}

// Run loads and attaches the programs, raises a fault for every failed
// request and observes each disk's latency every Interval until ctx is
// done. Where the programs cannot be loaded it logs why, once, and returns
// nil.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	t, err := s.open()
	if err != nil {
		s.log.Warn("eBPF block I/O tracing unavailable, source stopped", "reason", err.Error())
		return nil
	}
	s.mu.Lock()
	s.running = t
	s.mu.Unlock()
	defer s.stop(t)
	s.log.Info("tracing block I/O", "attach", t.attach, "failed_requests_from", t.errorsFrom())

	done := make(chan error, 1)
	go func() {
		done <- t.readEvents(func(r record) {
			if f := s.fault(t, r); f != nil {
				sink.Raise(f)
			}
		}, s.badRecord)
	}()
	ticker := time.NewTicker(s.cfg.Interval)
	defer ticker.Stop()
	last := time.Now()
	var dropped uint64
	for {
		select {
		case <-ctx.Done():
			t.closeReader()
			<-done
			return nil
		case err := <-done:
			return fmt.Errorf("%s: read ring buffer: %w", Name, err)
		case now := <-ticker.C:
			obs, err := s.observe(t, now, now.Sub(last))
			last = now
			if err != nil {
				s.errs.Add(1)
				s.log.Error("read block I/O histograms", "err", err)
			}
			for _, o := range obs {
				sink.Observe(o)
			}
			if d, err := t.dropped(); err == nil && d > dropped {
				s.log.Warn("ring buffer full, failed block requests not reported", "dropped", d-dropped, "total", d)
				dropped = d
			}
		}
	}
}

// stop closes t and keeps its drop count.
func (s *Source) stop(t *tracer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, _ := t.dropped()
	s.dropBase += d
	s.running = nil
	t.Close()
}

func (s *Source) badRecord(err error) {
	s.errs.Add(1)
	s.log.Error("decode ring buffer record", "err", err)
}

// Probe loads and attaches the programs, traces for ProbeWindow, and
// returns each disk's observation of that window and the requests that
// failed in it; or says why it cannot.
func (s *Source) Probe(ctx context.Context) source.Probe {
	p := source.Probe{Source: Name}
	if err := s.cfg.Validate(); err != nil {
		p.Unavailable = err.Error()
		return p
	}
	start := time.Now()
	t, err := s.open()
	if err != nil {
		p.Unavailable = err.Error()
		return p
	}
	defer t.Close()
	p.Notes = append(p.Notes, fmt.Sprintf("attached %s, failed requests from %s, watched for %v", t.attach, t.errorsFrom(), s.cfg.ProbeWindow))
	timer := time.NewTimer(s.cfg.ProbeWindow)
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
	timer.Stop()
	now := time.Now()
	obs, err := s.observe(t, now, now.Sub(start))
	if err != nil {
		p.Errors = append(p.Errors, err.Error())
	}
	p.Observations = obs
	err = t.drain(func(r record) {
		if f := s.fault(t, r); f != nil {
			p.Faults = append(p.Faults, f)
		}
	}, func(err error) { p.Errors = append(p.Errors, err.Error()) })
	if err != nil {
		p.Errors = append(p.Errors, err.Error())
	}
	if d, err := t.dropped(); err == nil && d > 0 {
		p.Errors = append(p.Errors, fmt.Sprintf("ring buffer full: %d failed requests not reported", d))
	}
	return p
}

// observe reads the histograms and makes one observation per disk with
// what changed since the last reading.
func (s *Source) observe(t *tracer, now time.Time, interval time.Duration) ([]*hwhealv1.Observation, error) {
	cur, err := t.histograms()
	if err != nil {
		return nil, err
	}
	ts := timestamppb.New(now)
	obs := make([]*hwhealv1.Observation, 0, len(cur))
	present := make(map[string]bool, len(cur))
	for _, dev := range sortedDevs(cur) {
		d := cur[dev].sub(t.prev[dev])
		part, ok := s.disks.part(dev)
		if !ok && d.total() == 0 && d.Errors == 0 {
			// A disk that is gone and quiet: stop observing it (its
			// counters start over if its number comes back).
			t.forget(dev)
			delete(cur, dev)
			continue
		}
		present[part.GetName()] = true
		obs = append(obs, &hwhealv1.Observation{
			Time:    ts,
			Source:  Name,
			Part:    part,
			Samples: d.samples(interval),
		})
	}
	t.prev = cur
	s.disks.retain(present)
	return obs, nil
}

// fault turns a failed request into the fault the agent raises, or nil
// for one that is not a hardware fault (see faultClass) or a passthrough
// command.
func (s *Source) fault(t *tracer, r record) *hwhealv1.Fault {
	status := statusName(r.Kind, r.Error, t.kernel)
	op := recordOp(r, t.ops)
	class, raise := faultClass(status)
	if !raise || passthrough(r, op) {
		s.log.Debug("failed block request not raised", "dev", devName(r), "sector", r.Sector, "op", op, "status", status)
		return nil
	}
	part, _ := s.disks.part(r.Dev)
	name := part.GetName()
	if notServerDisk(name) {
		s.log.Debug("failed block request on a floppy or optical drive not raised", "dev", name, "sector", r.Sector, "op", op, "status", status)
		return nil
	}
	sector := strconv.FormatUint(r.Sector, 10)
	return &hwhealv1.Fault{
		FaultClass: class,
		Severity:   hwhealv1.Severity_SEVERITY_CRITICAL,
		Part:       part,
		Rule:       Rule,
		Time:       timestamppb.New(monoToWall(r.KtimeNs)),
		Summary:    fmt.Sprintf("%s error on %s at sector %s (%s)", status, name, sector, op),
		Evidence: &hwhealv1.Evidence{Captures: map[string]string{
			CaptureDevice:    name,
			CaptureSector:    sector,
			CaptureOp:        op,
			CaptureStatus:    status,
			CaptureNrSectors: strconv.FormatUint(uint64(r.NrSectors), 10),
			CaptureDev:       devName(r),
		}},
	}
}

// notServerDisk is true of floppy and optical drives: not server parts,
// and a VM's phantom fd0 or an empty DVD drive probed by blkid fail
// requests all the time. The kernel-log rule blk-io-error leaves the same
// devices out, so both sources agree.
func notServerDisk(name string) bool {
	return strings.HasPrefix(name, "fd") || strings.HasPrefix(name, "sr")
}

// sortedDevs returns the devices of m in order.
func sortedDevs(m map[uint32]histogram) []uint32 {
	return slices.Sorted(maps.Keys(m))
}
