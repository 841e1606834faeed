package transport

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/spool"
)

// logBuffer collects a client's log lines for a test to search, and passes
// them on to the test's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (b *logBuffer) logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(b, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestCollectorBehind: a collector restored from a backup welcomes the
// agent with an acked seq below the spool's. The agent cannot resend what
// it deleted: it says so at error level with both numbers, counts it, and
// goes on after its own mark.
func TestCollectorBehind(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	h.start(&testServer{store: st})
	sp := openSpool(t)
	appendReports(t, sp, 20)
	var logs logBuffer
	c, _ := runClient(t, h, sp, func(cfg *Config) { cfg.Logger = logs.logger(t) })
	eventually(t, 5*time.Second, "20 acked", func() bool { return sp.Acked() == 20 })
	if s := c.Stats(); s.CollectorBehind != 0 {
		t.Fatalf("CollectorBehind %d on a collector in step", s.CollectorBehind)
	}

	// The collector comes back from a backup that holds up to 12.
	h.stop()
	st.setAcked(sp.StreamID(), 12)
	_, before, _, _, _ := st.snapshot()
	h.start(&testServer{store: st})
	eventually(t, 5*time.Second, "the reconnect counted", func() bool { return c.Stats().CollectorBehind == 1 })
	lines := logs.lines("collector lost reports it had acknowledged")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") ||
		!strings.Contains(lines[0], "collector_acked_seq=12") || !strings.Contains(lines[0], "spool_acked_seq=20") {
		t.Fatalf("want one error line with both numbers, got %q", lines)
	}

	appendReports(t, sp, 5)
	eventually(t, 5*time.Second, "25 acked", func() bool { return sp.Acked() == 25 && st.ackedOf(sp.StreamID()) == 25 })
	_, received, _, _, _ := st.snapshot()
	if got := received[len(before):]; !slices.Equal(got, seqRange(21, 25)) {
		t.Fatalf("after the reconnect the collector received %v, want 21..25 (13..20 are gone from the spool)", got)
	}
	if s := c.Stats(); s.CollectorBehind != 1 || s.CollectorAhead != 0 {
		t.Fatalf("stats %+v, want one collector-behind welcome", s)
	}
}

// TestCollectorAhead: the collector holds numbers this spool has not handed
// out (its state directory restored from a snapshot). The spool's numbering
// moves past the collector's mark, durably, so new reports are stored and
// not dropped as duplicates.
func TestCollectorAhead(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	h.start(&testServer{store: st})
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	appendReports(t, sp, 5)
	// Before the snapshot was restored, this stream got to 50.
	st.setAcked(sp.StreamID(), 50)

	var logs logBuffer
	c, stop := runClient(t, h, sp, func(cfg *Config) { cfg.Logger = logs.logger(t) })
	eventually(t, 5*time.Second, "the collector's mark acked", func() bool { return sp.Acked() == 50 })
	if sp.LastSeq() != 50 {
		t.Fatalf("spool LastSeq %d, want moved to the collector's 50", sp.LastSeq())
	}
	lines := logs.lines("numbering continues after them")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
		!strings.Contains(lines[0], "collector_acked_seq=50") || !strings.Contains(lines[0], "spool_last_seq=5") {
		t.Fatalf("want one warning with both numbers, got %q", lines)
	}

	appendReports(t, sp, 3)
	eventually(t, 5*time.Second, "new reports stored", func() bool { return st.ackedOf(sp.StreamID()) == 53 })
	stored, received, _, dups, _ := st.snapshot()
	if !slices.Equal(stored, seqRange(51, 53)) || !slices.Equal(received, seqRange(51, 53)) || dups != 0 {
		t.Fatalf("collector stored %v of %v (%d duplicates), want 51..53 stored and nothing dropped", stored, received, dups)
	}
	if s := c.Stats(); s.CollectorAhead != 1 || s.CollectorBehind != 0 {
		t.Fatalf("stats %+v, want one collector-ahead welcome", s)
	}

	// The numbering survives an agent restart.
	eventually(t, 5*time.Second, "53 acked", func() bool { return sp.Acked() == 53 })
	stop()
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	sp2, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.Close()
	if sp2.LastSeq() != 53 || sp2.Acked() != 53 {
		t.Fatalf("reopened spool: LastSeq %d Acked %d, want 53 53", sp2.LastSeq(), sp2.Acked())
	}
}

// TestCollectorAheadSkipFails: when the spool cannot move its numbering,
// the session ends instead of sending reports the collector would drop.
func TestCollectorAheadSkipFails(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	ts := &testServer{store: st}
	h.start(ts)
	sp := openSpool(t)
	appendReports(t, sp, 5)
	st.setAcked(sp.StreamID(), 50)
	sp.Close() // SkipTo now fails with spool.ErrClosed
	c, _ := runClient(t, h, sp, nil)
	eventually(t, 5*time.Second, "a session ended by the failed skip", func() bool {
		return strings.Contains(c.Stats().LastError, "move spool numbering past the collector's acked seq 50")
	})
	if s := c.Stats(); s.ReportsSent != 0 || s.CollectorAhead != 0 {
		t.Fatalf("stats %+v, want nothing sent and no skip counted", s)
	}
}
