package policy

// The readers of single values: each reports what it wanted at the line
// of the value.

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names what a node is for a message: "\"yes\"", "empty", "a list".
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "empty"
	case n.Kind == yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "a " + yamldoc.Kind(n)
}

func ctxOr(ctx string) string {
	if ctx == "" {
		return "the top level "
	}
	return ctx
}

func has(entries []entry, key string) bool {
	return slices.ContainsFunc(entries, func(e entry) bool { return e.key == key })
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// oneOf lists choices for a message: "a, b or c".
func oneOf(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func (l *loader) str(v *yaml.Node, name string) (string, bool) {
	v = yamldoc.Resolve(v)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		l.errorf(v.Line, "%s: is %s, want a string", name, describe(v))
		return "", false
	}
	return v.Value, true
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// name reads a rule's or a window's name: letters, digits, '.', '_', '-'.
func (l *loader) name(v *yaml.Node, name string) (string, bool) {
	s, ok := l.str(v, name)
	if !ok {
		return "", false
	}
	if !nameRE.MatchString(s) || len(s) > 128 {
		l.errorf(v.Line, "%s: %q is not a name: want letters, digits, '.', '_' and '-' (kernel-lockup)", name, s)
		return "", false
	}
	return s, true
}

func (l *loader) boolean(v *yaml.Node, name string) (bool, bool) {
	v = yamldoc.Resolve(v)
	var b bool
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" && v.Decode(&b) == nil {
		return b, true
	}
	l.errorf(v.Line, "%s: is %s, want true or false", name, describe(v))
	return false, false
}

func (l *loader) integer(v *yaml.Node, name string) (int64, bool) {
	v = yamldoc.Resolve(v)
	var n int64
	if v.Kind == yaml.ScalarNode && v.Tag == "!!int" && v.Decode(&n) == nil {
		return n, true
	}
	l.errorf(v.Line, "%s: is %s, want a whole number", name, describe(v))
	return 0, false
}

func (l *loader) duration(v *yaml.Node, name string) (time.Duration, bool) {
	v = yamldoc.Resolve(v)
	if v.Kind == yaml.ScalarNode && (v.Tag == "!!int" || v.Tag == "!!float") {
		l.errorf(v.Line, "%s: %s has no unit, want a duration such as 15m, 4h or 72h", name, v.Value)
		return 0, false
	}
	s, ok := l.str(v, name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.errorf(v.Line, "%s: %q is not a duration such as 15m, 4h or 72h", name, s)
		return 0, false
	}
	if d <= 0 {
		l.errorf(v.Line, "%s: %s is not longer than zero", name, s)
		return 0, false
	}
	return d, true
}

// quantity reads a count of nodes (3) or a percentage (5%).
func (l *loader) quantity(v *yaml.Node, name string) (Quantity, bool) {
	v = yamldoc.Resolve(v)
	if v.Kind == yaml.ScalarNode && strings.HasSuffix(strings.TrimSpace(v.Value), "%") {
		f, ok := l.percent(v, name)
		return Quantity{N: f, Percent: true, Set: ok}, ok
	}
	var n int64
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&n) != nil {
		l.errorf(v.Line, "%s: is %s, want a count of nodes (3) or a percentage (5%%)", name, describe(v))
		return Quantity{}, false
	}
	if n < 0 || n > maxCount {
		l.errorf(v.Line, "%s: %d is out of range, want 0 or more nodes (3) or a percentage (5%%)", name, n)
		return Quantity{}, false
	}
	return Quantity{N: float64(n), Set: true}, true
}

// percent reads a percentage from 0 to 100, written 5% or 5.
func (l *loader) percent(v *yaml.Node, name string) (float64, bool) {
	v = yamldoc.Resolve(v)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		l.errorf(v.Line, "%s: is %s, want a percentage (5%%)", name, describe(v))
		return 0, false
	}
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v.Value), "%"))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(s, "xXpP_") {
		l.errorf(v.Line, "%s: %q is not a percentage (5%%)", name, v.Value)
		return 0, false
	}
	if f < 0 || f > 100 {
		l.errorf(v.Line, "%s: %s is out of range, want 0%% to 100%%", name, v.Value)
		return 0, false
	}
	return f, true
}

func (l *loader) mode(v *yaml.Node, name string) (hwhealv1.ApprovalMode, bool) {
	s, ok := l.str(v, name)
	if !ok {
		return hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, false
	}
	switch s {
	case "auto":
		return hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO, true
	case "required":
		return hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, true
	case "two-person":
		return hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON, true
	}
	l.errorf(yamldoc.Resolve(v).Line, "%s: unknown approval %q (want auto, required or two-person)", name, s)
	return hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, false
}

func (l *loader) expiry(v *yaml.Node, name string) (hwhealv1.ExpiryOutcome, bool) {
	s, ok := l.str(v, name)
	if !ok {
		return hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY, false
	}
	switch s {
	case "deny":
		return hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY, true
	case "proceed":
		return hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED, true
	}
	l.errorf(yamldoc.Resolve(v).Line, "%s: unknown outcome %q (want deny or proceed)", name, s)
	return hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY, false
}

func (l *loader) severity(v *yaml.Node, name string) (hwhealv1.Severity, bool) {
	s, ok := l.str(v, name)
	if !ok {
		return 0, false
	}
	switch s {
	case "info":
		return hwhealv1.Severity_SEVERITY_INFO, true
	case "warning":
		return hwhealv1.Severity_SEVERITY_WARNING, true
	case "critical":
		return hwhealv1.Severity_SEVERITY_CRITICAL, true
	}
	l.errorf(yamldoc.Resolve(v).Line, "%s: unknown severity %q (want info, warning or critical)", name, s)
	return 0, false
}

func (l *loader) location(v *yaml.Node, name string) (*time.Location, bool) {
	s, ok := l.str(v, name)
	if !ok {
		return nil, false
	}
	line := yamldoc.Resolve(v).Line
	switch s {
	case "", "Local":
		// time.Local is whatever zone the collector's host has.
		l.errorf(line, "%s: %q: name the zone (Europe/Berlin, UTC); the host's own zone differs from host to host", name, s)
		return nil, false
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		l.errorf(line, "%s: unknown time zone %q (want an IANA zone such as Europe/Berlin or UTC)", name, s)
		return nil, false
	}
	return loc, true
}

// instantLayouts are the forms from: and to: take besides RFC 3339; they
// are read in the window's time zone.
var instantLayouts = []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}

func (l *loader) instant(v *yaml.Node, name string, loc *time.Location) (time.Time, bool) {
	s, ok := l.str(v, name)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s)
	for _, layout := range instantLayouts {
		if err == nil {
			break
		}
		t, err = time.ParseInLocation(layout, s, loc)
	}
	if err == nil {
		// The zero time means "no one-off" to Window.
		if t.Year() < 1970 {
			l.errorf(yamldoc.Resolve(v).Line, "%s: %s is before 1970", name, s)
			return time.Time{}, false
		}
		return t, true
	}
	l.errorf(yamldoc.Resolve(v).Line, "%s: %q is not a time such as 2026-12-20T00:00:00Z or a date such as 2026-12-20", name, s)
	return time.Time{}, false
}
