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

// TestDeps: the collector decides but never acts. It links no executor
// (remediation/executor), not the agent's actuator and guard, nor any
// other agent package: it cannot run a runbook or reboot anything itself.
func TestDeps(t *testing.T) {
	const mod = "github.com/hwheal/hwheal/"
	forbidden := []string{
		mod + "remediation/executor",
		mod + "agent",
		mod + "cmd/hwhealctl",
	}
	// agent/detect is the rule format and evaluation the agent, the
	// collector and hwhealctl share (one set of rules, one meaning).
	allowed := []string{mod + "agent/detect"}
	deps := linked(t)
	for _, d := range deps {
		if slices.Contains(allowed, d) {
			continue
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("hwheal-collector links %s", d)
			}
		}
	}
	// The list is real: what the collector must link is in it.
	for _, want := range []string{mod + "collector"} {
		if !slices.Contains(deps, want) {
			t.Errorf("hwheal-collector does not link %s", want)
		}
	}
}
