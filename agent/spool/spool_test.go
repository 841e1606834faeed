package spool

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// obs builds a small observation report that carries i, so tests can tell
// reports apart independently of the sequence number the spool assigns.
func obs(i int) *hwhealv1.Report {
	return &hwhealv1.Report{Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
		Source:  "test",
		Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda"},
		Samples: []*hwhealv1.Sample{{Name: "i", Value: float64(i)}},
	}}}
}

func val(r *hwhealv1.Report) int {
	return int(r.GetObservation().GetSamples()[0].GetValue())
}

func openT(t testing.TB, dir string, opt Options) *Spool {
	t.Helper()
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t testing.TB, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(obs(i)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
}

func readAll(t testing.TB, s *Spool, from uint64) []*hwhealv1.Report {
	t.Helper()
	got, err := s.Read(from, 0, 0)
	if err != nil {
		t.Fatalf("Read(%d): %v", from, err)
	}
	return got
}

func seqs(rs []*hwhealv1.Report) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.GetSeq()
	}
	return out
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestAppendReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := uuid.Parse(s.StreamID()); err != nil {
		t.Fatalf("StreamID %q is not a uuid: %v", s.StreamID(), err)
	}
	if s.LastSeq() != 0 || s.Acked() != 0 {
		t.Fatalf("new spool: LastSeq %d Acked %d, want 0 0", s.LastSeq(), s.Acked())
	}
	var all []*hwhealv1.Report
	for _, n := range []int{1, 4, 5} {
		batch := make([]*hwhealv1.Report, n)
		for i := range batch {
			batch[i] = obs(len(all) + i + 1)
		}
		if err := s.Append(batch...); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	for i, r := range all {
		if r.Seq != uint64(i+1) {
			t.Fatalf("report %d got seq %d, want %d", i, r.Seq, i+1)
		}
	}
	got := readAll(t, s, 1)
	if len(got) != 10 {
		t.Fatalf("Read(1) returned %d reports, want 10", len(got))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || val(r) != i+1 {
			t.Fatalf("report %d: seq %d value %d, want %d %d", i, r.Seq, val(r), i+1, i+1)
		}
	}
	got, err := s.Read(4, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != "[4 5 6]" {
		t.Fatalf("Read(4, 3) = %v, want [4 5 6]", seqs(got))
	}
	if got := readAll(t, s, 11); len(got) != 0 {
		t.Fatalf("Read past the end returned %v", seqs(got))
	}
	if err := s.Ack(6); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); s.Acked() != 6 || st.Pending != 4 {
		t.Fatalf("after Ack(6): Acked %d Pending %d, want 6 4", s.Acked(), st.Pending)
	}
	id := s.StreamID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(obs(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	s = openT(t, dir, Options{})
	if s.StreamID() != id || s.LastSeq() != 10 || s.Acked() != 6 {
		t.Fatalf("reopened: id %s LastSeq %d Acked %d, want %s 10 6", s.StreamID(), s.LastSeq(), s.Acked(), id)
	}
	if got := readAll(t, s, 7); fmt.Sprint(seqs(got)) != "[7 8 9 10]" {
		t.Fatalf("reopened Read(7) = %v", seqs(got))
	}
	r := obs(11)
	if err := s.Append(r); err != nil {
		t.Fatal(err)
	}
	if r.Seq != 11 {
		t.Fatalf("append after reopen got seq %d, want 11", r.Seq)
	}
}

func TestReadLimits(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 300}) // several segments
	appendN(t, s, 1, 50)
	one, err := s.Read(1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// All test reports have the same size; the payload is the report's
	// marshalled form.
	size := proto.Size(one[0])
	tests := []struct {
		name                string
		from                uint64
		maxReports, maxByte int
		want                string
	}{
		{"count", 3, 4, 0, "[3 4 5 6]"},
		{"bytes", 10, 0, 3 * size, "[10 11 12]"},
		{"bytes just under three", 10, 0, 3*size - 1, "[10 11]"},
		{"smaller of both", 1, 2, 10 * size, "[1 2]"},
		{"one report even when it is over maxBytes", 7, 0, 1, "[7]"},
		{"from zero is from one", 0, 2, 0, "[1 2]"},
		{"tail", 48, 10, 0, "[48 49 50]"},
		{"past the end", 51, 10, 0, "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Read(tc.from, tc.maxReports, tc.maxByte)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seqs(got)) != tc.want {
				t.Fatalf("Read(%d, %d, %d) = %v, want %s", tc.from, tc.maxReports, tc.maxByte, seqs(got), tc.want)
			}
		})
	}
}

// TestReadSequential reads the way the transport does (from the end of the
// last batch), across segment boundaries and while appends continue, and
// also jumps back, which must not be confused by the read cursor.
func TestReadSequential(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 500})
	appendN(t, s, 1, 100)
	var got []uint64
	next := uint64(1)
	for i := 0; ; i++ {
		if i == 5 {
			appendN(t, s, 101, 20) // live appends during the replay
		}
		b, err := s.Read(next, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break
		}
		for _, r := range b {
			if val(r) != int(r.Seq) {
				t.Fatalf("seq %d carries value %d", r.Seq, val(r))
			}
			got = append(got, r.Seq)
		}
		next = b[len(b)-1].Seq + 1
	}
	if len(got) != 120 || got[0] != 1 || got[119] != 120 {
		t.Fatalf("sequential read got %d reports (%v ... ), want 1..120", len(got), got[:min(5, len(got))])
	}
	for i, q := range got {
		if q != uint64(i+1) {
			t.Fatalf("sequential read out of order at %d: %d", i, q)
		}
	}
	if b, _ := s.Read(3, 2, 0); fmt.Sprint(seqs(b)) != "[3 4]" {
		t.Fatalf("Read back at 3 = %v", seqs(b))
	}
}

func TestAckDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024})
	appendN(t, s, 1, 200)
	before := segFiles(t, dir)
	if len(before) < 4 {
		t.Fatalf("want several segments for this test, got %d", len(before))
	}
	if err := s.Ack(100); err != nil {
		t.Fatal(err)
	}
	after := segFiles(t, dir)
	if len(after) >= len(before) {
		t.Fatalf("Ack(100) deleted nothing: %d segments before, %d after", len(before), len(after))
	}
	// The oldest remaining segment must still hold a report past the ack:
	// whole acked segments go, partly acked ones stay.
	first, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(after[0]), segmentSuffix), 10, 64)
	if first > 101 {
		t.Fatalf("oldest remaining segment starts at %d: seq 101 was deleted before it was acked", first)
	}
	if len(after) > 1 {
		second, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(after[1]), segmentSuffix), 10, 64)
		if second <= 101 {
			t.Fatalf("segment %s is wholly acked but was kept", after[0])
		}
	}
	got := readAll(t, s, 1)
	if got[0].Seq != first || got[len(got)-1].Seq != 200 {
		t.Fatalf("Read(1) after deletion: %d..%d, want %d..200", got[0].Seq, got[len(got)-1].Seq, first)
	}
	checkBytes(t, s, dir)

	if err := s.Ack(200); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 || s.Stats().Segments != 1 {
		t.Fatalf("everything acked: %d segment files (Stats says %d), want only the active one", n, s.Stats().Segments)
	}
	if st := s.Stats(); st.Pending != 0 {
		t.Fatalf("everything acked: Pending %d", st.Pending)
	}
	checkBytes(t, s, dir)
}

// checkBytes compares Stats().Bytes with the segment files on disk.
func checkBytes(t *testing.T, s *Spool, dir string) {
	t.Helper()
	var total int64
	for _, p := range segFiles(t, dir) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if st := s.Stats(); st.Bytes != total || st.Segments != len(segFiles(t, dir)) {
		t.Fatalf("Stats says %d bytes in %d segments, disk has %d bytes in %d", st.Bytes, st.Segments, total, len(segFiles(t, dir)))
	}
}

func TestAckClampIgnoreAndPersist(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendN(t, s, 1, 5)
	tests := []struct {
		ack, want uint64
	}{
		{2, 2},
		{1, 2},    // below: ignored
		{1000, 5}, // beyond LastSeq: clamped
		{3, 5},
	}
	for _, tc := range tests {
		if err := s.Ack(tc.ack); err != nil {
			t.Fatal(err)
		}
		if s.Acked() != tc.want {
			t.Fatalf("Ack(%d): Acked %d, want %d", tc.ack, s.Acked(), tc.want)
		}
	}
	// The first ack was written at once; the later ones within 100 ms are
	// written by the timer, without Close or Sync.
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, ackedFile))
		if strings.TrimSpace(string(b)) == "5" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acked file holds %q, want 5 within the persistence interval", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBoundDropsOldest(t *testing.T) {
	tests := []struct {
		name  string
		acked uint64 // acknowledged after the first 100 reports
	}{
		{"nothing acked", 0},
		{"partly acked", 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs bytes.Buffer
			const maxBytes = 8 << 10
			s := openT(t, dir, Options{
				MaxBytes:     maxBytes,
				SegmentBytes: 1 << 10,
				Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
			})
			appendN(t, s, 1, 100)
			if st := s.Stats(); st.Dropped != 0 {
				t.Fatalf("100 small reports already dropped %d", st.Dropped)
			}
			if err := s.Ack(tc.acked); err != nil {
				t.Fatal(err)
			}
			appendN(t, s, 101, 900)
			st := s.Stats()
			if st.Bytes > maxBytes {
				t.Fatalf("spool holds %d bytes, bound is %d", st.Bytes, maxBytes)
			}
			got := readAll(t, s, 1)
			oldest := got[0].Seq
			if oldest <= tc.acked+1 {
				t.Fatalf("nothing dropped: oldest seq %d", oldest)
			}
			if want := oldest - 1 - tc.acked; st.Dropped != want {
				t.Fatalf("Dropped %d, want %d (oldest held %d, acked %d)", st.Dropped, want, oldest, tc.acked)
			}
			if want := uint64(1000) - (oldest - 1); st.Pending != want {
				t.Fatalf("Pending %d, want %d", st.Pending, want)
			}
			for i, r := range got {
				if r.Seq != oldest+uint64(i) || val(r) != int(r.Seq) {
					t.Fatalf("after drops, report %d has seq %d value %d", i, r.Seq, val(r))
				}
			}
			if got[len(got)-1].Seq != 1000 {
				t.Fatalf("newest report %d, want 1000", got[len(got)-1].Seq)
			}
			if !strings.Contains(logs.String(), "dropped oldest segment") {
				t.Fatalf("no warning logged for the drop; log: %s", logs.String())
			}
			checkBytes(t, s, dir)
		})
	}
}

// writeSpool makes a closed spool with n reports in one segment and returns
// the segment's path and each frame's end offset.
func writeSpool(t *testing.T, dir string, n int) (string, []int64) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for i := 1; i <= n; i++ {
		if err := s.Append(obs(i)); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, s.Stats().Bytes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("want one segment, got %v", segs)
	}
	return segs[0], ends
}

func TestTornTail(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string, ends []int64)
		want    int  // reports left
		corrupt bool // whether recovery must count damage
	}{
		{"intact", func(*testing.T, string, []int64) {}, 20, false},
		{"cut inside the last header", func(t *testing.T, p string, e []int64) { truncate(t, p, e[18]+3) }, 19, true},
		{"cut inside the last payload", func(t *testing.T, p string, e []int64) { truncate(t, p, e[19]-2) }, 19, true},
		{"cut at a frame boundary", func(t *testing.T, p string, e []int64) { truncate(t, p, e[14]) }, 15, false},
		{"garbage appended", func(t *testing.T, p string, _ []int64) {
			appendBytes(t, p, []byte("\x17garbage from a crash, not a frame"))
		}, 20, true},
		{"zeros appended", func(t *testing.T, p string, _ []int64) { appendBytes(t, p, make([]byte, 4096)) }, 20, true},
		{"huge length appended", func(t *testing.T, p string, _ []int64) {
			appendBytes(t, p, []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5})
		}, 20, true},
		{"last payload flipped", func(t *testing.T, p string, e []int64) { flip(t, p, e[19]-1) }, 19, true},
		{"tenth frame flipped", func(t *testing.T, p string, e []int64) { flip(t, p, e[9]-3) }, 9, true},
		{"tenth CRC flipped", func(t *testing.T, p string, e []int64) { flip(t, p, e[8]+5) }, 9, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, ends := writeSpool(t, dir, 20)
			tc.damage(t, path, ends)

			s := openT(t, dir, Options{})
			if got := s.LastSeq(); got != uint64(tc.want) {
				t.Fatalf("LastSeq %d, want %d", got, tc.want)
			}
			if got := s.Stats().Corrupt; got != map[bool]uint64{false: 0, true: 1}[tc.corrupt] {
				t.Fatalf("Corrupt %d, want damage counted: %v", got, tc.corrupt)
			}
			got := readAll(t, s, 1)
			if len(got) != tc.want {
				t.Fatalf("read %d reports, want %d", len(got), tc.want)
			}
			for i, r := range got {
				if r.Seq != uint64(i+1) || val(r) != i+1 {
					t.Fatalf("report %d: seq %d value %d", i, r.Seq, val(r))
				}
			}
			if tc.want > 0 {
				if st, _ := os.Stat(path); st.Size() != ends[tc.want-1] {
					t.Fatalf("segment is %d bytes after recovery, want it cut to %d", st.Size(), ends[tc.want-1])
				}
			}
			r := obs(tc.want + 1)
			if err := s.Append(r); err != nil {
				t.Fatal(err)
			}
			if r.Seq != uint64(tc.want+1) {
				t.Fatalf("append after recovery got seq %d, want %d", r.Seq, tc.want+1)
			}
			s.Close()

			s = openT(t, dir, Options{})
			if s.Stats().Corrupt != 0 || s.LastSeq() != uint64(tc.want+1) {
				t.Fatalf("second reopen: Corrupt %d LastSeq %d, want 0 %d", s.Stats().Corrupt, s.LastSeq(), tc.want+1)
			}
			if got := readAll(t, s, 1); len(got) != tc.want+1 || val(got[tc.want]) != tc.want+1 {
				t.Fatalf("second reopen read %d reports", len(got))
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamageAfterOpen damages frames on disk while the spool is open: reads
// skip the damaged rest of that segment, count it, and go on.
func TestDamageAfterOpen(t *testing.T) {
	t.Run("older segment", func(t *testing.T) {
		dir := t.TempDir()
		s := openT(t, dir, Options{SegmentBytes: 1024})
		appendN(t, s, 1, 100)
		segs := segFiles(t, dir)
		if len(segs) < 3 {
			t.Fatalf("want at least 3 segments, got %d", len(segs))
		}
		st, _ := os.Stat(segs[1])
		flip(t, segs[1], st.Size()/2)
		got := readAll(t, s, 1)
		if s.Stats().Corrupt != 1 {
			t.Fatalf("Corrupt %d, want 1", s.Stats().Corrupt)
		}
		if len(got) >= 100 || got[len(got)-1].Seq != 100 {
			t.Fatalf("read %d reports ending at %d: want a gap and the rest through 100", len(got), got[len(got)-1].Seq)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq || val(got[i]) != int(got[i].Seq) {
				t.Fatalf("report %d: seq %d after %d, value %d", i, got[i].Seq, got[i-1].Seq, val(got[i]))
			}
		}
	})
	t.Run("active segment", func(t *testing.T) {
		dir := t.TempDir()
		s := openT(t, dir, Options{})
		appendN(t, s, 1, 10)
		seg := segFiles(t, dir)[0]
		flip(t, seg, 20) // inside the first frame
		if got := readAll(t, s, 1); len(got) != 0 {
			t.Fatalf("read %v from a segment damaged at its first frame", seqs(got))
		}
		// New reports must land somewhere readable.
		appendN(t, s, 11, 3)
		if got := readAll(t, s, 1); fmt.Sprint(seqs(got)) != "[11 12 13]" {
			t.Fatalf("after damage to the active segment, read %v, want [11 12 13]", seqs(got))
		}
	})
}

func TestConcurrentAppend(t *testing.T) {
	const writers, each = 8, 400
	s := openT(t, t.TempDir(), Options{SegmentBytes: 16 << 10})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				if i%10 == 0 { // mix single and batched appends
					if err := s.Append(obs(w*each+i), obs(w*each+i+1)); err != nil {
						t.Error(err)
						return
					}
					i++
					continue
				}
				if err := s.Append(obs(w*each + i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A reader follows the writers the way the transport does.
	seen := make(map[int]bool)
	next := uint64(1)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		b, err := s.Read(next, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b {
			if r.Seq != next {
				t.Fatalf("reader got seq %d, want %d", r.Seq, next)
			}
			if seen[val(r)] {
				t.Fatalf("value %d read twice", val(r))
			}
			seen[val(r)] = true
			next++
		}
		if len(b) > 0 {
			continue
		}
		if finished {
			break
		}
		select {
		case <-done:
			finished = true
		case <-s.Notify():
		}
	}
	if s.LastSeq() != writers*each || len(seen) != writers*each {
		t.Fatalf("LastSeq %d, distinct values read %d, want %d", s.LastSeq(), len(seen), writers*each)
	}
}

func TestStreamID(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state", "spool") // created by Open
	s := openT(t, dir, Options{})
	id := s.StreamID()
	appendN(t, s, 1, 3)
	s.Close()
	s = openT(t, dir, Options{})
	if s.StreamID() != id {
		t.Fatalf("stream id changed across reopen: %s -> %s", id, s.StreamID())
	}
	s.Close()
	other := openT(t, filepath.Join(root, "other"), Options{})
	if other.StreamID() == id {
		t.Fatal("two directories share a stream id")
	}
	// A wiped state directory is a new stream whose numbers restart.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	if s.StreamID() == id || s.LastSeq() != 0 {
		t.Fatalf("wiped directory: id %s (old %s) LastSeq %d, want a new id and 0", s.StreamID(), id, s.LastSeq())
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	s.Close()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestNotify(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	select {
	case <-s.Notify():
		t.Fatal("notified before any append")
	default:
	}
	appendN(t, s, 1, 3)
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after Append")
	}
	select {
	case <-s.Notify():
		t.Fatal("three appends left more than one pending notification")
	default:
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		opt     Options
		wantErr bool
	}{
		{"zero", Options{}, false},
		{"small MaxBytes lowers the default segment", Options{MaxBytes: 4096}, false},
		{"negative MaxBytes", Options{MaxBytes: -1}, true},
		{"negative SegmentBytes", Options{SegmentBytes: -1}, true},
		{"segment over the bound", Options{MaxBytes: 1 << 20, SegmentBytes: 2 << 20}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), tc.opt)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open: err %v, want error %v", err, tc.wantErr)
			}
			if s != nil {
				s.Close()
			}
		})
	}
	// With MaxBytes 4096 and no SegmentBytes, segments are 1 KiB: the
	// bound still works (a 4 MiB default segment would never be dropped).
	s := openT(t, t.TempDir(), Options{MaxBytes: 4096})
	appendN(t, s, 1, 500)
	if st := s.Stats(); st.Bytes > 4096 || st.Dropped == 0 {
		t.Fatalf("small spool: %d bytes, %d dropped", st.Bytes, st.Dropped)
	}
}

func TestTooLarge(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	big := obs(1)
	big.GetObservation().Source = strings.Repeat("x", MaxReportBytes)
	if err := s.Append(obs(1), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of an oversized report: %v, want ErrTooLarge", err)
	}
	if s.LastSeq() != 0 {
		t.Fatalf("a rejected Append numbered reports: LastSeq %d", s.LastSeq())
	}
}

// TestAckedBeyondSegments covers a state directory whose segments are gone
// but whose acked file remains: numbering must go on after the acked seq,
// never reuse numbers the collector already holds.
func TestAckedBeyondSegments(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendN(t, s, 1, 30)
	if err := s.Ack(30); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, p := range segFiles(t, dir) {
		os.Remove(p)
	}
	s = openT(t, dir, Options{})
	r := obs(31)
	if err := s.Append(r); err != nil {
		t.Fatal(err)
	}
	if r.Seq != 31 {
		t.Fatalf("seq after lost segments %d, want 31", r.Seq)
	}
}
