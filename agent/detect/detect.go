// Package detect owns hwheal's fault rules: the one rule file format for
// every kind of rule, the shipped rule files (rules/*.yaml, embedded), the
// loader that applies override files (/etc/hwheal/rules.d) over them with
// errors that name the file and line, and what runs the rules:
//
//   - pattern rules turn one kernel log record into the faults it proves
//     (RuleSet.Match). The agent runs them on live /dev/kmsg records,
//     `hwhealctl rules replay` on saved logs, and the collector on
//     forwarded records; all three see the same rules and the same faults.
//     A pattern rule is a literal prefilter (contains), an RE2 pattern with
//     named captures, a fault class and severity (each of which a capture
//     can select: class_by, severity_by), and templates that name the part
//     from the captures. Matching looks at the message text only, whatever
//     the record's level or facility, so records written to /dev/kmsg from
//     user space in tests match like kernel ones.
//   - threshold, rate and smart rules judge the observations of one part
//     over time (Evaluator), in the collector and in `rules replay`.
//   - outlier rules compare a part with its peers across the fleet; the
//     collector runs them (RuleSet.Outliers), this package parses them.
//   - agent rules declare the rules implemented in the agent's code, so
//     that their faults, like every other, get a mode (enforce or shadow)
//     and a clear time from data (RuleSet.Annotate).
//
// The package also owns what the agent does with faults before it spools
// them: the Merger, which makes one fault of a failed block request that
// both eBPF and the kernel log report, and the Limiter, which bounds the
// faults of one rule and part during a flood and counts what it sheds.
package detect

import (
	"embed"
	"fmt"
	"io/fs"
	"math/bits"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

//go:embed rules/*.yaml
var builtinFS embed.FS

// BuiltinFile is the name of the shipped kernel log rule file, as
// BuiltinFiles names it.
const BuiltinFile = "kernel.yaml"

// BuiltinFiles returns the shipped rule files (rules/*.yaml, embedded) in
// name order. The collector loads them followed by the files of
// /etc/hwheal/rules.d, so that those override them.
func BuiltinFiles() []File {
	entries, err := fs.ReadDir(builtinFS, "rules")
	if err != nil {
		panic("detect: embedded rules: " + err.Error()) // the embed pattern guarantees the directory
	}
	var out []File
	for _, e := range entries { // ReadDir sorts by name
		data, err := builtinFS.ReadFile(path.Join("rules", e.Name()))
		if err != nil {
			panic("detect: embedded rules: " + err.Error())
		}
		out = append(out, File{Name: e.Name(), Data: data})
	}
	return out
}

// Builtin parses the shipped rule files. It fails only if a shipped file
// is broken, which the package's tests rule out; it parses afresh on each
// call so that callers own what they get.
func Builtin() (*RuleSet, error) {
	return LoadFiles(BuiltinFiles()...)
}

// Rule is the read-only description of one loaded rule.
type Rule struct {
	// Name is what faults carry in Fault.rule. An agent rule declared by
	// name_prefix is listed as the prefix followed by "*" ("smart/*").
	Name string
	Kind Kind
	// Class is the default class; a rule with class_by raises others for
	// the captured values it lists. An agent rule may have none (its
	// faults carry the agent's).
	Class string
	// Classes is every class the rule can raise: Class first, then those of
	// class_by in file order.
	Classes  []string
	Severity hwhealv1.Severity // default; a rule may map captured values to others
	// Part is the kind of part a pattern rule names; for other kinds it
	// narrows the observations the rule looks at (unspecified: any).
	Part        hwhealv1.PartKind
	Description string
	// Mode says whether the rule's faults may lead to an action.
	Mode hwhealv1.RuleMode
	// ClearAfter is how long a fault of the rule goes without evidence
	// before it resolves by itself; 0 means never (an operator resolves
	// it).
	ClearAfter time.Duration
	// Enabled is false for a rule turned off (enabled: false): it never
	// matches, never evaluates and drops its agent's faults, but is still
	// listed.
	Enabled bool
	// File and Line are where the rule was defined (or last replaced).
	File string
	Line int
	// Patches are the override entries that changed the rule since, in
	// the order applied.
	Patches []Location
	// Source and Sample are the observation source and sample (or glob)
	// a threshold, rate or outlier rule reads; a smart rule's Source.
	Source string
	Sample string
}

// Location is a place in a rule file.
type Location struct {
	File string
	Line int
}

func (l Location) String() string { return fmt.Sprintf("%s:%d", l.File, l.Line) }

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

	// Every kind.
	sevFixed     bool // Annotate sets the rule's severity on its faults
	namePrefix   string
	clearByClass map[string]time.Duration // agent rules: clear time by fault class
	// Threshold and rate rules.
	glob    sampleGlob
	without []string // observations with one of these samples are not judged
	op      cmpOp
	limit   float64
	holdFor time.Duration
	// Rate rules.
	increase float64
	window   time.Duration
	// Smart rules.
	conds []smartCond
	// Outlier rules.
	outlier *OutlierRule
}

// RuleSet is a compiled set of rules. It is immutable after LoadFiles and
// safe for concurrent use.
type RuleSet struct {
	all       []*rule // every rule, in file order
	byName    map[string]*rule
	prefixes  []*rule // agent rules declared by name_prefix, longest first
	evaluated []*rule // enabled threshold, rate and smart rules
	outliers  []*rule // enabled outlier rules

	// Kernel log matching: the enabled pattern rules.
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

// Rules returns a description of every rule, disabled ones included, in
// file order (a rule replaced by a later file keeps its place).
func (rs *RuleSet) Rules() []Rule {
	out := make([]Rule, len(rs.all))
	for i, r := range rs.all {
		out[i] = r.view()
	}
	return out
}

func (r *rule) view() Rule {
	v := r.Rule
	v.Classes = slices.Clone(r.Classes)
	return v
}

// Lookup returns the rule that faults named name come from: the rule of
// that name, else the agent rule with the longest name_prefix that name
// starts with.
func (rs *RuleSet) Lookup(name string) (Rule, bool) {
	if r := rs.lookup(name); r != nil {
		return r.view(), true
	}
	return Rule{}, false
}

func (rs *RuleSet) lookup(name string) *rule {
	if r, ok := rs.byName[name]; ok {
		return r
	}
	for _, r := range rs.prefixes {
		if strings.HasPrefix(name, r.namePrefix) {
			return r
		}
	}
	return nil
}

// Annotate sets what the rules say about a fault an agent reported: its
// mode and clear time from the rule named by f.Rule (Lookup; an agent
// rule's clear_after_by_class first), and its severity where the rules fix
// it: an agent rule that names a severity, a severity patched by an
// override file, a pattern rule an override file replaced (without
// severity_by: the agent still ran the shipped one). A fault of an unknown
// rule is enforced and clears after DefaultClearAfter. Annotate returns
// false for a fault of a disabled rule, which the caller drops.
func (rs *RuleSet) Annotate(f *hwhealv1.Fault) bool {
	r := rs.lookup(f.GetRule())
	if r == nil {
		f.Mode = hwhealv1.RuleMode_RULE_MODE_ENFORCE
		f.ClearAfter = durationpb.New(DefaultClearAfter)
		return true
	}
	f.Mode = r.Mode
	clear := r.ClearAfter
	if d, ok := r.clearByClass[f.GetFaultClass()]; ok {
		clear = d
	}
	f.ClearAfter = clearAfterProto(clear)
	if r.sevFixed {
		f.Severity = r.Severity
	}
	return r.Enabled
}

// clearAfterProto is the wire form of a clear time: unset for never.
func clearAfterProto(d time.Duration) *durationpb.Duration {
	if d <= 0 {
		return nil
	}
	return durationpb.New(d)
}

// Outliers returns the enabled outlier rules, which the collector runs
// over the fleet; disabled ones are only in Rules.
func (rs *RuleSet) Outliers() []OutlierRule {
	out := make([]OutlierRule, 0, len(rs.outliers))
	for _, r := range rs.outliers {
		o := *r.outlier
		o.Rule = r.view()
		o.Peers = slices.Clone(o.Peers)
		out = append(out, o)
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
