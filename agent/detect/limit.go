package detect

import (
	"strconv"
	"strings"
	"sync"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Limiter defaults.
const (
	DefaultBurst       = 20
	DefaultEvery       = time.Second
	DefaultMaxKeys     = 1024
	DefaultNewKeyBurst = 512
	DefaultNewKeyEvery = 100 * time.Millisecond
)

// ShedBeforeCapture is the capture the first fault let through after a
// shed episode carries: how many faults of the same rule and part were
// shed since the last one let through.
const ShedBeforeCapture = "shed_before"

// LimiterConfig sets how many faults the Limiter lets through. The zero
// value means the defaults.
type LimiterConfig struct {
	// Burst is how many faults of one (rule, part name) pass back to back
	// (default 20); after it, one more every Every (default 1 s).
	Burst int
	Every time.Duration
	// MaxKeys bounds the (rule, part name) pairs tracked (default 1024):
	// when full, the one seen least recently is forgotten.
	MaxKeys int
	// NewKeyBurst and NewKeyEvery bound how fast one rule may bring in
	// part names not tracked yet (default 512 at once, then one every
	// 100 ms). A real incident touches tens to hundreds of parts (an HBA
	// or expander failing takes every disk behind it), each of whose first
	// faults pass; a flood of made-up or ever-changing names would
	// otherwise get a full burst for every name and push the real parts
	// out of the table. A negative NewKeyBurst turns this bound off.
	NewKeyBurst int
	NewKeyEvery time.Duration
	// Clock is the time source (default SystemClock).
	Clock Clock
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.Every <= 0 {
		c.Every = DefaultEvery
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.NewKeyBurst == 0 {
		c.NewKeyBurst = DefaultNewKeyBurst
	}
	if c.NewKeyEvery <= 0 {
		c.NewKeyEvery = DefaultNewKeyEvery
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	return c
}

// Limiter bounds the faults the agent spools during a flood: a token
// bucket per (rule, part name), a bounded table of them, and a count of
// what it shed per rule. The first fault let through after some were shed
// says how many (ShedBeforeCapture), so an operator sees that a flood
// happened and how large it was without the agent storing it.
//
// Rule names are expected to be the fixed set of the rule file and the
// sources: the Limiter keeps a small record per rule name for as long as
// it lives. Part names are what floods vary, and those it bounds.
//
// It is safe for concurrent use. Take and Allow on a tracked key take one
// mutex and allocate nothing.
type Limiter struct {
	burst, newKeyBurst float64
	every, newKeyEvery time.Duration
	maxKeys            int
	newKeyLimited      bool
	clock              Clock
	base               time.Time

	mu         sync.Mutex
	keys       map[limitKey]*bucket
	head, tail *bucket // most and least recently seen
	rules      map[string]*ruleLimit
	shedTotal  uint64
}

type limitKey struct{ rule, part string }

type bucket struct {
	key        limitKey
	tokens     float64
	last       time.Duration // since Limiter.base
	shedSince  uint64        // shed since the last fault let through
	prev, next *bucket
}

type ruleLimit struct {
	newKeyTokens float64
	last         time.Duration
	shed         uint64
}

// NewLimiter returns a Limiter with cfg's bounds.
func NewLimiter(cfg LimiterConfig) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{
		burst:         float64(cfg.Burst),
		every:         cfg.Every,
		maxKeys:       cfg.MaxKeys,
		newKeyBurst:   float64(cfg.NewKeyBurst),
		newKeyEvery:   cfg.NewKeyEvery,
		newKeyLimited: cfg.NewKeyBurst > 0,
		clock:         cfg.Clock,
		base:          cfg.Clock.Now(),
		keys:          make(map[limitKey]*bucket),
		rules:         make(map[string]*ruleLimit),
	}
}

// Allow reports whether f may be spooled, keyed by its rule and part name.
// When it may and faults of the same key were shed before it, it records
// how many in f's captures under ShedBeforeCapture.
func (l *Limiter) Allow(f *hwhealv1.Fault) bool {
	ok, shed := l.Take(f.GetRule(), f.GetPart().GetName())
	if ok && shed > 0 {
		if f.Evidence == nil {
			f.Evidence = &hwhealv1.Evidence{}
		}
		if f.Evidence.Captures == nil {
			f.Evidence.Captures = make(map[string]string, 1)
		}
		f.Evidence.Captures[ShedBeforeCapture] = strconv.FormatUint(shed, 10)
	}
	return ok
}

// Take spends a token of (rule, part). ok says whether the fault may go
// on; shedBefore is how many of the key were shed since the last one that
// went on (nonzero only when ok).
func (l *Limiter) Take(rule, part string) (ok bool, shedBefore uint64) {
	now := l.clock.Now().Sub(l.base)
	l.mu.Lock()
	defer l.mu.Unlock()
	rl := l.rules[rule]
	if rl == nil {
		rl = &ruleLimit{newKeyTokens: l.newKeyBurst, last: now}
		l.rules[strings.Clone(rule)] = rl
	}
	b := l.keys[limitKey{rule, part}]
	if b == nil {
		if l.newKeyLimited {
			rl.newKeyTokens, rl.last = refill(rl.newKeyTokens, l.newKeyBurst, rl.last, now, l.newKeyEvery)
			if rl.newKeyTokens < 1 {
				// Not tracked: the shed is counted for the rule only, so a
				// flood of new names cannot push known parts out.
				rl.shed++
				l.shedTotal++
				return false, 0
			}
			rl.newKeyTokens--
		}
		b = l.insert(limitKey{strings.Clone(rule), strings.Clone(part)}, now)
	} else {
		l.touch(b)
		b.tokens, b.last = refill(b.tokens, l.burst, b.last, now, l.every)
	}
	if b.tokens < 1 {
		b.shedSince++
		rl.shed++
		l.shedTotal++
		return false, 0
	}
	b.tokens--
	shedBefore, b.shedSince = b.shedSince, 0
	return true, shedBefore
}

// refill adds the tokens earned since last, capped at burst, and returns
// the new last. A clock that steps back earns nothing, then or when it
// comes forward again.
func refill(tokens, burst float64, last, now, every time.Duration) (float64, time.Duration) {
	if now <= last {
		return tokens, last
	}
	tokens += float64(now-last) / float64(every)
	if tokens > burst {
		tokens = burst
	}
	return tokens, now
}

// insert adds a full bucket for k at the front, reusing the least recently
// seen one when the table is full.
func (l *Limiter) insert(k limitKey, now time.Duration) *bucket {
	var b *bucket
	if len(l.keys) >= l.maxKeys && l.tail != nil {
		b = l.tail
		l.unlink(b)
		delete(l.keys, b.key)
		*b = bucket{}
	} else {
		b = &bucket{}
	}
	b.key, b.tokens, b.last = k, l.burst, now
	l.keys[k] = b
	l.pushFront(b)
	return b
}

func (l *Limiter) touch(b *bucket) {
	if l.head == b {
		return
	}
	l.unlink(b)
	l.pushFront(b)
}

func (l *Limiter) pushFront(b *bucket) {
	b.prev, b.next = nil, l.head
	if l.head != nil {
		l.head.prev = b
	}
	l.head = b
	if l.tail == nil {
		l.tail = b
	}
}

func (l *Limiter) unlink(b *bucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		l.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

// Shed returns how many faults were shed per rule since the Limiter was
// made: counters for a metric (hwheal_agent_faults_shed_total{rule}).
func (l *Limiter) Shed() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.rules))
	for r, rl := range l.rules {
		if rl.shed > 0 {
			out[r] = rl.shed
		}
	}
	return out
}

// ShedTotal is the sum of Shed.
func (l *Limiter) ShedTotal() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shedTotal
}

// Keys is the number of (rule, part name) pairs tracked; at most MaxKeys.
func (l *Limiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
