package rasevent

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// maxParts bounds the parts the tally counts for: real hosts have tens of
// DIMMs, CPUs and PCIe devices; a kernel (or a bug) that invents a new
// label per event must not grow the agent without end.
const maxParts = 4096

// tally counts events per part and decides which of them raise a fault. It
// is not safe for concurrent use; time is passed in, so that tests drive
// it with a clock of their own.
type tally struct {
	interval time.Duration
	parts    map[partKey]*partCount
	gates    map[string]*gate
	// overflow counts events of parts beyond maxParts: still turned into
	// faults through their gate, but not observed.
	overflow uint64
}

type partKey struct {
	kind hwhealv1.PartKind
	name string
}

type partCount struct {
	part   *hwhealv1.Part
	counts map[string]uint64
}

// gate lets limit faults through per interval and counts the rest.
type gate struct {
	start      time.Time
	passed     int
	suppressed uint64
}

func newTally(interval time.Duration) *tally {
	return &tally{interval: interval, parts: map[partKey]*partCount{}, gates: map[string]*gate{}}
}

// add counts f at now and returns the fault it raises, or nil when it
// raises none or its gate is closed for this interval.
func (t *tally) add(f finding, now time.Time) *hwhealv1.Fault {
	var pc *partCount
	if f.sample != "" {
		key := partKey{f.part.GetKind(), f.part.GetName()}
		pc = t.parts[key]
		if pc == nil && len(t.parts) < maxParts {
			pc = &partCount{part: f.part, counts: map[string]uint64{}}
			t.parts[key] = pc
		}
		if pc != nil {
			pc.counts[f.sample] += f.n
		} else {
			t.overflow += f.n
		}
	}
	if f.class == "" {
		return nil
	}
	// By severity too: a flood of deferred errors must not hold back the
	// uncorrected ones of the same part and class.
	key := f.gate + "|" + f.severity.String()
	g := t.gates[key]
	if g == nil {
		g = &gate{}
		t.gates[key] = g
	}
	if g.start.IsZero() || now.Sub(g.start) >= t.interval {
		g.start, g.passed = now, 0
	}
	if g.passed >= f.limit {
		g.suppressed++
		return nil
	}
	g.passed++
	fault := &hwhealv1.Fault{
		FaultClass: f.class,
		Severity:   f.severity,
		Part:       clonePart(f.part),
		Rule:       f.rule,
		Summary:    f.summary(),
		Evidence:   &hwhealv1.Evidence{Captures: f.captures()},
	}
	if pc != nil {
		fault.Evidence.Samples = pc.samples()
	}
	return fault
}

// clonePart gives every report its own Part: the agent may fill in what it
// knows (a serial number) on the report it was handed.
func clonePart(p *hwhealv1.Part) *hwhealv1.Part {
	return &hwhealv1.Part{Kind: p.GetKind(), Name: p.GetName(), PciAddress: p.GetPciAddress()}
}

func (pc *partCount) samples() []*hwhealv1.Sample {
	names := samplesOf[pc.part.GetKind()]
	out := make([]*hwhealv1.Sample, 0, len(names))
	for _, n := range names {
		out = append(out, &hwhealv1.Sample{Name: n, Value: float64(pc.counts[n])})
	}
	return out
}

// flush returns one observation per part counted since the tally started,
// with its totals, ordered by kind and name, and how many faults the gates
// held back since the last flush. It forgets the gates whose interval is
// over: an expired gate and a forgotten one behave the same, and the map
// stays as small as the set of parts that were busy in the last interval.
func (t *tally) flush(now time.Time) (obs []*hwhealv1.Observation, suppressed uint64) {
	ts := timestamppb.New(now)
	keys := slices.SortedFunc(maps.Keys(t.parts), func(a, b partKey) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name))
	})
	for _, k := range keys {
		pc := t.parts[k]
		obs = append(obs, &hwhealv1.Observation{Time: ts, Source: Name, Part: clonePart(pc.part), Samples: pc.samples()})
	}
	for k, g := range t.gates {
		suppressed += g.suppressed
		g.suppressed = 0
		if now.Sub(g.start) >= t.interval {
			delete(t.gates, k)
		}
	}
	return obs, suppressed
}
