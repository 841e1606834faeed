package detect

import (
	"sync"
	"sync/atomic"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// MergeClasses are the classes of the faults the Merger pairs: a failed
// block request, which the eBPF block source and the kernel log rules
// blk-io-error and blk-medium-error both report (the block layer's status
// decides which: BLK_STS_MEDIUM is a medium error, the rest I/O errors).
var MergeClasses = []string{"disk.io_error", "disk.medium_error"}

// Merger defaults.
const (
	DefaultHold    = 250 * time.Millisecond
	DefaultMaxHeld = 1024
)

// MergerConfig sets how long the Merger waits for a partner and how much
// it holds. The zero value means the defaults.
type MergerConfig struct {
	// Hold is how long an eBPF report of a failed request waits for the
	// kernel's line of it, and how long a kernel line already sent is
	// remembered so that its eBPF twin is dropped (default 250 ms). The
	// kernel prints its line within microseconds of the completion eBPF
	// sees; the hold covers a busy kmsg reader. The kernel rate-limits
	// these lines, so an eBPF report may never get its partner: it is sent
	// alone when the hold ends.
	Hold time.Duration
	// MaxHeld bounds the reports held or remembered at once (default
	// 1024): when full, the oldest is sent (or forgotten) at once.
	MaxHeld int
	// Clock is the time source (default SystemClock).
	Clock Clock
}

func (c MergerConfig) withDefaults() MergerConfig {
	if c.Hold <= 0 {
		c.Hold = DefaultHold
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = DefaultMaxHeld
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	return c
}

// Merger turns one failed block request seen by two sources into one
// fault. The eBPF block source raises a fault of one of MergeClasses for
// every failed request and the kernel log rules raise one of the same
// class for the same request, both with the captures device and sector.
// Reports are keyed by (class, device, sector). A kernel log report is
// sent at once, never held: a line written or replayed with no eBPF twin
// (and every kernel-log fault where eBPF is unavailable) costs no latency.
// An eBPF report waits up to MergerConfig.Hold for the kernel's line: when
// the line comes, the two are sent at once as one fault (see Add); when
// the line came first, the eBPF report is its twin and is dropped; when no
// line comes (rate-limited), the eBPF report is sent alone.
//
// Which source a fault comes from is read off the fault: one with kernel
// log evidence comes from the kernel log, any other from the source its
// rule names. Two faults of a key from the same source are two failed
// requests (a retry of the same sector), each waiting for its own partner
// in turn.
//
// Faults of other classes, and faults without a device and a
// sector, go straight through. Everything is sent through the emit
// function given to NewMerger, which must not call back into the Merger.
// The Merger is safe for concurrent use.
type Merger struct {
	hold    time.Duration
	maxHeld int
	clock   Clock
	emit    func(*hwhealv1.Fault)

	// emitMu serialises sending held faults (so they leave in order, and
	// Close waits for a timer that is sending); mu guards the state. Lock
	// order: emitMu, then mu.
	emitMu  sync.Mutex
	scratch []*hwhealv1.Fault // faults due, reused under emitMu

	mu         sync.Mutex
	byKey      map[mergeKey]*heldFault // oldest held fault of each key
	head, tail *heldFault              // every held fault, oldest first (= by deadline)
	held       int
	timer      Timer
	gen        uint64 // which timer is current; a stale one does nothing
	closed     bool

	merged, alone, evicted, passed atomic.Uint64
}

type mergeKey struct{ class, device, sector string }

type heldFault struct {
	// f is the report waiting for its partner; nil for a report already
	// sent, remembered so that its twin from the other source is dropped.
	f *hwhealv1.Fault
	// aloneCounted is set on an eBPF report remembered after it was sent
	// alone: it was counted then.
	aloneCounted bool
	key          mergeKey
	origin       string
	deadline     time.Time
	prev, next   *heldFault // in arrival order
	knext        *heldFault // next of the same key
}

// kernelLogOrigin is the origin of faults with kernel log evidence; rule
// names are kebab-case and never empty, so it cannot collide with one.
const kernelLogOrigin = ""

// NewMerger returns a Merger that sends faults to emit.
func NewMerger(cfg MergerConfig, emit func(*hwhealv1.Fault)) *Merger {
	cfg = cfg.withDefaults()
	return &Merger{
		hold:    cfg.Hold,
		maxHeld: cfg.MaxHeld,
		clock:   cfg.Clock,
		emit:    emit,
		byKey:   make(map[mergeKey]*heldFault),
	}
}

// MergerStats counts what the Merger did, for metrics.
type MergerStats struct {
	// Merged is the number of failed requests seen by both sources and
	// sent once.
	Merged uint64
	// Alone is the number of reports whose hold ended (or that Close
	// flushed) without a partner.
	Alone uint64
	// Evicted is the number of reports sent or forgotten early because
	// MaxHeld was reached; their partner, if it comes, is sent on its own.
	Evicted uint64
	// Passed is the number of faults sent straight through.
	Passed uint64
	// Held is the number of faults held now.
	Held int
}

// Stats returns the counters.
func (m *Merger) Stats() MergerStats {
	m.mu.Lock()
	held := m.held
	m.mu.Unlock()
	return MergerStats{Merged: m.merged.Load(), Alone: m.alone.Load(), Evicted: m.evicted.Load(), Passed: m.passed.Load(), Held: held}
}

// Add takes ownership of f and sends it on: at once, merged with its held
// partner, after the hold, or not at all when it is the twin of a kernel
// line already sent.
//
// A merged fault is the kernel log one (its evidence, summary and part)
// with: the rule names joined with "+", kernel log's first
// ("blk-io-error+ebpf-block-rq-error"); the captures of both (where both
// have a capture with different values, the other's is kept as
// "name@rule"); the part fields the kernel log one lacks taken from the
// other; the higher severity; the earlier time; and both faults' samples.
//
// After Close, Add sends every fault straight through.
func (m *Merger) Add(f *hwhealv1.Fault) {
	key, ok := mergeKeyOf(f)
	if !ok {
		m.passed.Add(1)
		m.emit(f)
		return
	}
	origin := originOf(f)

	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.passed.Add(1)
		m.emit(f)
		return
	}
	var out, early *hwhealv1.Fault
	p := m.takePartner(key, origin)
	switch {
	case p != nil && p.f != nil:
		out = mergePair(p.f, f) // the held eBPF report and the kernel's line
		m.merged.Add(1)
	case p != nil:
		m.merged.Add(1) // the kernel's line of this request was sent already
	default:
		if m.held >= m.maxHeld {
			old := m.head
			m.remove(old)
			early = old.f
			m.evicted.Add(1)
		}
		h := &heldFault{f: f, key: key, origin: origin, deadline: m.clock.Now().Add(m.hold)}
		if origin == kernelLogOrigin {
			out, h.f = f, nil
		}
		m.add(h)
	}
	m.mu.Unlock()
	if early != nil {
		m.emit(early)
	}
	if out != nil {
		m.emit(out)
	}
}

// Close sends every held fault, oldest first, and stops the timer. It
// returns once nothing more will be sent but what Add passes straight
// through from then on.
func (m *Merger) Close() {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.disarm()
	due := m.scratch[:0]
	for h := m.head; h != nil; h = m.head {
		m.remove(h)
		if !h.aloneCounted {
			m.alone.Add(1)
		}
		if h.f != nil {
			due = append(due, h.f)
		}
	}
	m.mu.Unlock()
	m.send(due)
}

// fire sends the faults whose hold has ended.
func (m *Merger) fire(gen uint64) {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	m.mu.Lock()
	if m.closed || gen != m.gen {
		m.mu.Unlock()
		return
	}
	m.timer = nil
	now := m.clock.Now()
	due := m.scratch[:0]
	for h := m.head; h != nil && !h.deadline.After(now); h = m.head {
		m.remove(h)
		if !h.aloneCounted {
			m.alone.Add(1)
		}
		if h.f != nil {
			due = append(due, h.f)
			// Remembered for another hold: the kernel's line of it, late
			// behind a busy reader, is then dropped as its twin rather
			// than sent as a second fault.
			m.add(&heldFault{key: h.key, origin: h.origin, deadline: now.Add(m.hold), aloneCounted: true})
		}
	}
	if m.head != nil {
		m.arm(m.head.deadline.Sub(now))
	}
	m.mu.Unlock()
	m.send(due)
}

// send emits due and keeps its array for the next time; under emitMu.
func (m *Merger) send(due []*hwhealv1.Fault) {
	for i, f := range due {
		m.emit(f)
		due[i] = nil
	}
	m.scratch = due[:0]
}

// takePartner removes and returns the oldest held fault of key from
// another origin, or nil.
func (m *Merger) takePartner(key mergeKey, origin string) *heldFault {
	var prev *heldFault
	for h := m.byKey[key]; h != nil; prev, h = h, h.knext {
		if h.origin == origin {
			continue
		}
		if prev == nil {
			m.setKeyHead(key, h.knext)
		} else {
			prev.knext = h.knext
		}
		h.knext = nil
		m.unlinkGlobal(h)
		if m.held == 0 {
			m.disarm()
		}
		return h
	}
	return nil
}

// add holds h at the back of both lists.
func (m *Merger) add(h *heldFault) {
	if k := m.byKey[h.key]; k == nil {
		m.byKey[h.key] = h
	} else {
		for k.knext != nil {
			k = k.knext
		}
		k.knext = h
	}
	h.prev = m.tail
	if m.tail != nil {
		m.tail.next = h
	} else {
		m.head = h
	}
	m.tail = h
	m.held++
	if m.timer == nil {
		m.arm(m.hold)
	}
}

// remove takes the oldest held fault h (m.head) out of both lists; being
// the oldest of all, it is the oldest of its key too.
func (m *Merger) remove(h *heldFault) {
	m.setKeyHead(h.key, h.knext)
	h.knext = nil
	m.unlinkGlobal(h)
}

func (m *Merger) setKeyHead(key mergeKey, h *heldFault) {
	if h == nil {
		delete(m.byKey, key)
	} else {
		m.byKey[key] = h
	}
}

func (m *Merger) unlinkGlobal(h *heldFault) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		m.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		m.tail = h.prev
	}
	h.prev, h.next = nil, nil
	m.held--
}

// arm starts the one timer; under mu.
func (m *Merger) arm(d time.Duration) {
	m.disarm()
	gen := m.gen
	m.timer = m.clock.AfterFunc(d, func() { m.fire(gen) })
}

// disarm stops the timer and makes a callback already under way a no-op.
func (m *Merger) disarm() {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.gen++
}

func mergeKeyOf(f *hwhealv1.Fault) (mergeKey, bool) {
	class := f.GetFaultClass()
	if class != MergeClasses[0] && class != MergeClasses[1] {
		return mergeKey{}, false
	}
	caps := f.GetEvidence().GetCaptures()
	k := mergeKey{class: class, device: caps["device"], sector: caps["sector"]}
	return k, k.device != "" && k.sector != ""
}

func originOf(f *hwhealv1.Fault) string {
	if f.GetEvidence().GetKernelLog() != nil {
		return kernelLogOrigin
	}
	return f.GetRule()
}

// mergePair makes one fault of two reports of one failed request; a is
// the one held (it came first).
func mergePair(a, b *hwhealv1.Fault) *hwhealv1.Fault {
	out, other := a, b
	if a.GetEvidence().GetKernelLog() == nil && b.GetEvidence().GetKernelLog() != nil {
		out, other = b, a
	}
	out.Rule = out.GetRule() + "+" + other.GetRule()
	if other.GetSeverity() > out.GetSeverity() {
		out.Severity = other.GetSeverity()
	}
	if ot := other.GetTime(); ot != nil && (out.GetTime() == nil || ot.AsTime().Before(out.GetTime().AsTime())) {
		out.Time = ot
	}
	if out.GetSummary() == "" {
		out.Summary = other.GetSummary()
	}
	switch p, q := out.GetPart(), other.GetPart(); {
	case p == nil:
		out.Part = q
	case q != nil:
		if p.Kind == hwhealv1.PartKind_PART_KIND_UNSPECIFIED {
			p.Kind = q.Kind
		}
		fill(&p.Name, q.Name)
		fill(&p.Serial, q.Serial)
		fill(&p.Model, q.Model)
		fill(&p.PciAddress, q.PciAddress)
	}
	oe := other.GetEvidence()
	if oe == nil {
		return out
	}
	if out.Evidence == nil {
		out.Evidence = &hwhealv1.Evidence{}
	}
	e := out.Evidence
	if e.KernelLog == nil {
		e.KernelLog = oe.KernelLog
	}
	if len(oe.Captures) > 0 && e.Captures == nil {
		e.Captures = make(map[string]string, len(oe.Captures))
	}
	for k, v := range oe.Captures {
		switch cur, ok := e.Captures[k]; {
		case !ok:
			e.Captures[k] = v
		case cur != v:
			e.Captures[k+"@"+other.GetRule()] = v
		}
	}
	e.Samples = append(e.Samples, oe.Samples...)
	return out
}

func fill(dst *string, src string) {
	if *dst == "" {
		*dst = src
	}
}
