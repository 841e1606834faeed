// Package peers owns the collector's "outlier among peers" rule kind: a
// device whose latency or error rate stands far from the devices of the same
// model across the fleet, a fault no single node can see.
//
// Evaluate takes the latest observation of one source for every part of
// every node, forms peer groups (the values of the rule's node labels, the
// part's kind and its model), and within each group scores every part by a
// robust z-score: its distance from the group's median in units of the
// median absolute deviation (MAD) scaled to a standard deviation. Parts past
// the rule's threshold in the rule's direction become faults.
//
// Median and MAD are used instead of mean and standard deviation because
// the outlier itself must not move the yardstick: one disk at 2 s among
// disks at 40 ms drags the mean and inflates the standard deviation enough
// to hide itself, but barely moves the median or the MAD. The price is that
// the method finds minorities only: when more than half of a group is bad
// (a bad firmware on one model, a hot rack), the median is bad too, and the
// healthy parts are the ones that look unusual. Such fleet-wide shifts are
// for threshold rules and the remediation storm breaker, not for this rule.
//
// The score is symmetric around the median, but latencies are right-skewed
// (roughly log-normal): on raw values the healthy tail itself passes 3.5
// now and then (about 0.4 % of disks for a log-space spread of 0.2). A
// latency rule wants a MinValue that says how much slower matters.
package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Defaults applied by Evaluate to a rule's zero fields.
const (
	DefaultMinPeers  = 8
	DefaultThreshold = 3.5 // Iglewicz and Hoaglin's cut-off for the modified z-score
	DefaultMaxAge    = 15 * time.Minute
	// MinPeersFloor is the smallest group that has a median and a spread
	// at all; Validate rejects a smaller MinPeers.
	MinPeersFloor = 3
)

// Directions.
const (
	High = "high" // larger than the peers is bad: latency, errors
	Low  = "low"  // smaller than the peers is bad: throughput, link speed
)

const (
	// madScale makes the MAD a consistent estimator of the standard
	// deviation for normally distributed values (1/Φ⁻¹(3/4)).
	madScale = 1.4826
	// meanADScale does the same for the mean absolute deviation
	// (√(π/2)); it is the fallback scale when the MAD is 0.
	meanADScale = 1.2533
)

// Evidence sample names of a finding's fault.
const (
	EvidenceValue   = "value"    // the part's value of Rule.Sample
	EvidenceMedian  = "median"   // the peer group's median
	EvidenceMAD     = "mad"      // the peer group's raw median absolute deviation
	EvidenceScale   = "scale"    // the divisor of the z-score: 1.4826·MAD, or 1.2533·mean deviation when the MAD is 0
	EvidenceRobustZ = "robust_z" // (value - median) / scale, signed
	EvidencePeers   = "peers"    // parts in the peer group, the outlier included
)

// Rule is one outlier rule. The rule file format is parsed elsewhere and
// converted to this struct.
type Rule struct {
	Name       string
	Class      string
	Severity   hwhealv1.Severity
	Mode       hwhealv1.RuleMode
	ClearAfter time.Duration
	// Source, when set, limits the rule to observations of that source;
	// others are ignored (not counted in Stats).
	Source string
	// Sample is the observation sample scored, e.g. "latency_p99_us".
	Sample string
	// Peers are node label keys whose values, with the part's kind and
	// model, form a peer group. A node without a label is grouped under the
	// empty value for it.
	Peers []string
	// MinPeers is the smallest group scored (the part included); smaller
	// groups are skipped. 0 means DefaultMinPeers; otherwise at least
	// MinPeersFloor.
	MinPeers int
	// Threshold is the robust z-score a part must exceed, in the rule's
	// direction: at least 1. 0 means DefaultThreshold.
	Threshold float64
	// MinValue is an absolute floor, in the sample's unit, on how far the
	// value must stand from the median in the rule's direction (at least
	// MinValue). It keeps tight groups from flagging differences nobody
	// cares about: 0.1 ms among peers at 0.05 ms is many MADs out but
	// harmless, and one error among counters at 0 is many MADs out too.
	// Being a distance, not a level, it means the same whatever the
	// fleet's baseline.
	MinValue float64
	// Direction is High (default when empty) or Low.
	Direction string
	// MaxAge excludes observations older than this at evaluation time: a
	// dead node's last reading must not count as a peer, nor be flagged.
	// 0 means DefaultMaxAge.
	MaxAge time.Duration
}

// Validate reports what is wrong with r. Evaluate of a rule that fails
// Validate returns no findings.
func (r Rule) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("peer rule %q: %s: %s", r.Name, field, fmt.Sprintf(format, args...)))
	}
	if r.Name == "" {
		bad("name", "empty")
	}
	if r.Class == "" {
		bad("class", "empty")
	}
	if r.Sample == "" {
		bad("sample", "empty")
	}
	if r.ClearAfter < 0 {
		bad("clear_after", "negative (%s)", r.ClearAfter)
	}
	seen := make(map[string]bool, len(r.Peers))
	for _, k := range r.Peers {
		switch {
		case k == "":
			bad("peers", "empty label key")
		case seen[k]:
			bad("peers", "label key %q listed twice", k)
		}
		seen[k] = true
	}
	if r.MinPeers != 0 && r.MinPeers < MinPeersFloor {
		bad("min_peers", "%d is under %d: a smaller group has no meaningful median and spread", r.MinPeers, MinPeersFloor)
	}
	// Under 1, more than half of a well-behaved group could be "outliers".
	if r.Threshold != 0 && !(r.Threshold >= 1 && !math.IsInf(r.Threshold, 0)) {
		bad("threshold", "%v is not a finite robust z-score of at least 1", r.Threshold)
	}
	if r.MinValue < 0 || math.IsNaN(r.MinValue) || math.IsInf(r.MinValue, 0) {
		bad("min_value", "%v is not a finite number >= 0", r.MinValue)
	}
	if r.Direction != "" && r.Direction != High && r.Direction != Low {
		bad("direction", "%q is neither %q nor %q", r.Direction, High, Low)
	}
	if r.MaxAge < 0 {
		bad("max_age", "negative (%s)", r.MaxAge)
	}
	return errors.Join(errs...)
}

// Input is the latest observation of one part of one node, with the node's
// labels. Evaluate expects at most one Input per node and part: a duplicate
// counts twice in its group.
type Input struct {
	Node        string
	Labels      map[string]string
	Observation *hwhealv1.Observation
}

// Finding is one outlier: the fault to raise on Node.
type Finding struct {
	Node  string
	Fault *hwhealv1.Fault
}

// Stats says what one evaluation looked at, so that a rule that never fires
// can be told from a rule that never had enough data.
type Stats struct {
	Groups               int // peer groups formed from usable inputs, small ones included
	Evaluated            int // parts scored: members of groups of at least MinPeers
	SkippedSmallGroups   int // groups with fewer than MinPeers parts
	SkippedMissingSample int // inputs without the sample, or with NaN or ±Inf, or without an observation
	SkippedStale         int // inputs older than MaxAge, or without a time
}

// Evaluate scores every part against its peer group and returns the
// outliers, sorted by node, then part kind, name and serial.
//
// A peer group is the values of r.Peers labels, the part's kind and the
// part's model. Parts with an empty model are grouped by kind (and labels)
// only, with each other: one unknown model is assumed, which is right for a
// fleet whose inventory does not report models and wrong for a mixed one,
// so report models.
//
// The scale of the z-score is 1.4826·MAD. When the MAD is 0 (at least half
// the group has exactly the median value: counters at 0), it falls back to
// 1.2533·(mean absolute deviation from the median), which is positive as
// soon as any part differs, so a lone bad disk among identical ones scores
// high; when that is 0 too every part equals the median and nothing is
// flagged. Whichever scale, a part must also stand at least r.MinValue from
// the median, which is what keeps a single error among zero counters from
// being a fault when the rule says so. No more than half of a group can be
// flagged: at least half lie within one MAD of the median, and a threshold
// of at least 1 puts the cut-off beyond 1.48 MADs.
func Evaluate(r Rule, in []Input, now time.Time) ([]Finding, Stats) {
	return evaluate(r, in, now, median)
}

// member is a scored input: its value and its index in the input slice.
type member struct {
	v float64
	i int32
}

type group struct {
	first int32 // index of the first input of the group, for its labels and model
	n     int32
	off   int32 // start of the group's members
}

func evaluate(r Rule, in []Input, now time.Time, med func([]float64) float64) ([]Finding, Stats) {
	var st Stats
	if r.Validate() != nil || len(in) == 0 || len(in) > math.MaxInt32 {
		return nil, st
	}
	minPeers := cmpOr(r.MinPeers, DefaultMinPeers)
	threshold := cmpOr(r.Threshold, DefaultThreshold)
	maxAge := cmpOr(r.MaxAge, DefaultMaxAge)
	low := r.Direction == Low

	// Pass 1: the group of every usable input, and the group sizes. The
	// key is built in a reused buffer; the map copies it only for a new
	// group, so grouping allocates per group, not per input.
	gid := make([]int32, len(in))
	val := make([]float64, len(in))
	index := make(map[string]int32)
	var groups []group
	var key []byte
	for i := range in {
		gid[i] = -1
		obs := in[i].Observation
		if obs == nil {
			st.SkippedMissingSample++
			continue
		}
		if r.Source != "" && obs.GetSource() != r.Source {
			continue
		}
		if obs.GetTime() == nil || now.Sub(obs.GetTime().AsTime()) > maxAge {
			st.SkippedStale++
			continue
		}
		v, ok := sample(obs, r.Sample)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			st.SkippedMissingSample++
			continue
		}
		key = groupKey(key[:0], r.Peers, in[i].Labels, obs.GetPart())
		g, ok := index[string(key)]
		if !ok {
			g = int32(len(groups))
			index[string(key)] = g
			groups = append(groups, group{first: int32(i)})
		}
		groups[g].n++
		gid[i] = g
		val[i] = v
	}
	st.Groups = len(groups)

	// Pass 2: lay the members of each group out contiguously.
	var off int32
	var largest int32
	for g := range groups {
		groups[g].off = off
		off += groups[g].n
		largest = max(largest, groups[g].n)
	}
	members := make([]member, off)
	fill := make([]int32, len(groups))
	for i, g := range gid {
		if g < 0 {
			continue
		}
		members[groups[g].off+fill[g]] = member{v: val[i], i: int32(i)}
		fill[g]++
	}

	var out []Finding
	scratch := make([]float64, largest)
	for _, g := range groups {
		if int(g.n) < minPeers {
			st.SkippedSmallGroups++
			continue
		}
		st.Evaluated += int(g.n)
		ms := members[g.off : g.off+g.n]
		s := scratch[:len(ms)]
		for j, m := range ms {
			s[j] = m.v
		}
		median := med(s)
		// The mean deviation sums d/n rather than d: the sum of finite
		// deviations can overflow, their mean cannot.
		var meanAD float64
		n := float64(len(ms))
		for j, m := range ms {
			d := math.Abs(m.v - median)
			s[j] = d
			meanAD += d / n
		}
		mad := med(s)
		scale := madScale * mad
		if mad == 0 {
			scale = meanADScale * meanAD
		}
		// 0: every part equals the median. +Inf: values spread across the
		// whole float range (deviations overflow), where no distance means
		// anything. Either way there is no outlier to name.
		if !(scale > 0) || math.IsInf(scale, 0) {
			continue
		}
		var desc string
		for _, m := range ms {
			d := m.v - median
			if low {
				d = -d
			}
			if !(d >= r.MinValue) || !(d/scale > threshold) {
				continue
			}
			if desc == "" {
				desc = describeGroup(r.Peers, in[g.first].Labels, in[g.first].Observation.GetPart())
			}
			z := clampFinite((m.v - median) / scale)
			out = append(out, Finding{
				Node: in[m.i].Node,
				// The fault's time is the reading's (the agent's clock),
				// like every fault derived from a reading: the store
				// clears it by a newer reading of the same clock.
				Fault: fault(r, in[m.i].Observation.GetPart(), in[m.i].Observation.GetTime().AsTime(), m.v, median, mad, scale, z, len(ms), desc),
			})
		}
	}
	slices.SortFunc(out, compareFindings)
	return out, st
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func sample(obs *hwhealv1.Observation, name string) (float64, bool) {
	for _, s := range obs.GetSamples() {
		if s.GetName() == name {
			return s.GetValue(), true
		}
	}
	return 0, false
}

// groupKey appends the peer group key of one input to b. Every component is
// length-prefixed so that label values containing any byte cannot make two
// groups collide.
func groupKey(b []byte, peers []string, labels map[string]string, part *hwhealv1.Part) []byte {
	for _, k := range peers {
		v := labels[k]
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = binary.AppendVarint(b, int64(part.GetKind()))
	m := part.GetModel()
	b = binary.AppendUvarint(b, uint64(len(m)))
	return append(b, m...)
}

// describeGroup names a peer group for people: "disk, model ST4000DM000,
// rack=r1".
func describeGroup(peers []string, labels map[string]string, part *hwhealv1.Part) string {
	var b strings.Builder
	b.WriteString(kindName(part.GetKind()))
	if m := part.GetModel(); m != "" {
		b.WriteString(", model ")
		b.WriteString(m)
	} else {
		b.WriteString(", model unknown")
	}
	for _, k := range peers {
		b.WriteString(", ")
		b.WriteString(k)
		b.WriteByte('=')
		if v, ok := labels[k]; ok && v != "" {
			b.WriteString(v)
		} else {
			b.WriteString("(none)")
		}
	}
	return b.String()
}

func kindName(k hwhealv1.PartKind) string {
	if k == hwhealv1.PartKind_PART_KIND_UNSPECIFIED {
		return "part"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "PART_KIND_"))
}

func fault(r Rule, part *hwhealv1.Part, at time.Time, v, median, mad, scale, z float64, peers int, desc string) *hwhealv1.Fault {
	where := "above"
	if z < 0 {
		where = "below"
	}
	name := part.GetName()
	if name == "" {
		name = kindName(part.GetKind())
	}
	f := &hwhealv1.Fault{
		FaultClass: r.Class,
		Severity:   r.Severity,
		Rule:       r.Name,
		Time:       timestamppb.New(at),
		Summary: fmt.Sprintf("%s %s on %s is %s robust SDs %s the median %s of %d peers (%s)",
			r.Sample, num(v), name, num(math.Abs(z)), where, num(median), peers, desc),
		Evidence: &hwhealv1.Evidence{Samples: []*hwhealv1.Sample{
			{Name: EvidenceValue, Value: v},
			{Name: EvidenceMedian, Value: median},
			{Name: EvidenceMAD, Value: mad},
			{Name: EvidenceScale, Value: scale},
			{Name: EvidenceRobustZ, Value: z},
			{Name: EvidencePeers, Value: float64(peers)},
		}},
		Mode: r.Mode,
	}
	if part != nil {
		// The input belongs to the caller (often the store's cache): the
		// fault must not alias it.
		f.Part = proto.CloneOf(part)
	}
	if r.ClearAfter > 0 {
		f.ClearAfter = durationpb.New(r.ClearAfter)
	}
	return f
}

// clampFinite keeps the evidence finite: a deviation that overflowed to
// ±Inf is reported as the largest float of its sign.
func clampFinite(z float64) float64 {
	switch {
	case math.IsInf(z, 1):
		return math.MaxFloat64
	case math.IsInf(z, -1):
		return -math.MaxFloat64
	}
	return z
}

// num prints a value with four significant digits, without an exponent in
// the range latencies and counters live in.
func num(v float64) string {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	if err != nil || r == 0 || math.Abs(r) < 1e-4 || math.Abs(r) >= 1e15 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

func compareFindings(a, b Finding) int {
	if c := strings.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	pa, pb := a.Fault.GetPart(), b.Fault.GetPart()
	if c := int(pa.GetKind()) - int(pb.GetKind()); c != 0 {
		return c
	}
	if c := strings.Compare(pa.GetName(), pb.GetName()); c != 0 {
		return c
	}
	return strings.Compare(pa.GetSerial(), pb.GetSerial())
}
