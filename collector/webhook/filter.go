package webhook

import (
	"path"
	"slices"
	"strings"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// EventTypeName is the name of an event type in configuration and in the
// CloudEvents type: EVENT_TYPE_NODE_HEALTH_CHANGED is node.health_changed
// (lower case, the first underscore a dot). It is "" for UNSPECIFIED and
// for values this binary does not know.
func EventTypeName(t hwhealv1.EventType) string {
	n, ok := hwhealv1.EventType_name[int32(t)]
	if !ok || t == hwhealv1.EventType_EVENT_TYPE_UNSPECIFIED {
		return ""
	}
	n = strings.ToLower(strings.TrimPrefix(n, "EVENT_TYPE_"))
	return strings.Replace(n, "_", ".", 1)
}

// EventTypeNames lists every event type name, sorted.
func EventTypeNames() []string {
	var out []string
	for v := range hwhealv1.EventType_name {
		if n := EventTypeName(hwhealv1.EventType(v)); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// DefaultEvents is what a target without events: receives: every type but
// fault.updated, which fires on every repeated report of an open fault.
func DefaultEvents() []string {
	return slices.DeleteFunc(EventTypeNames(), func(n string) bool {
		return n == EventTypeName(hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED)
	})
}

// matchTypes returns the event types whose name matches the glob p.
func matchTypes(p string) []hwhealv1.EventType {
	var out []hwhealv1.EventType
	for v := range hwhealv1.EventType_name {
		t := hwhealv1.EventType(v)
		n := EventTypeName(t)
		if n == "" {
			continue
		}
		if ok, _ := path.Match(p, n); ok {
			out = append(out, t)
		}
	}
	return out
}

// filter is a Target's selection, compiled.
type filter struct {
	types map[hwhealv1.EventType]bool
	// explicit: the target listed its events, so an event without a fault
	// of a listed type passes the class and severity filters.
	explicit      bool
	classes       []string
	minSeverity   hwhealv1.Severity
	labels        map[string]string
	includeShadow bool
}

func newFilter(t *Target) *filter {
	f := &filter{
		types:         map[hwhealv1.EventType]bool{},
		explicit:      t.Events != nil,
		classes:       t.Classes,
		minSeverity:   t.MinSeverity,
		labels:        t.Labels,
		includeShadow: t.IncludeShadow,
	}
	events := t.Events
	if events == nil {
		events = DefaultEvents()
	}
	for _, p := range events {
		for _, typ := range matchTypes(p) {
			f.types[typ] = true
		}
	}
	return f
}

// matchEvent applies everything but the label filter, which needs the
// node.
func (f *filter) matchEvent(ev *hwhealv1.Event) bool {
	if !f.types[ev.GetType()] {
		return false
	}
	fault := ev.GetFault()
	if fault == nil {
		return f.explicit || (len(f.classes) == 0 && f.minSeverity == hwhealv1.Severity_SEVERITY_UNSPECIFIED)
	}
	if !f.includeShadow && fault.GetMode() == hwhealv1.RuleMode_RULE_MODE_SHADOW {
		return false
	}
	if fault.GetSeverity() < f.minSeverity {
		return false
	}
	if len(f.classes) == 0 {
		return true
	}
	for _, p := range f.classes {
		if ok, _ := path.Match(p, fault.GetFaultClass()); ok {
			return true
		}
	}
	return false
}

func (f *filter) matchLabels(node map[string]string) bool {
	for k, v := range f.labels {
		if got, ok := node[k]; !ok || got != v {
			return false
		}
	}
	return true
}
