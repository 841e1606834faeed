package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestExactlyOnce kills the collector with SIGKILL again and again while
// actions are being dispatched and their results are coming back, and
// checks that every approved action ran exactly once on its own node: none
// lost, none run twice, none left in flight, each dispatched and finished
// once in the audit log, and the audit chain unbroken.
//
// Four agents each get six migrates, which the planner sends one at a time
// per node; each migrate is a runbook of two short steps that append a
// line to the node's run file, so the files say what ran, how often and
// where, whatever the collector believes.
func TestExactlyOnce(t *testing.T) {
	const (
		nodes   = 4
		perNode = 6
	)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)

	addr := freeAddr(t)
	colState := t.TempDir()
	// Operators' migrates need no approval, and no limit holds any back.
	const policy = `
limits:
  max_out_of_service: 100%
manual:
  migrate: auto
`
	col := remediationCollector(t, addr, colState, policy)
	waitListening(t, addr)

	runs := t.TempDir()
	names := make([]string, nodes)
	runFile := map[string]string{}
	for i := range names {
		names[i] = fmt.Sprintf("once-%d-%s", i, randomID(t, 3))
		runFile[names[i]] = filepath.Join(runs, names[i]+".runs")
		// Each step appends "id node step attempt" to the node's file;
		// the runbook's PATH is minimal, so only sh builtins and sleep.
		record := fmt.Sprintf(`echo "$HWHEAL_ACTION_ID $HWHEAL_NODE $HWHEAL_STEP $HWHEAL_ATTEMPT" >> %s`, runFile[names[i]])
		config := fmt.Sprintf(`remediation:
  allow: [migrate]
  migrate:
    - name: begin
      run: ["/bin/sh", "-c", %q]
      timeout: 30s
    - name: end
      run: ["/bin/sh", "-c", %q]
      timeout: 30s
`, record+"; sleep 0.2", "sleep 0.2; "+record)
		fixtureAgent(t, addr, names[i], fixtureRoot(t, "boot-"+names[i]), t.TempDir(), config)
	}
	eventually(t, 30*time.Second, "every agent connected", func() error {
		var ns []node
		if err := ctlJSON(t, addr, &ns, "nodes"); err != nil {
			return err
		}
		connected := 0
		for _, n := range ns {
			if n.Connected {
				connected++
			}
		}
		if connected != nodes {
			return fmt.Errorf("%d of %d nodes connected", connected, nodes)
		}
		return nil
	})

	// What the collector and the nodes say, for a failure to show.
	defer func() {
		if !t.Failed() {
			return
		}
		out, err := ctl(t, addr, "actions")
		t.Logf("--- hwhealctl actions (err %v) ---\n%s", err, out)
		for _, n := range names {
			b, _ := os.ReadFile(runFile[n])
			t.Logf("--- %s ---\n%s", filepath.Base(runFile[n]), b)
		}
	}()

	nodeOf := map[string]string{}
	var ids []string
	for range perNode {
		for _, n := range names {
			id := remediate(t, addr, n, "migrate", "exactly-once test")
			nodeOf[id] = n
			ids = append(ids, id)
		}
	}
	total := len(ids)

	// finished counts the runs that reached their last step on the agents.
	finished := func() int {
		c := 0
		for _, n := range names {
			b, _ := os.ReadFile(runFile[n])
			c += strings.Count(string(b), " end ")
		}
		return c
	}
	eventually(t, 30*time.Second, "a first action to finish", func() error {
		if finished() == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})

	// SIGKILL, restart on the same address and state, let it serve for
	// a random while, again.
	kills := 4 + rng.IntN(2)
	midFlight := 0
	began := time.Now()
	for k := 1; k <= kills; k++ {
		done := finished()
		col.kill()
		if done < total {
			midFlight++
		}
		t.Logf("%5.2fs kill %d of %d: %d of %d actions had run to their end on the agents",
			time.Since(began).Seconds(), k, kills, done, total)
		col = remediationCollector(t, addr, colState, policy)
		waitListening(t, addr)
		if k == kills {
			break
		}
		serve := 300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))
		t.Logf("%5.2fs restarted, serving %s", time.Since(began).Seconds(), serve)
		time.Sleep(serve)
	}
	if midFlight == 0 {
		t.Fatal("every action had run before the first kill: nothing was in flight to lose or run twice")
	}

	var actions []actionJSON
	eventually(t, 2*time.Minute, "every action final", func() error {
		var err error
		if actions, err = listActions(t, addr); err != nil {
			return err
		}
		open := 0
		for _, a := range actions {
			if !a.final() {
				open++
			}
		}
		if open > 0 || len(actions) < total {
			return fmt.Errorf("%d of %d actions not final", open+total-len(actions), total)
		}
		return nil
	})
	t.Logf("all %d actions final after %d kills (%d with work in flight)", total, kills, midFlight)

	// The collector: exactly the requested actions, each succeeded.
	var listed []string
	for _, a := range actions {
		listed = append(listed, a.ID)
		if a.State != "ACTION_STATE_SUCCEEDED" {
			t.Errorf("action %s on %s ended %s: %q", a.ID, a.Node, a.State, a.Result)
		}
		if want := nodeOf[a.ID]; a.Node != want {
			t.Errorf("action %s is on node %q, requested on %q", a.ID, a.Node, want)
		}
	}
	sort.Strings(listed)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(listed, want) {
		t.Fatalf("the collector lists actions %v, the test requested %v", listed, want)
	}
	if inFlight, err := listActions(t, addr, "--state", "dispatched,running"); err != nil {
		t.Fatal(err)
	} else if len(inFlight) > 0 {
		t.Fatalf("%d actions left in flight: %+v", len(inFlight), inFlight)
	}

	// The nodes: every action ran once, whole, on its own node, and
	// nothing else ran.
	for _, n := range names {
		b, err := os.ReadFile(runFile[n])
		if err != nil {
			t.Fatalf("node %s ran nothing: %v", n, err)
		}
		steps := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Errorf("%s: malformed line %q", n, line)
				continue
			}
			id, ranOn, step, attempt := f[0], f[1], f[2], f[3]
			switch {
			case nodeOf[id] == "":
				t.Errorf("%s ran an action nobody requested: %q", n, line)
			case nodeOf[id] != n || ranOn != n:
				t.Errorf("%s ran action %s of node %s: %q", n, id, nodeOf[id], line)
			case attempt != "1":
				t.Errorf("%s: step retried: %q", n, line)
			}
			steps[id] = append(steps[id], step)
		}
		for id, on := range nodeOf {
			if on != n {
				continue
			}
			if got := steps[id]; !slices.Equal(got, []string{"begin", "end"}) {
				t.Errorf("action %s ran steps %v on %s, want [begin end] once", id, got, n)
			}
		}
	}

	// The audit log: each action created, dispatched, run and finished
	// once, in that order, and the chain holds.
	for _, id := range ids {
		kinds := auditKinds(t, addr, id)
		if err := onceInOrder(kinds, "action.created", "action.dispatched", "action.running", "action.succeeded"); err != nil {
			t.Errorf("audit of action %s: %v: %v", id, err, kinds)
		}
		if n := countKind(kinds, "action.step"); n != 2 {
			t.Errorf("audit of action %s: %d step records, want 2: %v", id, n, kinds)
		}
		if i, j := slices.Index(kinds, "action.running"), slices.Index(kinds, "action.succeeded"); i >= 0 && j >= 0 &&
			countKind(kinds[i:j], "action.step") != 2 {
			t.Errorf("audit of action %s: steps not between running and succeeded: %v", id, kinds)
		}
	}
	t.Log(strings.TrimSpace(auditVerify(t, addr)))
}

// onceInOrder checks that each of want appears exactly once in kinds, in
// that order.
func onceInOrder(kinds []string, want ...string) error {
	last := -1
	for _, w := range want {
		if n := countKind(kinds, w); n != 1 {
			return fmt.Errorf("%s %d times, want once", w, n)
		}
		i := slices.Index(kinds, w)
		if i < last {
			return fmt.Errorf("%s out of order", w)
		}
		last = i
	}
	return nil
}

// countKind is how many times kind appears in kinds.
func countKind(kinds []string, kind string) int {
	n := 0
	for _, k := range kinds {
		if k == kind {
			n++
		}
	}
	return n
}

// waitListening waits until something accepts connections on addr: a
// restarted collector is serving again.
func waitListening(t testing.TB, addr string) {
	t.Helper()
	eventually(t, 20*time.Second, "collector listening on "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}
