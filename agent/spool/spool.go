// Package spool owns the agent's on-disk queue of numbered reports: the
// sequence space of one agent state directory (its stream id and the last
// sequence number handed out), the reports not yet acknowledged by the
// collector, and the bound on how much of them the node keeps. It is what
// lets the agent lose no fault while the collector is away or the agent
// restarts.
//
// Layout of the directory:
//
//	stream_id                   uuid, written once when the directory is new
//	acked                       last acknowledged sequence number (decimal)
//	lock                        flock'd while a Spool has the directory open
//	00000000000000000001.seg    segments, named by their first sequence number
//
// A segment is a run of frames, each
//
//	uint32 LE payload length | uint32 LE CRC-32C of payload | payload
//
// where the payload is a marshalled hwhealv1.Report whose seq is the
// segment's first sequence number plus the frame's index. Sequence numbers
// inside a segment are contiguous; between segments there may be gaps (a
// corrupt tail that was cut away, segments dropped by the bound, SkipTo).
// The newest segment is kept even when empty: its name carries the next
// sequence number.
//
// Durability: Append writes to the page cache only (a killed agent keeps
// its reports), so that it stays cheap. A background sync then fsyncs what
// was appended within Options.SyncInterval (1 s): while the collector is
// away nothing else would, and the faults logged just before a power cut or
// a hardware panic are the ones that matter most. The sync runs on a timer
// armed by the first unsynced append, so an idle spool costs nothing, and
// it fsyncs outside the spool's lock, so a slow disk does not hold up
// Append. Close syncs too. Read fsyncs what it returns before returning it,
// because returned reports go to the collector: a report the collector may
// hold must survive a power cut, or its sequence number would be handed out
// again and the collector would drop the new report as a duplicate.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/pkg/fsutil"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

const (
	// DefaultMaxBytes bounds the spool when Options.MaxBytes is zero.
	DefaultMaxBytes = 64 << 20
	// DefaultSegmentBytes is the segment size when Options.SegmentBytes is
	// zero (lowered to a quarter of MaxBytes for small spools).
	DefaultSegmentBytes = 4 << 20
	// DefaultSyncInterval bounds how long appended reports stay in the page
	// cache only, when Options.SyncInterval is zero.
	DefaultSyncInterval = time.Second
	// MaxReportBytes is the largest marshalled report the spool takes. It
	// stays well under gRPC's default 4 MiB message limit so a spooled
	// report can always be sent, and it bounds what recovery will allocate
	// for a frame whose length field is garbage.
	MaxReportBytes = 1 << 20

	frameHeaderBytes   = 8
	segmentSuffix      = ".seg"
	segmentNameDigits  = 20
	streamIDFile       = "stream_id"
	ackedFile          = "acked"
	lockFile           = "lock"
	ackPersistInterval = 100 * time.Millisecond
)

var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("spool is closed")
	// ErrLocked is returned by Open when another Spool holds the directory.
	ErrLocked = errors.New("spool directory is in use")
	// ErrTooLarge is returned by Append for a report over MaxReportBytes.
	ErrTooLarge = errors.New("report too large for spool")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Options tune a Spool. The zero value is usable.
type Options struct {
	// MaxBytes bounds the bytes held in segments (default 64 MiB). Past it
	// the oldest segment is dropped, acknowledged or not.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started (default
	// 4 MiB, at most MaxBytes). Segments are the unit of deletion and of
	// dropping, so smaller segments free space sooner and lose less when the
	// bound is hit.
	SegmentBytes int64
	// SyncInterval bounds how long appended reports may stay unsynced
	// (default 1 s): the background sync fsyncs them this long after the
	// first unsynced append. Shorter loses less in a power cut and costs
	// more fsyncs under a steady trickle of reports.
	SyncInterval time.Duration
	// Logger gets warnings about dropped and corrupt data (default: discard).
	Logger *slog.Logger
}

// Stats is a snapshot of a Spool's state.
type Stats struct {
	// Pending counts readable reports held and not yet acknowledged.
	Pending uint64
	// Bytes held in segments.
	Bytes int64
	// Segments on disk, the active one included.
	Segments int
	// Dropped counts unacknowledged reports thrown away by the bound since
	// Open.
	Dropped uint64
	// Corrupt counts damaged segment tails cut away since Open (at recovery
	// or when a read met a bad frame).
	Corrupt uint64
	// Syncs counts segment fsyncs since Open: by the background sync, Read,
	// recovery of a damaged segment, Sync, SkipTo and Close.
	Syncs uint64
	// Unsynced is the bytes of segments not known to be on disk: appended
	// since the last fsync, or left by an earlier process and not synced
	// since Open.
	Unsynced int64
}

type segment struct {
	first uint64 // sequence number of the first frame; also the file name
	count uint64 // frames written
	// valid frames are readable; it is less than count only after a read
	// met a frame damaged on disk after recovery.
	valid uint64
	size  int64
	// synced bytes are known to be on disk. Segments found at Open start
	// at 0: an agent killed just before may have left them in the page
	// cache only.
	synced int64
	path   string
}

// next is the sequence number a frame appended to the segment would get.
func (g *segment) next() uint64 { return g.first + g.count }

// cursor remembers where the last Read stopped so that the usual sequential
// reader does not rescan a segment from its start on every call.
type cursor struct {
	seq      uint64 // next sequence number to read
	segFirst uint64 // segment it is in
	off      int64  // byte offset of its frame
}

// Spool is a bounded on-disk queue of numbered reports. It is safe for
// concurrent use.
type Spool struct {
	dir      string
	opt      Options
	log      *slog.Logger
	streamID string
	lock     *os.File
	notify   chan struct{}

	// persistMu serialises writes of the acked file; it is taken before mu.
	persistMu sync.Mutex
	bg        sync.WaitGroup // timer-driven ack persistence and syncs in progress

	mu           sync.Mutex
	closed       bool
	segs         []*segment // oldest first; the last one is active
	active       *os.File
	dirGen       uint64 // bumped when a directory entry is created or removed
	dirSyncedGen uint64 // dirGen at the last directory fsync
	wbuf         []byte
	lastSeq      uint64
	acked        uint64
	bytes        int64
	dropped      uint64
	corrupt      uint64
	cur          cursor
	ackPersisted uint64
	ackWrittenAt time.Time
	ackTimer     *time.Timer
	// syncTimer is armed while something is unsynced and no background
	// sync has yet taken it in hand (see armSyncLocked).
	syncTimer   *time.Timer
	syncs       uint64
	syncFailing bool // the last background sync failed and was logged
}

// Open opens the spool in dir, creating the directory (and a new stream id)
// if needed, and recovers what an earlier process left: damaged segment
// tails are cut at the last good frame and appends continue after the last
// sequence number handed out.
func Open(dir string, opt Options) (*Spool, error) {
	if opt.MaxBytes < 0 || opt.SegmentBytes < 0 || opt.SyncInterval < 0 {
		return nil, fmt.Errorf("open spool %s: MaxBytes, SegmentBytes and SyncInterval must not be negative", dir)
	}
	if opt.SyncInterval == 0 {
		opt.SyncInterval = DefaultSyncInterval
	}
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.SegmentBytes == 0 {
		opt.SegmentBytes = min(DefaultSegmentBytes, max(opt.MaxBytes/4, 1))
	}
	if opt.SegmentBytes > opt.MaxBytes {
		return nil, fmt.Errorf("open spool %s: SegmentBytes %d exceeds MaxBytes %d", dir, opt.SegmentBytes, opt.MaxBytes)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Spool{
		dir:    dir,
		opt:    opt,
		log:    opt.Logger.With("spool", dir),
		notify: make(chan struct{}, 1),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := s.lockDir(); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		s.unlockDir()
		if s.active != nil {
			s.active.Close()
		}
		return nil, err
	}
	// What an earlier process left may still be in the page cache only;
	// the background sync makes it durable without slowing Open down.
	s.mu.Lock()
	s.armSyncLocked()
	s.mu.Unlock()
	return s, nil
}

func (s *Spool) lockDir() error {
	path := filepath.Join(s.dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open spool lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock spool %s: %w", s.dir, ErrLocked)
		}
		return fmt.Errorf("lock spool %s: %w", s.dir, err)
	}
	s.lock = f
	return nil
}

func (s *Spool) unlockDir() {
	if s.lock != nil {
		// Closing the descriptor releases the flock.
		s.lock.Close()
		s.lock = nil
	}
}

// recover loads the stream id and acked seq, scans the segments, cuts
// damaged tails and opens the active segment. Called from Open only.
func (s *Spool) recover() error {
	id, err := s.loadStreamID()
	if err != nil {
		return err
	}
	s.streamID = id
	s.acked = s.loadAcked()
	s.ackPersisted = s.acked

	segs, err := s.listSegments()
	if err != nil {
		return err
	}
	for i, g := range segs {
		// A segment cannot hold sequence numbers its successor starts
		// with; anything past that is damage (or tampering).
		limit := uint64(0)
		if i+1 < len(segs) {
			limit = segs[i+1].first - g.first
		}
		if err := s.recoverSegment(g, limit); err != nil {
			return err
		}
	}
	// Keep non-empty segments and the last one (its name carries the next
	// sequence number even when empty).
	kept := segs[:0]
	for i, g := range segs {
		if g.count == 0 && i != len(segs)-1 {
			if err := os.Remove(g.path); err != nil {
				return fmt.Errorf("remove empty segment %s: %w", g.path, err)
			}
			continue
		}
		kept = append(kept, g)
		s.bytes += g.size
	}
	s.segs = kept

	s.lastSeq = s.acked
	if n := len(s.segs); n > 0 {
		s.lastSeq = max(s.lastSeq, s.segs[n-1].next()-1)
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].next() == s.lastSeq+1 {
		g := s.segs[n-1]
		f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open segment %s: %w", g.path, err)
		}
		s.active = f
	} else if err := s.startSegmentLocked(); err != nil {
		return err
	}
	if err := s.deleteAckedLocked(); err != nil {
		return err
	}
	s.enforceBoundLocked()
	// Directory entries an earlier process made may not be durable yet.
	s.dirGen++
	return nil
}

func (s *Spool) loadStreamID() (string, error) {
	path := filepath.Join(s.dir, streamIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr == nil {
			return id, nil
		}
		// A damaged id file (it is written atomically, so this is
		// tampering or disk damage) gets a new stream id: the collector
		// then sees a new stream, which loses nothing.
		s.log.Warn("spool stream id unreadable, starting a new stream", "path", path)
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read spool stream id %s: %w", path, err)
	}
	id := uuid.NewString()
	if err := fsutil.WriteFileAtomic(s.dir, streamIDFile, []byte(id+"\n"), true); err != nil {
		return "", fmt.Errorf("write spool stream id: %w", err)
	}
	return id, nil
}

func (s *Spool) loadAcked() uint64 {
	path := filepath.Join(s.dir, ackedFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool acked seq unreadable, replaying from the oldest report", "path", path, "err", err)
		}
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// Harmless: the collector drops what it already holds.
		s.log.Warn("spool acked seq unreadable, replaying from the oldest report", "path", path, "err", err)
		return 0
	}
	return v
}

func (s *Spool) listSegments() ([]*segment, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list spool %s: %w", s.dir, err)
	}
	var segs []*segment
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || first == 0 {
			s.log.Warn("spool ignores file with a segment suffix but no valid name", "file", name)
			continue
		}
		segs = append(segs, &segment{first: first, path: filepath.Join(s.dir, name)})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// recoverSegment counts g's good frames (at most limit when limit > 0) and
// truncates the file after the last one.
func (s *Spool) recoverSegment(g *segment, limit uint64) error {
	f, err := os.OpenFile(g.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open segment %s: %w", g.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat segment %s: %w", g.path, err)
	}
	fr := newFrameReader(f, 0, st.Size())
	var off int64
	var badErr error
	for limit == 0 || g.count < limit {
		payload, err := fr.next()
		if errors.Is(err, errEnd) {
			break
		}
		if errors.Is(err, errDamaged) {
			badErr = err
			break
		}
		if err != nil {
			// An I/O error is no reason to cut data.
			return fmt.Errorf("recover segment %s: %w", g.path, err)
		}
		// CRC and sequence number only: unmarshalling every report made
		// recovery of a full spool cost CPU-seconds. Read unmarshals and
		// treats a frame that does not decode like any other damage.
		if seq, ok := payloadSeq(payload); !ok || seq != g.first+g.count {
			badErr = fmt.Errorf("frame at offset %d does not start with seq %d: %w", off, g.first+g.count, errDamaged)
			break
		}
		g.count++
		off = fr.off
	}
	g.valid = g.count
	g.size = off
	if off == st.Size() {
		return nil
	}
	if badErr == nil {
		badErr = fmt.Errorf("frames past seq %d overlap the next segment", g.next()-1)
	}
	s.corrupt++
	s.log.Warn("spool segment damaged, cutting it at the last good frame",
		"segment", g.path, "good_frames", g.count, "good_bytes", off, "cut_bytes", st.Size()-off, "err", badErr)
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("truncate segment %s: %w", g.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync segment %s: %w", g.path, err)
	}
	g.synced = off
	s.syncs++
	return nil
}

// StreamID identifies the spool's sequence space (Hello.stream_id).
func (s *Spool) StreamID() string { return s.streamID }

// Notify is signalled after each successful Append. It has capacity one and
// is never closed: a sender that has read everything waits on it.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Append numbers the reports (setting their Seq: the spool takes ownership
// of them) and writes them to the active segment. Writes reach the page
// cache, not the disk: a killed agent keeps them, and the background sync
// makes them durable within Options.SyncInterval (Sync does at once).
func (s *Spool) Append(reports ...*hwhealv1.Report) error {
	if len(reports) == 0 {
		return nil
	}
	// Marshal without the sequence number and outside the lock: seq is
	// field 1 and a deterministic marshal writes fields in number order, so
	// "tag 1, varint seq" prepended to this body is byte for byte the
	// marshal of the report with its seq set.
	bodies := make([][]byte, len(reports))
	for i, r := range reports {
		if r == nil {
			return fmt.Errorf("append report %d of %d: nil report", i+1, len(reports))
		}
		r.Seq = 0
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			return fmt.Errorf("append report %d of %d: marshal: %w", i+1, len(reports), err)
		}
		if len(b)+1+protowire.SizeVarint(^uint64(0)) > MaxReportBytes {
			return fmt.Errorf("append report %d of %d (%d bytes): %w", i+1, len(reports), len(b), ErrTooLarge)
		}
		bodies[i] = b
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	written := 0 // reports durable in the page cache
	pending := 0 // reports framed in wbuf
	buf := s.wbuf[:0]
	flush := func() error {
		if pending == 0 {
			return nil
		}
		if err := s.writeLocked(buf, pending); err != nil {
			return err
		}
		// The frames just written end at lastSeq.
		first := s.lastSeq - uint64(pending) + 1
		for i, r := range reports[written : written+pending] {
			r.Seq = first + uint64(i)
		}
		written += pending
		pending = 0
		buf = buf[:0]
		return nil
	}
	for _, body := range bodies {
		seq := s.lastSeq + 1 + uint64(pending)
		frame := frameHeaderBytes + 1 + protowire.SizeVarint(seq) + len(body)
		active := s.segs[len(s.segs)-1]
		if used := active.size + int64(len(buf)); used > 0 && used+int64(frame) > s.opt.SegmentBytes {
			if err := flush(); err != nil {
				s.wbuf = buf
				return fmt.Errorf("append to spool %s: wrote %d of %d reports: %w", s.dir, written, len(reports), err)
			}
			if err := s.rollLocked(); err != nil {
				s.wbuf = buf
				return fmt.Errorf("append to spool %s: wrote %d of %d reports: %w", s.dir, written, len(reports), err)
			}
		}
		buf = appendFrame(buf, seq, body)
		pending++
	}
	err := flush()
	s.wbuf = buf[:0]
	if written > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
		s.enforceBoundLocked()
		s.armSyncLocked()
	}
	if err != nil {
		return fmt.Errorf("append to spool %s: wrote %d of %d reports: %w", s.dir, written, len(reports), err)
	}
	return nil
}

func appendFrame(buf []byte, seq uint64, body []byte) []byte {
	n := 1 + protowire.SizeVarint(seq) + len(body)
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(n))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // CRC, filled below
	buf = protowire.AppendTag(buf, 1, protowire.VarintType)
	buf = protowire.AppendVarint(buf, seq)
	buf = append(buf, body...)
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+frameHeaderBytes:], castagnoli))
	return buf
}

// writeLocked appends n frames held in buf to the active segment. On a
// failed or short write the segment is cut back so it never ends in a
// partial frame that later appends would bury.
func (s *Spool) writeLocked(buf []byte, n int) error {
	g := s.segs[len(s.segs)-1]
	if _, err := s.active.Write(buf); err != nil {
		if terr := s.active.Truncate(g.size); terr != nil {
			// The segment now ends in a partial frame; recovery will cut it.
			s.log.Error("spool cannot cut back a failed write", "segment", g.path, "err", terr)
		}
		return fmt.Errorf("write segment %s: %w", g.path, err)
	}
	g.size += int64(len(buf))
	g.count += uint64(n)
	g.valid += uint64(n)
	s.bytes += int64(len(buf))
	s.lastSeq += uint64(n)
	return nil
}

// rollLocked closes the active segment and starts the next. It does not
// fsync: it runs inside Append, under the lock, and the background sync
// covers every segment, not only the active one.
func (s *Spool) rollLocked() error {
	g := s.segs[len(s.segs)-1]
	if err := s.active.Close(); err != nil {
		return fmt.Errorf("close segment %s: %w", g.path, err)
	}
	s.active = nil
	return s.startSegmentLocked()
}

func (s *Spool) startSegmentLocked() error {
	f, g, err := s.createSegment(s.lastSeq + 1)
	if err != nil {
		return err
	}
	s.active = f
	s.segs = append(s.segs, g)
	s.dirGen++
	return nil
}

// createSegment creates (or empties) the segment file for first.
func (s *Spool) createSegment(first uint64) (*os.File, *segment, error) {
	path := filepath.Join(s.dir, fmt.Sprintf("%0*d%s", segmentNameDigits, first, segmentSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	return f, &segment{first: first, path: path}, nil
}

// SkipTo makes the next Append number its first report seq+1, durably:
// it starts a new, empty segment named seq+1, and recovery takes the next
// sequence number from the newest segment's name. A seq at or below
// LastSeq changes nothing.
//
// It is for a collector that holds sequence numbers of this stream the
// spool has not handed out yet (the state directory was restored from a
// snapshot, or segments were deleted by hand): without the skip, new
// reports numbered up to the collector's mark would be dropped there as
// duplicates. Reports already held keep their numbers; the collector takes
// those at or below its mark for ones it holds, which after a restored
// snapshot they are.
func (s *Spool) SkipTo(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if seq <= s.lastSeq {
		return nil
	}
	if seq == math.MaxUint64 {
		return fmt.Errorf("skip spool %s to seq %d: no sequence number is left after it", s.dir, seq)
	}
	// The new segment is created before the old one is let go, so that if
	// it cannot be created the spool is left as it was.
	f, g, err := s.createSegment(seq + 1)
	if err != nil {
		return fmt.Errorf("skip spool %s to seq %d: %w", s.dir, seq, err)
	}
	old := s.segs[len(s.segs)-1]
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			s.log.Warn("spool cannot close segment", "segment", old.path, "err", err)
		}
	}
	if old.count == 0 {
		// An empty segment only carried the next seq in its name, which
		// the new one now carries. Recovery would remove it anyway.
		if err := os.Remove(old.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool cannot remove empty segment", "segment", old.path, "err", err)
		} else {
			s.segs = s.segs[:len(s.segs)-1]
		}
	}
	s.active = f
	s.segs = append(s.segs, g)
	s.dirGen++
	s.lastSeq = seq
	// Durable before returning: reports appended after the skip must not
	// come back after a power cut with their old numbers. Rare, so the
	// fsync under the lock is fine.
	if err := s.syncLocked(); err != nil {
		return fmt.Errorf("skip spool %s to seq %d: %w", s.dir, seq, err)
	}
	return nil
}

// enforceBoundLocked drops the oldest segments while the spool is over
// MaxBytes. The active segment is never dropped.
//
// Dropping is by age only. A later refinement may prefer to keep faults
// over observations (e.g. rewrite the oldest segment without its
// observations before dropping it whole).
func (s *Spool) enforceBoundLocked() {
	for s.bytes > s.opt.MaxBytes && len(s.segs) > 1 {
		g := s.segs[0]
		lost := uint64(0)
		if last := g.first + g.valid - 1; g.valid > 0 && last > s.acked {
			lost = last - max(s.acked, g.first-1)
		}
		if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("spool cannot drop segment over its bound", "segment", g.path, "err", err)
			return
		}
		s.segs = s.segs[1:]
		s.bytes -= g.size
		s.dropped += lost
		s.dirGen++
		s.log.Warn("spool over its bound, dropped oldest segment",
			"segment", g.path, "dropped_reports", lost, "first_seq", g.first, "last_seq", g.next()-1,
			"max_bytes", s.opt.MaxBytes)
	}
}

// deleteAckedLocked removes segments (never the active one) whose reports
// are all acknowledged.
func (s *Spool) deleteAckedLocked() error {
	for len(s.segs) > 1 && s.segs[0].next()-1 <= s.acked {
		g := s.segs[0]
		if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove acknowledged segment %s: %w", g.path, err)
		}
		s.segs = s.segs[1:]
		s.bytes -= g.size
		s.dirGen++
	}
	return nil
}

// Ack records that every report up to and including seq is delivered.
// A seq beyond LastSeq is clamped to it; one at or below Acked is ignored.
// The acked seq reaches disk at most every 100 ms (and on Sync and Close):
// losing the last few acks in a crash only means resending reports the
// collector drops as duplicates.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	seq = min(seq, s.lastSeq)
	if seq <= s.acked {
		s.mu.Unlock()
		return nil
	}
	s.acked = seq
	err := s.deleteAckedLocked()
	since := time.Since(s.ackWrittenAt)
	now := since >= ackPersistInterval
	if !now && s.ackTimer == nil {
		s.ackTimer = time.AfterFunc(ackPersistInterval-since, s.ackTimerFired)
	}
	s.mu.Unlock()
	if now {
		err = errors.Join(err, s.persistAck())
	}
	return err
}

func (s *Spool) ackTimerFired() {
	s.mu.Lock()
	s.ackTimer = nil
	if s.closed {
		s.mu.Unlock()
		return
	}
	// Added under mu before Close can set closed, so Close's Wait covers it.
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.bg.Done()
	if err := s.persistAck(); err != nil {
		s.log.Warn("spool cannot persist acked seq", "err", err)
	}
}

func (s *Spool) persistAck() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	v := s.acked
	done := v == s.ackPersisted
	s.mu.Unlock()
	if done {
		return nil
	}
	if err := fsutil.WriteFileAtomic(s.dir, ackedFile, []byte(strconv.FormatUint(v, 10)+"\n"), false); err != nil {
		return fmt.Errorf("persist acked seq: %w", err)
	}
	s.mu.Lock()
	s.ackPersisted = v
	s.ackWrittenAt = time.Now()
	s.mu.Unlock()
	return nil
}

// Acked is the highest acknowledged sequence number.
func (s *Spool) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// LastSeq is the highest sequence number handed out; it survives restarts.
func (s *Spool) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}

// Stats returns a snapshot of the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Counted per segment: numbers between segments (a skip, a cut tail)
	// are not reports.
	var pending uint64
	var unsynced int64
	for _, g := range s.segs {
		if from, end := max(g.first, s.acked+1), g.first+g.valid; end > from {
			pending += end - from
		}
		unsynced += max(g.size-g.synced, 0)
	}
	return Stats{
		Pending:  pending,
		Bytes:    s.bytes,
		Segments: len(s.segs),
		Dropped:  s.dropped,
		Corrupt:  s.corrupt,
		Syncs:    s.syncs,
		Unsynced: unsynced,
	}
}

// Sync makes everything appended and acknowledged so far durable.
func (s *Spool) Sync() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	err := s.syncLocked()
	s.mu.Unlock()
	return errors.Join(err, s.persistAck())
}

func (s *Spool) syncLocked() error {
	for i, g := range s.segs {
		if g.synced >= g.size {
			continue
		}
		var err error
		if i == len(s.segs)-1 && s.active != nil {
			err = s.active.Sync()
		} else {
			err = syncFile(g.path)
		}
		if err != nil {
			return fmt.Errorf("sync segment %s: %w", g.path, err)
		}
		g.synced = g.size
		s.syncs++
	}
	if s.dirGen != s.dirSyncedGen {
		if err := fsutil.SyncDir(s.dir); err != nil {
			return err
		}
		s.dirSyncedGen = s.dirGen
	}
	return nil
}

// Close syncs and releases the directory. Further calls fail with
// ErrClosed (Close itself returns nil again).
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.ackTimer != nil {
		s.ackTimer.Stop()
		s.ackTimer = nil
	}
	if s.syncTimer != nil {
		s.syncTimer.Stop()
		s.syncTimer = nil
	}
	s.mu.Unlock()
	s.bg.Wait()

	err := s.persistAck()
	s.mu.Lock()
	s.dirGen++ // the acked file's rename
	err = errors.Join(err, s.syncLocked())
	if cerr := s.active.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close active segment: %w", cerr))
	}
	s.mu.Unlock()
	s.unlockDir()
	if err != nil {
		return fmt.Errorf("close spool %s: %w", s.dir, err)
	}
	return nil
}

// armSyncLocked arms the background sync unless it is armed already. It is
// called after every append that wrote something, and the timer is
// disarmed in the same critical section in which the sync takes its plan,
// so every append is covered either by a pending timer or by a plan taken
// after it: nothing stays unsynced for much longer than SyncInterval.
func (s *Spool) armSyncLocked() {
	if s.syncTimer == nil && !s.closed {
		s.syncTimer = time.AfterFunc(s.opt.SyncInterval, s.backgroundSync)
	}
}

// backgroundSync fsyncs the segments and the directory entries that are
// not known to be durable. The fsyncs run outside mu, through descriptors
// of their own, so that Append does not wait for the disk.
func (s *Spool) backgroundSync() {
	s.mu.Lock()
	s.syncTimer = nil
	if s.closed {
		s.mu.Unlock()
		return
	}
	var plans []readPlan
	for _, g := range s.segs {
		if g.size > g.synced {
			plans = append(plans, readPlan{first: g.first, size: g.size, synced: g.synced, path: g.path})
		}
	}
	dirGen := s.dirGen
	dirSynced := s.dirSyncedGen >= dirGen
	// Added under mu before Close can set closed, so Close's Wait covers it.
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.bg.Done()

	var err error
	for _, p := range plans {
		f, oerr := os.Open(p.path)
		if errors.Is(oerr, os.ErrNotExist) {
			continue // deleted since (acknowledged or dropped): nothing to keep
		}
		if oerr != nil {
			err = errors.Join(err, fmt.Errorf("open segment %s: %w", p.path, oerr))
			continue
		}
		err = errors.Join(err, s.syncSegment(f, p))
		f.Close()
	}
	if !dirSynced {
		err = errors.Join(err, s.syncDirGen(dirGen))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Try again later. Logged once per run of failures: a dying disk
		// would otherwise log every interval.
		if !s.syncFailing {
			s.log.Error("spool background sync failed, reports appended recently may not survive a power cut", "err", err)
			s.syncFailing = true
		}
		s.armSyncLocked()
		return
	}
	if s.syncFailing {
		s.log.Info("spool background sync works again")
		s.syncFailing = false
	}
}

// syncDirGen fsyncs the directory and records that the entries of
// generation gen are durable.
func (s *Spool) syncDirGen(gen uint64) error {
	if err := fsutil.SyncDir(s.dir); err != nil {
		return err
	}
	s.mu.Lock()
	s.dirSyncedGen = max(s.dirSyncedGen, gen)
	s.mu.Unlock()
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
