package policy

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	// Time zones parse the same on every host, whether or not it has a
	// zoneinfo database (a distroless image has none).
	_ "time/tzdata"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// defaultYAML is the policy a fresh install runs. A string, so that no
// caller can change it.
//
//go:embed shipped/default.yaml
var defaultYAML string

// defaultFile is the name Default's errors would give its file.
const defaultFile = "shipped/default.yaml"

// Defaults of what a policy does not name.
const (
	defaultMaxOutOfServicePercent = 10
	defaultBreakerNodes           = 5
	defaultBreakerPercent         = 5
	defaultBreakerWindow          = 15 * time.Minute
	defaultApprovalTTL            = 24 * time.Hour
	defaultEscalateWithin         = 24 * time.Hour
)

// Bounds that keep figures meaningful.
const (
	// maxCount bounds absolute node counts, so that they convert to int
	// on every platform.
	maxCount = math.MaxInt32
	// maxWindowDuration bounds how long a recurring window stays open
	// after each opening.
	maxWindowDuration = 366 * 24 * time.Hour
)

// Error is one problem of a policy file. Its text is "FILE:LINE: message".
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg }

// Load reads the policy file at path and parses it.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(data, path)
}

// Default is the policy a fresh install runs, parsed from the shipped
// shipped/default.yaml: dry-run, no rules, a person approves every manual
// request, limits and the breaker on. File is "". Every call returns a
// policy of its own.
func Default() *Policy {
	p, err := Parse([]byte(defaultYAML), defaultFile)
	if err != nil {
		// TestShipped parses the embedded file; this cannot happen in a
		// binary whose tests passed.
		panic("policy: shipped default policy: " + err.Error())
	}
	p.File = ""
	return p
}

// Parse reads one policy document. name is the file name errors and
// Policy.File give. Every problem found is reported, each an *Error
// ("NAME:LINE: message"), joined. An empty document is the policy of
// defaults: not dry-run, no rules, a person approves manual requests.
func Parse(data []byte, name string) (*Policy, error) {
	sum := sha256.Sum256(data)
	p := &Policy{
		File:   name,
		SHA256: hex.EncodeToString(sum[:]),
		Limits: Limits{
			MaxOutOfService: Quantity{N: defaultMaxOutOfServicePercent, Percent: true, Set: true},
		},
		Breaker: Breaker{
			Nodes:   defaultBreakerNodes,
			Percent: defaultBreakerPercent,
			Window:  defaultBreakerWindow,
		},
		Approval: ApprovalDefaults{
			TTL:      defaultApprovalTTL,
			OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY,
		},
		Windows:   map[string]*Window{},
		Cooldowns: map[hwhealv1.ActionType]time.Duration{},
		Manual:    map[hwhealv1.ActionType]Approval{},
	}
	l := &loader{file: name, windows: map[string]int{}}
	root, yerr := yamldoc.Parse(data)
	if yerr != nil {
		l.errorf(yerr.Line, "%s", yerr.Msg)
	} else {
		l.policy(root, p)
	}
	// In file order, whatever order the keys were read in.
	slices.SortStableFunc(l.errs, func(a, b error) int { return a.(*Error).Line - b.(*Error).Line })
	switch len(l.errs) {
	case 0:
		return p, nil
	case 1:
		return nil, l.errs[0]
	}
	return nil, errors.Join(l.errs...)
}

// loader collects every problem of a file rather than stopping at the
// first, so that `hwhealctl policy check` shows them all at once.
type loader struct {
	file string
	errs []error // each an *Error
	// windows: name -> line of every window defined, parsed or not, so
	// that a broken window is not also reported as missing.
	windows map[string]int
}

func (l *loader) errorf(line int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// entry is one key of a mapping and its value, aliases followed.
type entry struct {
	key string
	k   *yaml.Node
	v   *yaml.Node
}

var topKeys = []string{"dry_run", "limits", "breaker", "approval", "windows", "freezes", "cooldowns", "max_per_node_per_week", "manual", "rules"}

func (l *loader) policy(root *yaml.Node, p *Policy) {
	if root == nil {
		fillManual(p)
		return
	}
	if root.Kind != yaml.MappingNode {
		l.errorf(root.Line, "the top level is %s, want a mapping (dry_run:, limits:, rules: ...)", describe(root))
		return
	}
	byKey := map[string]*yaml.Node{}
	for _, e := range l.fields(root, "", "key", topKeys) {
		byKey[e.key] = e.v
	}
	// In this order: steps and manual rules take the approval defaults,
	// rules refer to windows.
	if v := byKey["dry_run"]; v != nil {
		p.DryRun, _ = l.boolean(v, "dry_run")
	}
	if v := byKey["limits"]; v != nil {
		l.limits(v, &p.Limits)
	}
	if v := byKey["breaker"]; v != nil {
		l.breaker(v, &p.Breaker)
	}
	if v := byKey["approval"]; v != nil {
		l.approvalDefaults(v, &p.Approval)
	}
	if v := byKey["windows"]; v != nil {
		for _, w := range l.windowList(v, "windows", "window", true) {
			p.Windows[w.Name] = w
		}
	}
	if v := byKey["freezes"]; v != nil {
		p.Freezes = l.windowList(v, "freezes", "freeze", false)
	}
	if v := byKey["cooldowns"]; v != nil {
		for _, e := range l.fields(v, "cooldowns: ", "action", action.TypeNames()) {
			t, _ := action.ParseType(e.key)
			if d, ok := l.duration(e.v, "cooldowns: "+e.key); ok {
				p.Cooldowns[t] = d
			}
		}
	}
	if v := byKey["max_per_node_per_week"]; v != nil {
		if n, ok := l.integer(v, "max_per_node_per_week"); ok {
			if n < 0 || n > maxCount {
				l.errorf(v.Line, "max_per_node_per_week: %d is out of range, want 0 (no cap) or more", n)
			} else {
				p.MaxPerNodePerWeek = int(n)
			}
		}
	}
	if v := byKey["manual"]; v != nil {
		for _, e := range l.fields(v, "manual: ", "action", action.TypeNames()) {
			t, _ := action.ParseType(e.key)
			if a, ok := l.approval(e.v, "manual: "+e.key, p.Approval); ok {
				if a.OnExpiry == hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED && e.v.Kind == yaml.MappingNode && hasKey(e.v, "on_expiry") {
					l.errorf(e.v.Line, "manual: %s: on_expiry proceed is for planned work a rule offers; a person's request nobody approved never runs (it expires)", e.key)
					continue
				}
				// A person's request nobody answered never runs, whatever
				// the approval defaults say.
				a.OnExpiry = hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY
				p.Manual[t] = a
			}
		}
	}
	fillManual(p)
	if v := byKey["rules"]; v != nil {
		l.rules(v, p)
	}
}

// fillManual fills the manual rule of every action type the file did not
// name: a person approves it.
func fillManual(p *Policy) {
	for _, name := range action.TypeNames() {
		t, _ := action.ParseType(name)
		if _, ok := p.Manual[t]; !ok {
			p.Manual[t] = Approval{
				Mode:     hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED,
				TTL:      p.Approval.TTL,
				OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY,
			}
		}
	}
}

// fields reads mapping n, whose keys ctx prefixes in messages ("limits:
// "), keeping the keys of want in file order and refusing others and
// repeats; noun names a key in the message for an unknown one ("key",
// "action"). A null is an empty mapping.
func (l *loader) fields(n *yaml.Node, ctx, noun string, want []string) []entry {
	n = yamldoc.Resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "%sis %s, want a mapping", ctxOr(ctx), describe(n))
		return nil
	}
	seen := map[string]int{}
	var out []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamldoc.Resolve(n.Content[i]), yamldoc.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			l.errorf(k.Line, "%sa key is %s, want a name", ctx, describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.errorf(k.Line, "%sduplicate key %q (first at line %d)", ctx, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(want, k.Value) {
			l.errorf(k.Line, "%sunknown %s %q (want %s)", ctx, noun, k.Value, oneOf(want))
			continue
		}
		out = append(out, entry{key: k.Value, k: k, v: v})
	}
	return out
}

// item checks that n, one entry of a list, is a mapping: a null entry
// (a stray "-") is an error, not an entry to skip.
func (l *loader) item(n *yaml.Node, ctx, want string) bool {
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "%sis %s, want a mapping (%s)", ctx, describe(n), want)
		return false
	}
	return true
}

// list reads sequence n (a null is empty).
func (l *loader) list(n *yaml.Node, name string) []*yaml.Node {
	n = yamldoc.Resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n.Line, "%s: is %s, want a list", name, describe(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		out[i] = yamldoc.Resolve(e)
	}
	return out
}

func (l *loader) limits(v *yaml.Node, lim *Limits) {
	for _, e := range l.fields(v, "limits: ", "key", []string{"max_out_of_service", "min_available", "domains"}) {
		switch e.key {
		case "max_out_of_service":
			if q, ok := l.quantity(e.v, "limits: max_out_of_service"); ok {
				lim.MaxOutOfService = q
			}
		case "min_available":
			if q, ok := l.quantity(e.v, "limits: min_available"); ok {
				lim.MinAvailable = q
			}
		case "domains":
			lim.Domains = l.domains(e.v)
		}
	}
}

func (l *loader) domains(v *yaml.Node) []DomainLimit {
	var out []DomainLimit
	first := map[string]int{}
	for i, n := range l.list(v, "limits: domains") {
		ctx := fmt.Sprintf("limits: domains item %d: ", i+1)
		if !l.item(n, ctx, "label: rack, max_out_of_service: 1") {
			continue
		}
		var d DomainLimit
		d.Line = n.Line
		labelOK, maxOK := false, false
		entries := l.fields(n, ctx, "key", []string{"label", "max_out_of_service"})
		for _, e := range entries {
			if e.key == "label" {
				if s, ok := l.str(e.v, ctx+"label"); ok {
					if s == "" || strings.ContainsFunc(s, isSpace) {
						l.errorf(e.v.Line, "%slabel: %q is not a label name", ctx, s)
					} else {
						d.Label, labelOK = s, true
						ctx = fmt.Sprintf("limits: domain %q: ", s)
					}
				}
			}
		}
		for _, e := range entries {
			if e.key == "max_out_of_service" {
				d.MaxOutOfService, maxOK = l.quantity(e.v, ctx+"max_out_of_service")
			}
		}
		if !has(entries, "label") {
			l.errorf(n.Line, "%smissing label: the label whose values make the domains (rack, zone)", ctx)
		}
		if !has(entries, "max_out_of_service") {
			l.errorf(n.Line, "%smissing max_out_of_service: a count (1) or a percentage (10%%)", ctx)
		}
		if !labelOK || !maxOK {
			continue
		}
		if line, dup := first[d.Label]; dup {
			l.errorf(n.Line, "%sthe label is limited twice (first at line %d)", ctx, line)
			continue
		}
		first[d.Label] = n.Line
		out = append(out, d)
	}
	return out
}

func (l *loader) breaker(v *yaml.Node, b *Breaker) {
	for _, e := range l.fields(v, "breaker: ", "key", []string{"enabled", "nodes", "percent", "window"}) {
		name := "breaker: " + e.key
		switch e.key {
		case "enabled":
			if on, ok := l.boolean(e.v, name); ok {
				b.Disabled = !on
			}
		case "nodes":
			if n, ok := l.integer(e.v, name); ok {
				if n < 1 || n > maxCount {
					l.errorf(e.v.Line, "%s: %d is out of range, want 1 or more (enabled: false turns the breaker off)", name, n)
				} else {
					b.Nodes = int(n)
				}
			}
		case "percent":
			if f, ok := l.percent(e.v, name); ok {
				b.Percent = f
			}
		case "window":
			if d, ok := l.duration(e.v, name); ok {
				b.Window = d
			}
		}
	}
}

func (l *loader) approvalDefaults(v *yaml.Node, a *ApprovalDefaults) {
	for _, e := range l.fields(v, "approval: ", "key", []string{"ttl", "on_expiry"}) {
		name := "approval: " + e.key
		switch e.key {
		case "ttl":
			if d, ok := l.duration(e.v, name); ok {
				a.TTL = d
			}
		case "on_expiry":
			if o, ok := l.expiry(e.v, name); ok {
				a.OnExpiry = o
			}
		}
	}
}

// approval reads a manual rule: a mode alone ("required"), or a mapping
// {approval, ttl, on_expiry}.
func (l *loader) approval(v *yaml.Node, name string, def ApprovalDefaults) (Approval, bool) {
	a := Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, TTL: def.TTL, OnExpiry: def.OnExpiry}
	v = yamldoc.Resolve(v)
	if v.Kind == yaml.ScalarNode && !isNull(v) {
		m, ok := l.mode(v, name)
		a.Mode = m
		return a, ok
	}
	if v.Kind != yaml.MappingNode {
		l.errorf(v.Line, "%s: is %s, want auto, required, two-person or a mapping {approval: ..., ttl: ..., on_expiry: ...}", name, describe(v))
		return a, false
	}
	n := len(l.errs)
	entries := l.fields(v, name+": ", "key", []string{"approval", "ttl", "on_expiry"})
	for _, e := range entries {
		switch e.key {
		case "approval":
			a.Mode, _ = l.mode(e.v, name+": approval")
		case "ttl":
			a.TTL, _ = l.duration(e.v, name+": ttl")
		case "on_expiry":
			a.OnExpiry, _ = l.expiry(e.v, name+": on_expiry")
		}
	}
	return a, len(l.errs) == n
}

// windowList reads the windows: or freezes: list. Names are unique within
// the list; windows records them for the rules.
func (l *loader) windowList(v *yaml.Node, key, noun string, record bool) []*Window {
	var out []*Window
	first := map[string]int{}
	for i, n := range l.list(v, key) {
		w, ok := l.window(n, fmt.Sprintf("%s item %d: ", key, i+1), noun)
		if w.Name != "" {
			if line, dup := first[w.Name]; dup {
				l.errorf(n.Line, "%s %q: defined twice (first at line %d)", noun, w.Name, line)
				continue
			}
			first[w.Name] = n.Line
			if record {
				l.windows[w.Name] = n.Line
			}
		}
		if ok {
			out = append(out, w)
		}
	}
	return out
}

var windowKeys = []string{"name", "schedule", "duration", "timezone", "from", "to"}

// window reads one window or freeze; w.Name is set when the name is good,
// even when the rest is not.
func (l *loader) window(n *yaml.Node, ctx, noun string) (*Window, bool) {
	w := &Window{Line: n.Line, Location: time.UTC}
	if !l.item(n, ctx, "name, schedule, duration or name, from, to") {
		return w, false
	}
	before := len(l.errs)
	entries := l.fields(n, ctx, "key", windowKeys)
	byKey := map[string]entry{}
	for _, e := range entries {
		byKey[e.key] = e
	}
	if e, ok := byKey["name"]; ok {
		if s, ok := l.name(e.v, ctx+"name"); ok {
			w.Name = s
			ctx = fmt.Sprintf("%s %q: ", noun, s)
		}
	} else {
		l.errorf(n.Line, "%smissing name: the %s needs a name", ctx, noun)
	}
	if e, ok := byKey["timezone"]; ok {
		if loc, ok := l.location(e.v, ctx+"timezone"); ok {
			w.Location = loc
		}
	}
	_, sched := byKey["schedule"]
	_, from := byKey["from"]
	_, to := byKey["to"]
	switch {
	case sched && (from || to):
		e := byKey["from"]
		if !from {
			e = byKey["to"]
		}
		l.errorf(e.k.Line, "%s%s: a %s either recurs (schedule and duration) or is a one-off (from and to), not both", ctx, e.key, noun)
	case sched:
		e := byKey["schedule"]
		if s, ok := l.str(e.v, ctx+"schedule"); ok {
			sc, err := parseSchedule(s)
			if err != nil {
				l.errorf(e.v.Line, "%sschedule: %q: %v", ctx, s, err)
			} else {
				w.Schedule, w.sched = s, sc
			}
		}
		if d, ok := byKey["duration"]; ok {
			if dur, ok := l.duration(d.v, ctx+"duration"); ok {
				if dur > maxWindowDuration {
					l.errorf(d.v.Line, "%sduration: %s is longer than a year", ctx, dur)
				} else {
					w.Duration = dur
				}
			}
		} else {
			l.errorf(e.k.Line, "%smissing duration: how long the %s stays open after each opening (6h)", ctx, noun)
		}
	case from || to:
		if d, ok := byKey["duration"]; ok {
			l.errorf(d.k.Line, "%sduration: a one-off %s runs from from: to to:; duration is for a schedule", ctx, noun)
		}
		if !from || !to {
			missing := "from"
			if !to {
				missing = "to"
			}
			l.errorf(n.Line, "%smissing %s: a one-off %s needs from and to", ctx, missing, noun)
			break
		}
		f, fok := l.instant(byKey["from"].v, ctx+"from", w.Location)
		t, tok := l.instant(byKey["to"].v, ctx+"to", w.Location)
		if fok && tok {
			if !t.After(f) {
				l.errorf(byKey["to"].v.Line, "%sto: %s is not after from: %s", ctx, t.Format(time.RFC3339), f.Format(time.RFC3339))
			} else {
				w.From, w.To = f, t
			}
		}
	default:
		l.errorf(n.Line, "%swant schedule and duration (recurring) or from and to (a one-off)", ctx)
	}
	return w, len(l.errs) == before
}

func (l *loader) rules(v *yaml.Node, p *Policy) {
	first := map[string]int{}
	for i, n := range l.list(v, "rules") {
		r, ok := l.rule(n, i, p)
		if r.Name != "" {
			if line, dup := first[r.Name]; dup {
				l.errorf(n.Line, "rule %q: defined twice (first at line %d)", r.Name, line)
				continue
			}
			first[r.Name] = n.Line
		}
		if !ok {
			continue
		}
		l.shadowed(r, p.Rules)
		p.Rules = append(p.Rules, r)
	}
}

var ruleKeys = []string{"name", "classes", "min_severity", "dry_run", "windows", "escalate_within", "ladder"}

func (l *loader) rule(n *yaml.Node, i int, p *Policy) (*Rule, bool) {
	r := &Rule{Line: n.Line, EscalateWithin: defaultEscalateWithin}
	ctx := fmt.Sprintf("rules item %d: ", i+1)
	if !l.item(n, ctx, "name, classes, ladder") {
		return r, false
	}
	before := len(l.errs)
	entries := l.fields(n, ctx, "key", ruleKeys)
	// The name first, so that every later message can say which rule.
	for _, e := range entries {
		if e.key == "name" {
			if s, ok := l.name(e.v, ctx+"name"); ok {
				r.Name = s
				ctx = fmt.Sprintf("rule %q: ", s)
			}
		}
	}
	if !has(entries, "name") {
		l.errorf(n.Line, "%smissing name: every rule needs a name (kernel-lockup)", ctx)
	}
	for _, e := range entries {
		name := ctx + e.key
		switch e.key {
		case "classes":
			r.Classes = l.classes(e.v, name)
		case "min_severity":
			r.MinSeverity, _ = l.severity(e.v, name)
		case "dry_run":
			r.DryRun, _ = l.boolean(e.v, name)
		case "windows":
			r.Windows = l.windowRefs(e.v, name)
		case "escalate_within":
			if d, ok := l.duration(e.v, name); ok {
				r.EscalateWithin = d
			}
		case "ladder":
			nodes := l.list(e.v, name)
			if v := yamldoc.Resolve(e.v); len(nodes) == 0 && (isNull(v) || v.Kind == yaml.SequenceNode) {
				l.errorf(e.v.Line, "%s: is empty, want at least one step (- action: offline)", name)
			}
			for j, s := range nodes {
				if st, ok := l.step(s, fmt.Sprintf("%sladder step %d: ", ctx, j+1), p.Approval); ok {
					r.Ladder = append(r.Ladder, st)
				}
			}
		}
	}
	if !has(entries, "classes") {
		l.errorf(n.Line, "%smissing classes: the fault classes the rule covers ([memory.ue, \"disk.*\"])", ctx)
	}
	if !has(entries, "ladder") {
		l.errorf(n.Line, "%smissing ladder: the steps the rule takes (- action: offline)", ctx)
	}
	return r, len(l.errs) == before
}

var stepKeys = []string{"action", "approval", "ttl", "on_expiry", "timeout"}

func (l *loader) step(n *yaml.Node, ctx string, def ApprovalDefaults) (*Step, bool) {
	s := &Step{
		Line:     n.Line,
		Approval: Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, TTL: def.TTL, OnExpiry: def.OnExpiry},
	}
	if !l.item(n, ctx, "action: offline") {
		return s, false
	}
	before := len(l.errs)
	entries := l.fields(n, ctx, "key", stepKeys)
	timeoutSet := false
	for _, e := range entries {
		name := ctx + e.key
		switch e.key {
		case "action":
			str, ok := l.str(e.v, name)
			if !ok {
				break
			}
			t, ok := action.ParseType(str)
			switch {
			case !ok:
				l.errorf(e.v.Line, "%s: unknown action %q (want %s)", name, str, oneOf(ladderActions()))
			case t == action.Online:
				l.errorf(e.v.Line, "%s: online brings a repaired node back and is for people (manual:), not for a fault's ladder (want %s)", name, oneOf(ladderActions()))
			default:
				s.Action = t
			}
		case "approval":
			s.Approval.Mode, _ = l.mode(e.v, name)
		case "ttl":
			s.Approval.TTL, _ = l.duration(e.v, name)
		case "on_expiry":
			s.Approval.OnExpiry, _ = l.expiry(e.v, name)
		case "timeout":
			s.Timeout, timeoutSet = l.duration(e.v, name)
		}
	}
	if !has(entries, "action") {
		l.errorf(n.Line, "%smissing action: %s", ctx, oneOf(ladderActions()))
	}
	if !timeoutSet {
		s.Timeout = action.DefaultTimeout(s.Action)
	}
	return s, len(l.errs) == before
}

// ladderActions are the actions a rule's ladder may take.
func ladderActions() []string {
	return slices.DeleteFunc(action.TypeNames(), func(n string) bool { return n == "online" })
}

// classRE is a fault class as the rule files define them (disk.media).
var classRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$`)

// classes reads a class or a list of them: exact classes, or path.Match
// globs.
func (l *loader) classes(v *yaml.Node, name string) []string {
	v = yamldoc.Resolve(v)
	nodes := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		nodes = l.list(v, name)
		if len(nodes) == 0 {
			l.errorf(v.Line, "%s: is empty, want at least one fault class", name)
		}
	}
	first := map[string]int{}
	var out []string
	for _, n := range nodes {
		s, ok := l.str(n, name)
		if !ok {
			continue
		}
		if line, dup := first[s]; dup {
			l.errorf(n.Line, "%s: %q is listed twice (first at line %d)", name, s, line)
			continue
		}
		first[s] = n.Line
		if err := checkClass(s); err != nil {
			l.errorf(n.Line, "%s: %q %v", name, s, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func checkClass(s string) error {
	if !isGlob(s) {
		if !classRE.MatchString(s) {
			return errors.New("is not a fault class (memory.ue) or a glob (\"disk.*\")")
		}
		return nil
	}
	if strings.ContainsFunc(s, isSpace) || strings.Contains(s, "/") {
		return errors.New("is not a fault class glob (\"disk.*\", \"kernel.hung_*\")")
	}
	if _, err := path.Match(s, ""); err != nil {
		return fmt.Errorf("is not a glob: %v", err)
	}
	return nil
}

func isGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// shadowed refuses an exact class an earlier rule covers at the same or
// a lower severity: the first rule applies, so this one never would.
func (l *loader) shadowed(r *Rule, earlier []*Rule) {
	for _, c := range r.Classes {
		if isGlob(c) {
			continue
		}
		for _, e := range earlier {
			if e.MinSeverity <= r.MinSeverity && e.covers(c) {
				l.errorf(r.Line, "rule %q: classes: rule %q (line %d) covers %s first, so this rule would never apply to it", r.Name, e.Name, e.Line, c)
				break
			}
		}
	}
}

// windowRefs reads the names of the windows a rule waits for.
func (l *loader) windowRefs(v *yaml.Node, name string) []string {
	v = yamldoc.Resolve(v)
	nodes := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		nodes = l.list(v, name)
	}
	var out []string
	for _, n := range nodes {
		s, ok := l.str(n, name)
		if !ok {
			continue
		}
		if _, def := l.windows[s]; !def {
			l.errorf(n.Line, "%s: window %q is not defined (defined: %s)", name, s, definedWindows(l.windows))
			continue
		}
		if slices.Contains(out, s) {
			l.errorf(n.Line, "%s: %q is listed twice", name, s)
			continue
		}
		out = append(out, s)
	}
	return out
}

func definedWindows(m map[string]int) string {
	if len(m) == 0 {
		return "none; add it under windows:"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// hasKey reports whether mapping n has key k.
func hasKey(n *yaml.Node, k string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			return true
		}
	}
	return false
}
