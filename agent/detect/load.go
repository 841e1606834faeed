package detect

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// MaxRules bounds a rule set so that matching can track candidate rules in a
// fixed-size bitset on the stack (no allocation for a benign line).
const MaxRules = 512

// minLiteral is the shortest prefilter literal accepted: shorter ones would
// occur in most lines and make the prefilter useless.
const minLiteral = 3

// Error is one problem found in a rule file. Its text names the file and the
// line: `kernel.yaml:42: rule "disk-io-error": pattern: error parsing regexp: ...`.
type Error struct {
	File  string
	Line  int
	Rule  string // name of the rule, when known
	Field string // YAML key, when the problem is in one
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
	classRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$`)
	// Agents name their rules in code: "ebpf-block-rq-error",
	// "smart/ata.reallocated_sectors".
	agentNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9._/-]*[a-z0-9._/])?$`)
)

var modes = map[string]hwhealv1.RuleMode{
	"enforce": hwhealv1.RuleMode_RULE_MODE_ENFORCE,
	"shadow":  hwhealv1.RuleMode_RULE_MODE_SHADOW,
}

var severities = map[string]hwhealv1.Severity{
	"info":     hwhealv1.Severity_SEVERITY_INFO,
	"warning":  hwhealv1.Severity_SEVERITY_WARNING,
	"critical": hwhealv1.Severity_SEVERITY_CRITICAL,
}

var partKinds = map[string]hwhealv1.PartKind{
	"node":       hwhealv1.PartKind_PART_KIND_NODE,
	"disk":       hwhealv1.PartKind_PART_KIND_DISK,
	"memory":     hwhealv1.PartKind_PART_KIND_MEMORY,
	"pci":        hwhealv1.PartKind_PART_KIND_PCI,
	"nic":        hwhealv1.PartKind_PART_KIND_NIC,
	"gpu":        hwhealv1.PartKind_PART_KIND_GPU,
	"cpu":        hwhealv1.PartKind_PART_KIND_CPU,
	"filesystem": hwhealv1.PartKind_PART_KIND_FILESYSTEM,
}

// loader collects every problem of a file rather than stopping at the first,
// so that `hwhealctl rules check` shows them all at once.
type loader struct {
	file string
	errs []error
}

func (l *loader) errorf(line int, rule, field, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Rule: rule, Field: field, Err: fmt.Errorf(format, args...)})
}

func (l *loader) wrap(line int, rule, field string, err error) {
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Rule: rule, Field: field, Err: err})
}

// File is one rule file: the name errors and Rule.File give it, and its
// contents.
type File struct {
	Name string
	Data []byte
}

// Load parses one rule file: LoadFiles of that file alone. filename is
// used in error messages and Rule.File. The returned error joins every
// problem found; each is an *Error naming the file and line.
func Load(r io.Reader, filename string) (*RuleSet, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read rules %s: %w", filename, err)
	}
	return LoadFiles(File{Name: filename, Data: data})
}

// LoadFiles parses rule files and applies them in order, so that a later
// file overrides an earlier one: a rule whose name an earlier file defines
// replaces that rule when it gives its kind's fields, and patches it when
// it gives only name plus any of mode, severity, clear_after, enabled and
// description. That is how /etc/hwheal/rules.d/ puts a shipped rule into
// shadow mode or turns it off without copying it. Two rules of one name in
// one file are an error. The returned error joins every problem of every
// file; each is an *Error naming its file and line.
func LoadFiles(files ...File) (*RuleSet, error) {
	b := &setBuilder{index: map[string]int{}}
	var errs []error
	for _, f := range files {
		errs = append(errs, b.add(f)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b.build(), nil
}

// setBuilder accumulates the rules of the files seen so far.
type setBuilder struct {
	rules []*rule
	index map[string]int // rule id -> position in rules
}

func (b *setBuilder) exists(id string) bool {
	_, ok := b.index[id]
	return ok
}

// add parses one file and applies what parsed, even when other rules of
// the file did not: a later file that patches a good rule of a file with
// one broken rule then reports only its own problems.
func (b *setBuilder) add(f File) []error {
	l := &loader{file: f.Name}
	rulesNode := l.document(f.Data)
	if rulesNode == nil {
		return l.errs
	}
	firstLine := map[string]int{}
	var defs []definition
	for _, n := range rulesNode.Content {
		d, ok := l.rule(n, b.exists)
		if !ok {
			continue
		}
		id := d.id()
		if first, dup := firstLine[id]; dup {
			l.errorf(n.Line, id, "name", "duplicate rule name (first defined at line %d)", first)
			continue
		}
		firstLine[id] = n.Line
		defs = append(defs, d)
	}
	for _, d := range defs {
		id := d.id()
		i, ok := b.index[id]
		switch {
		case d.patch != nil:
			b.rules[i] = d.patch.apply(b.rules[i])
		case ok:
			// The agents still run the shipped pattern rule; a
			// replacement's severity holds for their faults unless it
			// depends on the captures (severity_by).
			if d.rule.Kind == KindPattern && d.rule.sevMap == nil {
				d.rule.sevFixed = true
			}
			b.rules[i] = d.rule
		default:
			b.index[id] = len(b.rules)
			b.rules = append(b.rules, d.rule)
		}
	}
	patterns := 0
	for _, r := range b.rules {
		if r.Kind == KindPattern {
			patterns++
		}
	}
	if patterns > MaxRules {
		l.errorf(rulesNode.Line, "", "rules", "%d pattern rules, at most %d supported", patterns, MaxRules)
	}
	return l.errs
}

func (b *setBuilder) build() *RuleSet {
	rs := &RuleSet{all: b.rules, byName: map[string]*rule{}}
	for _, r := range b.rules {
		if r.namePrefix != "" {
			rs.prefixes = append(rs.prefixes, r)
		} else {
			rs.byName[r.Name] = r
		}
		if !r.Enabled {
			continue
		}
		switch r.Kind {
		case KindPattern:
			rs.rules = append(rs.rules, r)
		case KindThreshold, KindRate, KindSmart:
			rs.evaluated = append(rs.evaluated, r)
		case KindOutlier:
			rs.outliers = append(rs.outliers, r)
		}
	}
	// Longest prefix first, so that "smart/nvme." would win over "smart/".
	slices.SortStableFunc(rs.prefixes, func(a, b *rule) int { return len(b.namePrefix) - len(a.namePrefix) })
	rs.index()
	return rs
}

// document parses a file down to its rules: list; nil when the file is
// unusable (the errors say why).
func (l *loader) document(data []byte) *yaml.Node {
	root, yerr := yamldoc.Parse(data)
	if yerr != nil {
		l.errs = append(l.errs, &Error{File: l.file, Line: yerr.Line, Err: errors.New(yerr.Msg)})
		return nil
	}
	if root == nil {
		l.errs = append(l.errs, &Error{File: l.file, Err: errors.New("empty rule file: want a top-level rules: list")})
		return nil
	}
	if root.Kind != yaml.MappingNode {
		l.errs = append(l.errs, &Error{File: l.file, Line: root.Line, Err: fmt.Errorf("top level is a %s, want a mapping with a rules: list", yamldoc.Kind(root))})
		return nil
	}
	var rulesNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "rules":
			if rulesNode != nil {
				l.errorf(k.Line, "", "", "duplicate key %q", k.Value)
				continue
			}
			rulesNode = v
		default:
			l.errorf(k.Line, "", "", "unknown key %q (want rules)", k.Value)
		}
	}
	if rulesNode == nil {
		l.errorf(root.Line, "", "", "missing rules: list")
		return nil
	}
	if rulesNode.Kind != yaml.SequenceNode {
		l.errorf(rulesNode.Line, "", "rules", "is a %s, want a list", yamldoc.Kind(rulesNode))
		return nil
	}
	return rulesNode
}

// rawRule is a rule as written, before compilation.
type rawRule struct {
	name, namePrefix, id, class, severity, part, pattern, description string
	kind                                                              Kind
	contains, any, notContains                                        []string
	partName, pciAddress, summary                                     []string
	severityBy, classBy                                               *yaml.Node
	nodes                                                             map[string]*yaml.Node // key -> its value
	lines                                                             map[string]int        // key -> line of its value
}

// at is the line of key's value, or line when the key is absent.
func (raw *rawRule) at(key string, line int) int {
	if ln, ok := raw.lines[key]; ok {
		return ln
	}
	return line
}

func (raw *rawRule) has(key string) bool {
	_, ok := raw.nodes[key]
	return ok
}

// commonKeys are the keys of every kind of rule.
var commonKeys = []string{"name", "kind", "class", "severity", "mode", "clear_after", "enabled", "part", "summary", "description"}

// kindKeys are the keys a rule of each kind may have.
var kindKeys = map[Kind]map[string]bool{
	KindPattern:   keySet(commonKeys, "pattern", "contains", "any", "not_contains", "part_name", "pci_address", "severity_by", "class_by"),
	KindThreshold: keySet(commonKeys, "source", "sample", "above", "below", "at_least", "at_most", "for", "without_sample"),
	KindRate:      keySet(commonKeys, "source", "sample", "increase", "window", "without_sample"),
	KindSmart:     keySet(commonKeys, "source", "any"),
	KindOutlier:   keySet(commonKeys, "source", "sample", "peers", "min_peers", "threshold", "min_value", "direction"),
	// An agent rule's faults come with the agent's own summary and part.
	KindAgent: keySet([]string{"name", "name_prefix", "kind", "class", "severity", "mode", "clear_after", "enabled", "part", "description"}, "clear_after_by_class"),
}

func keySet(common []string, more ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range common {
		m[k] = true
	}
	for _, k := range more {
		m[k] = true
	}
	return m
}

// patchKeys are what a rule entry may give to patch a rule of an earlier
// file rather than replace it.
var patchKeys = map[string]bool{
	"name": true, "name_prefix": true, "mode": true, "severity": true,
	"clear_after": true, "enabled": true, "description": true,
}

// definition is one entry of a file's rules: list, either a whole rule
// or a patch of a rule an earlier file defined.
type definition struct {
	rule  *rule
	patch *patch
}

func (d definition) id() string {
	if d.patch != nil {
		return d.patch.id
	}
	return d.rule.Name
}

// rule reads one entry. exists says whether an earlier file defined a rule
// of a given id, which makes an entry with only patch keys a patch.
func (l *loader) rule(n *yaml.Node, exists func(string) bool) (definition, bool) {
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "", "", "rule is a %s, want a mapping", yamldoc.Kind(n))
		return definition{}, false
	}
	raw := rawRule{kind: KindPattern, lines: map[string]int{}, nodes: map[string]*yaml.Node{}}
	// The name first, so that every later error can say which rule.
	onlyPatch := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.ScalarNode {
			switch k.Value {
			case "name":
				raw.name = v.Value
			case "name_prefix":
				raw.namePrefix = v.Value
			}
		}
		if !patchKeys[k.Value] {
			onlyPatch = false
		}
	}
	raw.id = raw.name
	if raw.id == "" && raw.namePrefix != "" {
		raw.id = raw.namePrefix + "*"
	}
	name := raw.id
	nerr := len(l.errs)
	var keys []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := raw.nodes[k.Value]; dup {
			l.errorf(k.Line, name, k.Value, "duplicate key")
			continue
		}
		raw.nodes[k.Value] = v
		raw.lines[k.Value] = v.Line
		keys = append(keys, k)
	}
	if onlyPatch && name != "" {
		if !exists(name) {
			l.errorf(n.Line, name, "name", "no earlier file defines this rule, so this is no patch; a new rule needs the fields of its kind (class, severity, part, contains, pattern and summary for a pattern rule)")
			return definition{}, false
		}
		p := l.patch(&raw, keys)
		if len(l.errs) > nerr {
			return definition{}, false
		}
		p.file, p.line = l.file, n.Line
		return definition{patch: p}, true
	}
	if v, ok := raw.nodes["kind"]; ok {
		s, ok := l.scalar(v, name, "kind")
		if !ok {
			return definition{}, false
		}
		raw.kind = Kind(s)
		if _, known := kindKeys[raw.kind]; !known {
			l.errorf(v.Line, name, "kind", "unknown kind %q (want pattern, threshold, rate, smart, outlier or agent)", s)
			return definition{}, false
		}
	}
	allowed := kindKeys[raw.kind]
	for _, k := range keys {
		key, v := k.Value, raw.nodes[k.Value]
		if !allowed[key] {
			l.errorf(k.Line, name, "", "unknown key %q for a %s rule", key, raw.kind)
			continue
		}
		switch key {
		case "name", "name_prefix", "kind":
			if key != "kind" {
				l.scalar(v, name, key)
			}
		case "class":
			raw.class, _ = l.scalar(v, name, key)
		case "severity":
			raw.severity, _ = l.scalar(v, name, key)
		case "part":
			raw.part, _ = l.scalar(v, name, key)
		case "description":
			raw.description, _ = l.scalar(v, name, key)
		case "summary":
			raw.summary = l.strings(v, name, key)
		}
		if raw.kind != KindPattern {
			continue // the kind's own keys are read by its compiler
		}
		switch key {
		case "pattern":
			raw.pattern, _ = l.scalar(v, name, key)
		case "contains":
			raw.contains = l.strings(v, name, key)
		case "any":
			raw.any = l.strings(v, name, key)
		case "not_contains":
			raw.notContains = l.strings(v, name, key)
		case "part_name":
			raw.partName = l.strings(v, name, key)
		case "pci_address":
			raw.pciAddress = l.strings(v, name, key)
		case "severity_by":
			raw.severityBy = v
		case "class_by":
			raw.classBy = v
		}
	}
	r := l.compile(n.Line, &raw)
	if len(l.errs) > nerr {
		return definition{}, false
	}
	return definition{rule: r}, true
}

func (l *loader) scalar(v *yaml.Node, rule, field string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		l.errorf(v.Line, rule, field, "is a %s, want a string", yamldoc.Kind(v))
		return "", false
	}
	return v.Value, true
}

// strings accepts a scalar or a list of scalars.
func (l *loader) strings(v *yaml.Node, rule, field string) []string {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		l.errorf(v.Line, rule, field, "is a %s, want a string or a list of strings", yamldoc.Kind(v))
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		s, ok := l.scalar(e, rule, field)
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// compile checks what every kind of rule has, then the kind's own fields.
func (l *loader) compile(line int, raw *rawRule) *rule {
	r := &rule{sevGroup: -1, classGroup: -1}
	r.Line = line
	r.File = l.file
	r.Kind = raw.kind
	r.Name = raw.id
	r.namePrefix = raw.namePrefix
	r.Class = raw.class
	r.Description = strings.TrimSpace(raw.description)
	r.Mode = hwhealv1.RuleMode_RULE_MODE_ENFORCE
	r.Enabled = true
	l.common(r, raw, line)
	switch raw.kind {
	case KindPattern:
		l.compilePattern(r, raw, line)
	case KindThreshold:
		l.compileThreshold(r, raw, line)
	case KindRate:
		l.compileRate(r, raw, line)
	case KindSmart:
		l.compileSmart(r, raw, line)
	case KindOutlier:
		l.compileOutlier(r, raw, line)
	}
	if r.Class != "" {
		r.Classes = append([]string{r.Class}, r.classOrder...)
	}
	if !raw.has("clear_after") {
		r.ClearAfter = defaultClearAfter(r)
	}
	return r
}

// defaultClearAfter is how long a fault of the rule's kind goes without
// evidence before it resolves, unless the rule says otherwise: a day for
// events (a kernel line, an agent's report), which may not repeat while
// the cause stays; a few readings for values read periodically (thresholds
// every minute, SMART every 30 minutes), which repeat while they hold; the
// window for a rate.
func defaultClearAfter(r *rule) time.Duration {
	switch r.Kind {
	case KindThreshold:
		return 15 * time.Minute
	case KindSmart:
		return 2 * time.Hour
	case KindRate:
		return r.window
	case KindOutlier:
		return time.Hour
	}
	return DefaultClearAfter
}

// common checks the keys every kind has; what is required depends on the
// kind.
func (l *loader) common(r *rule, raw *rawRule, line int) {
	name := raw.id
	at := func(key string) int { return raw.at(key, line) }
	if raw.kind == KindAgent {
		switch {
		case raw.name == "" && raw.namePrefix == "":
			l.errorf(line, "", "name", "required (or name_prefix)")
		case raw.name != "" && raw.namePrefix != "":
			l.errorf(at("name_prefix"), name, "name_prefix", "give name or name_prefix, not both")
		case raw.name != "" && !agentNameRE.MatchString(raw.name):
			l.errorf(at("name"), name, "name", "%q is not a rule name an agent sends (a-z, 0-9, and . _ / - inside)", raw.name)
		case raw.namePrefix != "" && !agentNameRE.MatchString(raw.namePrefix):
			l.errorf(at("name_prefix"), name, "name_prefix", "%q is not a rule name prefix an agent sends (a-z, 0-9, and . _ / - inside)", raw.namePrefix)
		}
	} else {
		switch {
		case raw.name == "":
			l.errorf(line, "", "name", "required")
		case !nameRE.MatchString(raw.name):
			l.errorf(at("name"), name, "name", "%q is not kebab-case (a-z, 0-9, single dashes)", raw.name)
		}
	}
	switch {
	case raw.class == "" && raw.kind != KindAgent:
		l.errorf(line, name, "class", "required")
	case raw.class != "" && !classRE.MatchString(raw.class):
		l.errorf(at("class"), name, "class", "%q is not a dotted lower-case class such as disk.io_error", raw.class)
	}
	if raw.severity == "" {
		if raw.kind != KindAgent {
			l.errorf(line, name, "severity", "required")
		}
	} else if s, ok := severities[raw.severity]; !ok {
		l.errorf(at("severity"), name, "severity", "unknown severity %q (want info, warning or critical)", raw.severity)
	} else {
		r.Severity = s
		// An agent rule that names a severity sets its faults'; a pattern
		// or evaluated rule gives its own faults their severity anyway.
		r.sevFixed = raw.kind == KindAgent
	}
	if raw.part == "" {
		if raw.kind == KindPattern {
			l.errorf(line, name, "part", "required")
		}
	} else if k, ok := partKinds[raw.part]; !ok {
		l.errorf(at("part"), name, "part", "unknown part kind %q (want node, disk, memory, pci, nic, gpu, cpu or filesystem)", raw.part)
	} else {
		r.Part = k
	}
	if v, ok := raw.nodes["mode"]; ok {
		if m, ok := l.mode(v, name); ok {
			r.Mode = m
		}
	}
	if v, ok := raw.nodes["clear_after"]; ok {
		if d, ok := l.clearAfter(v, name); ok {
			r.ClearAfter = d
		}
	}
	if v, ok := raw.nodes["enabled"]; ok {
		if b, ok := l.boolean(v, name, "enabled"); ok {
			r.Enabled = b
		}
	}
	if v, ok := raw.nodes["clear_after_by_class"]; ok {
		r.clearByClass = l.clearAfterByClass(v, name)
	}
}

func (l *loader) mode(v *yaml.Node, rule string) (hwhealv1.RuleMode, bool) {
	s, ok := l.scalar(v, rule, "mode")
	if !ok {
		return 0, false
	}
	m, ok := modes[s]
	if !ok {
		l.errorf(v.Line, rule, "mode", "unknown mode %q (want enforce or shadow)", s)
	}
	return m, ok
}

// clearAfter reads a Go duration, or "never" (0).
func (l *loader) clearAfter(v *yaml.Node, rule string) (time.Duration, bool) {
	s, ok := l.scalar(v, rule, "clear_after")
	if !ok {
		return 0, false
	}
	if s == "never" {
		return 0, true
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.errorf(v.Line, rule, "clear_after", "%q is neither a duration such as 24h or 15m nor never", s)
		return 0, false
	case d <= 0:
		l.errorf(v.Line, rule, "clear_after", "%s is not positive (write never for a fault that only an operator resolves)", s)
		return 0, false
	}
	return d, true
}

func (l *loader) clearAfterByClass(v *yaml.Node, rule string) map[string]time.Duration {
	const field = "clear_after_by_class"
	if v.Kind != yaml.MappingNode {
		l.errorf(v.Line, rule, field, "is a %s, want a mapping of fault class to clear time", yamldoc.Kind(v))
		return nil
	}
	out := map[string]time.Duration{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, d := v.Content[i], v.Content[i+1]
		if _, dup := out[k.Value]; dup {
			l.errorf(k.Line, rule, field, "duplicate key %q", k.Value)
			continue
		}
		if !classRE.MatchString(k.Value) {
			l.errorf(k.Line, rule, field, "key %q is not a dotted lower-case class such as memory.ue", k.Value)
			continue
		}
		if dur, ok := l.clearAfter(d, rule); ok {
			out[k.Value] = dur
		}
	}
	return out
}

func (l *loader) boolean(v *yaml.Node, rule, field string) (bool, bool) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
		if b, err := strconv.ParseBool(v.Value); err == nil {
			return b, true
		}
	}
	l.errorf(v.Line, rule, field, "is %s, want true or false", describeNode(v))
	return false, false
}

// describeNode names a value for an error: the scalar itself, or its kind.
func describeNode(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return strconv.Quote(v.Value)
	}
	return "a " + yamldoc.Kind(v)
}

// patch is an entry that changes some fields of a rule an earlier file
// defined.
type patch struct {
	id          string
	file        string // where the patch is, for Rule.Patches
	line        int
	mode        *hwhealv1.RuleMode
	severity    *hwhealv1.Severity
	clearAfter  *time.Duration
	enabled     *bool
	description *string
}

func (l *loader) patch(raw *rawRule, keys []*yaml.Node) *patch {
	p := &patch{id: raw.id}
	name := raw.id
	for _, k := range keys {
		key, v := k.Value, raw.nodes[k.Value]
		switch key {
		case "mode":
			if m, ok := l.mode(v, name); ok {
				p.mode = &m
			}
		case "severity":
			s, ok := l.scalar(v, name, key)
			if !ok {
				continue
			}
			if sev, ok := severities[s]; ok {
				p.severity = &sev
			} else {
				l.errorf(v.Line, name, key, "unknown severity %q (want info, warning or critical)", s)
			}
		case "clear_after":
			if d, ok := l.clearAfter(v, name); ok {
				p.clearAfter = &d
			}
		case "enabled":
			if b, ok := l.boolean(v, name, key); ok {
				p.enabled = &b
			}
		case "description":
			if s, ok := l.scalar(v, name, key); ok {
				s = strings.TrimSpace(s)
				p.description = &s
			}
		case "name", "name_prefix":
			l.scalar(v, name, key)
		}
	}
	return p
}

// apply returns a copy of r with the patch's fields; r's compiled parts
// are immutable and shared.
func (p *patch) apply(r *rule) *rule {
	c := *r
	c.Patches = append(slices.Clip(r.Patches), Location{File: p.file, Line: p.line})
	if p.mode != nil {
		c.Mode = *p.mode
	}
	if p.severity != nil {
		// A patched severity is the severity of every fault of the rule:
		// it wins over severity_by, a condition's own severity and the
		// severity an agent sends.
		c.Severity = *p.severity
		c.sevFixed = true
		c.sevGroup = -1
	}
	if p.clearAfter != nil {
		c.ClearAfter = *p.clearAfter
	}
	if p.enabled != nil {
		c.Enabled = *p.enabled
	}
	if p.description != nil {
		c.Description = *p.description
	}
	return &c
}

// compilePattern checks and compiles a kernel log pattern rule.
func (l *loader) compilePattern(r *rule, raw *rawRule, line int) {
	name := raw.id
	at := func(key string) int { return raw.at(key, line) }

	_, hasContains := raw.lines["contains"]
	_, hasAny := raw.lines["any"]
	switch {
	case !hasContains && !hasAny:
		l.errorf(line, name, "contains", "required: at least one literal that every matching line holds (or an any: list)")
	case hasContains && len(raw.contains) == 0:
		l.errorf(at("contains"), name, "contains", "empty: at least one literal is required")
	case hasAny && len(raw.any) == 0:
		l.errorf(at("any"), name, "any", "empty: at least one literal is required")
	}
	for _, field := range []struct {
		key  string
		lits []string
	}{{"contains", raw.contains}, {"any", raw.any}} {
		for _, c := range field.lits {
			if len(c) < minLiteral {
				l.errorf(at(field.key), name, field.key, "literal %q is shorter than %d bytes", c, minLiteral)
			}
		}
	}
	for _, c := range raw.notContains {
		if c == "" {
			l.errorf(at("not_contains"), name, "not_contains", "empty literal")
		}
	}
	r.notContains = raw.notContains
	// The prefilter keys: the any: literals, else the first contains
	// literal (the author puts the rarest first). A benign line that holds
	// none of a rule's keys never reaches the rule's regex.
	switch {
	case len(raw.any) > 0:
		r.keys = raw.any
		r.others = raw.contains
	case len(raw.contains) > 0:
		r.keys = raw.contains[:1]
		r.others = raw.contains[1:]
	}

	groups := map[string]int{}
	if raw.pattern == "" {
		l.errorf(line, name, "pattern", "required")
	} else if re, err := regexp.Compile(raw.pattern); err != nil {
		l.wrap(at("pattern"), name, "pattern", err)
	} else {
		r.re = re
		for i, g := range re.SubexpNames() {
			if g != "" {
				groups[g] = i
				r.groups = append(r.groups, namedGroup{name: g, index: i})
			}
		}
	}
	compileTemplates := func(key string, src []string, required bool) templates {
		if _, ok := raw.lines[key]; !ok {
			if required {
				l.errorf(line, name, key, "required")
			}
			return nil
		}
		if len(src) == 0 {
			l.errorf(at(key), name, key, "empty list")
			return nil
		}
		if r.re == nil {
			return nil // the pattern error is reported already
		}
		ts := make(templates, 0, len(src))
		for _, s := range src {
			t, err := parseTemplate(s, groups)
			if err != nil {
				l.wrap(at(key), name, key, err)
				continue
			}
			ts = append(ts, t)
		}
		return ts
	}
	r.partName = compileTemplates("part_name", raw.partName, false)
	r.pciAddress = compileTemplates("pci_address", raw.pciAddress, false)
	r.summary = compileTemplates("summary", raw.summary, true)

	if raw.severityBy != nil {
		l.severityBy(r, raw.severityBy, groups, name)
	}
	if raw.classBy != nil {
		l.classBy(r, raw.classBy, groups, name)
	}
}

// severityBy reads
//
//	severity_by:
//	  capture: xid
//	  critical: ["48", "79"]
//	  info: ["106"]
//
// The rule's own severity is the default for values not listed.
func (l *loader) severityBy(r *rule, n *yaml.Node, groups map[string]int, name string) {
	const field = "severity_by"
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, name, field, "is a %s, want a mapping", yamldoc.Kind(n))
		return
	}
	r.sevMap = map[string]hwhealv1.Severity{}
	capture := ""
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			l.errorf(k.Line, name, field, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		if k.Value == "capture" {
			capture, _ = l.scalar(v, name, field+".capture")
			continue
		}
		sev, ok := severities[k.Value]
		if !ok {
			l.errorf(k.Line, name, field, "unknown key %q (want capture, info, warning or critical)", k.Value)
			continue
		}
		for _, val := range l.strings(v, name, field+"."+k.Value) {
			if prev, dup := r.sevMap[val]; dup {
				l.errorf(v.Line, name, field, "value %q listed under both %s and %s", val, severityName(prev), k.Value)
				continue
			}
			r.sevMap[val] = sev
		}
	}
	if capture == "" {
		l.errorf(n.Line, name, field, "capture: required")
		return
	}
	if r.re == nil {
		return
	}
	g, ok := groups[capture]
	if !ok {
		l.errorf(n.Line, name, field, "capture %q is not a named group of the pattern", capture)
		return
	}
	r.sevGroup = g
}

// classBy reads
//
//	class_by:
//	  capture: xid
//	  gpu.memory: ["48", "63"]
//	  gpu.nvlink: ["74"]
//
// The rule's own class is the default for values not listed. Every key but
// capture is a fault class, so a misspelt key shows up as a class that is
// not dotted lower-case and is reported with its line.
func (l *loader) classBy(r *rule, n *yaml.Node, groups map[string]int, name string) {
	const field = "class_by"
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, name, field, "is a %s, want a mapping", yamldoc.Kind(n))
		return
	}
	r.classMap = map[string]string{}
	capture := ""
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			l.errorf(k.Line, name, field, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		if k.Value == "capture" {
			capture, _ = l.scalar(v, name, field+".capture")
			continue
		}
		if !classRE.MatchString(k.Value) {
			l.errorf(k.Line, name, field, "key %q is neither capture nor a dotted lower-case class such as gpu.memory", k.Value)
			continue
		}
		vals := l.strings(v, name, field+"."+k.Value)
		if len(vals) == 0 && (v.Kind == yaml.SequenceNode) {
			l.errorf(v.Line, name, field, "class %s lists no values", k.Value)
		}
		for _, val := range vals {
			if prev, dup := r.classMap[val]; dup {
				l.errorf(v.Line, name, field, "value %q listed under both %s and %s", val, prev, k.Value)
				continue
			}
			r.classMap[val] = k.Value
		}
		if k.Value != r.Class {
			r.classOrder = append(r.classOrder, k.Value)
		}
	}
	if capture == "" {
		l.errorf(n.Line, name, field, "capture: required")
		return
	}
	if r.re == nil {
		return
	}
	g, ok := groups[capture]
	if !ok {
		l.errorf(n.Line, name, field, "capture %q is not a named group of the pattern", capture)
		return
	}
	r.classGroup = g
}

func severityName(s hwhealv1.Severity) string {
	for k, v := range severities {
		if v == s {
			return k
		}
	}
	return s.String()
}
