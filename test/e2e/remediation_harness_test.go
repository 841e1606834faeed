package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fixtureRoot makes an agent --root tree with a boot id and an empty kernel
// log file, so that remediation tests run without root and without the
// host's hardware: a test changes the boot id to play a reboot and appends
// records to dev/kmsg to play the kernel.
func fixtureRoot(t testing.TB, boot string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/sys/kernel/random"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	setBoot(t, root, boot)
	if err := os.WriteFile(filepath.Join(root, "dev/kmsg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// bootIDPath is where the agent under root reads its boot id.
func bootIDPath(root string) string { return filepath.Join(root, "proc/sys/kernel/random/boot_id") }

func setBoot(t testing.TB, root, boot string) {
	t.Helper()
	if err := os.WriteFile(bootIDPath(root), []byte(boot+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

var kmsgSeq atomic.Uint64

// appendKmsg appends records to the fixture's kernel log in /dev/kmsg's
// format, as the kernel would have logged them now.
func appendKmsg(t testing.TB, root string, level int, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, "dev/kmsg"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		seq := kmsgSeq.Add(1)
		if _, err := fmt.Fprintf(f, "%d,%d,%d,-;%s\n", level, seq, seq*1000, l); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// remediationCollector starts a collector with a policy and a fast
// planner. extra flags go last.
func remediationCollector(t testing.TB, addr, state, policyYAML string, extra ...string) *proc {
	t.Helper()
	pol := writeFile(t, t.TempDir(), "policy.yaml", policyYAML)
	args := append([]string{"--insecure", "--listen", addr, "--state-dir", state, "--policy", pol,
		"--planner-interval", "200ms", "--log-level", "debug"}, extra...)
	return start(t, "hwheal-collector", args...)
}

// fixtureAgent starts an agent on a fixture root with a configuration
// file (its remediation section).
func fixtureAgent(t testing.TB, addr, node, root, state, configYAML string, extra ...string) *proc {
	t.Helper()
	cfg := writeFile(t, t.TempDir(), "agent.yaml", configYAML)
	args := append([]string{"--insecure", "--collector", addr, "--node", node, "--root", root, "--state-dir", state,
		"--config", cfg, "--log-level", "debug"}, extra...)
	return start(t, "hwheal-agent", args...)
}

// actionJSON is the part of hwhealctl's action JSON the tests look at.
type actionJSON struct {
	ID          string   `json:"id"`
	Node        string   `json:"node"`
	Type        string   `json:"type"`
	State       string   `json:"state"`
	Rule        string   `json:"rule"`
	RequestedBy string   `json:"requested_by"`
	ApprovedBy  []string `json:"approved_by"`
	Result      string   `json:"result"`
	Waiting     string   `json:"waiting"`
	DryRun      bool     `json:"dry_run"`
	Steps       []struct {
		Index    int      `json:"index"`
		Name     string   `json:"name"`
		Command  []string `json:"command"`
		Attempt  int      `json:"attempt"`
		ExitCode int      `json:"exit_code"`
		Output   string   `json:"output"`
		TimedOut bool     `json:"timed_out"`
		DryRun   bool     `json:"dry_run"`
	} `json:"steps"`
}

func (a actionJSON) final() bool {
	switch a.State {
	case "ACTION_STATE_SUCCEEDED", "ACTION_STATE_FAILED", "ACTION_STATE_TIMED_OUT", "ACTION_STATE_CANCELLED",
		"ACTION_STATE_EXPIRED", "ACTION_STATE_DENIED", "ACTION_STATE_REFUSED":
		return true
	}
	return false
}

func listActions(t testing.TB, addr string, args ...string) ([]actionJSON, error) {
	t.Helper()
	var as []actionJSON
	err := ctlJSON(t, addr, &as, append([]string{"actions"}, args...)...)
	return as, err
}

func getAction(t testing.TB, addr, id string) (actionJSON, error) {
	t.Helper()
	var a actionJSON
	err := ctlJSON(t, addr, &a, "action", id)
	return a, err
}

// remediate asks for an action through hwhealctl and returns its id.
func remediate(t testing.TB, addr, node, action, reason string) string {
	t.Helper()
	var a actionJSON
	if err := ctlJSON(t, addr, &a, "remediate", node, "--action", action, "--reason", reason); err != nil {
		t.Fatal(err)
	}
	if a.ID == "" {
		t.Fatalf("remediate %s %s: no id", node, action)
	}
	return a.ID
}

// waitAction waits until action id is in state want (ACTION_STATE_...),
// failing at once if it ends in another state.
func waitAction(t testing.TB, addr, id, want string, timeout time.Duration) actionJSON {
	t.Helper()
	var a actionJSON
	eventually(t, timeout, "action "+id+" "+want, func() error {
		var err error
		if a, err = getAction(t, addr, id); err != nil {
			return err
		}
		if a.State == want {
			return nil
		}
		if a.final() {
			t.Fatalf("action %s ended %s (result %q), want %s", id, a.State, a.Result, want)
		}
		return fmt.Errorf("state %s, waiting %q", a.State, a.Waiting)
	})
	return a
}

// auditVerify runs hwhealctl audit verify and fails unless the chain holds.
func auditVerify(t testing.TB, addr string) string {
	t.Helper()
	out, err := ctl(t, addr, "audit", "verify")
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if !strings.HasPrefix(out, "audit log verified: ") {
		t.Fatalf("audit verify said %q", out)
	}
	return out
}

// auditKinds lists the kinds of the audit records of an action, in order.
func auditKinds(t testing.TB, addr, id string) []string {
	t.Helper()
	var recs []struct {
		Kind  string `json:"kind"`
		Actor string `json:"actor"`
	}
	if err := ctlJSON(t, addr, &recs, "audit", "--action", id); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Kind)
	}
	return out
}
