package actuate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

// Bounds of the configuration's numbers: past them a value is a typo.
const (
	maxRetries    = 100
	maxRetryDelay = time.Hour
	maxStepTime   = 24 * time.Hour
	maxRebootsCap = 100
)

// Remediation is the remediation section of the agent's configuration
// file, with the flags that override it applied:
//
//	remediation:
//	  allow: [offline, reboot]
//	  dry_run: false
//	  reboot: {method: systemctl, max: 2, window: 24h}
//	  offline:
//	    - {name: lb-weight-zero, run: [/usr/local/bin/lbctl, weight, "0"], timeout: 30s, retries: 2, retry_delay: 5s}
//
// An empty Allow runs no action: the agent announces no guard and the
// collector sends it no order. A step's name and its run are in every
// report of the step, so they are held to what the collector takes:
// action.MaxStepName bytes of name, action.MaxStepArgs arguments of action.MaxStepArg bytes.
type Remediation struct {
	// Allow lists the action types the agent runs.
	Allow []hwhealv1.ActionType
	// DryRun reports what would run and runs nothing.
	DryRun bool
	Reboot RebootConfig
	// Runbooks holds the steps of offline, migrate and online, in order.
	Runbooks map[hwhealv1.ActionType][]executor.Step

	// File names the configuration file in messages ("" when built from
	// flags only).
	File string
	// Where the allow entries and the runbooks are, for Validate.
	allowLines, runbookLines map[hwhealv1.ActionType]int
}

// RebootConfig says how the agent reboots and how often it may.
type RebootConfig struct {
	// Method is executor.RebootSystemctl (default), RebootLogind or
	// RebootCommand.
	Method string
	// Command is the argv of the command method.
	Command []string
	// Max reboots started within Window; the next is refused (2 in 24 h).
	Max    int
	Window time.Duration
}

// runbookTypes are the types whose executor is a runbook from the file.
var runbookTypes = []hwhealv1.ActionType{action.Offline, action.Migrate, action.Online}

// SetAllow replaces the allow-list (the --allow flag).
func (r *Remediation) SetAllow(types []hwhealv1.ActionType) {
	r.Allow = slices.Clone(types)
	r.allowLines = nil
}

// ParseAllow reads a list of action type names (the --allow flag).
func ParseAllow(names []string) ([]hwhealv1.ActionType, error) {
	var out []hwhealv1.ActionType
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		t, ok := action.ParseType(n)
		if !ok {
			return nil, fmt.Errorf("%q is not an action (want %s)", n, strings.Join(action.TypeNames(), ", "))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Validate checks what the file and the flags together say and fills
// defaults: every allowed offline, migrate and online needs runbook
// steps, unless the agent only dry-runs.
func (r *Remediation) Validate() error {
	if r.Reboot.Method == "" {
		r.Reboot.Method = executor.RebootSystemctl
	}
	if r.Reboot.Max == 0 {
		r.Reboot.Max = DefaultMaxReboots
	}
	if r.Reboot.Window == 0 {
		r.Reboot.Window = DefaultRebootWindow
	}
	var errs []error
	for _, t := range r.Allow {
		name := action.TypeName(t)
		if name == "" {
			errs = append(errs, fmt.Errorf("remediation.allow: %s is not an action", t))
			continue
		}
		if !slices.Contains(runbookTypes, t) || len(r.Runbooks[t]) > 0 || r.DryRun {
			continue
		}
		line := r.allowLines[t]
		if l, ok := r.runbookLines[t]; ok {
			line = l
		}
		if line == 0 {
			errs = append(errs, fmt.Errorf("remediation: %s is allowed (--allow) but the configuration file has no remediation.%s runbook", name, name))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: remediation: %s is allowed but remediation.%s has no runbook steps", r.File, line, name, name))
	}
	if slices.Contains(r.Allow, action.Reboot) && r.Reboot.Method == executor.RebootCommand && len(r.Reboot.Command) == 0 {
		errs = append(errs, errors.New("remediation.reboot: method command needs a command"))
	}
	return errors.Join(errs...)
}

// Executors builds the executor of every type the configuration can run.
func (r *Remediation) Executors() map[hwhealv1.ActionType]executor.Executor {
	m := map[hwhealv1.ActionType]executor.Executor{
		action.Reboot: &executor.Reboot{Method: r.Reboot.Method, Command: slices.Clone(r.Reboot.Command)},
	}
	for t, steps := range r.Runbooks {
		if len(steps) > 0 {
			m[t] = &executor.Runbook{Steps: slices.Clone(steps)}
		}
	}
	return m
}

// parser gathers the problems of one section, each naming file and line.
type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.file, n.Line, path, fmt.Sprintf(format, args...)))
}

// mapping walks a mapping node's keys, refusing duplicates and keys not
// in known.
func (p *parser) mapping(n *yaml.Node, path string, known []string, each func(k, v *yaml.Node)) {
	n = yamldoc.Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "is a %s, want a mapping", yamldoc.Kind(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamldoc.Resolve(n.Content[i+1])
		if first, dup := seen[k.Value]; dup {
			p.errorf(k, path, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(known, k.Value) {
			p.errorf(k, path, "unknown key %q (want one of %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		each(k, v)
	}
}

func (p *parser) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, path, "is a %s, want a value", yamldoc.Kind(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, path, "%q is not true or false", n.Value)
		return false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errorf(n, path, "%v", err)
	}
	return b
}

func (p *parser) integer(n *yaml.Node, path string, lo, hi int) int {
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.errorf(n, path, "%q is not a whole number", n.Value)
		return 0
	}
	if v < lo || v > hi {
		p.errorf(n, path, "%d is not within %d and %d", v, lo, hi)
		return 0
	}
	return v
}

func (p *parser) duration(n *yaml.Node, path string, lo, hi time.Duration) time.Duration {
	s, ok := p.scalar(n, path)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(n, path, "%q is not a duration like 30s or 10m", s)
		return 0
	}
	if d < lo || d > hi {
		p.errorf(n, path, "%s is not within %s and %s", d, lo, hi)
		return 0
	}
	return d
}

func (p *parser) stringList(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "is a %s, want a list", yamldoc.Kind(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		item = yamldoc.Resolve(item)
		if s, ok := p.scalar(item, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

// argv reads a command: a list of strings, the first an absolute path or
// a bare name looked up in the runbook's PATH.
func (p *parser) argv(n *yaml.Node, path string) []string {
	if n.Kind == yaml.ScalarNode {
		p.errorf(n, path, `is a single string, want a list (argv), e.g. ["/bin/sh", "-c", "..."]: no shell runs unless you write one`)
		return nil
	}
	argv := p.stringList(n, path)
	if n.Kind != yaml.SequenceNode || len(argv) != len(n.Content) {
		return nil // reported by stringList
	}
	if len(argv) == 0 {
		p.errorf(n, path, "is empty, want a command")
		return nil
	}
	if a0 := argv[0]; a0 == "" || (strings.Contains(a0, "/") && !strings.HasPrefix(a0, "/")) {
		p.errorf(n, path, "command %q is not an absolute path or a bare name", a0)
		return nil
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			p.errorf(n, fmt.Sprintf("%s[%d]", path, i), "contains a NUL byte")
			return nil
		}
	}
	// Every step report carries the command: past the collector's bounds
	// each report of the step would be refused.
	if len(argv) > action.MaxStepArgs {
		p.errorf(n, path, "has %d arguments, at most %d: %s", len(argv), action.MaxStepArgs, longScriptHint)
		return nil
	}
	for i, a := range argv {
		if len(a) > action.MaxStepArg {
			p.errorf(yamldoc.Resolve(n.Content[i]), fmt.Sprintf("%s[%d]", path, i), "is %d bytes, at most %d: %s", len(a), action.MaxStepArg, longScriptHint)
			return nil
		}
	}
	return argv
}

const longScriptHint = "put a long script in a file and run that, e.g. run: [/usr/local/lib/hwheal/drain.sh]"

// ParseRemediation reads the remediation section of the agent's
// configuration file; file names it in errors. Every problem found is
// returned (joined), each as "file:line: key: problem". Call Validate
// once flags are applied.
func ParseRemediation(n *yaml.Node, file string) (*Remediation, error) {
	p := &parser{file: file}
	r := &Remediation{
		File: file, Runbooks: map[hwhealv1.ActionType][]executor.Step{},
		allowLines: map[hwhealv1.ActionType]int{}, runbookLines: map[hwhealv1.ActionType]int{},
	}
	n = yamldoc.Resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return r, nil // "remediation:" with nothing under it
	}
	p.mapping(n, "remediation", []string{"allow", "dry_run", "reboot", "offline", "migrate", "online"}, func(k, v *yaml.Node) {
		path := "remediation." + k.Value
		switch k.Value {
		case "allow":
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, path, "is a %s, want a list of actions (%s)", yamldoc.Kind(v), strings.Join(action.TypeNames(), ", "))
				return
			}
			for i, item := range v.Content {
				item = yamldoc.Resolve(item)
				s, ok := p.scalar(item, fmt.Sprintf("%s[%d]", path, i))
				if !ok {
					continue
				}
				t, ok := action.ParseType(s)
				if !ok {
					p.errorf(item, path, "%q is not an action (want %s)", s, strings.Join(action.TypeNames(), ", "))
					continue
				}
				if _, dup := r.allowLines[t]; !dup {
					r.Allow = append(r.Allow, t)
					r.allowLines[t] = item.Line
				}
			}
		case "dry_run":
			r.DryRun = p.boolean(v, path)
		case "reboot":
			r.Reboot = p.reboot(v, path)
		default:
			t, _ := action.ParseType(k.Value)
			r.runbookLines[t] = k.Line
			r.Runbooks[t] = p.runbook(v, path)
		}
	})
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return r, nil
}

func (p *parser) reboot(n *yaml.Node, path string) RebootConfig {
	var rc RebootConfig
	var commandNode *yaml.Node
	p.mapping(n, path, []string{"method", "command", "max", "window"}, func(k, v *yaml.Node) {
		kp := path + "." + k.Value
		switch k.Value {
		case "method":
			s, ok := p.scalar(v, kp)
			if ok && !slices.Contains(executor.RebootMethods(), s) {
				p.errorf(v, kp, "%q is not one of %s", s, strings.Join(executor.RebootMethods(), ", "))
				return
			}
			rc.Method = s
		case "command":
			commandNode = k
			rc.Command = p.argv(v, kp)
		case "max":
			rc.Max = p.integer(v, kp, 1, maxRebootsCap)
		case "window":
			rc.Window = p.duration(v, kp, time.Minute, MaxRebootWindow)
		}
	})
	if n.Kind != yaml.MappingNode {
		return rc
	}
	switch {
	case rc.Method == executor.RebootCommand && commandNode == nil:
		p.errorf(n, path, "method command needs a command: [argv...]")
	case rc.Method != executor.RebootCommand && commandNode != nil:
		p.errorf(commandNode, path+".command", "is only for method: command")
	}
	return rc
}

func (p *parser) runbook(n *yaml.Node, path string) []executor.Step {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "is a %s, want a list of steps", yamldoc.Kind(n))
		return nil
	}
	var steps []executor.Step
	names := map[string]int{}
	for i, item := range n.Content {
		item = yamldoc.Resolve(item)
		sp := fmt.Sprintf("%s[%d]", path, i)
		s := executor.Step{Timeout: executor.DefaultStepTimeout}
		var hasName, hasRun bool
		p.mapping(item, sp, []string{"name", "run", "timeout", "retries", "retry_delay"}, func(k, v *yaml.Node) {
			kp := sp + "." + k.Value
			switch k.Value {
			case "name":
				hasName = true
				if name, ok := p.scalar(v, kp); ok {
					if strings.TrimSpace(name) == "" {
						p.errorf(v, kp, "is empty")
					} else if len(name) > action.MaxStepName {
						p.errorf(v, kp, "is %d bytes, at most %d", len(name), action.MaxStepName)
					} else if first, dup := names[name]; dup {
						p.errorf(v, kp, "%q names another step too (line %d)", name, first)
					}
					names[name] = v.Line
					s.Name = name
				}
			case "run":
				hasRun = true
				s.Run = p.argv(v, kp)
			case "timeout":
				s.Timeout = p.duration(v, kp, time.Second, maxStepTime)
			case "retries":
				s.Retries = p.integer(v, kp, 0, maxRetries)
			case "retry_delay":
				s.RetryDelay = p.duration(v, kp, 0, maxRetryDelay)
			}
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		if !hasName {
			p.errorf(item, sp, "has no name")
		}
		if !hasRun {
			p.errorf(item, sp, "has no run: [argv...]")
		}
		steps = append(steps, s)
	}
	return steps
}
