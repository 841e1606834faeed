// Package events owns the collector's live fan-out of fleet events to
// watchers (hwhealctl events --follow, dashboards). Events are recorded by
// the store first; the broker only carries them to whoever is listening now,
// and drops a watcher that falls behind rather than letting it slow ingest.
package events

import (
	"sync"
	"sync/atomic"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// DefaultBuffer is how many events a watcher may lag before it is dropped.
const DefaultBuffer = 4096

// Broker fans published events out to subscriptions. Publish never blocks.
type Broker struct {
	buffer int

	mu   sync.Mutex
	subs map[*Subscription]struct{}

	published atomic.Uint64
	overflows atomic.Uint64
}

// NewBroker returns a broker whose subscriptions buffer up to buffer events
// (DefaultBuffer when buffer <= 0).
func NewBroker(buffer int) *Broker {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Broker{buffer: buffer, subs: make(map[*Subscription]struct{})}
}

// Subscription receives the events published after it was made.
type Subscription struct {
	b    *Broker
	c    chan *hwhealv1.Event
	gone chan struct{} // closed when the subscription overflowed or closed
	once sync.Once
	// overflowed is set before gone is closed when the watcher fell behind.
	overflowed atomic.Bool
}

// Subscribe starts a subscription. Close it when done.
func (b *Broker) Subscribe() *Subscription {
	s := &Subscription{b: b, c: make(chan *hwhealv1.Event, b.buffer), gone: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish hands events to every subscription. A subscription whose buffer
// is full is ended (Overflowed reports true) instead of blocking the caller:
// ingest must never wait for a slow watcher.
func (b *Broker) Publish(evs ...*hwhealv1.Event) {
	if len(evs) == 0 {
		return
	}
	b.published.Add(uint64(len(evs)))
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		for _, ev := range evs {
			select {
			case s.c <- ev:
				continue
			default:
			}
			b.overflows.Add(1)
			s.overflowed.Store(true)
			delete(b.subs, s)
			s.end()
			break
		}
	}
}

// Subscribers is the number of live subscriptions.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Stats returns how many events were published and how many watchers were
// dropped for falling behind.
func (b *Broker) Stats() (published, overflows uint64) {
	return b.published.Load(), b.overflows.Load()
}

// C delivers the events.
func (s *Subscription) C() <-chan *hwhealv1.Event { return s.c }

// Done is closed when the subscription ended: closed by its owner or
// dropped for falling behind. Events still buffered in C may be drained.
func (s *Subscription) Done() <-chan struct{} { return s.gone }

// Overflowed reports whether the subscription was dropped for falling
// behind.
func (s *Subscription) Overflowed() bool { return s.overflowed.Load() }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	s.end()
}

func (s *Subscription) end() { s.once.Do(func() { close(s.gone) }) }
