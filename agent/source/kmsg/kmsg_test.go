package kmsg_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/hwheal/hwheal/agent/source/kmsg"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const fixtureBootID = "5776485d-3af5-40be-a65e-239a35d9442a"

// fixtureSeqs are the sequence numbers in testdata/root/dev/kmsg.
var fixtureSeqs = []uint64{0, 1, 2, 3, 89, 90, 91, 192, 193, 195, 196, 197, 198, 341}

// fakeSink records what the source hands it.
type fakeSink struct {
	mu     sync.Mutex
	recs   []kernlog.Record
	obs    int
	notify chan struct{}
	// hook runs in Log before the record is kept (to hold the source up).
	hook func(kernlog.Record)
}

func newSink() *fakeSink { return &fakeSink{notify: make(chan struct{}, 1)} }

func (s *fakeSink) Log(r kernlog.Record) {
	if s.hook != nil {
		s.hook(r)
	}
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *fakeSink) Observe(*hwhealv1.Observation) {
	s.mu.Lock()
	s.obs++
	s.mu.Unlock()
}

func (s *fakeSink) Raise(*hwhealv1.Fault) {
	panic("the kmsg source raised a fault itself: rules belong to the agent")
}

func (s *fakeSink) records() []kernlog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs)
}

// waitFor waits until cond holds for the records so far.
func (s *fakeSink) waitFor(t *testing.T, what string, cond func([]kernlog.Record) bool) []kernlog.Record {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if recs := s.records(); cond(recs) {
			return recs
		}
		select {
		case <-s.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have %d records", what, len(s.records()))
		}
	}
}

func atLeast(n int) func([]kernlog.Record) bool {
	return func(r []kernlog.Record) bool { return len(r) >= n }
}

func seqs(recs []kernlog.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// start runs src in a goroutine; the returned stop cancels it and returns
// Run's error, failing the test if Run does not return promptly.
func start(t *testing.T, src *kmsg.Source, sink *fakeSink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			t0 := time.Now()
			select {
			case err = <-done:
				if d := time.Since(t0); d > time.Second {
					t.Errorf("Run took %v to return after cancel", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// copyFixture copies testdata/root into a temporary root the test may
// change.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS("testdata/root")); err != nil {
		t.Fatal(err)
	}
	// CopyFS keeps the read-only modes of the tree; tests append to it.
	if err := os.Chmod(filepath.Join(dst, "dev", "kmsg"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func readCursor(t *testing.T, stateDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "kmsg.cursor"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeCursor(t *testing.T, stateDir, s string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(stateDir, "kmsg.cursor"), []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// gaps sums the sequence numbers missing between consecutive records.
func gaps(s []uint64) uint64 {
	var n uint64
	for i := 1; i < len(s); i++ {
		if s[i] > s[i-1]+1 {
			n += s[i] - s[i-1] - 1
		}
	}
	return n
}

func TestName(t *testing.T) {
	if got := kmsg.New(kmsg.Config{}).Name(); got != "kmsg" {
		t.Errorf("Name() = %q", got)
	}
}

// TestFixtureDelivery reads a fixture tree's dev/kmsg file: every record in
// order, dictionaries attached, user-space records with facility 1, the
// cursor saved with the boot id.
func TestFixtureDelivery(t *testing.T) {
	root, state := copyFixture(t), t.TempDir()
	log, _ := testLogger(t)
	src := kmsg.New(kmsg.Config{Root: root, StateDir: state, Logger: log, FollowPoll: 10 * time.Millisecond})
	sink := newSink()
	stop := start(t, src, sink)
	recs := sink.waitFor(t, "the fixture's records", atLeast(len(fixtureSeqs)))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := seqs(recs); !slices.Equal(got, fixtureSeqs) {
		t.Fatalf("seqs %v, want %v", got, fixtureSeqs)
	}
	bySeq := map[uint64]kernlog.Record{}
	for _, r := range recs {
		bySeq[r.Seq] = r
	}
	if d := bySeq[192].Dict; d["SUBSYSTEM"] != "acpi" || d["DEVICE"] != "+acpi:PNP0A08:00" {
		t.Errorf("seq 192 dictionary %v", d)
	}
	if m := bySeq[89].Message; m != "rcu: \tRCU restricting CPUs from NR_CPUS=256 to nr_cpu_ids=2." {
		t.Errorf("seq 89 message %q", m)
	}
	if r := bySeq[341]; r.Facility != 1 || r.Level != 3 || r.Message != "hwheal-exp-line" {
		t.Errorf("user-space record %+v", r)
	}
	st := src.Stats()
	if st.Records != 14 || st.Replayed != 14 || st.Resumed != 0 || st.Dropped != gaps(fixtureSeqs) || len(st.Skipped) != 0 || st.Overruns != 0 {
		t.Errorf("stats %+v; want 14 records, all replayed, %d dropped (the gaps of the excerpt)", st, gaps(fixtureSeqs))
	}
	if c := readCursor(t, state); c != fixtureBootID+" 341\n" {
		t.Errorf("cursor %q", c)
	}
	if sink.obs != 0 {
		t.Errorf("%d observations from a log source", sink.obs)
	}
}

// TestFixtureCursor covers restarts: the same boot resumes after the
// cursor (counting what the ring lost meanwhile), a new boot or a broken
// cursor delivers the whole ring again.
func TestFixtureCursor(t *testing.T) {
	tests := []struct {
		name        string
		cursor      string // "" = none
		want        []uint64
		wantResumed uint64
	}{
		{"no cursor", "", fixtureSeqs, 0},
		{"same boot, all delivered", fixtureBootID + " 341\n", nil, 14},
		{"same boot, midway", fixtureBootID + " 193\n", []uint64{195, 196, 197, 198, 341}, 9},
		{"same boot, before the ring", fixtureBootID + " 0\n", fixtureSeqs[1:], 1},
		{"other boot", "0b5e3b9e-1111-2222-3333-444444444444 341\n", fixtureSeqs, 0},
		{"broken cursor", "garbage\n", fixtureSeqs, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, state := copyFixture(t), t.TempDir()
			if tt.cursor != "" {
				writeCursor(t, state, tt.cursor)
			}
			log, _ := testLogger(t)
			src := kmsg.New(kmsg.Config{Root: root, StateDir: state, Logger: log, FollowPoll: 10 * time.Millisecond})
			sink := newSink()
			stop := start(t, src, sink)
			// Wait until the whole file went through: delivered or resumed.
			deadline := time.Now().Add(10 * time.Second)
			for st := src.Stats(); st.Records+st.Resumed < 14; st = src.Stats() {
				if time.Now().After(deadline) {
					t.Fatalf("stats %+v", st)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got := seqs(sink.records()); !slices.Equal(got, tt.want) {
				t.Errorf("delivered %v, want %v", got, tt.want)
			}
			if st := src.Stats(); st.Resumed != tt.wantResumed {
				t.Errorf("resumed %d, want %d", st.Resumed, tt.wantResumed)
			}
			if c := readCursor(t, state); c != fixtureBootID+" 341\n" {
				t.Errorf("cursor after the run %q", c)
			}
		})
	}
}

// TestFixtureRestart runs the source twice over a growing file: the second
// run delivers only what was appended, and counts the gap before it.
func TestFixtureRestart(t *testing.T) {
	root, state := copyFixture(t), t.TempDir()
	kmsgPath := filepath.Join(root, "dev", "kmsg")
	cfg := kmsg.Config{Root: root, StateDir: state, FollowPoll: 10 * time.Millisecond}
	cfg.Logger, _ = testLogger(t)

	first := newSink()
	src := kmsg.New(cfg)
	stop := start(t, src, first)
	first.waitFor(t, "first run", atLeast(14))
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	appendFile(t, kmsgPath, "6,345,700000000,-;after restart\n4,346,700000001,-;second\n SUBSYSTEM=block\n DEVICE=b259:0\n")
	second := newSink()
	src2 := kmsg.New(cfg)
	stop = start(t, src2, second)
	recs := second.waitFor(t, "second run", atLeast(2))
	time.Sleep(50 * time.Millisecond) // would anything else come?
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs = second.records()
	if got := seqs(recs); !slices.Equal(got, []uint64{345, 346}) {
		t.Fatalf("second run delivered %v, want [345 346]", got)
	}
	if recs[1].Dict["DEVICE"] != "b259:0" || recs[1].Level != 4 {
		t.Errorf("record %+v", recs[1])
	}
	st := src2.Stats()
	if st.Records != 2 || st.Resumed != 14 || st.Replayed != 2 || st.Dropped != 3 {
		t.Errorf("stats %+v; want 2 records, 14 resumed, 2 replayed, 3 dropped (342-344)", st)
	}
	if c := readCursor(t, state); c != fixtureBootID+" 346\n" {
		t.Errorf("cursor %q", c)
	}
}

// TestFixtureGarbage: lines that are not records are counted by reason,
// and the source goes on.
func TestFixtureGarbage(t *testing.T) {
	root := copyFixture(t)
	kmsgPath := filepath.Join(root, "dev", "kmsg")
	content := "6,1,10,-;one\n" +
		"this is not a record\n" +
		"\x00\x00\x00\x00\n" +
		"6,2,20,-;" + strings.Repeat("x", 100<<10) + "\n" +
		"6,x,30,-;bad sequence number\n SUBSYSTEM=goes-with-it\n" +
		"\xff\xfe\xfd\x01\x02garbage bytes\n" +
		"6,3,30,-;three with CRLF\r\n SUBSYSTEM=pci\r\n" +
		"\n" +
		"6,4,40,c;continuation stays a record\n"
	if err := os.WriteFile(kmsgPath, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	src := kmsg.New(kmsg.Config{Root: root, Logger: log, FollowPoll: 10 * time.Millisecond})
	sink := newSink()
	stop := start(t, src, sink)
	sink.waitFor(t, "good records", atLeast(3))
	appendFile(t, kmsgPath, "6,5,50,-;still reading\n")
	recs := sink.waitFor(t, "a record after the garbage", atLeast(4))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := seqs(recs); !slices.Equal(got, []uint64{1, 3, 4, 5}) {
		t.Errorf("seqs %v, want [1 3 4 5]", got)
	}
	if recs[1].Message != "three with CRLF" || recs[1].Dict["SUBSYSTEM"] != "pci" || !recs[2].Continuation {
		t.Errorf("records %+v", recs)
	}
	st := src.Stats()
	want := map[string]uint64{"malformed": 3, "too_long": 1, "empty": 2}
	if fmt.Sprint(st.Skipped) != fmt.Sprint(want) {
		t.Errorf("skipped %v, want %v", st.Skipped, want)
	}
	if st.Dropped != 1 { // seq 2, the overlong record
		t.Errorf("dropped %d, want 1", st.Dropped)
	}
}

// TestFixtureFollow appends to the file while the source runs: whole
// records, a record written in two pieces, an overlong line written in two
// pieces, and a truncation.
func TestFixtureFollow(t *testing.T) {
	root, state := copyFixture(t), t.TempDir()
	kmsgPath := filepath.Join(root, "dev", "kmsg")
	log, _ := testLogger(t)
	src := kmsg.New(kmsg.Config{Root: root, StateDir: state, Logger: log, FollowPoll: 10 * time.Millisecond})
	sink := newSink()
	stop := start(t, src, sink)
	sink.waitFor(t, "the fixture", atLeast(14))

	appendFile(t, kmsgPath, "3,342,900000000,-;pcieport 0000:00:1c.0: AER: Uncorrected\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n")
	sink.waitFor(t, "an appended record", atLeast(15))

	appendFile(t, kmsgPath, "6,343,900000001,-;written in ")
	time.Sleep(50 * time.Millisecond) // several polls see half a line
	appendFile(t, kmsgPath, "two pieces\n")
	sink.waitFor(t, "a record written in two pieces", atLeast(16))

	appendFile(t, kmsgPath, "6,344,900000002,-;"+strings.Repeat("y", 40<<10))
	time.Sleep(50 * time.Millisecond)
	appendFile(t, kmsgPath, strings.Repeat("y", 40<<10)+"\n6,345,900000003,-;after the long one\n")
	recs := sink.waitFor(t, "the record after an overlong one", atLeast(17))

	// Let the idle poll save the cursor before checking it, while running.
	deadline := time.Now().Add(5 * time.Second)
	for c, _ := os.ReadFile(filepath.Join(state, "kmsg.cursor")); string(c) != fixtureBootID+" 345\n"; c, _ = os.ReadFile(filepath.Join(state, "kmsg.cursor")) {
		if time.Now().After(deadline) {
			t.Fatalf("cursor %q while running, want seq 345", c)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := os.WriteFile(kmsgPath, []byte("6,400,1,-;replaced file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs = sink.waitFor(t, "the replaced file's record", atLeast(18))
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	got := recs[14:]
	if s := seqs(got); !slices.Equal(s, []uint64{342, 343, 345, 400}) {
		t.Fatalf("followed seqs %v, want [342 343 345 400]", s)
	}
	if got[0].Dict["DEVICE"] != "+pci:0000:00:1c.0" || got[0].Level != 3 {
		t.Errorf("record %+v", got[0])
	}
	if got[1].Message != "written in two pieces" || got[2].Message != "after the long one" || got[3].Message != "replaced file" {
		t.Errorf("messages %q %q %q", got[1].Message, got[2].Message, got[3].Message)
	}
	st := src.Stats()
	if st.Records != 18 || st.Replayed != 14 || st.Skipped["too_long"] != 1 {
		t.Errorf("stats %+v; want 18 records, 14 replayed, 1 too long", st)
	}
}

func TestNotAvailable(t *testing.T) {
	root := t.TempDir()
	log, buf := testLogger(t)
	src := kmsg.New(kmsg.Config{Root: root, StateDir: t.TempDir(), Logger: log})
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), newSink()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run without /dev/kmsg did not return")
	}
	out := buf.String()
	if strings.Count(out, `msg="kmsg: not available"`) != 1 || !strings.Contains(out, filepath.Join(root, "dev", "kmsg")) {
		t.Errorf("log %q: want one \"kmsg: not available\" with the path", out)
	}
}

// requireDevKmsg skips unless the test can write /dev/kmsg.
func requireDevKmsg(t *testing.T) *os.File {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /dev/kmsg")
	}
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("/dev/kmsg not writable: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func marker(t *testing.T, prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

func hasMessage(msg string) func([]kernlog.Record) bool {
	return func(recs []kernlog.Record) bool {
		return slices.ContainsFunc(recs, func(r kernlog.Record) bool { return r.Message == msg })
	}
}

// TestDevice writes to the real /dev/kmsg and sees the record come through
// the source, with the priority the kernel gives a user-space write; a
// restart within the boot does not deliver it again; cancellation returns
// promptly (start fails the test otherwise) with no goroutine left
// (TestMain).
func TestDevice(t *testing.T) {
	w := requireDevKmsg(t)
	state := t.TempDir()
	log, _ := testLogger(t)
	cfg := kmsg.Config{Root: "/", StateDir: state, Logger: log}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}

	src := kmsg.New(cfg)
	sink := newSink()
	stop := start(t, src, sink)
	msg := marker(t, "hwheal-kmsg-test-")
	if _, err := fmt.Fprintf(w, "<3>%s\n", msg); err != nil {
		t.Fatal(err)
	}
	recs := sink.waitFor(t, "the record written to /dev/kmsg", hasMessage(msg))
	i := slices.IndexFunc(recs, func(r kernlog.Record) bool { return r.Message == msg })
	r := recs[i]
	if r.Facility != 1 || r.Level != 3 || !r.HasMonotonic || r.Continuation {
		t.Errorf("record %+v; want facility 1, level 3", r)
	}
	for j := 1; j < len(recs); j++ {
		if recs[j].Seq <= recs[j-1].Seq {
			t.Fatalf("seq %d after %d", recs[j].Seq, recs[j-1].Seq)
		}
	}
	time.Sleep(100 * time.Millisecond) // the reader is now waiting in the poller
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := src.Stats()
	if st.Replayed == 0 || st.Records < st.Replayed || st.Records != uint64(len(sink.records())) {
		t.Errorf("stats %+v with %d records delivered", st, len(sink.records()))
	}
	f := strings.Fields(readCursor(t, state))
	if len(f) != 2 || f[0] != strings.TrimSpace(string(boot)) {
		t.Fatalf("cursor %q", f)
	}
	if seq, _ := strconv.ParseUint(f[1], 10, 64); seq < r.Seq {
		t.Errorf("cursor seq %d before the test record %d", seq, r.Seq)
	}

	// Restart: the first marker was delivered, the second was not.
	src2 := kmsg.New(cfg)
	sink2 := newSink()
	stop = start(t, src2, sink2)
	msg2 := marker(t, "hwheal-kmsg-test-")
	if _, err := fmt.Fprintf(w, "<4>%s\n", msg2); err != nil {
		t.Fatal(err)
	}
	recs = sink2.waitFor(t, "the second record", hasMessage(msg2))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if hasMessage(msg)(recs) {
		t.Error("the restarted source delivered the first record again")
	}
	if st := src2.Stats(); st.Resumed == 0 {
		t.Errorf("stats %+v: nothing resumed", st)
	}
}

// TestDeviceOverrun holds the source up in the sink while the ring is
// flooded, so that its next read of /dev/kmsg returns EPIPE: the source
// counts the overrun and the records lost, and reads on. It overwrites the
// whole kernel ring of the machine (other tests reading /dev/kmsg at the
// same time lose records), so it runs only with HWHEAL_KMSG_FLOOD=1.
func TestDeviceOverrun(t *testing.T) {
	if os.Getenv("HWHEAL_KMSG_FLOOD") != "1" {
		t.Skip("overwrites the kernel ring; set HWHEAL_KMSG_FLOOD=1 to run")
	}
	w := requireDevKmsg(t)
	setPrintkDevkmsg(t, "on")
	ringSize, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || ringSize <= 0 {
		t.Fatalf("ring size: %d, %v", ringSize, err)
	}
	release := make(chan struct{})
	var once sync.Once
	sink := newSink()
	sink.hook = func(kernlog.Record) { once.Do(func() { <-release }) }
	log, buf := testLogger(t)
	src := kmsg.New(kmsg.Config{Root: "/", Logger: log})
	stop := start(t, src, sink)

	line := "<7>hwheal-kmsg-flood " + strings.Repeat("z", 100) + "\n"
	for range 3 * ringSize / len(line) {
		if _, err := w.WriteString(line); err != nil {
			close(release)
			t.Fatal(err)
		}
	}
	close(release)
	msg := marker(t, "hwheal-kmsg-flood-end-")
	if _, err := fmt.Fprintf(w, "<3>%s\n", msg); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, "the record after the flood", hasMessage(msg))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := src.Stats()
	if st.Overruns == 0 || st.Dropped == 0 {
		t.Errorf("stats %+v: want overruns and dropped records", st)
	}
	recs := sink.records()
	for j := 1; j < len(recs); j++ {
		if recs[j].Seq <= recs[j-1].Seq {
			t.Fatalf("seq %d after %d", recs[j].Seq, recs[j-1].Seq)
		}
	}
	if got := gaps(seqs(recs)); got != st.Dropped {
		t.Errorf("dropped %d, the delivered sequence numbers miss %d", st.Dropped, got)
	}
	if strings.Count(buf.String(), "overwrote records") != 1 {
		t.Errorf("want one overrun warning, log:\n%s", buf)
	}
	t.Logf("ring %d bytes: %d records delivered, %d dropped, %d overruns", ringSize, st.Records, st.Dropped, st.Overruns)
}

// setPrintkDevkmsg lifts the kernel's rate limit on writes to /dev/kmsg for
// the test and restores it after.
func setPrintkDevkmsg(t *testing.T, v string) {
	t.Helper()
	const p = "/proc/sys/kernel/printk_devkmsg"
	old, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("cannot read %s: %v", p, err)
	}
	// The kernel takes the value only with its newline (EINVAL otherwise).
	if err := os.WriteFile(p, []byte(v+"\n"), 0); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			t.Skipf("cannot set %s: %v", p, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(p, append(bytes.TrimSpace(old), '\n'), 0); err != nil {
			t.Errorf("restore %s: %v", p, err)
		}
	})
}

// TestSnapshot reads the ring once, as inspect does: from a fixture file
// and from the real device (a record written just before is in it, the
// call returns at the end of the ring instead of waiting, and no cursor is
// written).
func TestSnapshot(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		root := copyFixture(t)
		state := t.TempDir()
		recs, _, err := kmsg.New(kmsg.Config{Root: root, StateDir: state}).Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatal("no records from the fixture")
		}
		if _, err := os.Stat(filepath.Join(state, "kmsg.cursor")); err == nil {
			t.Error("Snapshot wrote a cursor")
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, _, err := kmsg.New(kmsg.Config{Root: t.TempDir()}).Snapshot(t.Context())
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("device", func(t *testing.T) {
		w := requireDevKmsg(t)
		msg := marker(t, "hwheal-kmsg-snapshot-")
		if _, err := fmt.Fprintf(w, "<6>%s\n", msg); err != nil {
			t.Fatal(err)
		}
		state := t.TempDir()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		recs, _, err := kmsg.New(kmsg.Config{Root: "/", StateDir: state}).Snapshot(ctx)
		if err != nil {
			t.Fatalf("Snapshot: %v (a read that waited for more records would be cut by the deadline)", err)
		}
		if !hasMessage(msg)(recs) {
			t.Fatalf("the record just written is not in the snapshot of %d records", len(recs))
		}
		if _, err := os.Stat(filepath.Join(state, "kmsg.cursor")); err == nil {
			t.Error("Snapshot wrote a cursor")
		}
	})
}
