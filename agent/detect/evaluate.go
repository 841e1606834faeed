package detect

import (
	"container/list"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// DefaultMaxParts bounds what an Evaluator remembers unless told
// otherwise: one entry per node, rule and part.
const DefaultMaxParts = 100_000

// EvaluatorOptions configure an Evaluator. The zero value means the
// defaults.
type EvaluatorOptions struct {
	// MaxParts bounds the (node, rule, part) entries remembered (default
	// DefaultMaxParts); past it the least recently seen is forgotten.
	MaxParts int
	// Now stamps observations that carry no time (default time.Now).
	Now func() time.Time
}

// Evaluator runs the enabled threshold, rate and smart rules of a RuleSet
// over the observations of a fleet. It remembers, per node, rule and part,
// what the rules need across readings: how long a threshold has held, a
// counter's recent history, a SMART value's previous reading, and when a
// fault was last raised. Time is the observations' own, so a replay of old
// readings judges as the live stream would. It is safe for concurrent use.
type Evaluator struct {
	maxParts int
	now      func() time.Time
	bySource map[string][]*rule

	mu      sync.Mutex
	lru     list.List // of *partState, most recently seen first
	evicted uint64
	scratch map[string]float64
	nodes   map[string]map[stateKey]*list.Element
}

// NewEvaluator returns an Evaluator of rs's rules.
func NewEvaluator(rs *RuleSet, opts EvaluatorOptions) *Evaluator {
	e := &Evaluator{
		maxParts: opts.MaxParts,
		now:      opts.Now,
		bySource: map[string][]*rule{},
		nodes:    map[string]map[stateKey]*list.Element{},
	}
	if e.maxParts <= 0 {
		e.maxParts = DefaultMaxParts
	}
	if e.now == nil {
		e.now = time.Now
	}
	for _, r := range rs.evaluated {
		e.bySource[r.Source] = append(e.bySource[r.Source], r)
	}
	return e
}

type stateKey struct {
	rule *rule
	part string
}

// partState is what the Evaluator remembers of one rule on one part.
type partState struct {
	node string
	key  stateKey
	last time.Time // time of the latest reading judged

	// The current run of readings on which the rule held: when it began,
	// when it last raised a fault, the worst severity and the conditions
	// raised so far. All zero while the rule does not hold.
	since  time.Time
	raised time.Time
	sev    hwhealv1.Severity
	mask   uint64

	series []*series    // rate rules: one per counter
	prev   []namedValue // smart rules: previous reading of growing samples

	// held is the last fault raised while the rule holds: a reading that
	// cannot be judged (a drive in standby or not answering, a reading
	// without the rule's sample) raises it again, so that no news is not
	// taken for recovery by the collector, which clears a fault from
	// readings only on a newer reading that does not raise it.
	held *hwhealv1.Fault
}

type namedValue struct {
	name  string
	value float64
}

func (st *partState) reset() {
	st.since, st.raised, st.sev, st.mask, st.held = time.Time{}, time.Time{}, 0, 0, nil
}

// holdOver is the answer to a reading a holding rule cannot judge: the
// last verdict stands, raised again as often as a holding rule is.
func (st *partState) holdOver(r *rule, t time.Time) *hwhealv1.Fault {
	if st == nil || st.held == nil || !st.shouldRaise(r, t, st.sev, st.mask) {
		return nil
	}
	f := proto.CloneOf(st.held)
	f.Time = timestamppb.New(t)
	if f.Evidence == nil {
		f.Evidence = &hwhealv1.Evidence{}
	}
	if f.Evidence.Captures == nil {
		f.Evidence.Captures = map[string]string{}
	}
	f.Evidence.Captures["held_over"] = "the reading did not say (standby, read error or sample missing): the last verdict stands"
	return f
}

// keep remembers f as the fault the holding rule raised last.
func (st *partState) keep(f *hwhealv1.Fault) *hwhealv1.Fault {
	st.held = f
	return f
}

// Forget drops everything remembered of a node: it left the fleet, or was
// rebuilt.
func (e *Evaluator) Forget(node string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, el := range e.nodes[node] {
		e.lru.Remove(el)
	}
	delete(e.nodes, node)
}

// Parts is the number of (node, rule, part) entries remembered.
func (e *Evaluator) Parts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lru.Len()
}

// Evicted is how many entries were forgotten to keep within MaxParts. A
// count that keeps rising means MaxParts is too small for the fleet: rate
// and growing rules then lose their baselines and raise nothing.
func (e *Evaluator) Evicted() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evicted
}

// state returns the entry of a rule on a part of node, making it when
// create is set (nil otherwise).
func (e *Evaluator) state(node string, key stateKey, create bool) *partState {
	m := e.nodes[node]
	if el, ok := m[key]; ok {
		e.lru.MoveToFront(el)
		return el.Value.(*partState)
	}
	if !create {
		return nil
	}
	st := &partState{node: node, key: key}
	if m == nil {
		m = map[stateKey]*list.Element{}
		e.nodes[node] = m
	}
	m[key] = e.lru.PushFront(st)
	for e.lru.Len() > e.maxParts {
		old := e.lru.Back().Value.(*partState)
		e.lru.Remove(e.lru.Back())
		e.evicted++
		om := e.nodes[old.node]
		delete(om, old.key)
		if len(om) == 0 {
			delete(e.nodes, old.node)
		}
	}
	return st
}

// Observe judges one observation of node and returns the faults of every
// enabled threshold, rate and smart rule of its source that holds on it,
// in rule order; nil when none does. A fault is raised when its rule
// starts to hold or gets worse (a higher severity, a condition that had not
// held), and again at most once per quarter of its clear time while it
// keeps holding: often enough that the collector never clears a fault
// whose evidence is still there, seldom enough that events stay few.
func (e *Evaluator) Observe(node string, o *hwhealv1.Observation) []*hwhealv1.Fault {
	rules := e.bySource[o.GetSource()]
	if len(rules) == 0 {
		return nil
	}
	t := e.now()
	if o.GetTime() != nil {
		t = o.GetTime().AsTime()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.scratch == nil {
		e.scratch = map[string]float64{}
	}
	ev := evaluation{node: node, o: o, t: t, scratch: e.scratch}
	var out []*hwhealv1.Fault
	for _, r := range rules {
		if r.Part != hwhealv1.PartKind_PART_KIND_UNSPECIFIED && o.GetPart().GetKind() != r.Part {
			continue
		}
		if len(r.without) > 0 && ev.hasAny(r.without) {
			continue
		}
		var f *hwhealv1.Fault
		switch r.Kind {
		case KindThreshold:
			f = e.threshold(&ev, r)
		case KindRate:
			f = e.rate(&ev, r)
		case KindSmart:
			f = e.smart(&ev, r)
		}
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// evaluation is one observation being judged.
type evaluation struct {
	node    string
	o       *hwhealv1.Observation
	t       time.Time
	index   map[string]float64 // sample values by name, built on first use
	scratch map[string]float64 // the Evaluator's, reused for index
	keys    [2]string          // partKey by name and by serial, made on first use
}

func (ev *evaluation) value(name string) (float64, bool) {
	if ev.index == nil {
		// The map is the Evaluator's, reused under its lock: a SMART
		// reading has a hundred samples, and a new map for each would be
		// most of what judging it allocates.
		ev.index = ev.scratch
		clear(ev.index)
		for _, s := range ev.o.GetSamples() {
			ev.index[s.GetName()] = s.GetValue()
		}
	}
	v, ok := ev.index[name]
	return v, ok
}

func (ev *evaluation) hasAny(names []string) bool {
	for _, s := range ev.o.GetSamples() {
		if slices.Contains(names, s.GetName()) {
			return true
		}
	}
	return false
}

// partKey is partKey of the reading's part, made once per reading.
func (ev *evaluation) partKey(r *rule) string {
	i := 0
	if r.Kind == KindSmart {
		i = 1
	}
	if ev.keys[i] == "" {
		ev.keys[i] = partKey(r, ev.o.GetPart())
	}
	return ev.keys[i]
}

// partKey names the part a rule's memory is kept for: a drive by its
// serial for smart rules (device names move between boots), with its
// model, as serials are only unique per maker and some bridges and
// anonymised dumps give placeholders; else the part's name.
func partKey(r *rule, p *hwhealv1.Part) string {
	if r.Kind == KindSmart && p.GetSerial() != "" {
		return "serial:" + p.GetSerial() + "/" + p.GetModel()
	}
	switch {
	case p.GetName() != "":
		return p.GetName()
	case p.GetSerial() != "":
		return "serial:" + p.GetSerial()
	}
	return "pci:" + p.GetPciAddress()
}

// start moves a part's entry to reading time t: a reading older than the
// latest one judged (a clock stepped back, a replay restarted) starts the
// part's memory afresh rather than judge time running backwards.
func (st *partState) start(t time.Time) {
	if t.Before(st.last) {
		st.reset()
		st.series, st.prev = nil, nil
	}
	st.last = t
}

// shouldRaise applies the raise policy to a rule that holds at t.
func (st *partState) shouldRaise(r *rule, t time.Time, sev hwhealv1.Severity, mask uint64) bool {
	spacing := r.ClearAfter / 4
	if r.ClearAfter <= 0 {
		spacing = DefaultClearAfter / 4
	}
	raise := st.raised.IsZero() || sev > st.sev || mask&^st.mask != 0 || t.Sub(st.raised) >= spacing
	if raise {
		st.raised = t
		st.sev = max(st.sev, sev)
		st.mask |= mask
	}
	return raise
}

func (e *Evaluator) threshold(ev *evaluation, r *rule) *hwhealv1.Fault {
	matched := false
	var hold []*hwhealv1.Sample
	for _, s := range ev.o.GetSamples() {
		if r.glob.match(s.GetName()) {
			matched = true
			if r.op.holds(s.GetValue(), r.limit) {
				hold = append(hold, s)
			}
		}
	}
	if !matched {
		// The reading does not say: the last verdict stands.
		return e.state(ev.node, stateKey{r, ev.partKey(r)}, false).holdOver(r, ev.t)
	}
	st := e.state(ev.node, stateKey{r, ev.partKey(r)}, len(hold) > 0)
	if st == nil {
		return nil
	}
	prev := st.last
	st.start(ev.t)
	if len(hold) == 0 {
		st.reset()
		return nil
	}
	// "Held for" means seen holding on readings close enough together:
	// after a gap of more than twice the hold time (readings lost, the
	// source stopped a while) the clock starts again at this reading. A
	// condition already raised and holding again is refreshed as before.
	if st.since.IsZero() || (r.holdFor > 0 && st.raised.IsZero() && !prev.IsZero() && ev.t.Sub(prev) > 2*r.holdFor) {
		st.since = ev.t
	}
	held := ev.t.Sub(st.since)
	if held < r.holdFor || !st.shouldRaise(r, ev.t, r.Severity, 1) {
		return nil
	}
	var v values
	ev.fill(&v, r)
	v[vSample], v[vValue] = hold[0].GetName(), formatNumber(hold[0].GetValue())
	v[vLimit] = r.op.String() + " " + formatNumber(r.limit)
	caps := map[string]string{"limit": v[vLimit]}
	if r.holdFor > 0 {
		v[vFor] = formatDuration(r.holdFor)
		caps["held_for"] = formatDuration(held)
	}
	samples := make([]*hwhealv1.Sample, len(hold))
	for i, s := range hold {
		samples[i] = &hwhealv1.Sample{Name: s.GetName(), Value: s.GetValue()}
	}
	return st.keep(ev.fault(r, r.Severity, &v, samples, caps))
}

// series is the recent history of one counter: the total it grew by since
// it was first seen (a decrease restarts it and never counts), and how
// that total went, as spans of readings. A span covers readings at which
// the total stood still, or readings within window/64 of its first; a
// counter that stands still (most of them) costs one span, a busy one at
// most about 66.
type series struct {
	name  string
	last  float64 // the latest reading
	lastT int64   // its time, Unix nanoseconds
	total float64
	spans []span
}

// span is readings from t to u (Unix nanoseconds) over which the total
// went from first to last.
type span struct {
	t, u        int64
	first, last float64
}

func (e *Evaluator) rate(ev *evaluation, r *rule) *hwhealv1.Fault {
	var st *partState
	type grown struct {
		s    *hwhealv1.Sample
		inc  float64
		from time.Time
	}
	var hold []grown
	for _, s := range ev.o.GetSamples() {
		if !r.glob.match(s.GetName()) {
			continue
		}
		if st == nil {
			st = e.state(ev.node, stateKey{r, ev.partKey(r)}, true)
			st.start(ev.t)
		}
		ser := st.counter(s.GetName())
		inc, from := ser.add(ev.t, s.GetValue(), r.window)
		if inc >= r.increase {
			hold = append(hold, grown{s, inc, from})
		}
	}
	if st == nil {
		return nil
	}
	if len(hold) == 0 {
		st.reset()
		return nil
	}
	if st.since.IsZero() {
		st.since = ev.t
	}
	if !st.shouldRaise(r, ev.t, r.Severity, 1) {
		return nil
	}
	var v values
	ev.fill(&v, r)
	v[vSample], v[vValue] = hold[0].s.GetName(), formatNumber(hold[0].s.GetValue())
	v[vIncrease], v[vWindow] = formatNumber(hold[0].inc), formatDuration(r.window)
	caps := map[string]string{"window": v[vWindow]}
	samples := make([]*hwhealv1.Sample, len(hold))
	for i, h := range hold {
		samples[i] = &hwhealv1.Sample{Name: h.s.GetName(), Value: h.s.GetValue()}
		caps[h.s.GetName()+".increase"] = formatNumber(h.inc)
		caps[h.s.GetName()+".since"] = h.from.UTC().Format(time.RFC3339)
	}
	return ev.fault(r, r.Severity, &v, samples, caps)
}

func (st *partState) counter(name string) *series {
	for _, s := range st.series {
		if s.name == name {
			return s
		}
	}
	s := &series{name: name}
	st.series = append(st.series, s)
	return s
}

// add records reading v at t and returns how much the counter grew
// within the window ending at t, and the time that growth is counted
// from. Only growth between readings inside the window counts: the
// baseline is the total at the oldest reading inside it (to within
// window/64), so growth from before the window, or between a reading
// before it and one inside it, never raises. A counter that went down (a
// reboot, a driver reload, counters reset) restarts from its new value:
// the reading adds nothing. So does a reading after a gap longer than the
// window.
func (s *series) add(t time.Time, v float64, window time.Duration) (float64, time.Time) {
	now := t.UnixNano()
	if len(s.spans) == 0 {
		s.last, s.lastT = v, now
		s.spans = append(s.spans, span{now, now, 0, 0})
		return 0, t
	}
	if v >= s.last && now-s.lastT <= int64(window) {
		s.total += v - s.last
	}
	s.last, s.lastT = v, now
	cut := now - int64(window)
	// Spans that end before the newest one starting at or before the
	// window's start are of no more use.
	i := 0
	for i+1 < len(s.spans) && s.spans[i+1].t <= cut {
		i++
	}
	s.spans = s.spans[:copy(s.spans, s.spans[i:])]
	base, from := s.total, now // no earlier reading inside the window
	switch p := s.spans[0]; {
	case p.t > cut:
		base, from = p.first, p.t
	case p.u >= cut:
		base, from = p.last, p.u
	case len(s.spans) > 1:
		base, from = s.spans[1].first, s.spans[1].t
	}
	bucket := max(int64(window)/64, 1)
	if lp := &s.spans[len(s.spans)-1]; s.total == lp.last || now/bucket == lp.t/bucket {
		lp.u, lp.last = now, s.total
	} else {
		s.spans = append(s.spans, span{now, now, s.total, s.total})
	}
	return s.total - base, time.Unix(0, from).UTC()
}

// condResult is one smart condition judged on one reading.
type condResult struct {
	applies bool // the reading has the condition's value
	holds   bool
	detail  string
	samples []string // samples the decision used
	prev    string   // growing: the previous value
}

func (e *Evaluator) smart(ev *evaluation, r *rule) *hwhealv1.Fault {
	key := stateKey{r, ev.partKey(r)}
	st := e.state(ev.node, key, false)
	if st != nil {
		st.start(ev.t)
	}
	applies, growing := false, false
	var mask uint64
	sev := hwhealv1.Severity_SEVERITY_UNSPECIFIED
	var held []condResult
	for i := range r.conds {
		c := &r.conds[i]
		res := c.judge(ev, st)
		applies = applies || res.applies
		growing = growing || c.growing
		if !res.holds {
			continue
		}
		held = append(held, res)
		mask |= 1 << uint(i)
		cs := r.Severity
		if c.severity != 0 && !r.sevFixed {
			cs = hwhealv1.Severity(c.severity)
		}
		sev = max(sev, cs)
	}
	if !applies {
		// Standby, a read error, or not this kind of drive: the last
		// verdict stands.
		return st.holdOver(r, ev.t)
	}
	if st == nil && (growing || len(held) > 0) {
		st = e.state(ev.node, key, true)
		st.start(ev.t)
	}
	if st == nil {
		return nil
	}
	if growing {
		st.remember(ev, r)
	}
	if len(held) == 0 {
		st.reset()
		return nil
	}
	if st.since.IsZero() {
		st.since = ev.t
	}
	if !st.shouldRaise(r, ev.t, sev, mask) {
		return nil
	}
	var v values
	ev.fill(&v, r)
	var details []string
	var names []string
	caps := map[string]string{}
	for _, h := range held {
		details = append(details, h.detail)
		for _, n := range h.samples {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		if h.prev != "" {
			caps[h.samples[0]+".previous"] = h.prev
		}
	}
	v[vFindings] = strings.Join(details, "; ")
	if len(held[0].samples) > 0 {
		v[vSample] = held[0].samples[0]
		if x, ok := ev.value(v[vSample]); ok {
			v[vValue] = formatNumber(x)
		}
	}
	caps["findings"] = v[vFindings]
	samples := make([]*hwhealv1.Sample, 0, len(names))
	for _, n := range names {
		x, _ := ev.value(n)
		samples = append(samples, &hwhealv1.Sample{Name: n, Value: x})
	}
	return st.keep(ev.fault(r, sev, &v, samples, caps))
}

// remember keeps this reading's values of the rule's growing samples.
func (st *partState) remember(ev *evaluation, r *rule) {
	for i := range r.conds {
		c := &r.conds[i]
		if !c.growing {
			continue
		}
		x, ok := ev.value(c.sample)
		if !ok {
			continue
		}
		j := slices.IndexFunc(st.prev, func(nv namedValue) bool { return nv.name == c.sample })
		if j < 0 {
			st.prev = append(st.prev, namedValue{c.sample, x})
		} else {
			st.prev[j].value = x
		}
	}
}

// judge tests one condition. st is the part's memory (nil: none yet).
func (c *smartCond) judge(ev *evaluation, st *partState) condResult {
	if c.attr == anyAttr {
		return c.judgeEveryAttribute(ev)
	}
	x, ok := ev.value(c.sample)
	if !ok {
		return condResult{}
	}
	res := condResult{applies: true, holds: true, samples: []string{c.sample}}
	var tests []string
	if c.hasRawAbove {
		res.holds = res.holds && x > c.rawAbove
		tests = append(tests, "> "+formatNumber(c.rawAbove))
	}
	if c.hasAtLeast {
		res.holds = res.holds && x >= c.atLeast
		tests = append(tests, ">= "+formatNumber(c.atLeast))
	}
	if c.hasAtMost {
		res.holds = res.holds && x <= c.atMost
		tests = append(tests, "<= "+formatNumber(c.atMost))
	}
	if c.bits != 0 {
		res.holds = res.holds && x >= 0 && uint64(x)&c.bits != 0
		tests = append(tests, fmt.Sprintf("bits 0x%x of 0x%x", uint64(x)&c.bits, c.bits))
	}
	if c.belowSample != "" {
		limit, ok := ev.value(c.belowSample)
		res.holds = res.holds && ok && x < limit
		res.samples = append(res.samples, c.belowSample)
		tests = append(tests, "below "+c.belowSample+" "+formatNumber(limit))
	}
	if c.growing {
		prev, seen := st.previous(c.sample)
		res.holds = res.holds && seen && x > prev
		if seen {
			res.prev = formatNumber(prev)
			tests = append(tests, "was "+res.prev)
		} else {
			tests = append(tests, "first reading")
		}
	}
	if c.atThreshold {
		val, ok1 := ev.value(c.valueSample)
		thr, ok2 := ev.value(c.threshSample)
		res.holds = res.holds && ok1 && ok2 && thr > 0 && val <= thr
		res.samples = append(res.samples, c.valueSample, c.threshSample)
		tests = append(tests, "normalized "+formatNumber(val)+" at or below threshold "+formatNumber(thr))
	}
	if res.holds {
		res.detail = c.sample + " = " + formatNumber(x) + " (" + strings.Join(tests, ", ") + ")"
	}
	return res
}

// judgeEveryAttribute is at_threshold over every ATA attribute the
// reading has: the drive's own verdict that an attribute failed.
func (c *smartCond) judgeEveryAttribute(ev *evaluation) condResult {
	var res condResult
	var failed []string
	for _, s := range ev.o.GetSamples() {
		name := s.GetName()
		id, ok := strings.CutPrefix(name, "ata_attr_")
		if !ok {
			continue
		}
		id, ok = strings.CutSuffix(id, "_value")
		if !ok {
			continue
		}
		res.applies = true
		thr, ok := ev.value("ata_attr_" + id + "_thresh")
		if !ok || thr <= 0 || s.GetValue() > thr {
			continue
		}
		res.holds = true
		res.samples = append(res.samples, name, "ata_attr_"+id+"_thresh", "ata_attr_"+id+"_raw")
		failed = append(failed, "attribute "+id+" normalized "+formatNumber(s.GetValue())+" at or below threshold "+formatNumber(thr))
	}
	res.detail = strings.Join(failed, "; ")
	return res
}

func (st *partState) previous(name string) (float64, bool) {
	if st == nil {
		return 0, false
	}
	for _, nv := range st.prev {
		if nv.name == name {
			return nv.value, true
		}
	}
	return 0, false
}

// fill sets the values every summary may name.
func (ev *evaluation) fill(v *values, r *rule) {
	p := ev.o.GetPart()
	v[vRule], v[vClass], v[vSource] = r.Name, r.Class, ev.o.GetSource()
	v[vPart], v[vSerial], v[vModel] = p.GetName(), p.GetSerial(), p.GetModel()
	if v[vPart] == "" {
		v[vPart] = p.GetSerial()
	}
}

func (ev *evaluation) fault(r *rule, sev hwhealv1.Severity, v *values, samples []*hwhealv1.Sample, caps map[string]string) *hwhealv1.Fault {
	p := ev.o.GetPart()
	return &hwhealv1.Fault{
		FaultClass: r.Class,
		Severity:   sev,
		Part: &hwhealv1.Part{
			Kind:       p.GetKind(),
			Name:       p.GetName(),
			Serial:     p.GetSerial(),
			Model:      p.GetModel(),
			PciAddress: p.GetPciAddress(),
		},
		Rule:       r.Name,
		Time:       timestamppb.New(ev.t),
		Summary:    r.summary.renderValues(v),
		Evidence:   &hwhealv1.Evidence{Samples: samples, Captures: caps},
		Mode:       r.Mode,
		ClearAfter: clearAfterProto(r.ClearAfter),
	}
}

// formatNumber prints a sample value as people write it: 12, 0.5, 1e+21.
func formatNumber(x float64) string {
	if math.Abs(x) < 1e15 && x == math.Trunc(x) {
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// formatDuration prints 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
