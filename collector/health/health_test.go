package health

import (
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestOf(t *testing.T) {
	const (
		healthy = hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
		suspect = hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT
		faulty  = hwhealv1.NodeHealth_NODE_HEALTH_FAULTY
	)
	tests := []struct {
		name string
		sev  hwhealv1.Severity
		open int
		want hwhealv1.NodeHealth
	}{
		{"no faults", hwhealv1.Severity_SEVERITY_UNSPECIFIED, 0, healthy},
		// A stale max with a zero count (e.g. after the last fault resolved)
		// must not keep the node unhealthy.
		{"critical but none open", hwhealv1.Severity_SEVERITY_CRITICAL, 0, healthy},
		{"negative count", hwhealv1.Severity_SEVERITY_WARNING, -1, healthy},
		{"info only", hwhealv1.Severity_SEVERITY_INFO, 3, healthy},
		{"unspecified only", hwhealv1.Severity_SEVERITY_UNSPECIFIED, 1, healthy},
		{"warning", hwhealv1.Severity_SEVERITY_WARNING, 1, suspect},
		{"many warnings", hwhealv1.Severity_SEVERITY_WARNING, 40, suspect},
		{"critical", hwhealv1.Severity_SEVERITY_CRITICAL, 1, faulty},
		{"above critical", hwhealv1.Severity(9), 1, faulty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.sev, tt.open); got != tt.want {
				t.Errorf("Of(%v, %d) = %v, want %v", tt.sev, tt.open, got, tt.want)
			}
		})
	}
}

func TestEnforced(t *testing.T) {
	tests := []struct {
		mode hwhealv1.RuleMode
		want bool
	}{
		{hwhealv1.RuleMode_RULE_MODE_UNSPECIFIED, true},
		{hwhealv1.RuleMode_RULE_MODE_ENFORCE, true},
		{hwhealv1.RuleMode_RULE_MODE_SHADOW, false},
		{hwhealv1.RuleMode(7), true}, // unknown to this binary: counts, the safe side
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			if got := Enforced(tt.mode); got != tt.want {
				t.Errorf("Enforced(%v) = %v, want %v", tt.mode, got, tt.want)
			}
		})
	}
}

func TestOfFaults(t *testing.T) {
	const (
		open     = hwhealv1.FaultState_FAULT_STATE_OPEN
		resolved = hwhealv1.FaultState_FAULT_STATE_RESOLVED
		shadow   = hwhealv1.RuleMode_RULE_MODE_SHADOW
		enforce  = hwhealv1.RuleMode_RULE_MODE_ENFORCE
		unspec   = hwhealv1.RuleMode_RULE_MODE_UNSPECIFIED
		warning  = hwhealv1.Severity_SEVERITY_WARNING
		critical = hwhealv1.Severity_SEVERITY_CRITICAL
		info     = hwhealv1.Severity_SEVERITY_INFO
	)
	f := func(state hwhealv1.FaultState, mode hwhealv1.RuleMode, sev hwhealv1.Severity) *hwhealv1.FaultRecord {
		return &hwhealv1.FaultRecord{State: state, Mode: mode, Severity: sev}
	}
	tests := []struct {
		name   string
		faults []*hwhealv1.FaultRecord
		want   hwhealv1.NodeHealth
	}{
		{"none", nil, hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY},
		{"shadow critical only", []*hwhealv1.FaultRecord{f(open, shadow, critical)}, hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY},
		{"shadow critical and enforced warning", []*hwhealv1.FaultRecord{f(open, shadow, critical), f(open, enforce, warning)}, hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT},
		{"unspecified mode counts", []*hwhealv1.FaultRecord{f(open, unspec, critical)}, hwhealv1.NodeHealth_NODE_HEALTH_FAULTY},
		{"resolved critical ignored", []*hwhealv1.FaultRecord{f(resolved, enforce, critical), f(open, enforce, warning)}, hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT},
		{"info only", []*hwhealv1.FaultRecord{f(open, enforce, info)}, hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY},
		{"critical among many", []*hwhealv1.FaultRecord{f(open, enforce, info), f(open, enforce, critical), f(open, shadow, warning)}, hwhealv1.NodeHealth_NODE_HEALTH_FAULTY},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OfFaults(tt.faults); got != tt.want {
				t.Errorf("OfFaults = %v, want %v", got, tt.want)
			}
		})
	}
}
