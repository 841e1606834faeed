package limits_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hwheal/hwheal/remediation/limits"
	"github.com/hwheal/hwheal/remediation/policy"
)

func TestStorm(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	b := policy.Breaker{Nodes: 5, Percent: 5, Window: 15 * time.Minute}
	// faults gives n nodes a fault of class, first seen at now-ago.
	faults := func(class string, n int, ago time.Duration) []limits.FaultOpen {
		out := make([]limits.FaultOpen, n)
		for i := range out {
			out[i] = limits.FaultOpen{Node: fmt.Sprintf("%s-n%d", class, i), Class: class, FirstSeen: now.Add(-ago)}
		}
		return out
	}
	join := func(fs ...[]limits.FaultOpen) []limits.FaultOpen {
		var out []limits.FaultOpen
		for _, f := range fs {
			out = append(out, f...)
		}
		return out
	}
	tests := []struct {
		name      string
		b         policy.Breaker
		faults    []limits.FaultOpen
		fleet     int
		since     time.Time
		tripped   bool
		class     string
		nodes     int
		threshold int
	}{
		{"below the node count", b, faults("memory.ue", 4, time.Minute), 100, time.Time{}, false, "memory.ue", 4, 5},
		{"at the node count", b, faults("memory.ue", 5, time.Minute), 100, time.Time{}, true, "memory.ue", 5, 5},
		{"the percentage is more", b, faults("memory.ue", 49, time.Minute), 1000, time.Time{}, false, "memory.ue", 49, 50},
		{"at the percentage", b, faults("memory.ue", 50, time.Minute), 1000, time.Time{}, true, "memory.ue", 50, 50},
		{"the percentage rounds up", b, faults("memory.ue", 5, time.Minute), 101, time.Time{}, false, "memory.ue", 5, 6},
		{"a fleet smaller than the node count", b, faults("memory.ue", 3, time.Minute), 3, time.Time{}, false, "memory.ue", 3, 5},
		{"at least one node", policy.Breaker{Window: time.Minute}, faults("memory.ue", 1, time.Second), 10, time.Time{}, true, "memory.ue", 1, 1},
		{"nodes count once", b, join(faults("memory.ue", 3, time.Minute), faults("memory.ue", 3, 2*time.Minute)), 100, time.Time{}, false, "memory.ue", 3, 5},
		{"classes do not add up", b, join(faults("memory.ue", 4, time.Minute), faults("disk.media", 4, time.Minute)), 100, time.Time{}, false, "disk.media", 4, 5},
		{"the busiest class", b, join(faults("memory.ue", 4, time.Minute), faults("disk.media", 6, time.Minute)), 100, time.Time{}, true, "disk.media", 6, 5},
		{"window start is outside", b, faults("memory.ue", 5, 15*time.Minute), 100, time.Time{}, false, "", 0, 5},
		{"just inside the window", b, faults("memory.ue", 5, 15*time.Minute-time.Nanosecond), 100, time.Time{}, true, "memory.ue", 5, 5},
		{"now is inside", b, faults("memory.ue", 5, 0), 100, time.Time{}, true, "memory.ue", 5, 5},
		{"the future is outside", b, faults("memory.ue", 5, -time.Second), 100, time.Time{}, false, "", 0, 5},
		{"faults up to a resume are forgiven", b, faults("memory.ue", 5, time.Minute), 100, now.Add(-time.Minute), false, "", 0, 5},
		{"faults after a resume count", b, faults("memory.ue", 5, time.Minute), 100, now.Add(-time.Minute - time.Nanosecond), true, "memory.ue", 5, 5},
		{"an old resume leaves the window", b, faults("memory.ue", 5, 14*time.Minute), 100, now.Add(-time.Hour), true, "memory.ue", 5, 5},
		{"disabled", policy.Breaker{Disabled: true, Nodes: 5, Window: time.Hour}, faults("memory.ue", 50, time.Minute), 100, time.Time{}, false, "", 0, 0},
		{"no faults", b, nil, 100, time.Time{}, false, "", 0, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tripped, class, nodes, threshold := limits.Storm(tc.b, tc.faults, tc.fleet, tc.since, now)
			if tripped != tc.tripped || class != tc.class || nodes != tc.nodes || threshold != tc.threshold {
				t.Errorf("Storm = %v, %q, %d, %d; want %v, %q, %d, %d", tripped, class, nodes, threshold, tc.tripped, tc.class, tc.nodes, tc.threshold)
			}
		})
	}
}

// TestStormTies: of classes with as many nodes, the first by name, so
// that the pause reason does not change from pass to pass.
func TestStormTies(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var fs []limits.FaultOpen
	for _, c := range []string{"z.a", "b.b", "m.c"} {
		for i := range 5 {
			fs = append(fs, limits.FaultOpen{Node: fmt.Sprint(i), Class: c, FirstSeen: now})
		}
	}
	for range 20 {
		if _, class, _, _ := limits.Storm(policy.Breaker{Nodes: 5, Window: time.Minute}, fs, 10, time.Time{}, now); class != "b.b" {
			t.Fatalf("class %q, want b.b", class)
		}
	}
}
