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
