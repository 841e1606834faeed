// Package detecttest holds fakes for the seams of package detect: a manual
// Clock for the Limiter and the Merger.
package detecttest

import (
	"sort"
	"sync"
	"time"

	"github.com/hwheal/hwheal/agent/detect"
)

// Clock is a detect.Clock that moves only when Advance is called. Timers
// fire from Advance, in the caller's goroutine, in deadline order; a timer
// a callback starts fires in the same Advance if it falls due within it.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*timer
}

var _ detect.Clock = (*Clock)(nil)

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now implements detect.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements detect.Clock.
func (c *Clock) AfterFunc(d time.Duration, f func()) detect.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock d forward, firing the timers that fall due on
// the way, each with the clock reading its deadline.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			a, b := c.timers[i], c.timers[j]
			return a.when.Before(b.when) || (a.when.Equal(b.when) && a.seq < b.seq)
		})
		if len(c.timers) == 0 || c.timers[0].when.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		if t.when.After(c.now) {
			c.now = t.when
		}
		c.mu.Unlock()
		t.f()
	}
}

// Pending is the number of timers not yet fired or stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

type timer struct {
	c    *Clock
	when time.Time
	seq  int
	f    func()
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
