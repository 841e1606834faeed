// Package cmd_test polices what each binary may link, so the arrows of the
// design stay one way: the agent carries no collector code and the collector
// no agent code (neither its sources nor, later, its executors).
package cmd_test

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestBinaryDeps(t *testing.T) {
	const mod = "github.com/hwheal/hwheal/"
	tests := []struct {
		bin       string
		forbidden []string
		allowed   []string // under a forbidden prefix, but shared on purpose
	}{
		{bin: "hwheal-agent", forbidden: []string{mod + "collector", mod + "cmd/hwhealctl", "modernc.org/sqlite"}},
		// agent/detect is the rule format and evaluation the agent, the
		// collector and hwhealctl share (one set of rules, one meaning).
		{bin: "hwheal-collector", forbidden: []string{mod + "agent", mod + "cmd/hwhealctl"}, allowed: []string{mod + "agent/detect"}},
		{bin: "hwhealctl", forbidden: []string{mod + "collector", mod + "agent/source", mod + "agent/spool", mod + "agent/transport", "modernc.org/sqlite"}},
	}
	for _, tt := range tests {
		t.Run(tt.bin, func(t *testing.T) {
		deps:
			for _, d := range deps(t, "./"+tt.bin) {
				for _, a := range tt.allowed {
					if d == a {
						continue deps
					}
				}
				for _, f := range tt.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s links %s", tt.bin, d)
					}
				}
			}
		})
	}
}
