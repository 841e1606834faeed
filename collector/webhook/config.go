package webhook

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Defaults of a Target's optional fields.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultMaxAttempts    = 0 // until delivered
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 5 * time.Minute
)

// maxAttemptsLimit bounds max_attempts: beyond it a target with a broken
// receiver would hold its queue for days on one event.
const maxAttemptsLimit = 100

// maxDuration bounds timeout and backoff_max: a longer one is a typo.
const maxDuration = 24 * time.Hour

// Start says where a target with no stored cursor begins reading the log.
type Start int

const (
	// StartEnd begins at the log's head when the target is first seen, so
	// that a new target is not flooded with history.
	StartEnd Start = iota
	// StartBeginning replays the whole recorded log.
	StartBeginning
)

func (s Start) String() string {
	switch s {
	case StartEnd:
		return "end"
	case StartBeginning:
		return "beginning"
	}
	return "Start(" + strconv.Itoa(int(s)) + ")"
}

// Config is the webhook section of the collector's configuration.
type Config struct {
	Targets []Target
}

// Target is one webhook receiver and the events it wants. Zero optional
// fields take their defaults in New; ParseTargets fills them in.
type Target struct {
	// Name identifies the target in metrics, logs and its stored cursor
	// ("webhook/" + Name): renaming a target starts it afresh.
	Name string
	// URL is where events are POSTed (http or https). ${NAME} references
	// are expanded from the environment at load, as webhook URLs of chat
	// tools are themselves secrets.
	URL string
	// Events are event type names (fault.opened, node.health_changed, ...)
	// or globs over them (fault.*, *). Nil means DefaultEvents: every type
	// but fault.updated, which fires on each repeated report.
	Events []string
	// Classes are globs (path.Match) on the fault class, e.g. "disk.*".
	// Empty: any class.
	Classes []string
	// MinSeverity drops faults below it; UNSPECIFIED: no severity filter.
	//
	// Classes and MinSeverity filter events that carry a fault. An event
	// without one (node.*) has no class or severity: when either filter is
	// set it passes only if Events was given explicitly and selects its
	// type. So a pager target with "classes: [disk.*]" does not receive
	// every node.connected, while one that also lists node.health_changed
	// in events does receive it.
	MinSeverity hwhealv1.Severity
	// Labels are node labels that must all match exactly (the node's
	// current labels, read from the store and cached briefly).
	Labels map[string]string
	// IncludeShadow also delivers events of faults raised by rules in
	// shadow mode. They are left out by default: a shadow rule is on
	// trial, and paging a human is an action.
	IncludeShadow bool
	// Headers are added to every request. Values are already expanded
	// (ParseTargets reads ${NAME} from the environment).
	Headers map[string]string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// MaxAttempts is how many times an event that fails for a reason that
	// may pass (a network error, 408, 429, 5xx) is tried before it is
	// dead-lettered; 0 (the default) tries until it is delivered, holding
	// the target's later events back meanwhile: a pager that is down for
	// half an hour gets its events when it is back, from the event log,
	// rather than losing them. A permanent error (another 4xx) is
	// dead-lettered at once whatever this says.
	MaxAttempts int
	// BackoffInitial and BackoffMax bound the wait between attempts: it
	// doubles from BackoffInitial up to BackoffMax, with jitter. A
	// Retry-After from the receiver is honoured up to BackoffMax.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// Start is where the target begins when it has no stored cursor.
	Start Start
	// Line is where the target is defined (0 when built in code).
	Line int
}

// Error is one problem found in a webhook configuration. Its text names
// the file and the line: `collector.yaml:12: webhook "pager": url: scheme "ftp" is not http or https`.
type Error struct {
	File   string
	Line   int
	Target string // name of the target, when known
	Field  string // YAML key, when the problem is in one
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	switch {
	case e.Line > 0 && e.File == "":
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
	case e.Line > 0:
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Target != "" {
		fmt.Fprintf(&b, "webhook %q: ", e.Target)
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
	targetNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// reservedHeaders are set by the dispatcher or the HTTP client: a target
// overriding them would break the CloudEvents structured mode or HTTP.
var reservedHeaders = []string{"Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection"}

var severityNames = map[string]hwhealv1.Severity{
	"info":     hwhealv1.Severity_SEVERITY_INFO,
	"warning":  hwhealv1.Severity_SEVERITY_WARNING,
	"critical": hwhealv1.Severity_SEVERITY_CRITICAL,
}

// ParseConfig parses a webhook configuration file: a mapping with one key,
// webhooks:, holding a list of targets. filename is only used in error
// messages. An empty file configures no target. The returned error joins
// every problem found; each is an *Error naming the file and the line.
func ParseConfig(r io.Reader, filename string) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("read webhook config %s: %w", filename, err)
	}
	root, yerr := yamldoc.Parse(data)
	if yerr != nil {
		return Config{}, &Error{File: filename, Line: yerr.Line, Err: errors.New(yerr.Msg)}
	}
	if root == nil {
		return Config{}, nil
	}
	if root.Kind != yaml.MappingNode {
		return Config{}, &Error{File: filename, Line: root.Line, Err: fmt.Errorf("top level is a %s, want a mapping with a webhooks: list", yamldoc.Kind(root))}
	}
	var errs []error
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "webhooks":
			if list != nil {
				errs = append(errs, &Error{File: filename, Line: k.Line, Err: fmt.Errorf("duplicate key %q", k.Value)})
				continue
			}
			list = v
		default:
			errs = append(errs, &Error{File: filename, Line: k.Line, Err: fmt.Errorf("unknown key %q (want webhooks)", k.Value)})
		}
	}
	if list == nil {
		errs = append(errs, &Error{File: filename, Line: root.Line, Err: errors.New("missing webhooks: list")})
	}
	var targets []Target
	if list != nil {
		var err error
		targets, err = ParseTargets(list, filename)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return Config{Targets: targets}, nil
}

// ParseTargets parses the value of a webhooks: key (a list of targets, or
// null for none), for a configuration file that embeds it. Defaults are
// filled in and ${NAME} in url and header values is read from the
// environment: a variable that is not set is an error, so that a secret
// missing from the service's environment stops the collector at start
// rather than sending unauthenticated requests.
func ParseTargets(n *yaml.Node, filename string) ([]Target, error) {
	return parseTargets(n, filename, os.LookupEnv)
}

func parseTargets(n *yaml.Node, filename string, env func(string) (string, bool)) ([]Target, error) {
	if n == nil {
		return nil, nil
	}
	n = yamldoc.Resolve(n)
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = yamldoc.Resolve(n.Content[0])
	}
	if isNull(n) {
		return nil, nil
	}
	l := &loader{file: filename, env: env}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n.Line, "", "webhooks", "is a %s, want a list of targets", yamldoc.Kind(n))
		return nil, errors.Join(l.errs...)
	}
	var out []Target
	firstLine := map[string]int{}
	for _, item := range n.Content {
		t, ok := l.target(yamldoc.Resolve(item))
		if !ok {
			continue
		}
		if first, dup := firstLine[t.Name]; dup {
			l.errorf(t.Line, t.Name, "name", "duplicate target name (first defined at line %d)", first)
			continue
		}
		firstLine[t.Name] = t.Line
		out = append(out, t)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return out, nil
}

// loader collects every problem rather than stopping at the first, so that
// a config check shows them all at once.
type loader struct {
	file string
	env  func(string) (string, bool)
	errs []error
}

func (l *loader) errorf(line int, target, field, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Target: target, Field: field, Err: fmt.Errorf(format, args...)})
}

func (l *loader) target(n *yaml.Node) (Target, bool) {
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "", "", "target is a %s, want a mapping", yamldoc.Kind(n))
		return Target{}, false
	}
	t := Target{Line: n.Line}
	// The name first, so that every later error can say which target.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if v := yamldoc.Resolve(n.Content[i+1]); n.Content[i].Value == "name" && v.Kind == yaml.ScalarNode {
			t.Name = v.Value
		}
	}
	nerr := len(l.errs)
	lines := map[string]int{}
	seen := map[string]bool{}
	var rawURL string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamldoc.Resolve(n.Content[i+1])
		key := k.Value
		if seen[key] {
			l.errorf(k.Line, t.Name, key, "duplicate key")
			continue
		}
		seen[key] = true
		lines[key] = v.Line
		switch key {
		case "name":
			t.Name, _ = l.scalar(v, t.Name, key)
		case "url":
			rawURL, _ = l.scalar(v, t.Name, key)
		case "events":
			t.Events = l.strings(v, t.Name, key)
			if t.Events == nil {
				t.Events = []string{}
			}
		case "classes":
			t.Classes = l.strings(v, t.Name, key)
		case "min_severity":
			if s, ok := l.scalar(v, t.Name, key); ok {
				sev, known := severityNames[s]
				if !known {
					l.errorf(v.Line, t.Name, key, "unknown severity %q (want info, warning or critical)", s)
				}
				t.MinSeverity = sev
			}
		case "labels":
			t.Labels = l.stringMap(v, t.Name, key)
		case "headers":
			t.Headers = l.headers(v, t.Name, key)
		case "include_shadow":
			if s, ok := l.scalar(v, t.Name, key); ok {
				b, err := strconv.ParseBool(s)
				if err != nil || v.Tag != "!!bool" {
					l.errorf(v.Line, t.Name, key, "%q is not true or false", s)
				}
				t.IncludeShadow = b
			}
		case "timeout":
			t.Timeout = l.duration(v, t.Name, key)
		case "backoff_initial":
			t.BackoffInitial = l.duration(v, t.Name, key)
		case "backoff_max":
			t.BackoffMax = l.duration(v, t.Name, key)
		case "max_attempts":
			if s, ok := l.scalar(v, t.Name, key); ok {
				a, err := strconv.Atoi(s)
				if err != nil {
					l.errorf(v.Line, t.Name, key, "%q is not an integer", s)
				}
				t.MaxAttempts = a // 0: until delivered, the default said out loud
			}
		case "start":
			if s, ok := l.scalar(v, t.Name, key); ok {
				switch s {
				case "end":
					t.Start = StartEnd
				case "beginning":
					t.Start = StartBeginning
				default:
					l.errorf(v.Line, t.Name, key, "%q is not end or beginning", s)
				}
			}
		default:
			l.errorf(k.Line, t.Name, "", "unknown key %q", key)
		}
	}
	if _, ok := lines["url"]; ok && rawURL != "" {
		u, err := l.expand(rawURL)
		if err != nil {
			l.errorf(lines["url"], t.Name, "url", "%v", err)
		}
		t.URL = u
	}
	// Check the rest too, so that every problem shows at once, but say
	// nothing more of a field already reported.
	reported := map[string]bool{}
	for _, e := range l.errs[nerr:] {
		if ce, ok := e.(*Error); ok {
			reported[ce.Field] = true
		}
	}
	t.applyDefaults()
	for _, fe := range t.check() {
		if reported[fe.field] {
			continue
		}
		line := n.Line
		if ln, ok := lines[fe.field]; ok {
			line = ln
		}
		l.errs = append(l.errs, &Error{File: l.file, Line: line, Target: t.Name, Field: fe.field, Err: fe.err})
	}
	return t, len(l.errs) == nerr
}

func (l *loader) scalar(v *yaml.Node, target, field string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		l.errorf(v.Line, target, field, "is a %s, want a string", yamldoc.Kind(v))
		return "", false
	}
	return v.Value, true
}

// strings accepts a scalar or a list of scalars.
func (l *loader) strings(v *yaml.Node, target, field string) []string {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		l.errorf(v.Line, target, field, "is a %s, want a string or a list of strings", yamldoc.Kind(v))
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		if s, ok := l.scalar(yamldoc.Resolve(e), target, field); ok {
			out = append(out, s)
		}
	}
	return out
}

func (l *loader) stringMap(v *yaml.Node, target, field string) map[string]string {
	if v.Kind != yaml.MappingNode {
		l.errorf(v.Line, target, field, "is a %s, want a mapping of strings", yamldoc.Kind(v))
		return nil
	}
	out := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := yamldoc.Resolve(v.Content[i]), yamldoc.Resolve(v.Content[i+1])
		key, ok := l.scalar(k, target, field)
		if !ok {
			continue
		}
		if _, dup := out[key]; dup {
			l.errorf(k.Line, target, field, "duplicate key %q", key)
			continue
		}
		s, ok := l.scalar(val, target, field+"."+key)
		if !ok {
			continue
		}
		out[key] = s
	}
	return out
}

func (l *loader) headers(v *yaml.Node, target, field string) map[string]string {
	raw := l.stringMap(v, target, field)
	if raw == nil {
		return nil
	}
	out := make(map[string]string, len(raw))
	for i := 0; i+1 < len(v.Content); i += 2 {
		name := yamldoc.Resolve(v.Content[i]).Value
		val, ok := raw[name]
		if !ok {
			continue
		}
		canon := http.CanonicalHeaderKey(name)
		if _, dup := out[canon]; dup {
			l.errorf(v.Content[i].Line, target, field, "duplicate header %q", canon)
			continue
		}
		exp, err := l.expand(val)
		if err != nil {
			l.errorf(v.Content[i+1].Line, target, field+"."+name, "%v", err)
			continue
		}
		out[canon] = exp
	}
	return out
}

func (l *loader) duration(v *yaml.Node, target, field string) time.Duration {
	s, ok := l.scalar(v, target, field)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.errorf(v.Line, target, field, "%q is not a duration such as 10s or 5m", s)
		return 0
	}
	if d <= 0 {
		l.errorf(v.Line, target, field, "must be positive")
	}
	return d
}

// expand replaces every ${NAME} in s with the environment variable NAME.
// Errors never echo a value: it may be a secret.
func (l *loader) expand(s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", errors.New("unterminated ${ (want ${NAME})")
		}
		name := rest[:j]
		if !envNameRE.MatchString(name) {
			return "", fmt.Errorf("${%s}: not an environment variable name", name)
		}
		val, ok := l.env(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(val)
		s = rest[j+1:]
	}
}

func (t *Target) applyDefaults() {
	if t.Timeout == 0 {
		t.Timeout = DefaultTimeout
	}
	if t.BackoffInitial == 0 {
		t.BackoffInitial = min(DefaultBackoffInitial, max(t.BackoffMax, 0))
		if t.BackoffInitial == 0 {
			t.BackoffInitial = DefaultBackoffInitial
		}
	}
	if t.BackoffMax == 0 {
		t.BackoffMax = max(DefaultBackoffMax, t.BackoffInitial)
	}
}

type fieldError struct {
	field string
	err   error
}

// check validates a target with its defaults applied. It is shared by the
// YAML loader (which adds lines) and New (for targets built in code).
func (t *Target) check() []fieldError {
	var errs []fieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Errorf(format, args...)})
	}
	switch {
	case t.Name == "":
		add("name", "required")
	case !targetNameRE.MatchString(t.Name):
		add("name", "%q is not 1-64 letters, digits, '_', '.', '-' starting with a letter or digit", t.Name)
	}
	if t.URL == "" {
		add("url", "required")
	} else if err := checkURL(t.URL); err != nil {
		add("url", "%v", err)
	}
	if t.Events != nil && len(t.Events) == 0 {
		add("events", "empty: leave it out for the default (every type but fault.updated)")
	}
	for _, p := range t.Events {
		if _, err := path.Match(p, ""); err != nil {
			add("events", "%q: %v", p, err)
			continue
		}
		if len(matchTypes(p)) == 0 {
			add("events", "%q matches no event type (want one of %s)", p, strings.Join(EventTypeNames(), ", "))
		}
	}
	for _, p := range t.Classes {
		if _, err := path.Match(p, ""); p == "" || err != nil {
			add("classes", "%q is not a glob such as disk.*", p)
		}
	}
	if t.MinSeverity != hwhealv1.Severity_SEVERITY_UNSPECIFIED {
		if _, ok := hwhealv1.Severity_name[int32(t.MinSeverity)]; !ok {
			add("min_severity", "unknown severity %d", t.MinSeverity)
		}
	}
	for k := range t.Labels {
		if k == "" {
			add("labels", "empty label name")
		}
	}
	for k, v := range t.Headers {
		if !headerNameRE.MatchString(k) {
			add("headers", "%q is not a valid header name", k)
			continue
		}
		if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(k)) {
			add("headers", "%s is set by the dispatcher", http.CanonicalHeaderKey(k))
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			add("headers", "value of %s holds a line break or NUL", k)
		}
	}
	if t.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	if t.MaxAttempts < 0 || t.MaxAttempts > maxAttemptsLimit {
		add("max_attempts", "%d is not between 0 (until delivered) and %d", t.MaxAttempts, maxAttemptsLimit)
	}
	if t.BackoffInitial <= 0 {
		add("backoff_initial", "must be positive")
	}
	if t.Timeout > maxDuration {
		add("timeout", "%v is above %v", t.Timeout, maxDuration)
	}
	if t.BackoffMax > maxDuration {
		add("backoff_max", "%v is above %v", t.BackoffMax, maxDuration)
	}
	if t.BackoffMax < t.BackoffInitial {
		add("backoff_max", "%v is below backoff_initial %v", t.BackoffMax, t.BackoffInitial)
	}
	if t.Start != StartEnd && t.Start != StartBeginning {
		add("start", "unknown start %d", t.Start)
	}
	return errs
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	// url.Parse's error quotes the URL, which may hold a secret.
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme is not http or https")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// Validate checks every target (defaults applied to a copy) and that names
// are unique.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, t := range c.Targets {
		t.applyDefaults()
		for _, fe := range t.check() {
			errs = append(errs, &Error{Line: t.Line, Target: t.Name, Field: fe.field, Err: fe.err})
		}
		if t.Name != "" && seen[t.Name] {
			errs = append(errs, &Error{Line: t.Line, Target: t.Name, Field: "name", Err: errors.New("duplicate target name")})
		}
		seen[t.Name] = true
	}
	return errors.Join(errs...)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}
