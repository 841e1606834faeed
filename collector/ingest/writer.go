package ingest

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store"
)

var errStopped = errors.New("ingest writer stopped")

// writer group-commits: every batch queued while the previous transaction
// ran goes into the next one. With many agents this turns thousands of small
// writes into a few large transactions; with one agent it costs nothing.
type writer struct {
	store        store.Store
	broker       *events.Broker
	metrics      *Metrics
	logger       *slog.Logger
	maxTxReports int

	queue   chan *job
	stopped chan struct{}
}

type job struct {
	batch store.Batch
	done  chan jobResult // capacity 1
}

type jobResult struct {
	res store.BatchResult
	err error
}

func newWriter(st store.Store, b *events.Broker, m *Metrics, l *slog.Logger, queue, maxTxReports int) *writer {
	return &writer{
		store: st, broker: b, metrics: m, logger: l, maxTxReports: maxTxReports,
		queue: make(chan *job, queue), stopped: make(chan struct{}),
	}
}

// submit queues a batch and returns where its result arrives. It blocks
// while the queue is full: that back-pressure reaches the agents through
// gRPC flow control instead of growing the collector's memory.
func (w *writer) submit(ctx context.Context, b store.Batch) (<-chan jobResult, error) {
	j := &job{batch: b, done: make(chan jobResult, 1)}
	select {
	case w.queue <- j:
		return j.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.stopped:
		return nil, errStopped
	}
}

func (w *writer) run(ctx context.Context) {
	defer close(w.stopped)
	for {
		var first *job
		select {
		case <-ctx.Done():
			w.failQueued()
			return
		case first = <-w.queue:
		}
		jobs := []*job{first}
		reports := len(first.batch.Reports)
	gather:
		for reports < w.maxTxReports {
			select {
			case j := <-w.queue:
				jobs = append(jobs, j)
				reports += len(j.batch.Reports)
			default:
				break gather
			}
		}
		w.apply(ctx, jobs)
	}
}

func (w *writer) apply(ctx context.Context, jobs []*job) {
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
		// transaction with: retry each on its own.
		w.logger.Warn("group commit failed, storing batches one by one", "batches", len(jobs), "err", err)
		for _, j := range jobs {
			w.apply(ctx, []*job{j})
		}
		return
	}
	if err != nil {
		jobs[0].done <- jobResult{err: err}
		return
	}
	for i, j := range jobs {
		r := results[i]
		w.metrics.Duplicates.Add(float64(r.Duplicates))
		w.broker.Publish(r.Events...)
		j.done <- jobResult{res: r}
	}
}

func (w *writer) failQueued() {
	for {
		select {
		case j := <-w.queue:
			j.done <- jobResult{err: errStopped}
		default:
			return
		}
	}
}
