package ctl

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// shippedPolicies are the policy files packaging ships.
var shippedPolicies = []string{
	filepath.Join("..", "..", "..", "..", "remediation", "policy", "shipped", "default.yaml"),
	filepath.Join("..", "..", "..", "..", "remediation", "policy", "shipped", "example.yaml"),
}

func TestPolicyCheck(t *testing.T) {
	t.Run("shipped", func(t *testing.T) {
		out, _, err := run(t, append([]string{"policy", "check"}, shippedPolicies...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], shippedPolicies[0]+": ok (0 rules, dry-run: yes)") ||
			!strings.HasPrefix(lines[1], shippedPolicies[1]+": ok (") || !strings.HasSuffix(lines[1], "dry-run: no)") {
			t.Errorf("policy check printed:\n%s", out)
		}
	})

	bad := writeFile(t, "bad.yaml", "dry_run: true\nlimits:\n  max_out_of_service: lots\n")
	missing := filepath.Join(t.TempDir(), "nope.yaml")

	t.Run("invalid", func(t *testing.T) {
		out, _, err := run(t, "policy", "check", shippedPolicies[0], bad, missing)
		wantErr(t, err, "policy check: 2 of 3 files invalid")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) < 3 || !strings.HasSuffix(lines[0], ": ok (0 rules, dry-run: yes)") {
			t.Fatalf("policy check printed:\n%s", out)
		}
		// Errors name the file and line.
		if !strings.HasPrefix(lines[1], bad+":3: ") || !strings.Contains(lines[1], "max_out_of_service") {
			t.Errorf("bad file: %q", lines[1])
		}
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, missing+": ") || !strings.Contains(last, "no such file") {
			t.Errorf("missing file: %q", last)
		}
	})

	t.Run("json", func(t *testing.T) {
		out, _, err := run(t, "policy", "check", "-o", "json", shippedPolicies[0], bad)
		wantErr(t, err, "1 of 2 files invalid")
		var res []map[string]any
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(res) != 2 || res[0]["ok"] != true || res[0]["dry_run"] != true || res[1]["ok"] != false ||
			!strings.HasPrefix(res[1]["error"].(string), bad+":3: ") {
			t.Errorf("-o json: %v", res)
		}
	})

	t.Run("no file", func(t *testing.T) {
		_, _, err := run(t, "policy", "check")
		wantErr(t, err, "requires at least 1 arg")
	})
}
