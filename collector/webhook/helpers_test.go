package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedWriter lets a test read what concurrent loggers wrote.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTestLogger(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu: mu, w: w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// memSource is the Source seam in memory: an event log, cursors and nodes.
// The real store is exercised by sqlite_test.go on the same paths.
type memSource struct {
	mu      sync.Mutex
	events  []*hwhealv1.Event
	cursors map[string]uint64
	nodes   map[string]map[string]string

	reads      int // EventsAfter calls
	nodeReads  int // GetNode calls
	failReads  int // fail this many EventsAfter calls
	failNodes  int // fail this many GetNode calls
	setCursors []uint64
}

func newMemSource() *memSource {
	return &memSource{cursors: map[string]uint64{}, nodes: map[string]map[string]string{}}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// add appends events, numbering them after the last one.
func (m *memSource) add(evs ...*hwhealv1.Event) []*hwhealv1.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		var last uint64
		if n := len(m.events); n > 0 {
			last = m.events[n-1].GetId()
		}
		if ev.Id == 0 {
			ev.Id = last + 1
		}
		if ev.Time == nil {
			ev.Time = timestamppb.New(t0.Add(time.Duration(ev.Id) * time.Second))
		}
		m.events = append(m.events, ev)
	}
	return evs
}

func (m *memSource) EventsAfter(ctx context.Context, after uint64, limit int) ([]*hwhealv1.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.failReads > 0 {
		m.failReads--
		return nil, errors.New("database is locked")
	}
	var out []*hwhealv1.Event
	for _, ev := range m.events {
		if ev.GetId() > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *memSource) Cursor(ctx context.Context, name string) (uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.cursors[name]
	return id, ok, nil
}

func (m *memSource) SetCursor(ctx context.Context, name string, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursors[name] = id
	m.setCursors = append(m.setCursors, id)
	return nil
}

func (m *memSource) GetNode(ctx context.Context, name string) (*hwhealv1.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nodeReads++
	if m.failNodes > 0 {
		m.failNodes--
		return nil, errors.New("database is locked")
	}
	l, ok := m.nodes[name]
	if !ok {
		return nil, fmt.Errorf("node %q: %w", name, store.ErrNotFound)
	}
	return &hwhealv1.Node{Name: name, Labels: l}, nil
}

func (m *memSource) cursor(name string) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.cursors[name]
	return id, ok
}

func (m *memSource) counts() (reads, nodeReads int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads, m.nodeReads
}

func nodeEvent(typ hwhealv1.EventType, node string) *hwhealv1.Event {
	return &hwhealv1.Event{Type: typ, Node: node}
}

func faultEvent(typ hwhealv1.EventType, node, class string, sev hwhealv1.Severity) *hwhealv1.Event {
	return &hwhealv1.Event{Type: typ, Node: node, Fault: &hwhealv1.FaultRecord{
		Id: 7, Node: node, FaultClass: class, Severity: sev, Mode: hwhealv1.RuleMode_RULE_MODE_ENFORCE,
		Part:  &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda"},
		State: hwhealv1.FaultState_FAULT_STATE_OPEN, Count: 1,
	}}
}

const (
	evRegistered   = hwhealv1.EventType_EVENT_TYPE_NODE_REGISTERED
	evConnected    = hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED
	evDisconnected = hwhealv1.EventType_EVENT_TYPE_NODE_DISCONNECTED
	evHealth       = hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED
	evOpened       = hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED
	evUpdated      = hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED
	evResolved     = hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED
	evAcked        = hwhealv1.EventType_EVENT_TYPE_FAULT_ACKNOWLEDGED

	sevInfo     = hwhealv1.Severity_SEVERITY_INFO
	sevWarning  = hwhealv1.Severity_SEVERITY_WARNING
	sevCritical = hwhealv1.Severity_SEVERITY_CRITICAL
)

// request is one POST a receiver got.
type request struct {
	header http.Header
	method string
	body   []byte
	ce     CloudEvent
}

// receiver is a webhook endpoint on a real HTTP server. respond decides
// the status of each request (nil: 200).
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []request
	respond func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool // true: handled
	got     chan struct{}
}

func newReceiver(t *testing.T, respond func(n int, ce CloudEvent, w http.ResponseWriter, r *http.Request) bool) *receiver {
	t.Helper()
	rc := &receiver{respond: respond, got: make(chan struct{}, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var ce CloudEvent
		if err := json.Unmarshal(body, &ce); err != nil {
			t.Errorf("receiver: body is not a CloudEvent: %v: %s", err, body)
		}
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), method: r.Method, body: body, ce: ce})
		rc.mu.Unlock()
		rc.got <- struct{}{}
		if rc.respond != nil && rc.respond(n, ce, w, r) {
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// ids lists the CloudEvent ids received, in order, repeats included.
func (rc *receiver) ids() []string {
	var out []string
	for _, r := range rc.requests() {
		out = append(out, r.ce.ID)
	}
	return out
}

// waitRequests waits until the receiver got n requests in all.
func (rc *receiver) waitRequests(t *testing.T, n int) []request {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if reqs := rc.requests(); len(reqs) >= n {
			return reqs
		}
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("receiver got %d requests (ids %v), want %d", len(rc.requests()), rc.ids(), n)
		}
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fastTarget is a target with test-sized backoffs.
func fastTarget(name, url string) Target {
	return Target{
		Name: name, URL: url, Start: StartBeginning,
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, Timeout: 5 * time.Second,
	}
}

// running is a Dispatcher started by start.
type running struct {
	d    *Dispatcher
	reg  *prometheus.Registry
	stop func() // cancels and waits for Run
	done chan error
}

func start(t *testing.T, src Source, opts Options, targets ...Target) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.PollInterval == 0 {
		opts.PollInterval = 10 * time.Millisecond
	}
	d, err := New(Config{Targets: targets}, src, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r := &running{d: d, reg: reg, done: done}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// metric reads one per-target metric (counter or gauge).
func (r *running) metric(t *testing.T, name, target string) float64 {
	t.Helper()
	var c prometheus.Metric
	m := r.d.targetByName(target)
	if m == nil {
		t.Fatalf("no target %q", target)
	}
	switch name {
	case "delivered":
		c = m.delivered
	case "failed":
		c = m.failed
	case "dead":
		c = m.dead
	case "lag":
		c = m.lag
	default:
		t.Fatalf("unknown metric %q", name)
	}
	var out dto.Metric
	if err := c.Write(&out); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("%s is neither a counter nor a gauge", name)
	return 0
}

// gather returns the registry's series of one family, as "labels value"
// lines ("target=pager 1"), and the family's type.
func gather(t *testing.T, reg *prometheus.Registry, family string) (dto.MetricType, []string) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
		var out []string
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				v = float64(m.Histogram.GetSampleCount())
			}
			out = append(out, fmt.Sprintf("%s %g", strings.Join(labels, ","), v))
		}
		return f.GetType(), out
	}
	return 0, nil
}

func (d *Dispatcher) targetByName(name string) *target {
	for _, t := range d.targets {
		if t.cfg.Name == name {
			return t
		}
	}
	return nil
}
