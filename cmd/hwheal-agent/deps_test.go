package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// linked lists every package the binary in the current directory links.
func linked(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	return strings.Fields(string(out))
}

// TestDeps: the agent acts but never decides. It links the executors
// and its guard, and none of the collector's code nor the remediation
// packages that decide (policy, planner, limits, approval): a node runs
// what its own configuration allows, whatever links in for the collector.
func TestDeps(t *testing.T) {
	const mod = "github.com/hwheal/hwheal/"
	forbidden := []string{
		mod + "collector",
		mod + "remediation/policy",
		mod + "remediation/planner",
		mod + "remediation/limits",
		mod + "remediation/approval",
		mod + "cmd/hwhealctl",
		"modernc.org/sqlite",
	}
	deps := linked(t)
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("hwheal-agent links %s", d)
			}
		}
	}
	// The list is real: what the agent must link is in it.
	for _, want := range []string{mod + "agent/actuate", mod + "remediation/executor", mod + "agent/transport"} {
		if !slices.Contains(deps, want) {
			t.Errorf("hwheal-agent does not link %s", want)
		}
	}
}
