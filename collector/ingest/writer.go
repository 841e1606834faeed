package ingest

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var (
	// ErrStopped is returned for work submitted to a writer that has
	// stopped: the collector is shutting down.
	ErrStopped = errors.New("ingest writer stopped")
	// errEarlierFailed answers a batch queued behind a batch of the same
	// stream that failed: storing it would advance the stream's acked
	// sequence past the failed one, and the agent would delete reports the
	// store never took.
	errEarlierFailed = errors.New("an earlier batch of this stream failed")
)

// writer is the collector's one writer. Every store write of ingest goes
// through it, in queue order, so that:
//   - batches group-commit: every batch queued while the previous
//     transaction ran goes into the next one, so thousands of agents cost a
//     few transactions, not thousands;
//   - events are published in the order their ids were given (hellos and
//     disconnects included), which WatchEvents relies on;
//   - once a batch of a stream fails, no later batch of that stream is
//     stored before the agent reconnects and resends from the gap.
type writer struct {
	store        store.Store
	broker       *events.Broker
	metrics      *Metrics
	logger       *slog.Logger
	maxTxReports int
	// live reports whether node has a stream now; a disconnect of a node
	// that reconnected meanwhile is stale and skipped.
	live func(node string) bool

	// budget bounds the reports queued or being stored, so a replay storm
	// after an outage is held back at the agents (gRPC flow control), not
	// in the collector's memory.
	budget    *semaphore.Weighted
	budgetMax int64
	queue     chan *job
	stopped   chan struct{}
}

type jobKind int

const (
	jobBatch jobKind = iota
	jobHello
	jobDisconnect
	jobFunc
)

type job struct {
	kind   jobKind
	sess   *session
	batch  store.Batch
	hello  store.Hello
	node   string
	at     time.Time
	weight int64
	fn     func(ctx context.Context) ([]*hwhealv1.Event, error) // jobFunc
	done   chan jobResult                                       // capacity 1
}

type jobResult struct {
	res   store.BatchResult
	hello store.HelloResult
	err   error
}

func newWriter(st store.Store, b *events.Broker, m *Metrics, l *slog.Logger, queueReports, maxTxReports int, live func(string) bool) *writer {
	return &writer{
		store: st, broker: b, metrics: m, logger: l, maxTxReports: maxTxReports, live: live,
		budget: semaphore.NewWeighted(int64(queueReports)), budgetMax: int64(queueReports),
		// Every job weighs at least 1, so the budget also bounds the queue:
		// a send never blocks once the budget is acquired.
		queue:   make(chan *job, queueReports),
		stopped: make(chan struct{}),
	}
}

// submit queues a job and returns where its result arrives. It blocks
// while the report budget is spent: that back-pressure reaches the agents
// through gRPC flow control instead of growing the collector's memory.
func (w *writer) submit(ctx context.Context, j *job) (<-chan jobResult, error) {
	j.done = make(chan jobResult, 1)
	j.weight = 1
	if j.kind == jobBatch {
		j.weight = min(max(int64(len(j.batch.Reports)), 1), w.budgetMax)
	}
	select {
	case <-w.stopped:
		return nil, ErrStopped
	default:
	}
	if err := w.budget.Acquire(ctx, j.weight); err != nil {
		return nil, err
	}
	select {
	case w.queue <- j:
		return j.done, nil
	case <-w.stopped:
		w.budget.Release(j.weight)
		return nil, ErrStopped
	}
}

// call submits a job and waits for its result.
func (w *writer) call(ctx context.Context, j *job) (jobResult, error) {
	done, err := w.submit(ctx, j)
	if err != nil {
		return jobResult{}, err
	}
	select {
	case r := <-done:
		return r, r.err
	case <-w.stopped:
		return jobResult{}, ErrStopped
	}
}

func (w *writer) answer(j *job, r jobResult) {
	j.done <- r
	w.budget.Release(j.weight)
}

func (w *writer) run(ctx context.Context) {
	defer close(w.stopped)
	var next *job // taken from the queue but not yet handled
	for {
		first := next
		next = nil
		if first == nil {
			select {
			case <-ctx.Done():
				w.failQueued()
				return
			case first = <-w.queue:
			}
		}
		if first.kind != jobBatch {
			w.single(ctx, first)
			continue
		}
		jobs := []*job{first}
		reports := len(first.batch.Reports)
	gather:
		for reports < w.maxTxReports {
			select {
			case j := <-w.queue:
				if j.kind != jobBatch {
					next = j // after this group, in queue order
					break gather
				}
				jobs = append(jobs, j)
				reports += len(j.batch.Reports)
			default:
				break gather
			}
		}
		w.apply(ctx, jobs)
	}
}

// single handles a hello, a disconnect or a write of the collector's own.
func (w *writer) single(ctx context.Context, j *job) {
	switch j.kind {
	case jobHello:
		res, err := w.store.Hello(ctx, j.hello)
		if err == nil {
			w.broker.Publish(res.Events...)
		}
		w.answer(j, jobResult{hello: res, err: err})
	case jobDisconnect:
		if w.live(j.node) {
			// The node reconnected after this stream ended: its new
			// hello stands.
			w.answer(j, jobResult{})
			return
		}
		ev, err := w.store.Disconnected(ctx, j.node, j.at)
		if err == nil && ev != nil {
			w.broker.Publish(ev)
		}
		w.answer(j, jobResult{err: err})
	case jobFunc:
		// fn returns only events that were stored; publish them even
		// with an error, in case a writer committed part of its work.
		evs, err := j.fn(ctx)
		w.broker.Publish(evs...)
		w.answer(j, jobResult{err: err})
	}
}

func (w *writer) apply(ctx context.Context, jobs []*job) {
	// Batches behind a failed one of the same stream are not stored.
	live := jobs[:0]
	for _, j := range jobs {
		if j.sess != nil && j.sess.failed {
			w.answer(j, jobResult{err: errEarlierFailed})
			continue
		}
		live = append(live, j)
	}
	jobs = live
	if len(jobs) == 0 {
		return
	}
	batches := make([]store.Batch, len(jobs))
	for i, j := range jobs {
		batches[i] = j.batch
	}
	start := time.Now()
	results, err := w.store.Apply(ctx, batches)
	w.metrics.ApplySeconds.Observe(time.Since(start).Seconds())
	w.metrics.TxBatches.Observe(float64(len(jobs)))
	if err != nil && len(jobs) > 1 {
		// One bad batch must not fail the agents it happened to share a
		// transaction with: retry each on its own, in order.
		w.logger.Warn("group commit failed, storing batches one by one", "batches", len(jobs), "err", err)
		for _, j := range jobs {
			w.apply(ctx, []*job{j})
		}
		return
	}
	if err != nil {
		if jobs[0].sess != nil {
			jobs[0].sess.failed = true
		}
		w.answer(jobs[0], jobResult{err: err})
		return
	}
	for i, j := range jobs {
		r := results[i]
		w.metrics.Duplicates.Add(float64(r.Duplicates))
		w.broker.Publish(r.Events...)
		w.answer(j, jobResult{res: r})
	}
}

func (w *writer) failQueued() {
	for {
		select {
		case j := <-w.queue:
			w.answer(j, jobResult{err: ErrStopped})
		default:
			return
		}
	}
}

// reportKinds counts a batch's reports by kind for the metrics.
func reportKinds(b *hwhealv1.ReportBatch) (faults, observations, updates, unknown int) {
	for _, r := range b.GetReports() {
		switch {
		case r.GetFault() != nil:
			faults++
		case r.GetObservation() != nil:
			observations++
		case r.GetActionUpdate() != nil:
			updates++
		default:
			unknown++
		}
	}
	return faults, observations, updates, unknown
}
