// Package kmsg is the agent's source of kernel log records: it reads
// /dev/kmsg, one record per read, from the records already in the ring at
// the first start on a boot, and resumes after the last record it
// delivered when the agent restarts within the same boot (a cursor file in
// the state directory). Records the kernel overwrote before they were read
// are counted, never silently lost. In fixture trees, where Root/dev/kmsg
// is a regular file of raw records, it reads the file and follows what is
// appended to it.
package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/pkg/kernlog"
)

// Config configures the source.
type Config struct {
	// Root is prefixed to /dev/kmsg and /proc/sys/kernel/random/boot_id;
	// "" means "/".
	Root string
	// StateDir keeps the cursor file kmsg.cursor; "" disables the cursor
	// (every start delivers the whole ring again).
	StateDir string
	// Logger receives the source's few messages; nil discards them.
	Logger *slog.Logger
	// FollowPoll is how often a regular file standing in for /dev/kmsg is
	// checked for appended records; 0 means 200ms.
	FollowPoll time.Duration
}

// Stats counts what the source did since New.
type Stats struct {
	// Records is the number of records handed to the sink.
	Records uint64
	// Dropped is the number of records the kernel overwrote before they
	// were read (from sequence gaps: EPIPE on the device, or the agent
	// down for longer than the ring holds).
	Dropped uint64
	// Overruns is the number of reads that returned EPIPE.
	Overruns uint64
	// Replayed is how many of Records were already in the ring (or file)
	// when a Run started.
	Replayed uint64
	// Resumed is the number of records skipped at start because the
	// cursor says they were delivered before the agent restarted.
	Resumed uint64
	// Skipped counts records that did not parse, by kernlog.SkipReason.
	Skipped map[string]uint64
}

const (
	cursorFile        = "kmsg.cursor"
	defaultFollowPoll = 200 * time.Millisecond
	// saveEvery bounds how often the cursor is written while records flow.
	saveEvery = time.Second
	// overrunLogEvery rate-limits the warning about EPIPE: a burst of
	// overwrites is one line in the log, the counters have the rest.
	overrunLogEvery = 10 * time.Second
	// readBufSize holds any record: the kernel caps one near 8 KiB
	// (CONSOLE_EXT_LOG_MAX), and a read into a smaller buffer fails with
	// EINVAL rather than truncating.
	readBufSize = 2 * kernlog.MaxLineLen
)

// Source reads kernel log records from /dev/kmsg.
type Source struct {
	cfg Config
	log *slog.Logger

	records, dropped, overruns, replayed, resumed atomic.Uint64

	mu      sync.Mutex
	skipped map[string]uint64
}

var _ source.Source = (*Source)(nil)

// New returns a source; it touches nothing until Run.
func New(cfg Config) *Source {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.FollowPoll <= 0 {
		cfg.FollowPoll = defaultFollowPoll
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: log, skipped: make(map[string]uint64)}
}

// Name implements source.Source.
func (s *Source) Name() string { return "kmsg" }

// Stats returns a snapshot of the counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	skipped := maps.Clone(s.skipped)
	s.mu.Unlock()
	return Stats{
		Records:  s.records.Load(),
		Dropped:  s.dropped.Load(),
		Overruns: s.overruns.Load(),
		Replayed: s.replayed.Load(),
		Resumed:  s.resumed.Load(),
		Skipped:  skipped,
	}
}

func (s *Source) skip(reason string, n uint64) {
	s.mu.Lock()
	s.skipped[reason] += n
	s.mu.Unlock()
}

// Run reads records and hands them to sink.Log until ctx is done. sink.Log
// is called from Run's goroutine, one record at a time; the cursor moves
// past a record only after sink.Log returned for it, so a record is
// delivered at least once across restarts (a crash may repeat up to a
// second's worth). Run returns nil on cancellation and when there is no
// /dev/kmsg. One Run at a time: the runs of a Source share its counters.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	path := filepath.Join(s.cfg.Root, "dev", "kmsg")
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Info("kmsg: not available", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("kmsg: stat %s: %w", path, err)
	}
	r := s.newRun(sink)
	defer r.saveIfDirty()
	if fi.Mode().IsRegular() {
		return r.followFile(ctx, path)
	}
	return r.readDevice(ctx, path)
}

// run is the state of one Run.
type run struct {
	s    *Source
	sink source.Sink

	// Cursor: cursorPath is "" when there is none (no StateDir or no boot
	// id); skipTo is the last record delivered before a restart.
	cursorPath string
	bootID     string
	haveSkip   bool
	skipTo     uint64

	haveLast bool
	last     uint64 // highest sequence number seen
	overrun  bool   // EPIPE seen, the next record shows how many were lost

	delivered uint64 // sequence number of the last record handed to the sink
	dirty     bool   // delivered is not saved yet
	lastSave  time.Time

	saveFailing    bool // a save failed and was logged
	replaying      bool
	lastOverrunLog time.Time
	overrunsUnlog  uint64
}

func (s *Source) newRun(sink source.Sink) *run {
	r := &run{s: s, sink: sink}
	bootPath := filepath.Join(s.cfg.Root, "proc", "sys", "kernel", "random", "boot_id")
	boot, err := os.ReadFile(bootPath)
	r.bootID = strings.TrimSpace(string(boot))
	switch {
	case s.cfg.StateDir == "":
		s.log.Info("kmsg: no state directory, every start delivers the whole ring")
		return r
	case err != nil || r.bootID == "" || strings.ContainsAny(r.bootID, " \t\n"):
		s.log.Warn("kmsg: no boot id, cursor disabled", "path", bootPath, "err", err)
		return r
	}
	r.cursorPath = filepath.Join(s.cfg.StateDir, cursorFile)
	boot2, seq, err := loadCursor(r.cursorPath)
	switch {
	case err != nil:
		s.log.Warn("kmsg: ignoring unreadable cursor", "path", r.cursorPath, "err", err)
	case boot2 == r.bootID:
		// Same boot: what is at or below the cursor was delivered before
		// the restart, and a gap after it is what the ring lost meanwhile.
		r.haveSkip, r.skipTo = true, seq
		r.haveLast, r.last = true, seq
		s.log.Info("kmsg: resuming after cursor", "seq", seq)
	case boot2 != "":
		s.log.Info("kmsg: new boot, delivering the whole ring", "cursor_boot_id", boot2, "boot_id", r.bootID)
	}
	return r
}

// handle takes one parsed record: it counts gaps, skips what the cursor
// says was delivered, hands the rest to the sink and saves the cursor at
// most once a second.
func (r *run) handle(rec kernlog.Record) {
	s := r.s
	switch {
	case r.overrun && r.haveLast && rec.Seq > r.last+1:
		s.dropped.Add(rec.Seq - r.last - 1)
	case r.overrun:
		s.dropped.Add(1) // EPIPE means at least one was lost
	case r.haveLast && rec.Seq > r.last+1:
		s.dropped.Add(rec.Seq - r.last - 1)
	}
	r.overrun = false
	if !r.haveLast || rec.Seq > r.last {
		r.haveLast, r.last = true, rec.Seq
	}
	if r.haveSkip && rec.Seq <= r.skipTo {
		s.resumed.Add(1)
		return
	}
	r.sink.Log(rec)
	s.records.Add(1)
	if r.replaying {
		s.replayed.Add(1)
	}
	r.delivered, r.dirty = rec.Seq, true
	if time.Since(r.lastSave) >= saveEvery {
		r.save()
	}
}

// parse parses one raw record and hands it on, or counts it as skipped.
func (r *run) parse(b []byte) {
	rec, err := kernlog.ParseKmsg(b)
	if err != nil {
		r.s.skip(kernlog.SkipReason(err), 1)
		return
	}
	r.handle(rec)
}

func (r *run) noteOverrun() {
	r.s.overruns.Add(1)
	r.overrun = true
	r.overrunsUnlog++
	if now := time.Now(); now.Sub(r.lastOverrunLog) >= overrunLogEvery {
		r.s.log.Warn("kmsg: ring buffer overwrote records before they were read",
			"overruns", r.overrunsUnlog, "dropped_total", r.s.dropped.Load())
		r.lastOverrunLog, r.overrunsUnlog = now, 0
	}
}

// saveDeadline is when the cursor is due, zero if it is saved.
func (r *run) saveDeadline() time.Time {
	if !r.dirty || r.cursorPath == "" {
		return time.Time{}
	}
	return r.lastSave.Add(saveEvery)
}

func (r *run) saveIfDirty() {
	if r.dirty {
		r.save()
	}
}

func (r *run) save() {
	r.lastSave = time.Now()
	if r.cursorPath == "" {
		r.dirty = false
		return
	}
	if err := saveCursor(r.cursorPath, r.bootID, r.delivered); err != nil {
		// Keep dirty: the next save retries. Saving fails the same way
		// every second on a full disk, so warn only on the first failure.
		if !r.saveFailing {
			r.s.log.Warn("kmsg: saving cursor", "path", r.cursorPath, "err", err)
			r.saveFailing = true
		}
		return
	}
	r.dirty, r.saveFailing = false, false
}

// loadCursor reads "bootid seq". A missing file is no cursor.
func loadCursor(path string) (bootID string, seq uint64, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("read cursor %s: %w", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", 0, fmt.Errorf("cursor %s: want \"bootid seq\", have %q", path, b)
	}
	seq, err = strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("cursor %s: sequence number: %w", path, err)
	}
	return f[0], seq, nil
}

// saveCursor writes the cursor so that a reader finds the old one or the
// new one, never half of either: a temporary file renamed over it.
//
// Nothing is fsynced, on purpose. The cursor only matters within one boot:
// after a power cut or a kernel panic the boot id is new and the cursor is
// ignored anyway, so making it durable buys nothing, while a process that
// is killed leaves its writes in the page cache, where the next agent reads
// them. It used to cost two fsyncs a second while records flowed. A cursor
// that lags after a kill only re-delivers records, which the collector
// drops by evidence.kernel_log.{boot_id, sequence}.
func saveCursor(path, bootID string, seq uint64) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create state directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, cursorFile+".tmp*")
	if err != nil {
		return fmt.Errorf("create cursor: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	_, err = fmt.Fprintf(tmp, "%s %d\n", bootID, seq)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write cursor %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename cursor: %w", err)
	}
	return nil
}

// Snapshot returns the records in the ring now (or in the file standing in
// for the device), oldest first, for `hwheal-agent inspect`. It saves no
// cursor and counts nothing: a running agent is not disturbed. A missing
// /dev/kmsg is an error wrapping fs.ErrNotExist.
func (s *Source) Snapshot(ctx context.Context) ([]kernlog.Record, map[string]uint64, error) {
	path := filepath.Join(s.cfg.Root, "dev", "kmsg")
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("kmsg: %w", err)
	}
	var recs []kernlog.Record
	skipped := make(map[string]uint64)
	if fi.Mode().IsRegular() {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("kmsg: %w", err)
		}
		defer f.Close()
		sc := kernlog.NewScanner(f, kernlog.FormatKmsg)
		for sc.Scan() && ctx.Err() == nil {
			recs = append(recs, sc.Record())
		}
		if err := sc.Err(); err != nil {
			return recs, sc.Skipped(), fmt.Errorf("kmsg: read %s: %w", path, err)
		}
		return recs, sc.Skipped(), ctx.Err()
	}
	// A raw descriptor: os.File.Fd would make it blocking, and the read at
	// the end of the ring must return EAGAIN, not wait for the next record.
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("kmsg: open %s: %w", path, err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, readBufSize)
	for ctx.Err() == nil {
		n, err := syscall.Read(fd, buf)
		switch {
		case err == syscall.EINTR || err == syscall.EPIPE:
			continue // EPIPE: overwritten while we read; go on from the oldest
		case err == syscall.EAGAIN:
			return recs, skipped, nil
		case err != nil:
			return recs, skipped, fmt.Errorf("kmsg: read %s: %w", path, err)
		case n == 0:
			return recs, skipped, nil
		}
		rec, perr := kernlog.ParseKmsg(buf[:n])
		if perr != nil {
			skipped[kernlog.SkipReason(perr)]++
			continue
		}
		recs = append(recs, rec)
	}
	return recs, skipped, ctx.Err()
}
