package detect

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
)

// Kind is what a rule looks at.
type Kind string

// The kinds of rule. A pattern rule matches a kernel log line (Match); a
// threshold, rate or smart rule judges the observations of one part
// (Evaluator); an outlier rule compares a part with its peers across the
// fleet, which only the collector sees (Outliers); an agent rule declares
// a rule implemented in the agent's code, so that its faults get a mode
// and a clear time from data (Annotate).
const (
	KindPattern   Kind = "pattern"
	KindThreshold Kind = "threshold"
	KindRate      Kind = "rate"
	KindSmart     Kind = "smart"
	KindOutlier   Kind = "outlier"
	KindAgent     Kind = "agent"
)

// DefaultClearAfter is the clear time of pattern and agent rules that give
// none, and of faults whose rule is not known.
const DefaultClearAfter = 24 * time.Hour

// DefaultSmartSource is the source a smart rule reads unless it names one.
const DefaultSmartSource = "smart"

// Outlier defaults.
const (
	DefaultMinPeers         = 8
	DefaultOutlierThreshold = 3.5
	minMinPeers             = 3
	// maxConditions bounds a smart rule's conditions: which of them hold
	// is kept in a 64-bit mask.
	maxConditions = 64
)

// Direction is the side on which an outlier is bad.
type Direction string

// Directions of an outlier rule.
const (
	DirectionHigh Direction = "high"
	DirectionLow  Direction = "low"
)

// OutlierRule is an outlier rule as the collector runs it
// (collector/peers): a part whose sample stands far from the same sample
// of its peers. The peer group is the parts of the same model on nodes
// that share the values of the Peers labels. This package only parses and
// checks it, with the limits collector/peers enforces.
type OutlierRule struct {
	Rule
	// Peers are the node label keys that form the peer group; the part's
	// model is always part of it.
	Peers []string
	// MinPeers is the smallest group (the part included) that is judged.
	MinPeers int
	// Threshold is the robust z-score |x - median| * 0.6745 / MAD beyond
	// which a part is an outlier.
	Threshold float64
	// MinValue is how far, at least, the value must stand from the
	// group's median in the rule's direction, in the sample's unit (0:
	// no floor): a distance, so that a tight group does not raise
	// differences nobody cares about (2 ms among peers at 1 ms is many
	// MADs out, and harmless).
	MinValue  float64
	Direction Direction

	summary templates
}

// OutlierValues are what an outlier rule's summary may name.
type OutlierValues struct {
	Part, Serial, Model string
	Value, Median, MAD  float64
	Score               float64
	Peers               int
}

// RenderSummary renders the rule's summary for one outlier.
func (o OutlierRule) RenderSummary(v OutlierValues) string {
	var vals values
	vals[vRule], vals[vClass], vals[vSource] = o.Name, o.Class, o.Source
	vals[vPart], vals[vSerial], vals[vModel] = v.Part, v.Serial, v.Model
	vals[vSample] = o.Sample
	vals[vValue], vals[vMedian], vals[vMAD] = formatNumber(v.Value), formatNumber(v.Median), formatNumber(v.MAD)
	vals[vScore] = strconv.FormatFloat(v.Score, 'f', 1, 64)
	vals[vPeers] = strconv.Itoa(v.Peers)
	return o.summary.renderValues(&vals)
}

// cmpOp is a threshold rule's comparison.
type cmpOp uint8

const (
	opAbove cmpOp = iota + 1
	opBelow
	opAtLeast
	opAtMost
)

var opKeys = []struct {
	key string
	op  cmpOp
	sym string
}{{"above", opAbove, ">"}, {"below", opBelow, "<"}, {"at_least", opAtLeast, ">="}, {"at_most", opAtMost, "<="}}

func (op cmpOp) holds(v, limit float64) bool {
	switch op {
	case opAbove:
		return v > limit
	case opBelow:
		return v < limit
	case opAtLeast:
		return v >= limit
	case opAtMost:
		return v <= limit
	}
	return false
}

func (op cmpOp) String() string {
	for _, k := range opKeys {
		if k.op == op {
			return k.sym
		}
	}
	return "?"
}

// sampleGlob matches sample names: a name, or a pattern where * stands for
// any run of characters.
type sampleGlob struct {
	pattern string
	parts   []string // split at *; nil for a plain name
}

func newSampleGlob(p string) sampleGlob {
	g := sampleGlob{pattern: p}
	if strings.Contains(p, "*") {
		g.parts = strings.Split(p, "*")
	}
	return g
}

func (g sampleGlob) match(name string) bool {
	if g.parts == nil {
		return name == g.pattern
	}
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	rest := name[len(first) : len(name)-len(last)]
	for _, p := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

// smartCond is one condition of a smart rule's any: list. Its tests are
// ANDed.
type smartCond struct {
	line int
	// attr is the ATA attribute (1-255), anyAttr for "*" (every attribute,
	// at_threshold only), 0 when the condition names a sample.
	attr int
	// sample is the value the tests read: ata_attr_N_raw, or the sample
	// named.
	sample string
	// at_threshold reads the normalized value and its threshold.
	valueSample, threshSample string

	rawAbove, atLeast, atMost          float64
	hasRawAbove, hasAtLeast, hasAtMost bool
	growing, atThreshold               bool
	bits                               uint64
	belowSample                        string
	severity                           int32 // 0: the rule's
}

const anyAttr = -1

// Values a summary template may name, by index.
const (
	vRule = iota
	vClass
	vSource
	vPart
	vSerial
	vModel
	vSample
	vValue
	vLimit
	vFor
	vIncrease
	vWindow
	vFindings
	vMedian
	vMAD
	vScore
	vPeers
	nValues
)

var valueNames = [nValues]string{"rule", "class", "source", "part", "serial", "model", "sample", "value",
	"limit", "for", "increase", "window", "findings", "median", "mad", "score", "peers"}

type values [nValues]string

// kindValues are the values each kind's summary may name.
var kindValues = map[Kind][]int{
	KindThreshold: {vRule, vClass, vSource, vPart, vSerial, vModel, vSample, vValue, vLimit, vFor},
	KindRate:      {vRule, vClass, vSource, vPart, vSerial, vModel, vSample, vValue, vIncrease, vWindow},
	KindSmart:     {vRule, vClass, vSource, vPart, vSerial, vModel, vSample, vValue, vFindings},
	KindOutlier:   {vRule, vClass, vSource, vPart, vSerial, vModel, vSample, vValue, vMedian, vMAD, vScore, vPeers},
}

// defaultSummaries are used when a rule gives no summary.
var defaultSummaries = map[Kind][]string{
	KindThreshold: {"{sample} is {value} on {part} (limit {limit} for {for})", "{sample} is {value} on {part} (limit {limit})"},
	KindRate:      {"{sample} of {part} rose by {increase} within {window}"},
	KindSmart:     {"{part}: {findings}"},
	KindOutlier:   {"{sample} of {part} is {value}, {score} robust z from the median {median} of {peers} peers"},
}

// renderValues uses the first alternative whose values are all set, else
// the last one with whatever it has.
func (ts templates) renderValues(v *values) string {
	if len(ts) == 0 {
		return ""
	}
	pick := ts[len(ts)-1]
	for _, t := range ts[:len(ts)-1] {
		complete := true
		for _, g := range t.refs {
			if v[g] == "" {
				complete = false
				break
			}
		}
		if complete {
			pick = t
			break
		}
	}
	var b strings.Builder
	for _, p := range pick.parts {
		if p.group < 0 {
			b.WriteString(p.lit)
		} else {
			b.WriteString(v[p.group])
		}
	}
	return b.String()
}

// valueTemplates compiles the summary of an evaluated or outlier rule.
func (l *loader) valueTemplates(raw *rawRule, line int) templates {
	names := map[string]int{}
	for _, i := range kindValues[raw.kind] {
		names[valueNames[i]] = i
	}
	src := defaultSummaries[raw.kind]
	if raw.has("summary") {
		src = raw.summary
		if len(src) == 0 {
			l.errorf(raw.at("summary", line), raw.id, "summary", "empty list")
			return nil
		}
	}
	ts := make(templates, 0, len(src))
	for _, s := range src {
		t, err := parseTemplate(s, names)
		if err != nil {
			// parseTemplate speaks of captures; here they are values.
			msg := strings.Replace(err.Error(), "is not a named group of the pattern", "is not a value a "+string(raw.kind)+" rule's summary can name ("+strings.Join(sortedNames(names), ", ")+")", 1)
			l.errorf(raw.at("summary", line), raw.id, "summary", "%s", msg)
			continue
		}
		ts = append(ts, t)
	}
	return ts
}

func sortedNames(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// number reads a finite number.
func (l *loader) number(v *yaml.Node, rule, field string) (float64, bool) {
	if v.Kind == yaml.ScalarNode {
		switch v.Tag {
		case "!!int":
			if n, err := strconv.ParseInt(v.Value, 0, 64); err == nil {
				return float64(n), true
			}
			if n, err := strconv.ParseUint(v.Value, 0, 64); err == nil {
				return float64(n), true
			}
		case "!!float":
			if f, err := strconv.ParseFloat(v.Value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, true
			}
		}
	}
	l.errorf(v.Line, rule, field, "is %s, want a number", describeNode(v))
	return 0, false
}

// duration reads a Go duration; positive unless zero is allowed.
func (l *loader) duration(v *yaml.Node, rule, field string, zeroOK bool) (time.Duration, bool) {
	s, ok := l.scalar(v, rule, field)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.errorf(v.Line, rule, field, "%q is not a duration such as 10m or 24h", s)
		return 0, false
	case d < 0 || (d == 0 && !zeroOK):
		l.errorf(v.Line, rule, field, "%s is not positive", s)
		return 0, false
	}
	return d, true
}

// sampleName reads a sample name, or a glob when allowed.
func (l *loader) sampleName(v *yaml.Node, rule, field string, glob bool) (string, bool) {
	s, ok := l.scalar(v, rule, field)
	if !ok {
		return "", false
	}
	switch {
	case s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		l.errorf(v.Line, rule, field, "%q is not a sample name", s)
		return "", false
	case !glob && strings.Contains(s, "*"):
		l.errorf(v.Line, rule, field, "%q: a glob is not allowed here, name one sample", s)
		return "", false
	case glob && strings.Trim(s, "*") == "":
		l.errorf(v.Line, rule, field, "%q matches every sample; name the samples the rule is about", s)
		return "", false
	}
	return s, true
}

// source reads the observation source a rule is about; def is used when
// the rule gives none ("" when required).
func (l *loader) source(r *rule, raw *rawRule, line int, def string) {
	v, ok := raw.nodes["source"]
	if !ok {
		if def == "" {
			l.errorf(line, raw.id, "source", "required: the name of the observations' source, such as edac or netdev")
		}
		r.Source = def
		return
	}
	s, ok := l.scalar(v, raw.id, "source")
	if ok && s == "" {
		l.errorf(v.Line, raw.id, "source", "empty")
	}
	r.Source = s
}

// sample reads the rule's sample: key.
func (l *loader) sample(r *rule, raw *rawRule, line int, glob bool) {
	v, ok := raw.nodes["sample"]
	if !ok {
		l.errorf(line, raw.id, "sample", "required: the name of the sample the rule judges")
		return
	}
	if s, ok := l.sampleName(v, raw.id, "sample", glob); ok {
		r.Sample = s
		r.glob = newSampleGlob(s)
	}
}

func (l *loader) withoutSample(r *rule, raw *rawRule) {
	v, ok := raw.nodes["without_sample"]
	if !ok {
		return
	}
	for _, s := range l.strings(v, raw.id, "without_sample") {
		if s == "" || strings.Contains(s, "*") {
			l.errorf(v.Line, raw.id, "without_sample", "%q is not a sample name", s)
			continue
		}
		r.without = append(r.without, s)
	}
}

func (l *loader) compileThreshold(r *rule, raw *rawRule, line int) {
	name := raw.id
	l.source(r, raw, line, "")
	l.sample(r, raw, line, true)
	l.withoutSample(r, raw)
	var given []string
	for _, k := range opKeys {
		v, ok := raw.nodes[k.key]
		if !ok {
			continue
		}
		given = append(given, k.key)
		if n, ok := l.number(v, name, k.key); ok {
			r.op, r.limit = k.op, n
		}
	}
	// In file order, so that the error points at the second one written.
	slices.SortFunc(given, func(a, b string) int { return raw.lines[a] - raw.lines[b] })
	switch len(given) {
	case 0:
		l.errorf(line, name, "above", "required: one of above, below, at_least or at_most")
	case 1:
	default:
		l.errorf(raw.at(given[1], line), name, given[1], "give one of above, below, at_least or at_most, not %s", strings.Join(given, " and "))
	}
	if v, ok := raw.nodes["for"]; ok {
		r.holdFor, _ = l.duration(v, name, "for", true)
	}
	r.summary = l.valueTemplates(raw, line)
}

func (l *loader) compileRate(r *rule, raw *rawRule, line int) {
	name := raw.id
	l.source(r, raw, line, "")
	l.sample(r, raw, line, true)
	l.withoutSample(r, raw)
	if v, ok := raw.nodes["increase"]; !ok {
		l.errorf(line, name, "increase", "required: how much the counter must grow within the window")
	} else if n, ok := l.number(v, name, "increase"); ok {
		if n <= 0 {
			l.errorf(v.Line, name, "increase", "%s is not positive", v.Value)
		}
		r.increase = n
	}
	if v, ok := raw.nodes["window"]; !ok {
		l.errorf(line, name, "window", "required: the duration the increase is counted over, such as 24h")
	} else {
		r.window, _ = l.duration(v, name, "window", false)
	}
	r.summary = l.valueTemplates(raw, line)
}

func (l *loader) compileOutlier(r *rule, raw *rawRule, line int) {
	name := raw.id
	l.source(r, raw, line, "")
	l.sample(r, raw, line, false)
	o := &OutlierRule{MinPeers: DefaultMinPeers, Threshold: DefaultOutlierThreshold, Direction: DirectionHigh}
	if v, ok := raw.nodes["peers"]; ok {
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			o.Peers = []string{}
		}
		for _, p := range l.strings(v, name, "peers") {
			if p == "" || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' }) {
				l.errorf(v.Line, name, "peers", "%q is not a node label key", p)
				continue
			}
			if slices.Contains(o.Peers, p) {
				l.errorf(v.Line, name, "peers", "label %q listed twice", p)
				continue
			}
			o.Peers = append(o.Peers, p)
		}
	}
	if v, ok := raw.nodes["min_peers"]; ok {
		if n, ok := l.number(v, name, "min_peers"); ok {
			if n != math.Trunc(n) || n < minMinPeers || n > 1e6 {
				l.errorf(v.Line, name, "min_peers", "%s: want a whole number of at least %d", v.Value, minMinPeers)
			} else {
				o.MinPeers = int(n)
			}
		}
	}
	if v, ok := raw.nodes["threshold"]; ok {
		if n, ok := l.number(v, name, "threshold"); ok {
			// Under 1, more than half of a well-behaved group could be
			// outliers.
			if n < 1 {
				l.errorf(v.Line, name, "threshold", "%s: want a robust z-score of at least 1", v.Value)
			} else {
				o.Threshold = n
			}
		}
	}
	if v, ok := raw.nodes["min_value"]; ok {
		if n, ok := l.number(v, name, "min_value"); ok {
			if n < 0 {
				l.errorf(v.Line, name, "min_value", "%s: want a distance from the median of 0 or more", v.Value)
			} else {
				o.MinValue = n
			}
		}
	}
	if v, ok := raw.nodes["direction"]; ok {
		if s, ok := l.scalar(v, name, "direction"); ok {
			switch Direction(s) {
			case DirectionHigh, DirectionLow:
				o.Direction = Direction(s)
			default:
				l.errorf(v.Line, name, "direction", "unknown direction %q (want high or low)", s)
			}
		}
	}
	o.summary = l.valueTemplates(raw, line)
	r.outlier = o
}

// smartCondKeys are the keys of one condition of a smart rule.
var smartCondKeys = map[string]bool{
	"attribute": true, "sample": true, "raw_above": true, "growing": true, "at_threshold": true,
	"bits": true, "below_sample": true, "at_least": true, "at_most": true, "severity": true,
}

func (l *loader) compileSmart(r *rule, raw *rawRule, line int) {
	name := raw.id
	l.source(r, raw, line, DefaultSmartSource)
	v, ok := raw.nodes["any"]
	switch {
	case !ok:
		l.errorf(line, name, "any", "required: a list of conditions, one of which must hold")
	case v.Kind != yaml.SequenceNode:
		l.errorf(v.Line, name, "any", "is a %s, want a list of conditions", yamldoc.Kind(v))
	case len(v.Content) == 0:
		l.errorf(v.Line, name, "any", "empty: at least one condition is required")
	case len(v.Content) > maxConditions:
		l.errorf(v.Line, name, "any", "%d conditions, at most %d supported", len(v.Content), maxConditions)
	default:
		for i, c := range v.Content {
			if cond, ok := l.smartCond(c, name, fmt.Sprintf("any[%d]", i)); ok {
				r.conds = append(r.conds, cond)
			}
		}
	}
	r.summary = l.valueTemplates(raw, line)
}

func (l *loader) smartCond(n *yaml.Node, rule, field string) (smartCond, bool) {
	c := smartCond{line: n.Line}
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, rule, field, "is a %s, want a mapping such as {attribute: 5, raw_above: 0}", yamldoc.Kind(n))
		return c, false
	}
	nerr := len(l.errs)
	seen := map[string]bool{}
	tests := 0
	var attrNode, sampleNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		f := field + "." + key
		if seen[key] {
			l.errorf(k.Line, rule, f, "duplicate key")
			continue
		}
		seen[key] = true
		if !smartCondKeys[key] {
			l.errorf(k.Line, rule, field, "unknown key %q (want attribute or sample, and raw_above, growing, at_threshold, bits, below_sample, at_least, at_most, severity)", key)
			continue
		}
		switch key {
		case "attribute":
			attrNode = v
			if v.Kind == yaml.ScalarNode && v.Value == "*" {
				c.attr = anyAttr
				continue
			}
			n, ok := l.number(v, rule, f)
			if !ok {
				continue
			}
			if n != math.Trunc(n) || n < 1 || n > 255 {
				l.errorf(v.Line, rule, f, "%s is not an ATA attribute id (1-255) or *", v.Value)
				continue
			}
			c.attr = int(n)
		case "sample":
			sampleNode = v
			c.sample, _ = l.sampleName(v, rule, f, false)
		case "raw_above":
			tests++
			c.rawAbove, c.hasRawAbove = l.number(v, rule, f)
		case "at_least":
			tests++
			c.atLeast, c.hasAtLeast = l.number(v, rule, f)
		case "at_most":
			tests++
			c.atMost, c.hasAtMost = l.number(v, rule, f)
		case "growing", "at_threshold":
			tests++
			b, ok := l.boolean(v, rule, f)
			if ok && !b {
				l.errorf(v.Line, rule, f, "false tests nothing; leave the key out")
			}
			if key == "growing" {
				c.growing = b
			} else {
				c.atThreshold = b
			}
		case "bits":
			tests++
			n, ok := l.number(v, rule, f)
			if !ok {
				continue
			}
			if n != math.Trunc(n) || n <= 0 || n > 255 {
				l.errorf(v.Line, rule, f, "%s is not a bit mask of 1 to 0xff", v.Value)
				continue
			}
			c.bits = uint64(n)
		case "below_sample":
			tests++
			c.belowSample, _ = l.sampleName(v, rule, f, false)
		case "severity":
			s, ok := l.scalar(v, rule, f)
			if !ok {
				continue
			}
			sev, ok := severities[s]
			if !ok {
				l.errorf(v.Line, rule, f, "unknown severity %q (want info, warning or critical)", s)
				continue
			}
			c.severity = int32(sev)
		}
	}
	switch {
	case attrNode == nil && sampleNode == nil:
		l.errorf(n.Line, rule, field, "names neither attribute nor sample")
	case attrNode != nil && sampleNode != nil:
		l.errorf(sampleNode.Line, rule, field+".sample", "give attribute or sample, not both")
	}
	if tests == 0 {
		l.errorf(n.Line, rule, field, "has no test (raw_above, growing, at_threshold, bits, below_sample, at_least or at_most)")
	}
	if c.atThreshold && attrNode == nil {
		l.errorf(n.Line, rule, field+".at_threshold", "needs an attribute: it compares the normalized value with the drive's threshold")
	}
	if c.attr == anyAttr && (tests != 1 || !c.atThreshold) {
		l.errorf(attrNode.Line, rule, field+".attribute", "* (every attribute) goes only with at_threshold")
	}
	switch {
	case c.attr > 0:
		id := strconv.Itoa(c.attr)
		c.sample = "ata_attr_" + id + "_raw"
		c.valueSample = "ata_attr_" + id + "_value"
		c.threshSample = "ata_attr_" + id + "_thresh"
	case c.attr == anyAttr:
		c.sample = ""
	}
	return c, len(l.errs) == nerr
}
