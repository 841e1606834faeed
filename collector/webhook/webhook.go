// Package webhook owns the collector's outgoing webhooks: every event the
// store records (node registered, connected, disconnected, rebooted, health
// changed; fault opened, updated, resolved, acknowledged, reopened) leaves
// as a CloudEvents 1.0 structured-mode HTTP POST to the targets that select
// it, so that chat, paging and ticket systems can subscribe.
//
// Events are read from the store's persistent event log, not from the live
// broker: each target reads the log in id order from its own cursor, stored
// under "webhook/" + target name, so nothing recorded is lost across a
// collector restart or a receiver outage.
//
// Delivery is at least once. A target stores its cursor at most every
// Options.CursorInterval while it works through a backlog, whenever it has
// caught up, and when Run stops; a crash therefore repeats at most that
// interval's deliveries, and a request cut off by shutdown is sent again.
// The CloudEvents id is the event's store id, the same on every attempt and
// for every target: receivers drop repeats by source and id.
//
// A target takes its events one at a time, in order. 2xx is delivered;
// 408, 429, 5xx and network errors are retried with exponential backoff and
// jitter, honouring Retry-After up to the target's backoff_max; any other
// status is permanent (redirects are not followed). An event that fails
// permanently or exhausts max_attempts is dead-lettered: counted, logged
// with its id, and skipped, so that one bad event holds its target back for
// at most its retries (with the defaults about 3.5 minutes: 8 attempts of
// up to 10 s, waits 1 s doubling) and never blocks it. Events a target
// filters out move its cursor too.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Source is what the dispatcher needs of the store: the event log, a place
// to keep each target's cursor, and node labels. collector/store backends
// provide it.
type Source interface {
	// EventsAfter returns up to limit events with id > afterID, in id
	// order.
	EventsAfter(ctx context.Context, afterID uint64, limit int) ([]*hwhealv1.Event, error)
	// Cursor returns the id stored under name; ok is false when none is.
	Cursor(ctx context.Context, name string) (id uint64, ok bool, err error)
	// SetCursor stores id under name.
	SetCursor(ctx context.Context, name string, id uint64) error
	// GetNode returns a node; an error wrapping store.ErrNotFound when it
	// does not exist.
	GetNode(ctx context.Context, name string) (*hwhealv1.Node, error)
}

// CursorPrefix starts the name of every cursor this package stores.
const CursorPrefix = "webhook/"

// Options tunes a Dispatcher. The zero value is usable.
type Options struct {
	// Logger receives delivery failures and dead letters (default:
	// discard).
	Logger *slog.Logger
	// Registerer gets the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Client sends the requests (default: a client on
	// http.DefaultTransport that does not follow redirects, so a 3xx is a
	// permanent error). Each attempt is bounded by the target's timeout
	// through its context, not by Client.Timeout.
	Client *http.Client
	// SourceURI is the CloudEvents source attribute (default
	// DefaultSourceURI). Receivers dedupe on source and id, so a collector
	// whose store was recreated (ids restart) should get a new one.
	SourceURI string
	// PollInterval is how often a target looks at the log when nothing
	// called Notify (default 2s).
	PollInterval time.Duration
	// BatchSize is how many events a target reads at a time (default 100).
	BatchSize int
	// CursorInterval bounds how often a target stores its cursor while it
	// works through a backlog (default 1s).
	CursorInterval time.Duration
	// LabelTTL is how long a node's labels are cached for label filters
	// (default 30s).
	LabelTTL time.Duration
	// Now is the clock for the label cache and Retry-After dates (default
	// time.Now).
	Now func() time.Time
	// Sleep waits between delivery attempts, returning early with ctx's
	// error (default: a timer). Tests record the waits asked for.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Dispatcher delivers the event log to the configured targets.
type Dispatcher struct {
	src            Source
	log            *slog.Logger
	client         *http.Client
	sourceURI      string
	poll           time.Duration
	batch          int
	cursorInterval time.Duration
	now            func() time.Time
	sleep          func(ctx context.Context, d time.Duration) error
	labels         *labelCache
	targets        []*target

	head     atomic.Uint64 // highest event id known to be in the log
	headWake chan struct{}
	running  atomic.Bool
}

type target struct {
	cfg    Target
	cursor string // name of the stored cursor
	f      *filter
	log    *slog.Logger
	wake   chan struct{}

	pos         atomic.Uint64 // id of the last event handled
	persisted   uint64        // last id stored; owned by the target's goroutine
	persistedAt time.Time

	delivered, failed, dead prometheus.Counter
	lag                     prometheus.Gauge
	duration                prometheus.Observer
}

// New checks cfg and builds a Dispatcher; nothing runs until Run.
func New(cfg Config, src Source, opts Options) (*Dispatcher, error) {
	if src == nil {
		return nil, errors.New("webhook: a Source is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			// A redirect is a misconfigured URL: following a 301-303
			// would turn the POST into a GET and call that delivered.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.SourceURI == "" {
		opts.SourceURI = DefaultSourceURI
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.CursorInterval <= 0 {
		opts.CursorInterval = time.Second
	}
	if opts.LabelTTL <= 0 {
		opts.LabelTTL = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		src:            src,
		log:            opts.Logger,
		client:         opts.Client,
		sourceURI:      opts.SourceURI,
		poll:           opts.PollInterval,
		batch:          opts.BatchSize,
		cursorInterval: opts.CursorInterval,
		now:            opts.Now,
		sleep:          opts.Sleep,
		labels:         &labelCache{src: src, ttl: opts.LabelTTL, now: opts.Now, m: map[string]labelEntry{}},
		headWake:       make(chan struct{}, 1),
	}
	for _, tc := range cfg.Targets {
		tc.applyDefaults()
		name := tc.Name
		d.targets = append(d.targets, &target{
			cfg:       tc,
			cursor:    CursorPrefix + name,
			f:         newFilter(&tc),
			log:       opts.Logger.With("webhook", name),
			wake:      make(chan struct{}, 1),
			delivered: m.delivered.WithLabelValues(name),
			failed:    m.failed.WithLabelValues(name),
			dead:      m.dead.WithLabelValues(name),
			lag:       m.lag.WithLabelValues(name),
			duration:  m.duration.WithLabelValues(name),
		})
	}
	return d, nil
}

// Notify wakes every target to read the log now. It never blocks: the
// collector calls it after it stored events. Without it targets still find
// new events within PollInterval.
func (d *Dispatcher) Notify() {
	for _, t := range d.targets {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	select {
	case d.headWake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done, then stores each target's cursor and
// returns nil. A request in flight is cancelled, and its event is sent
// again after a restart. Run may be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("webhook: Run called twice")
	}
	if len(d.targets) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.trackHead(ctx) })
	for _, t := range d.targets {
		wg.Go(func() { d.runTarget(ctx, t) })
	}
	wg.Wait()
	return nil
}

// trackHead keeps the log's head current for the lag gauges, which must
// also move while every target is stuck retrying.
func (d *Dispatcher) trackHead(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.headWake:
		case <-timer.C:
		}
		h, err := findHead(ctx, d.src, d.head.Load())
		if err != nil {
			if ctx.Err() == nil {
				d.log.Debug("webhook: find the event log's head", "err", err)
			}
		} else {
			d.seeHead(h)
		}
		timer.Reset(d.poll)
	}
}

func (d *Dispatcher) seeHead(id uint64) {
	for {
		h := d.head.Load()
		if id <= h {
			return
		}
		if d.head.CompareAndSwap(h, id) {
			break
		}
	}
	for _, t := range d.targets {
		d.updateLag(t)
	}
}

func (d *Dispatcher) updateLag(t *target) {
	h, p := d.head.Load(), t.pos.Load()
	if h > p {
		t.lag.Set(float64(h - p))
	} else {
		t.lag.Set(0)
	}
}

// findHead returns the highest event id in the log, or from when the log
// holds nothing after from. It probes with one-event reads, galloping then
// bisecting, so it costs one query when nothing is new and O(log n) for n
// new events, whatever the gaps between ids.
func findHead(ctx context.Context, src Source, from uint64) (uint64, error) {
	// after returns the first id above x, if any.
	after := func(x uint64) (uint64, bool, error) {
		evs, err := src.EventsAfter(ctx, x, 1)
		if err != nil || len(evs) == 0 {
			return 0, false, err
		}
		if id := evs[0].GetId(); id > x {
			return id, true, nil
		}
		return 0, false, fmt.Errorf("event log returned id %d after %d", evs[0].GetId(), x)
	}
	id, ok, err := after(from)
	if err != nil || !ok {
		return from, err
	}
	// lo is always an existing id; hi an id with nothing after it.
	lo, hi := id, uint64(0)
	for step := uint64(1); ; step *= 2 {
		if lo > ^uint64(0)-step {
			hi = ^uint64(0)
		} else {
			hi = lo + step
		}
		id, ok, err := after(hi)
		if err != nil {
			return from, err
		}
		if !ok {
			break
		}
		lo = id
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		id, ok, err := after(mid)
		if err != nil {
			return from, err
		}
		if ok {
			lo = id
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// startCursor returns where t resumes: its stored cursor, or for a new
// target the log's head (StartEnd) or 0, stored at once so that a restart
// does not move a new target's start.
func (d *Dispatcher) startCursor(ctx context.Context, t *target) (uint64, error) {
	for failures := 1; ; failures++ {
		id, ok, err := d.src.Cursor(ctx, t.cursor)
		if err == nil && ok {
			t.log.Info("webhook resumes", "after_event", id)
			return id, nil
		}
		if err == nil {
			if t.cfg.Start == StartEnd {
				id, err = findHead(ctx, d.src, 0)
			}
			if err == nil {
				err = d.src.SetCursor(ctx, t.cursor, id)
			}
			if err == nil {
				t.log.Info("webhook starts", "after_event", id, "start", t.cfg.Start.String())
				return id, nil
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		t.log.Warn("webhook cannot read its cursor", "err", err)
		if err := sleep(ctx, d.storeRetry(failures)); err != nil {
			return 0, err
		}
	}
}

// storeRetry is the wait after the nth consecutive store failure.
func (d *Dispatcher) storeRetry(n int) time.Duration {
	w := d.poll
	for i := 1; i < n && w < time.Minute; i++ {
		w *= 2
	}
	return min(w, time.Minute)
}

func (d *Dispatcher) runTarget(ctx context.Context, t *target) {
	start, err := d.startCursor(ctx, t)
	if err != nil {
		return
	}
	t.pos.Store(start)
	t.persisted, t.persistedAt = start, time.Now()
	d.updateLag(t)
	defer func() {
		// ctx is done: store the last position under a fresh deadline so
		// that a clean restart repeats nothing.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		d.persist(fctx, t, true)
	}()
	failures := 0
	for {
		evs, err := d.src.EventsAfter(ctx, t.pos.Load(), d.batch)
		if err == nil {
			if len(evs) > 0 {
				d.seeHead(evs[len(evs)-1].GetId())
			}
			err = d.process(ctx, t, evs)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			t.log.Warn("webhook cannot read the event log", "err", err)
			d.persist(ctx, t, true)
			if sleep(ctx, d.storeRetry(failures)) != nil {
				return
			}
			continue
		}
		failures = 0
		if len(evs) > 0 {
			continue
		}
		// Caught up: store the cursor before idling.
		d.persist(ctx, t, true)
		if d.idle(ctx, t) != nil {
			return
		}
	}
}

func (d *Dispatcher) idle(ctx context.Context, t *target) error {
	timer := time.NewTimer(d.poll)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.wake:
	case <-timer.C:
	}
	return nil
}

// process handles a batch in order. It returns a store error (the event
// whose labels could not be read is tried again) or ctx's error.
func (d *Dispatcher) process(ctx context.Context, t *target, evs []*hwhealv1.Event) error {
	for _, ev := range evs {
		if ev.GetId() <= t.pos.Load() {
			continue
		}
		ok, err := d.match(ctx, t, ev)
		if err != nil {
			return err
		}
		if ok {
			if err := d.deliver(ctx, t, ev); err != nil {
				return err
			}
		}
		t.pos.Store(ev.GetId())
		d.updateLag(t)
		if ok {
			d.persist(ctx, t, false)
		}
	}
	return nil
}

func (d *Dispatcher) match(ctx context.Context, t *target, ev *hwhealv1.Event) (bool, error) {
	if !t.f.matchEvent(ev) {
		return false, nil
	}
	if len(t.f.labels) == 0 {
		return true, nil
	}
	labels, err := d.labels.get(ctx, ev.GetNode())
	if err != nil {
		return false, err
	}
	return t.f.matchLabels(labels), nil
}

// persist stores t's position if it moved, unless force is false and the
// last store is more recent than CursorInterval.
func (d *Dispatcher) persist(ctx context.Context, t *target, force bool) {
	pos := t.pos.Load()
	if pos == t.persisted {
		return
	}
	now := time.Now()
	if !force && now.Sub(t.persistedAt) < d.cursorInterval {
		return
	}
	if err := d.src.SetCursor(ctx, t.cursor, pos); err != nil {
		if ctx.Err() == nil {
			t.log.Warn("webhook cannot store its cursor", "after_event", pos, "err", err)
		}
		return
	}
	t.persisted, t.persistedAt = pos, now
}

// attempt is the outcome of one POST.
type attempt struct {
	err        error // nil: delivered
	status     int   // 0 when no response
	body       string
	permanent  bool
	retryAfter time.Duration
}

// deliver sends ev until it is accepted or dead-lettered. It returns only
// ctx's error, leaving the event to be sent again.
func (d *Dispatcher) deliver(ctx context.Context, t *target, ev *hwhealv1.Event) error {
	body, err := Encode(ev, d.sourceURI)
	if err != nil {
		d.deadLetter(t, ev, 0, attempt{err: err, permanent: true})
		return nil
	}
	for n := 1; ; n++ {
		a := d.post(ctx, t, body)
		if a.err == nil {
			t.delivered.Inc()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.failed.Inc()
		if a.permanent || (t.cfg.MaxAttempts > 0 && n >= t.cfg.MaxAttempts) {
			d.deadLetter(t, ev, n, a)
			return nil
		}
		wait := backoff(t.cfg.BackoffInitial, t.cfg.BackoffMax, n)
		wait = min(max(wait, a.retryAfter), t.cfg.BackoffMax)
		t.log.Warn("webhook delivery failed, will retry",
			"event_id", ev.GetId(), "attempt", n, "status", a.status, "body", a.body, "retry_in", wait, "err", a.err)
		if err := d.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (d *Dispatcher) deadLetter(t *target, ev *hwhealv1.Event, attempts int, a attempt) {
	t.dead.Inc()
	t.log.Error("webhook event dead-lettered",
		"event_id", ev.GetId(), "type", EventTypeName(ev.GetType()), "node", ev.GetNode(),
		"attempts", attempts, "permanent", a.permanent, "status", a.status, "body", a.body, "err", a.err)
}

func (d *Dispatcher) post(ctx context.Context, t *target, body []byte) attempt {
	actx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return attempt{err: errors.New("build request: invalid URL"), permanent: true}
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "hwheal-collector")
	for k, v := range t.cfg.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := d.client.Do(req)
	t.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		// url.Error quotes the URL, which may hold a secret token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return attempt{err: err}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	// Drain a little more so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return attempt{status: code}
	}
	a := attempt{status: code, body: printable(snippet), err: fmt.Errorf("status %d", code)}
	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		a.retryAfter = retryAfter(resp.Header.Get("Retry-After"), d.now())
	} else {
		a.permanent = true
	}
	return a
}

// backoff is the wait after the nth failed attempt: initial doubled n-1
// times, at most max, with the upper half jittered so that targets failing
// together do not retry in lock step.
func backoff(initial, maxWait time.Duration, n int) time.Duration {
	w := initial
	for i := 1; i < n && w < maxWait; i++ {
		w *= 2
	}
	w = min(w, maxWait)
	half := w / 2
	if half <= 0 {
		return w
	}
	return half + rand.N(w-half+1)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// printable keeps a response body fit for a log line.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// labelCache keeps node labels briefly: a burst of events from one node
// reads them once.
type labelCache struct {
	src Source
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]labelEntry
}

type labelEntry struct {
	labels map[string]string
	at     time.Time
}

// maxLabelEntries bounds the cache; it is cleared when full, which costs
// one read per node afterwards.
const maxLabelEntries = 1 << 16

func (c *labelCache) get(ctx context.Context, node string) (map[string]string, error) {
	if node == "" {
		return nil, nil
	}
	c.mu.Lock()
	e, ok := c.m[node]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.labels, nil
	}
	n, err := c.src.GetNode(ctx, node)
	var labels map[string]string
	switch {
	case err == nil:
		labels = n.GetLabels()
	case errors.Is(err, store.ErrNotFound):
		// A node deleted since: it has no labels to match.
	default:
		return nil, fmt.Errorf("labels of node %q: %w", node, err)
	}
	c.mu.Lock()
	if len(c.m) >= maxLabelEntries {
		clear(c.m)
	}
	c.m[node] = labelEntry{labels: labels, at: c.now()}
	c.mu.Unlock()
	return labels, nil
}
