package transport

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDeliverInOrder: reports spooled before the client connects arrive in
// order, each once, and are acked into the spool; then live reports follow.
func TestDeliverInOrder(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			st := newTestStore()
			h := newHarness(t, network)
			h.start(&testServer{store: st})
			sp := openSpool(t)
			appendReports(t, sp, 30)

			c, _ := runClient(t, h, sp, func(cfg *Config) { cfg.MaxBatch = 7 })
			select {
			case <-c.Connected():
			case <-time.After(5 * time.Second):
				t.Fatal("client did not connect")
			}
			eventually(t, 5*time.Second, "30 reports acked", func() bool { return sp.Acked() == 30 })
			stored, received, batches, dups, disorder := st.snapshot()
			if !slices.Equal(stored, seqRange(1, 30)) || dups != 0 || disorder != 0 {
				t.Fatalf("stored %v (dups %d, disordered batches %d), want 1..30 once each in order", stored, dups, disorder)
			}
			if !slices.Equal(received, stored) {
				t.Fatalf("received %v, want exactly what was stored", received)
			}
			for _, n := range batches {
				if n > 7 {
					t.Fatalf("batch of %d reports, MaxBatch is 7", n)
				}
			}
			st.mu.Lock()
			hello := st.hellos[0]
			st.mu.Unlock()
			if hello.GetStreamId() != sp.StreamID() || hello.GetNode() != "node-1" {
				t.Fatalf("hello has stream %q node %q, want %q node-1", hello.GetStreamId(), hello.GetNode(), sp.StreamID())
			}

			appendReports(t, sp, 5) // live, after the replay
			eventually(t, 5*time.Second, "live reports acked", func() bool { return sp.Acked() == 35 })
			stored, _, _, _, _ = st.snapshot()
			if !slices.Equal(stored, seqRange(1, 35)) {
				t.Fatalf("stored %v, want 1..35", stored)
			}
			s := c.Stats()
			if !s.Connected || s.Connects != 1 || s.Disconnects != 0 || s.ReportsSent != 35 || s.AckedSeq != 35 {
				t.Fatalf("stats %+v, want connected once, 35 sent and acked", s)
			}
		})
	}
}

// TestReconnectExactlyOnce: the collector stores a batch and dies before
// acking it, more reports are spooled while it is away, and a new collector
// on the same address with the same store gets the rest. The new one's
// Welcome is behind its store (as after losing its newest acked mark), so
// the agent resends reports the store holds: at the store every seq is
// there exactly once, none lost, and the duplicates were dropped.
func TestReconnectExactlyOnce(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			st := newTestStore()
			h := newHarness(t, network)
			reached := make(chan struct{})
			var once sync.Once
			h.start(&testServer{store: st, afterStore: func(acked uint64) error {
				if acked >= 50 {
					once.Do(func() { close(reached) })
					return status.Error(codes.Unavailable, "crashed between storing and acking")
				}
				return nil
			}})
			sp := openSpool(t)
			appendReports(t, sp, 100)
			c, _ := runClient(t, h, sp, func(cfg *Config) { cfg.MaxBatch = 10 })

			select {
			case <-reached:
			case <-time.After(5 * time.Second):
				t.Fatal("collector never stored seq 50")
			}
			h.stop()
			if spoolAcked, storeAcked := sp.Acked(), st.ackedOf(sp.StreamID()); spoolAcked >= storeAcked {
				t.Fatalf("spool acked %d, store holds %d: the crash left nothing stored-but-unacked", spoolAcked, storeAcked)
			}
			appendReports(t, sp, 100) // while the collector is away
			h.start(&testServer{store: st, welcomeBehind: 15})

			eventually(t, 10*time.Second, "200 reports acked", func() bool {
				return sp.Acked() == 200 && st.ackedOf(sp.StreamID()) == 200
			})
			stored, _, _, dups, disorder := st.snapshot()
			if !slices.Equal(stored, seqRange(1, 200)) {
				t.Fatalf("store holds %d seqs (%v...), want 1..200 exactly once", len(stored), stored[:min(len(stored), 10)])
			}
			if dups == 0 {
				t.Fatal("no duplicate arrived: reports after the Welcome's acked seq were not resent")
			}
			if disorder != 0 {
				t.Fatalf("%d batches out of order", disorder)
			}
			if s := c.Stats(); s.Connects < 2 || s.Disconnects < 1 || s.LastError == "" {
				t.Fatalf("stats %+v, want a reconnect and the error that caused it", s)
			}
		})
	}
}

// TestWelcomeSkipsAcked: a collector that already holds up to N makes the
// client start at N+1.
func TestWelcomeSkipsAcked(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	h.start(&testServer{store: st})
	sp := openSpool(t)
	appendReports(t, sp, 10)
	st.setAcked(sp.StreamID(), 7)

	runClient(t, h, sp, nil)
	eventually(t, 5*time.Second, "10 acked", func() bool { return sp.Acked() == 10 })
	_, received, _, _, _ := st.snapshot()
	if !slices.Equal(received, []uint64{8, 9, 10}) {
		t.Fatalf("collector received %v, want [8 9 10]", received)
	}
}

// TestBatchLimits: the Welcome's max_batch_reports lowers MaxBatch, and no
// more than MaxInFlight batches go out unacknowledged.
func TestBatchLimits(t *testing.T) {
	t.Run("welcome max batch", func(t *testing.T) {
		st := newTestStore()
		h := newHarness(t, "bufconn")
		h.start(&testServer{store: st, maxBatch: 3})
		sp := openSpool(t)
		appendReports(t, sp, 20)
		runClient(t, h, sp, nil)
		eventually(t, 5*time.Second, "20 acked", func() bool { return sp.Acked() == 20 })
		_, _, batches, _, _ := st.snapshot()
		for _, n := range batches {
			if n > 3 {
				t.Fatalf("batch sizes %v exceed the collector's 3", batches)
			}
		}
	})
	t.Run("in flight", func(t *testing.T) {
		st := newTestStore()
		h := newHarness(t, "bufconn")
		h.start(&testServer{store: st, noAck: true})
		sp := openSpool(t)
		appendReports(t, sp, 50)
		runClient(t, h, sp, func(cfg *Config) { cfg.MaxBatch = 5; cfg.MaxInFlight = 2 })
		eventually(t, 5*time.Second, "two batches", func() bool {
			_, _, b, _, _ := st.snapshot()
			return len(b) >= 2
		})
		time.Sleep(200 * time.Millisecond)
		if _, received, batches, _, _ := st.snapshot(); len(batches) != 2 || len(received) != 10 {
			t.Fatalf("without acks the collector got %d batches (%d reports), want MaxInFlight=2 batches", len(batches), len(received))
		}
	})
}

// TestRefusedReportSkipped: a collector that refuses report 5 with
// InvalidArgument gets everything else; the client isolates 5, skips it,
// counts it, and does not resend it in a loop.
func TestRefusedReportSkipped(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	var refusals atomic.Int64
	h.start(&testServer{store: st, beforeStore: func(rs []*hwhealv1.Report) error {
		for _, r := range rs {
			if r.GetSeq() == 5 {
				refusals.Add(1)
				return status.Error(codes.InvalidArgument, "report 5 is malformed")
			}
		}
		return nil
	}})
	sp := openSpool(t)
	appendReports(t, sp, 12)
	c, _ := runClient(t, h, sp, func(cfg *Config) {
		cfg.MaxBatch = 4
		cfg.MinBackoff = time.Millisecond
		cfg.MaxBackoff = 40 * time.Millisecond
	})
	eventually(t, 5*time.Second, "12 acked", func() bool { return sp.Acked() == 12 })
	stored, _, _, _, _ := st.snapshot()
	want := append(seqRange(1, 4), seqRange(6, 12)...)
	if !slices.Equal(stored, want) {
		t.Fatalf("stored %v, want %v", stored, want)
	}
	// Once in a batch, once alone: then it is known and skipped.
	if n := refusals.Load(); n != 2 {
		t.Fatalf("report 5 was refused %d times, want 2", n)
	}
	if s := c.Stats(); s.Rejected != 1 {
		t.Fatalf("Rejected %d, want 1", s.Rejected)
	}
	// Back to batches after the refused range.
	appendReports(t, sp, 20)
	eventually(t, 5*time.Second, "32 acked", func() bool { return sp.Acked() == 32 })
	_, _, batches, _, _ := st.snapshot()
	if batches[len(batches)-1] == 1 && batches[len(batches)-2] == 1 && batches[len(batches)-3] == 1 {
		t.Fatalf("still sending one report at a time after the refused range: %v", batches)
	}
}

// TestAuthFailureBacksOffAtMax: refused credentials are retried at
// MaxBackoff, not from MinBackoff up.
func TestAuthFailureBacksOffAtMax(t *testing.T) {
	for _, code := range []codes.Code{codes.Unauthenticated, codes.PermissionDenied} {
		t.Run(code.String(), func(t *testing.T) {
			ts := &testServer{store: newTestStore(), helloErr: status.Error(code, "no")}
			h := newHarness(t, "bufconn")
			h.start(ts)
			sp := openSpool(t)
			c, stop := runClient(t, h, sp, func(cfg *Config) {
				cfg.MinBackoff = time.Millisecond
				cfg.MaxBackoff = 200 * time.Millisecond
			})
			time.Sleep(600 * time.Millisecond)
			stop()
			// Waits are at least MaxBackoff/2 = 100 ms: at most 7 tries in
			// 600 ms. Growing from 1 ms would have made about ten.
			if n := ts.connects.Load(); n < 2 || n > 7 {
				t.Fatalf("%d connects in 600 ms, want 2..7", n)
			}
			if s := c.Stats(); !strings.Contains(s.LastError, code.String()) || s.Connects != 0 {
				t.Fatalf("stats %+v, want no welcomed session and the %s error", s, code)
			}
		})
	}
}

func TestWelcomeTimeout(t *testing.T) {
	ts := &testServer{store: newTestStore(), noWelcome: true}
	h := newHarness(t, "bufconn")
	h.start(ts)
	sp := openSpool(t)
	c, _ := runClient(t, h, sp, func(cfg *Config) { cfg.WelcomeTimeout = 50 * time.Millisecond })
	eventually(t, 5*time.Second, "a second attempt after the welcome timeout", func() bool { return ts.connects.Load() >= 2 })
	if s := c.Stats(); !strings.Contains(s.LastError, "no welcome") || s.Connected {
		t.Fatalf("stats %+v, want a welcome timeout", s)
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	t.Run("ceiling grows and caps", func(t *testing.T) {
		top := backoff{min: lo, max: hi, rand: func(n int64) int64 { return n - 1 }}
		want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
		for i, w := range want {
			if got := top.delay(i); got != w*time.Millisecond-1 {
				t.Errorf("attempt %d: highest delay %s, want just under %s", i, got, w*time.Millisecond)
			}
		}
		if got := top.delay(1000); got != hi-1 {
			t.Errorf("attempt 1000: %s, want just under the maximum", got)
		}
	})
	t.Run("full jitter", func(t *testing.T) {
		zero := backoff{min: lo, max: hi, rand: func(int64) int64 { return 0 }}
		if got := zero.delay(5); got != 0 {
			t.Errorf("lowest delay %s, want 0 (full jitter starts at zero)", got)
		}
		r := rand.New(rand.NewPCG(1, 2))
		b := backoff{min: lo, max: hi, rand: r.Int64N}
		const n = 2000
		var sum time.Duration
		seen := map[time.Duration]bool{}
		for range n {
			d := b.delay(3) // ceiling 800 ms
			if d < 0 || d >= 800*time.Millisecond {
				t.Fatalf("delay %s outside [0, 800ms)", d)
			}
			sum += d
			seen[d] = true
		}
		if mean := sum / n; mean < 360*time.Millisecond || mean > 440*time.Millisecond {
			t.Errorf("mean delay %s, want about 400ms (uniform)", mean)
		}
		if len(seen) < n/2 {
			t.Errorf("only %d distinct delays in %d: not jittered", len(seen), n)
		}
	})
	t.Run("at max", func(t *testing.T) {
		for _, f := range []func(int64) int64{func(int64) int64 { return 0 }, func(n int64) int64 { return n - 1 }} {
			b := backoff{min: lo, max: hi, rand: f}
			if d := b.atMax(); d < hi/2 || d > hi {
				t.Errorf("atMax %s outside [%s, %s]", d, hi/2, hi)
			}
		}
	})
}

func TestRetryDelay(t *testing.T) {
	b := backoff{min: time.Second, max: time.Minute, rand: func(n int64) int64 { return n - 1 }}
	tests := []struct {
		name    string
		err     error
		attempt int
		want    time.Duration
	}{
		{"unavailable first", status.Error(codes.Unavailable, "x"), 0, time.Second - 1},
		{"unavailable third", status.Error(codes.Unavailable, "x"), 2, 4*time.Second - 1},
		{"plain error", fmt.Errorf("read spool: %w", context.DeadlineExceeded), 1, 2*time.Second - 1},
		{"unauthenticated", status.Error(codes.Unauthenticated, "x"), 0, time.Minute},
		{"permission denied", status.Error(codes.PermissionDenied, "x"), 0, time.Minute},
		{"invalid argument, wrapped", fmt.Errorf("send batch: %w", status.Error(codes.InvalidArgument, "x")), 0, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.attempt
			if got := b.retryDelay(tc.err, &a); got != tc.want {
				t.Fatalf("retryDelay = %s, want %s", got, tc.want)
			}
			if a != tc.attempt+1 {
				t.Fatalf("attempt %d after retry, want %d", a, tc.attempt+1)
			}
		})
	}
}

// TestShutdown: Run returns nil promptly on cancel in every state and
// leaves no goroutine behind.
func TestShutdown(t *testing.T) {
	tests := []struct {
		name  string
		ts    *testServer
		down  bool // stop the server before the client starts
		ready func(c *Client, ts *testServer) bool
	}{
		{"connected and idle", &testServer{}, false,
			func(c *Client, _ *testServer) bool { return c.Stats().Connected }},
		{"window full", &testServer{noAck: true}, false,
			func(c *Client, _ *testServer) bool { return c.Stats().ReportsSent > 0 }},
		{"waiting for welcome", &testServer{noWelcome: true}, false,
			func(_ *Client, ts *testServer) bool { return ts.connects.Load() > 0 }},
		{"collector down, backing off", &testServer{}, true,
			func(c *Client, _ *testServer) bool { return c.Stats().LastError != "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.ts
			ts.store = newTestStore()
			h := newHarness(t, "tcp")
			h.start(ts)
			if tc.down {
				h.stop()
			}
			sp := openSpool(t)
			appendReports(t, sp, 50)
			c, stop := runClient(t, h, sp, func(cfg *Config) {
				cfg.MaxBatch = 5
				cfg.MaxInFlight = 1
				cfg.MinBackoff = time.Second // a long wait in backoff
				cfg.MaxBackoff = 10 * time.Second
			})
			eventually(t, 5*time.Second, "the state under test", func() bool { return tc.ready(c, ts) })
			start := time.Now()
			stop()
			if d := time.Since(start); d > time.Second {
				t.Errorf("Run took %s to return after cancel", d)
			}
			h.stop()
			sp.Close()
			goleak.VerifyNone(t)
		})
	}
}

func TestNewValidates(t *testing.T) {
	sp := openSpool(t)
	hello := func() *hwhealv1.Hello { return &hwhealv1.Hello{} }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no target", Config{Hello: hello, Spool: sp}},
		{"no hello", Config{Target: "x", Spool: sp}},
		{"no spool", Config{Target: "x", Hello: hello}},
		{"negative", Config{Target: "x", Hello: hello, Spool: sp, MaxBatch: -1}},
		{"min over max", Config{Target: "x", Hello: hello, Spool: sp, MinBackoff: time.Minute, MaxBackoff: time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	c, err := New(Config{Target: "x", Hello: hello, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MaxBatch != DefaultMaxBatch || c.cfg.MaxInFlight != DefaultMaxInFlight || c.cfg.MinBackoff != DefaultMinBackoff ||
		c.cfg.MaxBackoff != DefaultMaxBackoff || c.cfg.MaxBatchBytes != DefaultMaxBatchBytes {
		t.Fatalf("defaults not applied: %+v", c.cfg)
	}
}
