package webhook

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestDeliversInOrderWithHeaders(t *testing.T) {
	src := newMemSource()
	src.add(
		nodeEvent(evRegistered, "n1"),
		faultEvent(evOpened, "n1", "disk.media", sevCritical),
		&hwhealv1.Event{Type: evHealth, Node: "n1", OldHealth: hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY, NewHealth: hwhealv1.NodeHealth_NODE_HEALTH_FAULTY},
	)
	rc := newReceiver(t, nil)
	tg := fastTarget("chat", rc.srv.URL+"/hook")
	tg.Headers = map[string]string{"Authorization": "Bearer s3cret"}
	r := start(t, src, Options{SourceURI: "urn:hwheal:test"}, tg)
	reqs := rc.waitRequests(t, 3)
	for i, req := range reqs {
		if req.method != http.MethodPost {
			t.Errorf("request %d: method %s", i, req.method)
		}
		if got := req.header.Get("Content-Type"); got != ContentType {
			t.Errorf("request %d: Content-Type %q", i, got)
		}
		if got := req.header.Get("Authorization"); got != "Bearer s3cret" {
			t.Errorf("request %d: Authorization %q", i, got)
		}
		if req.ce.ID != strconv.Itoa(i+1) || req.ce.Source != "urn:hwheal:test" || req.ce.Subject != "n1" {
			t.Errorf("request %d: id %q source %q subject %q", i, req.ce.ID, req.ce.Source, req.ce.Subject)
		}
	}
	wantTypes := []string{"io.hwheal.node.registered", "io.hwheal.fault.opened", "io.hwheal.node.health_changed"}
	for i, w := range wantTypes {
		if reqs[i].ce.Type != w {
			t.Errorf("request %d: type %q, want %q", i, reqs[i].ce.Type, w)
		}
	}
	waitFor(t, "cursor at 3", func() bool { id, _ := src.cursor("webhook/chat"); return id == 3 })
	if got := r.metric(t, "delivered", "chat"); got != 3 {
		t.Errorf("delivered = %v, want 3", got)
	}
	if got := r.metric(t, "failed", "chat"); got != 0 {
		t.Errorf("attempts failed = %v, want 0", got)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			src := newMemSource()
			src.add(faultEvent(evOpened, "n1", "disk.media", sevCritical), nodeEvent(evConnected, "n1"))
			rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
				if n < 2 {
					w.WriteHeader(status)
					return true
				}
				return false
			})
			r := start(t, src, Options{}, fastTarget("t", rc.srv.URL))
			rc.waitRequests(t, 4)
			waitFor(t, "cursor at 2", func() bool { id, _ := src.cursor("webhook/t"); return id == 2 })
			if got, want := rc.ids(), []string{"1", "1", "1", "2"}; !slices.Equal(got, want) {
				t.Errorf("ids received %v, want %v", got, want)
			}
			if got := r.metric(t, "delivered", "t"); got != 2 {
				t.Errorf("delivered = %v, want 2", got)
			}
			if got := r.metric(t, "failed", "t"); got != 2 {
				t.Errorf("attempts failed = %v, want 2", got)
			}
			if got := r.metric(t, "dead", "t"); got != 0 {
				t.Errorf("dead letters = %v, want 0", got)
			}
		})
	}
}

func TestNetworkErrorRetried(t *testing.T) {
	src := newMemSource()
	src.add(nodeEvent(evConnected, "n1"))
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			// Drop the connection without a response.
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no Hijacker")
				return false
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}
		return false
	})
	r := start(t, src, Options{}, fastTarget("t", rc.srv.URL))
	rc.waitRequests(t, 2)
	waitFor(t, "delivered", func() bool { return r.metric(t, "delivered", "t") == 1 })
	if got := r.metric(t, "failed", "t"); got != 1 {
		t.Errorf("attempts failed = %v, want 1", got)
	}
}

// sleepRecorder is an Options.Sleep that records the waits asked for and
// does not wait.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

func TestRetryAfterHonoured(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		status     int
		want       time.Duration
	}{
		{"seconds", "3", http.StatusTooManyRequests, 3 * time.Second},
		{"http date", now.Add(7 * time.Second).Format(http.TimeFormat), http.StatusServiceUnavailable, 7 * time.Second},
		{"capped at backoff_max", "3600", http.StatusServiceUnavailable, time.Minute},
		{"date in the past uses backoff", now.Add(-time.Hour).Format(http.TimeFormat), http.StatusServiceUnavailable, 0},
		{"garbage uses backoff", "soon", http.StatusTooManyRequests, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			src.add(nodeEvent(evConnected, "n1"))
			rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
				if n == 0 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(tt.status)
					return true
				}
				return false
			})
			rec := &sleepRecorder{}
			tg := fastTarget("t", rc.srv.URL)
			tg.BackoffInitial, tg.BackoffMax = 100*time.Millisecond, time.Minute
			r := start(t, src, Options{Sleep: rec.sleep, Now: func() time.Time { return now }}, tg)
			rc.waitRequests(t, 2)
			waitFor(t, "delivered", func() bool { return r.metric(t, "delivered", "t") == 1 })
			waits := rec.get()
			if len(waits) != 1 {
				t.Fatalf("waits %v, want one", waits)
			}
			if tt.want == 0 {
				// The first backoff: 100ms with its upper half jittered.
				if waits[0] < 50*time.Millisecond || waits[0] > 100*time.Millisecond {
					t.Errorf("wait %v, want the first backoff (50ms..100ms)", waits[0])
				}
			} else if waits[0] != tt.want {
				t.Errorf("wait %v, want %v", waits[0], tt.want)
			}
		})
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	initial, maxWait := 100*time.Millisecond, 3*time.Second
	for n := 1; n <= 10; n++ {
		full := min(initial<<(n-1), maxWait)
		for range 50 {
			w := backoff(initial, maxWait, n)
			if w < full/2 || w > full {
				t.Fatalf("backoff(attempt %d) = %v, want within [%v, %v]", n, w, full/2, full)
			}
		}
	}
	// Jitter: 50 draws of a 3s window are not all equal.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[backoff(initial, maxWait, 10)] = true
	}
	if len(seen) < 2 {
		t.Error("backoff has no jitter")
	}
}

func TestPermanentErrorDeadLetters(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusGone,
		http.StatusMovedPermanently, http.StatusTemporaryRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			src := newMemSource()
			src.add(nodeEvent(evConnected, "bad"), nodeEvent(evConnected, "good"))
			var rc *receiver
			rc = newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
				if ce.Subject == "bad" {
					if status/100 == 3 {
						// Not followed: a request to /elsewhere would be
						// received (and counted) too.
						http.Redirect(w, r, rc.srv.URL+"/elsewhere", status)
						return true
					}
					http.Error(w, "no such channel\n", status)
					return true
				}
				return false
			})
			r := start(t, src, Options{}, fastTarget("t", rc.srv.URL))
			rc.waitRequests(t, 2)
			waitFor(t, "cursor at 2", func() bool { id, _ := src.cursor("webhook/t"); return id == 2 })
			if got, want := rc.ids(), []string{"1", "2"}; !slices.Equal(got, want) {
				t.Errorf("ids received %v, want %v (a permanent error is not retried)", got, want)
			}
			if got := r.metric(t, "dead", "t"); got != 1 {
				t.Errorf("dead letters = %v, want 1", got)
			}
			if got := r.metric(t, "delivered", "t"); got != 1 {
				t.Errorf("delivered = %v, want 1", got)
			}
			if got := r.metric(t, "failed", "t"); got != 1 {
				t.Errorf("attempts failed = %v, want 1", got)
			}
		})
	}
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	src := newMemSource()
	src.add(nodeEvent(evConnected, "flaky"), nodeEvent(evConnected, "good"))
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		if ce.Subject == "flaky" {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	tg := fastTarget("t", rc.srv.URL)
	tg.MaxAttempts = 3
	var logs strings.Builder
	var logMu sync.Mutex
	r := start(t, src, Options{Logger: newTestLogger(&logs, &logMu)}, tg)
	rc.waitRequests(t, 4)
	waitFor(t, "cursor at 2", func() bool { id, _ := src.cursor("webhook/t"); return id == 2 })
	if got, want := rc.ids(), []string{"1", "1", "1", "2"}; !slices.Equal(got, want) {
		t.Errorf("ids received %v, want %v", got, want)
	}
	if got := r.metric(t, "dead", "t"); got != 1 {
		t.Errorf("dead letters = %v, want 1", got)
	}
	if got := r.metric(t, "failed", "t"); got != 3 {
		t.Errorf("attempts failed = %v, want 3", got)
	}
	r.stop()
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if !strings.Contains(out, `msg="webhook event dead-lettered"`) || !strings.Contains(out, "event_id=1 ") {
		t.Errorf("dead letter not logged with its event id:\n%s", out)
	}
}

func TestCancelDuringSlowRequest(t *testing.T) {
	src := newMemSource()
	src.add(nodeEvent(evConnected, "n1"))
	cancelled := make(chan struct{})
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(time.Minute):
		}
		return true
	})
	tg := fastTarget("t", rc.srv.URL)
	tg.Timeout = time.Hour
	r := start(t, src, Options{}, tg)
	rc.waitRequests(t, 1)
	r.stop() // fails the test if Run does not return
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight was not cancelled")
	}
	// Not acknowledged: the event is sent again after a restart.
	if id, _ := src.cursor("webhook/t"); id != 0 {
		t.Errorf("cursor = %d after an unfinished delivery, want 0", id)
	}
	if got := r.metric(t, "failed", "t"); got != 0 {
		t.Errorf("attempts failed = %v, want 0 (shutdown is not a failure)", got)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	src := newMemSource()
	src.add(nodeEvent(evConnected, "n1"))
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	tg := fastTarget("t", rc.srv.URL)
	tg.BackoffInitial, tg.BackoffMax = time.Hour, time.Hour
	r := start(t, src, Options{}, tg)
	rc.waitRequests(t, 1)
	waitFor(t, "failed attempt counted", func() bool { return r.metric(t, "failed", "t") == 1 })
	r.stop()
	if id, _ := src.cursor("webhook/t"); id != 0 {
		t.Errorf("cursor = %d, want 0", id)
	}
}

func TestStartEndVersusBeginning(t *testing.T) {
	src := newMemSource()
	for i := range 5 {
		src.add(nodeEvent(evConnected, "old-"+strconv.Itoa(i)))
	}
	rcEnd, rcBegin := newReceiver(t, nil), newReceiver(t, nil)
	end := fastTarget("end", rcEnd.srv.URL)
	end.Start = StartEnd
	begin := fastTarget("begin", rcBegin.srv.URL)
	begin.Start = StartBeginning
	r := start(t, src, Options{}, end, begin)
	rcBegin.waitRequests(t, 5)
	waitFor(t, "end's cursor stored at the head", func() bool { id, ok := src.cursor("webhook/end"); return ok && id == 5 })

	src.add(nodeEvent(evConnected, "new"))
	r.d.Notify()
	rcEnd.waitRequests(t, 1)
	rcBegin.waitRequests(t, 6)
	if got := rcEnd.ids(); !slices.Equal(got, []string{"6"}) {
		t.Errorf("start: end received %v, want only the new event 6", got)
	}
	if got := rcBegin.ids(); !slices.Equal(got, []string{"1", "2", "3", "4", "5", "6"}) {
		t.Errorf("start: beginning received %v, want 1..6", got)
	}
}

func TestStoredCursorWinsOverStart(t *testing.T) {
	src := newMemSource()
	for range 4 {
		src.add(nodeEvent(evConnected, "n"))
	}
	src.cursors["webhook/t"] = 2
	rc := newReceiver(t, nil)
	tg := fastTarget("t", rc.srv.URL)
	tg.Start = StartEnd
	start(t, src, Options{}, tg)
	rc.waitRequests(t, 2)
	waitFor(t, "cursor at 4", func() bool { id, _ := src.cursor("webhook/t"); return id == 4 })
	if got := rc.ids(); !slices.Equal(got, []string{"3", "4"}) {
		t.Errorf("received %v, want 3, 4 (resume after the stored cursor)", got)
	}
}

func TestFilters(t *testing.T) {
	src := newMemSource()
	src.nodes["n-eu"] = map[string]string{"zone": "eu-1", "rack": "r1"}
	src.nodes["n-us"] = map[string]string{"zone": "us-1", "rack": "r1"}
	shadow := faultEvent(evOpened, "n-eu", "disk.latency_outlier", sevCritical)
	shadow.Fault.Mode = hwhealv1.RuleMode_RULE_MODE_SHADOW
	evs := src.add(
		nodeEvent(evRegistered, "n-eu"),                             // 1
		faultEvent(evOpened, "n-eu", "disk.media", sevCritical),     // 2
		faultEvent(evUpdated, "n-eu", "disk.media", sevCritical),    // 3
		faultEvent(evOpened, "n-us", "disk.media", sevCritical),     // 4
		faultEvent(evOpened, "n-eu", "memory.ce_storm", sevWarning), // 5
		faultEvent(evOpened, "n-eu", "disk.io_error", sevInfo),      // 6
		&hwhealv1.Event{Type: evHealth, Node: "n-eu"},               // 7
		shadow, // 8
		faultEvent(evResolved, "n-eu", "disk.media", sevCritical),  // 9
		nodeEvent(evDisconnected, "gone"),                          // 10: not in the store
		faultEvent(evAcked, "n-eu", "memory.ce_storm", sevWarning), // 11
	)
	last := strconv.FormatUint(evs[len(evs)-1].GetId(), 10)
	tests := []struct {
		name string
		mod  func(*Target)
		want []string
	}{
		{"default: all but fault.updated and shadow", func(*Target) {}, []string{"1", "2", "4", "5", "6", "7", "9", "10", "11"}},
		{"types", func(t *Target) { t.Events = []string{"fault.opened", "fault.updated"} }, []string{"2", "3", "4", "5", "6"}},
		{"type glob", func(t *Target) { t.Events = []string{"node.*"} }, []string{"1", "7", "10"}},
		{"class glob drops node events", func(t *Target) { t.Classes = []string{"disk.*"} }, []string{"2", "4", "6", "9"}},
		{"class glob, node type listed", func(t *Target) {
			t.Classes = []string{"disk.*"}
			t.Events = []string{"fault.opened", "node.health_changed"}
		}, []string{"2", "4", "6", "7"}},
		{"two classes", func(t *Target) { t.Classes = []string{"memory.ce_storm", "disk.io_*"} }, []string{"5", "6", "11"}},
		{"min severity warning", func(t *Target) { t.MinSeverity = sevWarning }, []string{"2", "4", "5", "9", "11"}},
		{"min severity critical", func(t *Target) { t.MinSeverity = sevCritical }, []string{"2", "4", "9"}},
		{"labels", func(t *Target) { t.Labels = map[string]string{"zone": "eu-1"} }, []string{"1", "2", "5", "6", "7", "9", "11"}},
		{"two labels", func(t *Target) { t.Labels = map[string]string{"zone": "us-1", "rack": "r1"} }, []string{"4"}},
		{"label absent", func(t *Target) { t.Labels = map[string]string{"pod": "a"} }, nil},
		{"include shadow", func(t *Target) {
			t.IncludeShadow = true
			t.Events = []string{"fault.opened"}
			t.MinSeverity = sevCritical
		}, []string{"2", "4", "8"}},
		{"everything", func(t *Target) { t.Events = []string{"*"}; t.IncludeShadow = true }, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			tg := fastTarget("t", rc.srv.URL)
			tg.Events = nil
			tt.mod(&tg)
			r := start(t, src, Options{}, tg)
			waitFor(t, "cursor at the last event", func() bool {
				return r.d.targetByName("t").pos.Load() == evs[len(evs)-1].GetId()
			})
			r.stop()
			if got := rc.ids(); !slices.Equal(got, tt.want) {
				t.Errorf("received %v, want %v", got, tt.want)
			}
			if id, _ := src.cursor("webhook/t"); strconv.FormatUint(id, 10) != last {
				t.Errorf("stored cursor %d, want %s: filtered events move it too", id, last)
			}
			src.mu.Lock()
			delete(src.cursors, "webhook/t")
			src.mu.Unlock()
		})
	}
}

func TestLabelCache(t *testing.T) {
	src := newMemSource()
	src.nodes["n1"] = map[string]string{"zone": "a"}
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := &labelCache{src: src, ttl: 30 * time.Second, now: clock, m: map[string]labelEntry{}}
	ctx := t.Context()
	for range 3 {
		l, err := c.get(ctx, "n1")
		if err != nil || l["zone"] != "a" {
			t.Fatalf("get = %v, %v", l, err)
		}
	}
	if _, reads := src.counts(); reads != 1 {
		t.Errorf("GetNode called %d times within the TTL, want 1", reads)
	}
	src.mu.Lock()
	src.nodes["n1"] = map[string]string{"zone": "b"}
	src.mu.Unlock()
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	if l, _ := c.get(ctx, "n1"); l["zone"] != "b" {
		t.Errorf("after the TTL labels = %v, want zone b", l)
	}
	if l, err := c.get(ctx, "unknown"); err != nil || l != nil {
		t.Errorf("unknown node: %v, %v; want no labels and no error", l, err)
	}
	src.failNodes = 1
	if _, err := c.get(ctx, "other"); err == nil {
		t.Error("a store error was not returned")
	}
}

func TestStoreErrorsRetried(t *testing.T) {
	src := newMemSource()
	src.nodes["n1"] = map[string]string{"zone": "a"}
	src.add(nodeEvent(evConnected, "n1"), nodeEvent(evConnected, "n1"))
	src.failReads = 2
	src.failNodes = 1
	rc := newReceiver(t, nil)
	tg := fastTarget("t", rc.srv.URL)
	tg.Labels = map[string]string{"zone": "a"}
	start(t, src, Options{PollInterval: time.Millisecond}, tg)
	rc.waitRequests(t, 2)
	if got := rc.ids(); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("received %v, want 1, 2 once each", got)
	}
}

func TestLagGauge(t *testing.T) {
	src := newMemSource()
	for range 5 {
		src.add(nodeEvent(evConnected, "n1"))
	}
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		if ce.ID == "1" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return false
	})
	tg := fastTarget("t", rc.srv.URL)
	r := start(t, src, Options{}, tg)
	rc.waitRequests(t, 1)
	waitFor(t, "lag 5", func() bool { return r.metric(t, "lag", "t") == 5 })
	src.add(nodeEvent(evConnected, "n1"), nodeEvent(evConnected, "n1"))
	r.d.Notify()
	// The target is blocked on event 1; the head still moves.
	waitFor(t, "lag 7", func() bool { return r.metric(t, "lag", "t") == 7 })
	close(release)
	waitFor(t, "lag 0", func() bool { return r.metric(t, "lag", "t") == 0 })
}

func TestFindHead(t *testing.T) {
	tests := []struct {
		name string
		ids  []uint64
		from uint64
		want uint64
	}{
		{"empty", nil, 0, 0},
		{"empty from", nil, 9, 9},
		{"one", []uint64{1}, 0, 1},
		{"dense", seq(1, 1000), 0, 1000},
		{"dense from middle", seq(1, 1000), 517, 1000},
		{"from head", seq(1, 10), 10, 10},
		{"gaps", []uint64{3, 4, 90, 91, 5000, 123456}, 0, 123456},
		{"pruned start", seq(700, 800), 0, 800},
		{"huge ids", []uint64{1 << 62, 1<<62 + 5}, 0, 1<<62 + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			for _, id := range tt.ids {
				src.add(&hwhealv1.Event{Id: id, Type: evConnected})
			}
			got, err := findHead(t.Context(), src, tt.from)
			if err != nil || got != tt.want {
				t.Errorf("findHead = %d, %v; want %d", got, err, tt.want)
			}
			if reads, _ := src.counts(); reads > 2*64+2 {
				t.Errorf("%d reads, want O(log n)", reads)
			}
		})
	}
	t.Run("error", func(t *testing.T) {
		src := newMemSource()
		src.add(&hwhealv1.Event{Id: 1})
		src.failReads = 1
		if _, err := findHead(t.Context(), src, 0); err == nil {
			t.Error("no error")
		}
	})
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestNewRejects(t *testing.T) {
	src := newMemSource()
	if _, err := New(Config{}, nil, Options{}); err == nil {
		t.Error("nil Source accepted")
	}
	bad := Config{Targets: []Target{{Name: "a", URL: "ftp://x"}, {Name: "b", URL: "http://x"}, {Name: "b", URL: "http://y"}}}
	_, err := New(bad, src, Options{})
	if err == nil || !strings.Contains(err.Error(), "scheme") || !strings.Contains(err.Error(), "duplicate target name") {
		t.Errorf("New(bad config) = %v", err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Targets: []Target{{Name: "a", URL: "http://x"}}}
	if _, err := New(cfg, src, Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, src, Options{Registerer: reg}); err == nil {
		t.Error("registering the metrics twice did not fail")
	}
}

func TestMetricNames(t *testing.T) {
	src := newMemSource()
	src.add(nodeEvent(evConnected, "n1"))
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadRequest)
		return true
	})
	r := start(t, src, Options{}, fastTarget("pager", rc.srv.URL))
	waitFor(t, "dead letter handled", func() bool { return r.d.targetByName("pager").pos.Load() == 1 })
	for _, tt := range []struct {
		family string
		typ    dto.MetricType
		want   string
	}{
		{"hwheal_collector_webhook_delivered_total", dto.MetricType_COUNTER, "target=pager 0"},
		{"hwheal_collector_webhook_attempts_failed_total", dto.MetricType_COUNTER, "target=pager 1"},
		{"hwheal_collector_webhook_dead_letter_total", dto.MetricType_COUNTER, "target=pager 1"},
		{"hwheal_collector_webhook_lag_events", dto.MetricType_GAUGE, "target=pager 0"},
		// A histogram: the sample count.
		{"hwheal_collector_webhook_delivery_duration_seconds", dto.MetricType_HISTOGRAM, "target=pager 1"},
	} {
		typ, series := gather(t, r.reg, tt.family)
		if typ != tt.typ || !slices.Equal(series, []string{tt.want}) {
			t.Errorf("%s: %v %v, want %v [%s]", tt.family, typ, series, tt.typ, tt.want)
		}
	}
}

func TestRunTwice(t *testing.T) {
	src := newMemSource()
	r := start(t, src, Options{}, fastTarget("t", "http://127.0.0.1:1"))
	waitFor(t, "Run started", r.d.running.Load)
	if err := r.d.Run(t.Context()); err == nil {
		t.Error("second Run did not fail")
	}
}

func TestNoTargetsRunsUntilCancelled(t *testing.T) {
	d, err := New(Config{}, newMemSource(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	d.Notify()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before cancel", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}

func TestCursorPersistence(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     func(sets []uint64) bool
		what     string
	}{
		{"throttled: start and caught up", time.Hour, func(s []uint64) bool { return slices.Equal(s, []uint64{0, 250}) }, "[0 250]"},
		{"every delivery", time.Nanosecond, func(s []uint64) bool {
			return len(s) == 251 && s[0] == 0 && slices.IsSorted(s) && s[250] == 250
		}, "0, then each of 1..250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			for range 250 {
				src.add(nodeEvent(evConnected, "n1"))
			}
			rc := newReceiver(t, nil)
			r := start(t, src, Options{CursorInterval: tt.interval}, fastTarget("t", rc.srv.URL))
			rc.waitRequests(t, 250)
			waitFor(t, "cursor at 250", func() bool { id, _ := src.cursor("webhook/t"); return id == 250 })
			r.stop()
			src.mu.Lock()
			sets := append([]uint64(nil), src.setCursors...)
			src.mu.Unlock()
			if !tt.want(sets) {
				t.Errorf("cursor stored as %v, want %s", sets, tt.what)
			}
		})
	}
}

// By default a receiver that is down is waited for: its events stay in the
// log and arrive, in order, when it is back; none is dead-lettered.
func TestOutageWaitedForByDefault(t *testing.T) {
	src := newMemSource()
	src.add(faultEvent(evOpened, "n1", "disk.media", sevCritical), nodeEvent(evConnected, "n2"))
	const outage = 20 // failed attempts, more than any fixed default would allow
	rc := newReceiver(t, func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool {
		if n < outage {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	tg := fastTarget("t", rc.srv.URL)
	tg.MaxAttempts = 0
	r := start(t, src, Options{}, tg)
	rc.waitRequests(t, outage+2)
	waitFor(t, "cursor at 2", func() bool { id, _ := src.cursor("webhook/t"); return id == 2 })
	ids := rc.ids()
	if got := ids[len(ids)-2:]; !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("after the outage received %v, want 1 then 2", got)
	}
	if got := r.metric(t, "dead", "t"); got != 0 {
		t.Errorf("dead letters = %v, want 0", got)
	}
	if got := r.metric(t, "failed", "t"); got != outage {
		t.Errorf("attempts failed = %v, want %d", got, outage)
	}
}
