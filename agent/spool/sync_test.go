package spool

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func syncArmed(s *Spool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncTimer != nil
}

func dirSynced(s *Spool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirSyncedGen == s.dirGen
}

// fireSync runs the background sync now, as its timer would, for tests
// that set a long SyncInterval to keep the timer out of the way.
func fireSync(t *testing.T, s *Spool) {
	t.Helper()
	s.mu.Lock()
	armed := s.syncTimer != nil
	if armed {
		s.syncTimer.Stop()
	}
	s.mu.Unlock()
	if !armed {
		t.Fatal("background sync is not armed")
	}
	s.backgroundSync()
}

// TestBackgroundSync: appends nobody reads are fsynced by the timer alone
// (no Read, Sync or Close here could have done it), and an idle spool
// leaves the timer disarmed.
func TestBackgroundSync(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SyncInterval: 10 * time.Millisecond})
	for round := 1; round <= 3; round++ {
		before := s.Stats().Syncs
		appendN(t, s, round*10, 10)
		eventually(t, "appended reports and directory entries synced, timer disarmed", func() bool {
			st := s.Stats()
			return st.Unsynced == 0 && st.Syncs > before && dirSynced(s) && !syncArmed(s)
		})
		if st := s.Stats(); st.Segments != 1 || st.Pending != uint64(round*10) {
			t.Fatalf("round %d: stats %+v, want one segment and %d pending", round, st, round*10)
		}
	}
}

// TestBackgroundSyncArmsOnAppend checks the timer's life without timing:
// armed by the first unsynced append, not re-armed by more appends while
// armed, disarmed by the sync, and the sync covers what was appended up to
// when it ran.
func TestBackgroundSyncArmsOnAppend(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SyncInterval: time.Hour})
	fireSync(t, s) // the one Open arms for the directory
	if syncArmed(s) || !dirSynced(s) {
		t.Fatal("after the first sync of an empty spool: still armed, or directory not synced")
	}
	appendN(t, s, 1, 1)
	s.mu.Lock()
	first := s.syncTimer
	s.mu.Unlock()
	if first == nil {
		t.Fatal("an unsynced append did not arm the background sync")
	}
	appendN(t, s, 2, 5)
	s.mu.Lock()
	same := s.syncTimer == first
	s.mu.Unlock()
	if !same {
		t.Fatal("appends while armed replaced the timer (it would never fire under a steady trickle)")
	}
	if st := s.Stats(); st.Unsynced != st.Bytes || st.Unsynced == 0 || st.Syncs != 0 {
		t.Fatalf("before the sync: %+v, want all %d bytes unsynced and no fsync", st, st.Bytes)
	}
	fireSync(t, s)
	if st := s.Stats(); st.Unsynced != 0 || st.Syncs != 1 {
		t.Fatalf("after the sync: %+v, want nothing unsynced after one fsync", st)
	}
	if syncArmed(s) {
		t.Fatal("armed with nothing to sync")
	}
}

// TestRollDoesNotSync: Append never fsyncs, not even when it starts a new
// segment; the background sync covers the segments rolled since it last ran.
func TestRollDoesNotSync(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1024, SyncInterval: time.Hour})
	appendN(t, s, 1, 60)
	st := s.Stats()
	if st.Segments < 3 || st.Syncs != 0 || st.Unsynced != st.Bytes {
		t.Fatalf("after appends over several segments: %+v, want no fsync yet", st)
	}
	fireSync(t, s)
	if st := s.Stats(); st.Unsynced != 0 || st.Syncs != uint64(st.Segments) || !dirSynced(s) {
		t.Fatalf("after the sync: %+v, want every segment and the directory synced", st)
	}
}

// TestBackgroundSyncRecovered: segments found at Open may hold what a
// killed agent left in the page cache; the background sync fsyncs them.
func TestBackgroundSyncRecovered(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024})
	appendN(t, s, 1, 60)
	s.Close()
	s = openT(t, dir, Options{SegmentBytes: 1024, SyncInterval: time.Hour})
	st := s.Stats()
	if st.Segments < 2 || st.Unsynced != st.Bytes {
		t.Fatalf("reopened: %+v, want several segments, none known synced", st)
	}
	fireSync(t, s)
	if st := s.Stats(); st.Unsynced != 0 || st.Syncs != uint64(st.Segments) || !dirSynced(s) {
		t.Fatalf("after the sync: %+v, want every segment and the directory synced", st)
	}
}

// TestBackgroundSyncFailure: a failed sync is logged once, retried, and the
// recovery is logged.
func TestBackgroundSyncFailure(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "spool")
	var logs bytes.Buffer
	var logMu sync.Mutex
	s := openT(t, dir, Options{SyncInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))})
	appendN(t, s, 1, 3)
	// The directory vanishes (an operator moved it): nothing can be synced.
	moved := filepath.Join(root, "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		fireSync(t, s)
		if !syncArmed(s) {
			t.Fatal("a failed sync did not arm a retry")
		}
	}
	logMu.Lock()
	failures := strings.Count(logs.String(), "background sync failed")
	logMu.Unlock()
	if failures != 1 {
		t.Fatalf("%d failure lines for two failed syncs, want 1; log:\n%s", failures, logs.String())
	}
	if s.Stats().Unsynced == 0 {
		t.Fatal("data counted as synced although the sync failed")
	}
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
	fireSync(t, s)
	if st := s.Stats(); st.Unsynced != 0 || syncArmed(s) {
		t.Fatalf("after the directory came back: %+v, armed %v; want all synced, disarmed", st, syncArmed(s))
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "background sync works again") {
		t.Fatalf("recovery not logged; log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCloseSyncs: Close fsyncs what the timer has not, and leaves no timer.
func TestCloseSyncs(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SyncInterval: time.Hour})
	appendN(t, s, 1, 10)
	if st := s.Stats(); st.Unsynced == 0 || st.Syncs != 0 {
		t.Fatalf("before Close: %+v, want unsynced bytes and no fsync yet", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Unsynced != 0 || st.Syncs != 1 {
		t.Fatalf("after Close: %+v, want everything synced by one fsync", st)
	}
	if syncArmed(s) || !dirSynced(s) {
		t.Fatal("Close left the timer armed or the directory unsynced")
	}
}

// TestBackgroundSyncConcurrent races appends, rolls, acks, reads and a
// fast background sync (run with -race), then checks all is synced.
func TestBackgroundSyncConcurrent(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SyncInterval: time.Millisecond, SegmentBytes: 2048, MaxBytes: 16 << 10})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 300 {
				if err := s.Append(obs(w*1000 + i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			if _, err := s.Read(s.Acked()+1, 20, 0); err != nil {
				t.Error(err)
				return
			}
			if err := s.Ack(s.LastSeq() - min(s.LastSeq(), 50)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	eventually(t, "everything synced", func() bool { return s.Stats().Unsynced == 0 && !syncArmed(s) })
	if s.LastSeq() != 900 {
		t.Fatalf("LastSeq %d, want 900", s.LastSeq())
	}
}

// copyDir copies a spool directory as it is on disk (page cache included)
// without closing the spool: what a restart after a SIGKILL finds.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == lockFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func TestSkipTo(t *testing.T) {
	tests := []struct {
		name    string
		held    int    // reports appended before the skip
		acked   uint64 // acknowledged before the skip
		skip    uint64
		wantErr bool
		next    uint64 // seq of the next report appended
	}{
		{"new spool", 0, 0, 100, false, 101},
		{"reports pending", 5, 2, 100, false, 101},
		{"all acked", 5, 5, 100, false, 101},
		{"not past LastSeq", 5, 0, 5, false, 6},
		{"behind LastSeq", 5, 0, 3, false, 6},
		{"no seq left after it", 5, 0, math.MaxUint64, true, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			appendN(t, s, 1, tc.held)
			if tc.acked > 0 {
				if err := s.Ack(tc.acked); err != nil {
					t.Fatal(err)
				}
			}
			err := s.SkipTo(tc.skip)
			if (err != nil) != tc.wantErr {
				t.Fatalf("SkipTo(%d): %v, want error %v", tc.skip, err, tc.wantErr)
			}
			wantLast := tc.next - 1
			if s.LastSeq() != wantLast {
				t.Fatalf("LastSeq %d after SkipTo(%d), want %d", s.LastSeq(), tc.skip, wantLast)
			}
			// Reports held keep their numbers and count as pending; the
			// skipped numbers are not reports.
			wantPending := uint64(tc.held) - tc.acked
			if st := s.Stats(); st.Pending != wantPending {
				t.Fatalf("stats %+v, want %d pending", st, wantPending)
			}
			if skipped := tc.next > uint64(tc.held)+1; skipped && (s.Stats().Unsynced != 0 || !dirSynced(s)) {
				t.Fatalf("SkipTo returned before the skip was durable: %+v", s.Stats())
			}
			if got := readAll(t, s, tc.acked+1); len(got) != int(wantPending) {
				t.Fatalf("read %v after the skip, want the %d pending reports", seqs(got), wantPending)
			}

			// Survives a kill (the files as they are) and a clean restart.
			killed := openT(t, copyDir(t, dir), Options{})
			if killed.LastSeq() != wantLast || killed.Stats().Pending != wantPending {
				t.Fatalf("after a kill: LastSeq %d Pending %d, want %d %d",
					killed.LastSeq(), killed.Stats().Pending, wantLast, wantPending)
			}
			s.Close()
			s = openT(t, dir, Options{})
			if s.LastSeq() != wantLast {
				t.Fatalf("reopened: LastSeq %d, want %d", s.LastSeq(), wantLast)
			}
			r := obs(1000)
			if err := s.Append(r); err != nil {
				t.Fatal(err)
			}
			if r.Seq != tc.next {
				t.Fatalf("append after the skip got seq %d, want %d", r.Seq, tc.next)
			}
			got := readAll(t, s, tc.acked+1)
			if len(got) != int(wantPending)+1 || got[len(got)-1].Seq != tc.next || val(got[len(got)-1]) != 1000 {
				t.Fatalf("read %v, want the pending reports then %d", seqs(got), tc.next)
			}
			// Acking the skipped range leaves only the segment after it.
			if err := s.Ack(tc.next - 1); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Segments != 1 || st.Pending != 1 {
				t.Fatalf("after acking up to the skip: %+v, want one segment with one pending report", st)
			}
			checkBytes(t, s, dir)
		})
	}
	t.Run("closed", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{})
		s.Close()
		if err := s.SkipTo(10); !errors.Is(err, ErrClosed) {
			t.Fatalf("SkipTo after Close: %v, want ErrClosed", err)
		}
	})
}
