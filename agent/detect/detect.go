// Package detect owns the kernel-log fault rules: the shipped rule file
// (rules/kernel.yaml, embedded), its loader with errors that name the file and
// line, and the matcher that turns one kernel log record into the faults it
// proves. The agent runs it on live /dev/kmsg records, `hwhealctl rules
// replay` on saved logs, and the collector on forwarded records; all three see
// the same rules and the same faults.
//
// A rule is data: a literal prefilter (contains), an RE2 pattern with named
// captures, a fault class and severity (each of which a capture can select:
// class_by, severity_by), and templates that name the part from the
// captures. Matching looks at the message text only, whatever the record's
// level or facility, so records written to /dev/kmsg from user space in
// tests match like kernel ones.
//
// The package also owns what the agent does with faults before it spools
// them: the Merger, which makes one fault of a failed block request that
// both eBPF and the kernel log report, and the Limiter, which bounds the
// faults of one rule and part during a flood and counts what it sheds.
package detect

import (
	"bytes"
	_ "embed"
	"fmt"
	"google.golang.org/protobuf/proto"
	"math/bits"
	"regexp"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

//go:embed rules/kernel.yaml
var builtinRules []byte

// BuiltinFile is the name Builtin's errors and Rule.File use for the
// embedded rule file.
const BuiltinFile = "kernel.yaml"

// Builtin parses the embedded rule set. It fails only if the shipped file is
// broken, which the package's tests rule out; it parses afresh on each call
// so that callers own what they get.
func Builtin() (*RuleSet, error) {
	return Load(bytes.NewReader(builtinRules), BuiltinFile)
}

// Rule is the read-only description of one loaded rule.
type Rule struct {
	Name string
	// Class is the default class; a rule with class_by raises others for
	// the captured values it lists.
	Class string
	// Classes is every class the rule can raise: Class first, then those of
	// class_by in file order.
	Classes     []string
	Severity    hwhealv1.Severity // default; a rule may map captured values to others
	Part        hwhealv1.PartKind
	Description string
	// Line is where the rule starts in its file.
	Line int
}

type namedGroup struct {
	name  string
	index int
}

type rule struct {
	Rule
	keys        []string // prefilter keywords: one of them must occur
	others      []string // literals that must all occur as well
	notContains []string
	re          *regexp.Regexp
	groups      []namedGroup
	partName    templates
	pciAddress  templates
	summary     templates
	sevGroup    int // capture group that selects the severity; -1 if none
	sevMap      map[string]hwhealv1.Severity
	classGroup  int // capture group that selects the class; -1 if none
	classMap    map[string]string
	classOrder  []string // class_by's classes in file order, for Rule.Classes
}

// RuleSet is a compiled set of rules. It is immutable after Load and safe
// for concurrent use.
type RuleSet struct {
	rules  []*rule
	pre    *prefilter
	byKey  [][]int // keyword id -> indexes of the rules keyed on it
	nwords int     // len of the candidate bitset in uint64s
}

func (rs *RuleSet) index() {
	ids := map[string]int{}
	var keywords []string
	for i, r := range rs.rules {
		for _, k := range r.keys {
			id, ok := ids[k]
			if !ok {
				id = len(keywords)
				ids[k] = id
				keywords = append(keywords, k)
				rs.byKey = append(rs.byKey, nil)
			}
			rs.byKey[id] = append(rs.byKey[id], i)
		}
	}
	rs.pre = newPrefilter(keywords)
	rs.nwords = (len(rs.rules) + 63) / 64
}

// Rules returns a description of every rule, in file order.
func (rs *RuleSet) Rules() []Rule {
	out := make([]Rule, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.Rule
		out[i].Classes = append([]string(nil), r.Classes...)
	}
	return out
}

// Match returns the faults that rec's message proves, one per matching rule,
// in rule-file order; nil when none. The rules are written so that a line
// gives at most one fault, of the most specific class.
//
// Each fault carries the record as evidence and the pattern's named
// captures. Its Time is rec.Time when set; otherwise nil, and the caller
// stamps it (a live /dev/kmsg record has only a monotonic time).
func (rs *RuleSet) Match(rec kernlog.Record) []*hwhealv1.Fault {
	msg := rec.Message
	// Candidate rules, as a bitset on the stack: a benign line allocates
	// nothing. Load caps the rule count at MaxRules so this always fits.
	var cand [MaxRules / 64]uint64
	p := rs.pre
	found := false
	if p != nil {
		row := int32(0)
		for i := 0; i < len(msg); i++ {
			var ends bool
			if row, ends = p.step(row, msg[i]); !ends {
				continue
			}
			for _, kw := range p.outs[int(row)/p.nclass] {
				for _, ri := range rs.byKey[kw] {
					cand[ri>>6] |= 1 << (uint(ri) & 63)
				}
			}
			found = true
		}
	}
	if !found {
		return nil
	}
	var faults []*hwhealv1.Fault
	for w := 0; w < rs.nwords; w++ {
		for b := cand[w]; b != 0; b &= b - 1 {
			ri := w*64 + bits.TrailingZeros64(b)
			if f := rs.rules[ri].match(rec); f != nil {
				faults = append(faults, f)
			}
		}
	}
	return faults
}

func (r *rule) match(rec kernlog.Record) *hwhealv1.Fault {
	msg := rec.Message
	for _, c := range r.others {
		if !strings.Contains(msg, c) {
			return nil
		}
	}
	for _, c := range r.notContains {
		if strings.Contains(msg, c) {
			return nil
		}
	}
	idx := r.re.FindStringSubmatchIndex(msg)
	if idx == nil {
		return nil
	}
	var caps map[string]string
	for _, g := range r.groups {
		if v := group(msg, idx, g.index); v != "" {
			if caps == nil {
				caps = make(map[string]string, len(r.groups))
			}
			caps[g.name] = v
		}
	}
	sev := r.Severity
	if r.sevGroup >= 0 {
		if s, ok := r.sevMap[group(msg, idx, r.sevGroup)]; ok {
			sev = s
		}
	}
	class := r.Class
	if r.classGroup >= 0 {
		if c, ok := r.classMap[group(msg, idx, r.classGroup)]; ok {
			class = c
		}
	}
	f := &hwhealv1.Fault{
		FaultClass: class,
		Severity:   sev,
		Part: &hwhealv1.Part{
			Kind:       r.Part,
			Name:       r.partName.render(msg, idx),
			PciAddress: r.pciAddress.render(msg, idx),
		},
		Rule:    r.Name,
		Summary: r.summary.render(msg, idx),
		Evidence: &hwhealv1.Evidence{
			KernelLog: kernelLogRecord(rec),
			Captures:  caps,
		},
	}
	if !rec.Time.IsZero() {
		f.Time = timestamppb.New(rec.Time)
	}
	return f
}

// kernelLogRecord converts a record for the wire. The proto has no "unknown"
// level or facility: formats that carry none (-1) are sent as 0.
func kernelLogRecord(rec kernlog.Record) *hwhealv1.KernelLogRecord {
	kl := &hwhealv1.KernelLogRecord{
		Sequence: rec.Seq,
		Message:  rec.Message,
	}
	// -1 means the format carried none: leave the field unset rather than
	// claim level 0 (emerg) or facility 0 (kernel).
	if rec.Level >= 0 {
		kl.Level = proto.Uint32(uint32(rec.Level))
	}
	if rec.Facility >= 0 {
		kl.Facility = proto.Uint32(uint32(rec.Facility))
	}
	if rec.HasMonotonic && rec.Monotonic > 0 {
		kl.MonotonicUsec = uint64(rec.Monotonic.Microseconds())
	}
	if len(rec.Dict) > 0 {
		kl.Dictionary = make(map[string]string, len(rec.Dict))
		for k, v := range rec.Dict {
			kl.Dictionary[k] = v
		}
	}
	return kl
}

// String is for logs and test failures.
func (r Rule) String() string {
	return fmt.Sprintf("%s (%s, %s)", r.Name, r.Class, strings.ToLower(strings.TrimPrefix(r.Severity.String(), "SEVERITY_")))
}
