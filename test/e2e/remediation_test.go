package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// edacUE is a kernel line the shipped rules read as memory.ue on a DIMM.
const edacUE = "EDAC MC0: 1 UE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0)"

// TestDrainRunbook follows a fault to a drained node on real processes: a
// memory error in the node's kernel log becomes a memory.ue fault, the
// policy offlines the node without a person, and the agent runs its drain
// runbook - load-balancer weight to 0, wait until the connections drained,
// stop the service, mark it out - in order, each step logged with its exit
// code and output, and the node ends OFFLINE. An online brings it back,
// the audit chain verifies, and the second node, which the limit kept in
// service, was never touched.
func TestDrainRunbook(t *testing.T) {
	addr := freeAddr(t)
	colState := t.TempDir()
	remediationCollector(t, addr, colState, `
limits:
  max_out_of_service: 50%
manual:
  online: auto
rules:
  - name: memory-ue
    classes: [memory.ue]
    ladder:
      - action: offline
        approval: auto
        timeout: 2m
`)
	work := t.TempDir()
	// The runbook's commands stand in for a load balancer and a service:
	// files the test reads, and a connection count the test drains.
	writeFile(t, work, "lb-weight", "100\n")
	writeFile(t, work, "connections", "3\n")
	step := func(name, script string) string {
		return fmt.Sprintf(`    - name: %s
      run: ["/bin/sh", "-c", "echo %s >> %s/order; %s"]
      timeout: 20s
`, name, name, work, script)
	}
	config := "remediation:\n  allow: [offline, online]\n  offline:\n" +
		step("lb-weight-zero", "echo 0 > "+work+"/lb-weight; echo lb weight set to 0") +
		step("wait-drained", "while [ \\\"$(cat "+work+"/connections)\\\" != 0 ]; do sleep 0.1; done; echo connections drained") +
		step("stop-service", "echo stopped > "+work+"/service; echo service stopped") +
		step("mark-out", "echo out > "+work+"/marked; echo marked out of service") +
		"  online:\n" +
		step("lb-weight-back", "echo 100 > "+work+"/lb-weight")

	node1, node2 := "drain-"+randomID(t, 3), "spare-"+randomID(t, 3)
	root1, root2 := fixtureRoot(t, "boot-1"), fixtureRoot(t, "boot-1")
	fixtureAgent(t, addr, node1, root1, t.TempDir(), config)
	fixtureAgent(t, addr, node2, root2, t.TempDir(), config)
	eventually(t, 30*time.Second, "both nodes connected", func() error {
		var ns []node
		if err := ctlJSON(t, addr, &ns, "nodes"); err != nil {
			return err
		}
		n := 0
		for _, nd := range ns {
			if nd.Connected {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d nodes connected", n)
		}
		return nil
	})

	appendKmsg(t, root1, 3, edacUE)
	var offline actionJSON
	eventually(t, 30*time.Second, "an offline action on the faulty node", func() error {
		as, err := listActions(t, addr, "--node", node1)
		if err != nil {
			return err
		}
		if len(as) != 1 {
			return fmt.Errorf("%d actions", len(as))
		}
		offline = as[0]
		return nil
	})
	if offline.Type != "ACTION_TYPE_OFFLINE" || offline.Rule != "memory-ue" || offline.RequestedBy != "policy:memory-ue" {
		t.Fatalf("action = %+v", offline)
	}
	// The runbook holds at wait-drained until the connections are gone.
	eventually(t, 20*time.Second, "load balancer weight 0", func() error {
		b, _ := os.ReadFile(filepath.Join(work, "lb-weight"))
		if strings.TrimSpace(string(b)) != "0" {
			return fmt.Errorf("weight %q", b)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(work, "service")); err == nil {
		t.Fatal("the service was stopped before its connections drained")
	}
	a, err := getAction(t, addr, offline.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != "ACTION_STATE_RUNNING" {
		t.Fatalf("while draining the action is %s, want RUNNING", a.State)
	}
	writeFile(t, work, "connections", "0\n")
	a = waitAction(t, addr, offline.ID, "ACTION_STATE_SUCCEEDED", 30*time.Second)

	want := []string{"lb-weight-zero", "wait-drained", "stop-service", "mark-out"}
	order, _ := os.ReadFile(filepath.Join(work, "order"))
	if got := strings.Fields(string(order)); !slices.Equal(got, want) {
		t.Fatalf("steps ran as %v, want %v", got, want)
	}
	var names []string
	for i, s := range a.Steps {
		names = append(names, s.Name)
		if s.Index != i || s.ExitCode != 0 || s.Attempt != 1 || s.Output == "" {
			t.Errorf("step %d = %+v", i, s)
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("logged steps %v, want %v", names, want)
	}
	if !strings.Contains(a.Steps[1].Output, "connections drained") {
		t.Errorf("wait-drained output %q", a.Steps[1].Output)
	}
	var n1 struct {
		Node struct {
			ServiceState string `json:"service_state"`
		} `json:"node"`
	}
	if err := ctlJSON(t, addr, &n1, "node", node1); err != nil {
		t.Fatal(err)
	}
	if n1.Node.ServiceState != "SERVICE_STATE_OFFLINE" {
		t.Fatalf("service state %s, want OFFLINE", n1.Node.ServiceState)
	}
	kinds := auditKinds(t, addr, offline.ID)
	if steps := countOf(kinds, "action.step"); steps != 4 || kinds[0] != "action.created" || kinds[len(kinds)-1] != "action.succeeded" {
		t.Fatalf("audit of the action: %v", kinds)
	}

	// Repaired: an operator brings it back.
	on := remediate(t, addr, node1, "online", "DIMM replaced, ticket 4711")
	waitAction(t, addr, on, "ACTION_STATE_SUCCEEDED", 30*time.Second)
	if b, _ := os.ReadFile(filepath.Join(work, "lb-weight")); strings.TrimSpace(string(b)) != "100" {
		t.Fatalf("lb weight after online %q", b)
	}
	if err := ctlJSON(t, addr, &n1, "node", node1); err != nil {
		t.Fatal(err)
	}
	if n1.Node.ServiceState != "SERVICE_STATE_IN_SERVICE" {
		t.Fatalf("service state after online %s", n1.Node.ServiceState)
	}
	// The fault is still open, but the operator acted after its evidence:
	// automation leaves the node alone.
	time.Sleep(time.Second)
	if as, _ := listActions(t, addr, "--node", node1); len(as) != 2 {
		t.Fatalf("%d actions on %s after the operator's online, want 2", len(as), node1)
	}
	if as, _ := listActions(t, addr, "--node", node2); len(as) != 0 {
		t.Fatalf("the healthy node has actions: %+v", as)
	}
	auditVerify(t, addr)
}

func countOf(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// TestAgentGuardRefusesRebootLoop asks the agent to reboot its node again
// and again, as a collector gone wrong might: the agent reboots twice,
// each reboot confirmed by the node's new boot id, and refuses the third
// (its guard allows two in 24 h), running nothing.
func TestAgentGuardRefusesRebootLoop(t *testing.T) {
	addr := freeAddr(t)
	remediationCollector(t, addr, t.TempDir(), `
limits:
  max_out_of_service: 100%
manual:
  reboot: auto
`)
	work := t.TempDir()
	root := fixtureRoot(t, "boot-0")
	state := t.TempDir()
	nodeName := "loop-" + randomID(t, 3)
	// The reboot command plays the node going down: it records itself,
	// gives the fixture a new boot id and stops the agent as shutdown
	// would; the test then starts the agent again, as boot would.
	config := fmt.Sprintf(`remediation:
  allow: [reboot]
  reboot:
    method: command
    command: ["/bin/sh", "-c", "echo $HWHEAL_ACTION_ID >> %[1]s/reboots; echo boot-$HWHEAL_ACTION_ID > %[2]s; kill -TERM $PPID"]
    max: 2
    window: 24h
`, work, bootIDPath(root))
	agentUp := func() *proc { return fixtureAgent(t, addr, nodeName, root, state, config) }
	agent := agentUp()
	eventually(t, 30*time.Second, "node connected", func() error {
		var n struct{ Node *node }
		if err := ctlJSON(t, addr, &n, "node", nodeName); err != nil {
			return err
		}
		if !n.Node.Connected {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	for i := range 2 {
		id := remediate(t, addr, nodeName, "reboot", fmt.Sprintf("collector gone wrong, reboot %d", i+1))
		select {
		case <-agent.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("reboot %d: the agent did not go down", i+1)
		}
		agent = agentUp()
		a := waitAction(t, addr, id, "ACTION_STATE_SUCCEEDED", 30*time.Second)
		if !strings.Contains(a.Result, "boot-"+id) {
			t.Fatalf("reboot %d result %q, want the new boot id", i+1, a.Result)
		}
	}
	id := remediate(t, addr, nodeName, "reboot", "collector gone wrong, reboot 3")
	a := waitAction(t, addr, id, "ACTION_STATE_REFUSED", 30*time.Second)
	if !strings.Contains(a.Result, "reboot loop") {
		t.Fatalf("refusal %q", a.Result)
	}
	b, _ := os.ReadFile(filepath.Join(work, "reboots"))
	if n := len(strings.Fields(string(b))); n != 2 {
		t.Fatalf("the reboot command ran %d times, want 2", n)
	}
	select {
	case <-agent.done:
		t.Fatal("the agent went down on the refused reboot")
	default:
	}
	auditVerify(t, addr)
}
