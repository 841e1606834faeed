package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var (
	// errEnd is a clean end of a segment's frames.
	errEnd = errors.New("end of segment")
	// errDamaged marks a frame that is torn or corrupt (as opposed to an
	// I/O error, which must not make the spool cut data).
	errDamaged = errors.New("damaged frame")
)

// frameReader walks the frames of one segment between two offsets.
type frameReader struct {
	br  *bufio.Reader
	off int64 // offset just past the last frame returned or skipped
	end int64
	hdr [frameHeaderBytes]byte
	buf []byte
}

func newFrameReader(f io.ReaderAt, off, end int64) *frameReader {
	return &frameReader{
		br:  bufio.NewReaderSize(io.NewSectionReader(f, off, end-off), 64<<10),
		off: off,
		end: end,
	}
}

// header reads and checks a frame header, returning the payload length.
func (fr *frameReader) header() (int, error) {
	if fr.off == fr.end {
		return 0, errEnd
	}
	if fr.end-fr.off < frameHeaderBytes {
		return 0, fmt.Errorf("partial frame header at offset %d: %w", fr.off, errDamaged)
	}
	if _, err := io.ReadFull(fr.br, fr.hdr[:]); err != nil {
		return 0, fmt.Errorf("read frame header at offset %d: %w", fr.off, err)
	}
	n := binary.LittleEndian.Uint32(fr.hdr[:4])
	if n == 0 || n > MaxReportBytes {
		return 0, fmt.Errorf("frame at offset %d has length %d: %w", fr.off, n, errDamaged)
	}
	if int64(n) > fr.end-fr.off-frameHeaderBytes {
		return 0, fmt.Errorf("partial frame at offset %d (length %d, %d bytes left): %w",
			fr.off, n, fr.end-fr.off-frameHeaderBytes, errDamaged)
	}
	return int(n), nil
}

// next returns the next frame's payload, valid until the following call.
func (fr *frameReader) next() ([]byte, error) {
	n, err := fr.header()
	if err != nil {
		return nil, err
	}
	if cap(fr.buf) < n {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.br, p); err != nil {
		return nil, fmt.Errorf("read frame at offset %d: %w", fr.off, err)
	}
	if got, want := crc32.Checksum(p, castagnoli), binary.LittleEndian.Uint32(fr.hdr[4:]); got != want {
		return nil, fmt.Errorf("frame at offset %d: CRC %08x, header says %08x: %w", fr.off, got, want, errDamaged)
	}
	fr.off += frameHeaderBytes + int64(n)
	return p, nil
}

// skip passes over one frame without checking it.
func (fr *frameReader) skip() error {
	n, err := fr.header()
	if err != nil {
		return err
	}
	if _, err := fr.br.Discard(n); err != nil {
		return fmt.Errorf("skip frame at offset %d: %w", fr.off, err)
	}
	fr.off += frameHeaderBytes + int64(n)
	return nil
}

// payloadSeq reads the sequence number the spool writes at the start of
// every payload (field 1, varint).
func payloadSeq(p []byte) (uint64, bool) {
	num, typ, n := protowire.ConsumeTag(p)
	if n < 0 || num != 1 || typ != protowire.VarintType {
		return 0, false
	}
	v, m := protowire.ConsumeVarint(p[n:])
	return v, m > 0
}

// decodeReport unmarshals a payload into r and checks it carries wantSeq.
func decodeReport(payload []byte, wantSeq uint64, r *hwhealv1.Report) error {
	if err := proto.Unmarshal(payload, r); err != nil {
		return fmt.Errorf("frame of seq %d: %v: %w", wantSeq, err, errDamaged)
	}
	if r.GetSeq() != wantSeq {
		return fmt.Errorf("frame of seq %d holds seq %d: %w", wantSeq, r.GetSeq(), errDamaged)
	}
	return nil
}

type readPlan struct {
	first, valid uint64
	size, synced int64
	path         string
}

// Read returns reports with seq >= from in order, at most maxReports of
// them and at most maxBytes of marshalled reports (a limit <= 0 is no
// limit; at least one report is returned if any is available). When from
// was dropped or deleted, reading starts at the oldest report held. An
// empty result means there is nothing at or after from yet.
//
// Read makes what it returns durable first (fsync of the segment and, when
// entries changed, of the directory). Reports are read to be sent, and once
// the collector may hold a sequence number a power cut must not let the
// spool hand that number out again to a different report. Append stays
// cheap; the cost is one fsync per batch sent, not per report.
//
// The disk is read and synced outside the spool's lock, so a slow disk
// does not hold up Append.
func (s *Spool) Read(from uint64, maxReports, maxBytes int) ([]*hwhealv1.Report, error) {
	// A damaged frame is cut from what is readable and reading goes on
	// after it; retry a few times so a caller is not told "nothing there"
	// when only damage was met.
	for range 3 {
		out, damaged, err := s.readOnce(from, maxReports, maxBytes)
		if err != nil || len(out) > 0 || !damaged {
			return out, err
		}
	}
	return nil, nil
}

func (s *Spool) readOnce(from uint64, maxReports, maxBytes int) (out []*hwhealv1.Report, damaged bool, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false, ErrClosed
	}
	from = max(from, 1)
	// first+valid is increasing along segs, so the first segment with a
	// readable seq >= from is found by binary search.
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].first+s.segs[i].valid > from })
	var plans []readPlan
	for _, g := range s.segs[i:] {
		if g.valid > 0 {
			plans = append(plans, readPlan{first: g.first, valid: g.valid, size: g.size, synced: g.synced, path: g.path})
		}
	}
	if len(plans) == 0 {
		s.mu.Unlock()
		return nil, false, nil
	}
	seq := max(from, plans[0].first)
	var off int64
	skip := seq - plans[0].first
	if s.cur.seq == seq && s.cur.segFirst == plans[0].first {
		off, skip = s.cur.off, 0
	}
	// Opened under the lock so Ack cannot delete it first; later segments
	// may vanish meanwhile, which only ends this read early.
	f, err := os.Open(plans[0].path)
	dirGen := s.dirGen
	dirSynced := s.dirSyncedGen >= dirGen
	s.mu.Unlock()
	if err != nil {
		return nil, false, fmt.Errorf("read spool: open segment %s: %w", plans[0].path, err)
	}
	if !dirSynced {
		if err := s.syncDirGen(dirGen); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("read spool: %w", err)
		}
	}

	var (
		bytes   int
		lastSeg uint64
		lastOff int64
		full    bool
	)
	for pi, p := range plans {
		if pi > 0 {
			f, err = os.Open(p.path)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err != nil {
				return out, damaged, fmt.Errorf("read spool: open segment %s: %w", p.path, err)
			}
			seq, off, skip = p.first, 0, 0
		} else {
			seq -= skip
		}
		if p.size > p.synced {
			if err := s.syncSegment(f, p); err != nil {
				f.Close()
				if len(out) > 0 {
					break // what we have is durable
				}
				return nil, damaged, fmt.Errorf("read spool: %w", err)
			}
		}
		fr := newFrameReader(f, off, p.size)
		var ferr error
		for ; skip > 0 && ferr == nil; skip-- {
			if ferr = fr.skip(); ferr == nil {
				seq++
			}
		}
		for ferr == nil && seq < p.first+p.valid {
			if maxReports > 0 && len(out) >= maxReports {
				full = true
				break
			}
			var payload []byte
			if payload, ferr = fr.next(); ferr != nil {
				break
			}
			if maxBytes > 0 && len(out) > 0 && bytes+len(payload) > maxBytes {
				full = true
				break
			}
			r := new(hwhealv1.Report)
			if ferr = decodeReport(payload, seq, r); ferr != nil {
				break
			}
			out = append(out, r)
			bytes += len(payload)
			seq++
			lastSeg, lastOff = p.first, fr.off
		}
		f.Close()
		if ferr != nil {
			if !errors.Is(ferr, errDamaged) && !errors.Is(ferr, errEnd) {
				return out, damaged, fmt.Errorf("read spool segment %s: %w", p.path, ferr)
			}
			s.markDamaged(p.first, seq, ferr)
			damaged = true
		}
		if full {
			break
		}
	}
	if len(out) > 0 {
		s.mu.Lock()
		s.cur = cursor{seq: out[len(out)-1].Seq + 1, segFirst: lastSeg, off: lastOff}
		s.mu.Unlock()
	}
	return out, damaged, nil
}

// syncSegment fsyncs a segment through a descriptor of the caller's (any
// descriptor of the file will do) and records how far it is durable.
func (s *Spool) syncSegment(f *os.File, p readPlan) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync segment %s: %w", p.path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	for _, g := range s.segs {
		if g.first == p.first {
			g.synced = max(g.synced, p.size)
			break
		}
	}
	return nil
}

// markDamaged makes the frames of segment segFirst from seq on unreadable:
// they were damaged on disk after recovery. If it is the active segment a
// new one is started so that new reports are not written behind the damage.
func (s *Spool) markDamaged(segFirst, seq uint64, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.segs {
		if g.first != segFirst {
			continue
		}
		idx := seq - g.first
		if idx >= g.valid {
			return // another reader got here first
		}
		lost := g.valid - idx
		g.valid = idx
		s.corrupt++
		s.log.Warn("spool segment damaged, skipping the rest of it",
			"segment", g.path, "first_lost_seq", seq, "lost_reports", lost, "err", cause)
		if i == len(s.segs)-1 && !s.closed {
			if err := s.rollLocked(); err != nil {
				s.log.Error("spool cannot start a segment after damage", "err", err)
			}
		}
		return
	}
}
