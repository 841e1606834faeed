package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

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
	// yaml.v3 reports syntax errors as "yaml: line N: ...".
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

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

// Load parses a rule file. filename is only used in error messages. The
// returned error joins every problem found; each is an *Error naming the
// file and line.
func Load(r io.Reader, filename string) (*RuleSet, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read rules %s: %w", filename, err)
	}
	l := &loader{file: filename}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: filename, Err: errors.New("empty rule file: want a top-level rules: list")}
		}
		return nil, yamlError(filename, err)
	}
	// A second document in the stream is almost certainly a mistake (a
	// stray "---"); refusing it beats silently ignoring half the rules.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: filename, Line: extra.Line, Err: errors.New("more than one YAML document")}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(filename, err)
	}

	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: filename, Line: root.Line, Err: fmt.Errorf("top level is a %s, want a mapping with a rules: list", kindName(root))}
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
		return nil, errors.Join(l.errs...)
	}
	if rulesNode.Kind != yaml.SequenceNode {
		l.errorf(rulesNode.Line, "", "rules", "is a %s, want a list", kindName(rulesNode))
		return nil, errors.Join(l.errs...)
	}

	rs := &RuleSet{}
	firstLine := map[string]int{}
	for _, n := range rulesNode.Content {
		r := l.rule(n)
		if r == nil {
			continue
		}
		if first, dup := firstLine[r.Name]; dup {
			l.errorf(n.Line, r.Name, "name", "duplicate rule name (first defined at line %d)", first)
			continue
		}
		firstLine[r.Name] = n.Line
		rs.rules = append(rs.rules, r)
	}
	if len(rs.rules) > MaxRules {
		l.errorf(rulesNode.Line, "", "rules", "%d rules, at most %d supported", len(rs.rules), MaxRules)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	rs.index()
	return rs, nil
}

func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return &Error{File: file, Err: err}
	}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Err: errors.New(m[2])}
	}
	return &Error{File: file, Err: err}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// rawRule is a rule as written, before compilation.
type rawRule struct {
	name, class, severity, part, pattern, description string
	contains, any, notContains                        []string
	partName, pciAddress, summary                     []string
	severityBy, classBy                               *yaml.Node
	lines                                             map[string]int // key -> line of its value
}

func (l *loader) rule(n *yaml.Node) *rule {
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "", "", "rule is a %s, want a mapping", kindName(n))
		return nil
	}
	raw := rawRule{lines: map[string]int{}}
	// The name first, so that every later error can say which rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
			raw.name = n.Content[i+1].Value
		}
	}
	nerr := len(l.errs)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if seen[key] {
			l.errorf(k.Line, raw.name, key, "duplicate key")
			continue
		}
		seen[key] = true
		raw.lines[key] = v.Line
		switch key {
		case "name":
			raw.name, _ = l.scalar(v, raw.name, key)
		case "class":
			raw.class, _ = l.scalar(v, raw.name, key)
		case "severity":
			raw.severity, _ = l.scalar(v, raw.name, key)
		case "part":
			raw.part, _ = l.scalar(v, raw.name, key)
		case "pattern":
			raw.pattern, _ = l.scalar(v, raw.name, key)
		case "description":
			raw.description, _ = l.scalar(v, raw.name, key)
		case "contains":
			raw.contains = l.strings(v, raw.name, key)
		case "any":
			raw.any = l.strings(v, raw.name, key)
		case "not_contains":
			raw.notContains = l.strings(v, raw.name, key)
		case "part_name":
			raw.partName = l.strings(v, raw.name, key)
		case "pci_address":
			raw.pciAddress = l.strings(v, raw.name, key)
		case "summary":
			raw.summary = l.strings(v, raw.name, key)
		case "severity_by":
			raw.severityBy = v
		case "class_by":
			raw.classBy = v
		default:
			l.errorf(k.Line, raw.name, "", "unknown key %q", key)
		}
	}
	r := l.compile(n.Line, &raw)
	if len(l.errs) > nerr {
		return nil
	}
	return r
}

func (l *loader) scalar(v *yaml.Node, rule, field string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		l.errorf(v.Line, rule, field, "is a %s, want a string", kindName(v))
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
		l.errorf(v.Line, rule, field, "is a %s, want a string or a list of strings", kindName(v))
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

func (l *loader) compile(line int, raw *rawRule) *rule {
	name := raw.name
	at := func(key string) int {
		if ln, ok := raw.lines[key]; ok {
			return ln
		}
		return line
	}
	r := &rule{sevGroup: -1, classGroup: -1}
	r.Line = line
	r.Name = raw.name
	r.Class = raw.class
	r.Description = strings.TrimSpace(raw.description)

	switch {
	case raw.name == "":
		l.errorf(line, "", "name", "required")
	case !nameRE.MatchString(raw.name):
		l.errorf(at("name"), name, "name", "%q is not kebab-case (a-z, 0-9, single dashes)", raw.name)
	}
	switch {
	case raw.class == "":
		l.errorf(line, name, "class", "required")
	case !classRE.MatchString(raw.class):
		l.errorf(at("class"), name, "class", "%q is not a dotted lower-case class such as disk.io_error", raw.class)
	}
	if raw.severity == "" {
		l.errorf(line, name, "severity", "required")
	} else if s, ok := severities[raw.severity]; !ok {
		l.errorf(at("severity"), name, "severity", "unknown severity %q (want info, warning or critical)", raw.severity)
	} else {
		r.Severity = s
	}
	if raw.part == "" {
		l.errorf(line, name, "part", "required")
	} else if k, ok := partKinds[raw.part]; !ok {
		l.errorf(at("part"), name, "part", "unknown part kind %q (want node, disk, memory, pci, nic, gpu, cpu or filesystem)", raw.part)
	} else {
		r.Part = k
	}

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
	r.Classes = append([]string{r.Class}, r.classOrder...)
	return r
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
		l.errorf(n.Line, name, field, "is a %s, want a mapping", kindName(n))
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
		l.errorf(n.Line, name, field, "is a %s, want a mapping", kindName(n))
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
