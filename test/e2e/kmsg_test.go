package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// ioErrorLine is a real-format block-layer error record, written as user
// space writes to /dev/kmsg (<3> reads back as priority 11: user facility,
// level err).
func ioErrorLine(dev string, sector int) string {
	return fmt.Sprintf("<3>blk_update_request: I/O error, dev %s, sector %d op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0\n", dev, sector)
}

// ourFaults lists the node's disk.io_error faults on devices with prefix.
func ourFaults(t *testing.T, addr, nodeName, prefix string) (map[string]fault, error) {
	var faults []fault
	if err := ctlJSON(t, addr, &faults, "faults", "--node", nodeName, "--class", "disk.io_error"); err != nil {
		return nil, err
	}
	got := map[string]fault{}
	for _, f := range faults {
		if strings.HasPrefix(f.Part.Name, prefix) {
			if _, dup := got[f.Part.Name]; dup {
				return nil, fmt.Errorf("two open faults for %s", f.Part.Name)
			}
			got[f.Part.Name] = f
		}
	}
	return got, nil
}

// TestKmsgFaultSurvivesCollectorAndAgentRestarts is the healing loop's
// first path end to end: a kernel record written into the real /dev/kmsg
// becomes a fault the CLI shows; records written while the collector is
// dead (SIGKILL) arrive once it is back; restarting the agent doubles
// nothing.
func TestKmsgFaultSurvivesCollectorAndAgentRestarts(t *testing.T) {
	requireRoot(t)
	enableDevkmsg(t)

	addr := freeAddr(t)
	colState := t.TempDir()
	agentState := t.TempDir()
	resumeAfterHistory(t, agentState)
	nodeName := "e2e-" + randomID(t, 4)
	prefix := "sd" + randomLetters(t, 5) // unique device names for this run

	collectorArgs := []string{"--insecure", "--listen", addr, "--state-dir", colState, "--log-level", "debug"}
	agentArgs := []string{"--insecure", "--collector", addr, "--node", nodeName, "--state-dir", agentState,
		"--label", "rack=r1", "--label", "zone=z1", "--interval", "diskstats=1s,netdev=1s", "--log-level", "debug"}

	col := start(t, "hwheal-collector", collectorArgs...)
	agent := start(t, "hwheal-agent", agentArgs...)

	eventually(t, 30*time.Second, "node registers", func() error {
		var n node
		if err := ctlJSON(t, addr, &struct{ Node *node }{&n}, "node", nodeName); err != nil {
			return err
		}
		if !n.Connected || n.Labels["rack"] != "r1" {
			return fmt.Errorf("node %+v", n)
		}
		return nil
	})

	// 1. A record in the live kernel log becomes a queryable fault.
	first := prefix + "a"
	writeKmsg(t, ioErrorLine(first, 4242))
	eventually(t, 20*time.Second, "first fault queryable", func() error {
		got, err := ourFaults(t, addr, nodeName, prefix)
		if err != nil {
			return err
		}
		f, ok := got[first]
		if !ok {
			return fmt.Errorf("no fault for %s yet", first)
		}
		if f.Severity != "SEVERITY_CRITICAL" || f.Count.String() != "1" || f.Part.Kind != "PART_KIND_DISK" {
			return fmt.Errorf("fault %+v", f)
		}
		if f.Evidence.KernelLog.Facility != 1 || f.Evidence.KernelLog.Level != 3 {
			return fmt.Errorf("evidence facility/level = %d/%d, want 1/3 (user space write)", f.Evidence.KernelLog.Facility, f.Evidence.KernelLog.Level)
		}
		if !strings.Contains(f.Evidence.KernelLog.Message, "sector 4242") {
			return fmt.Errorf("evidence %q", f.Evidence.KernelLog.Message)
		}
		return nil
	})

	// 2. The collector dies without warning; the agent buffers what it
	// sees meanwhile and replays it when the collector is back.
	col.kill()
	var whileDown []string
	for i := range 10 {
		dev := prefix + string(rune('b'+i))
		whileDown = append(whileDown, dev)
		writeKmsg(t, ioErrorLine(dev, 1000+i))
	}
	time.Sleep(500 * time.Millisecond) // let the agent spool them while the collector is down
	col = start(t, "hwheal-collector", collectorArgs...)
	want := append([]string{first}, whileDown...)
	checkExactlyOnce := func() error {
		got, err := ourFaults(t, addr, nodeName, prefix)
		if err != nil {
			return err
		}
		for _, dev := range want {
			f, ok := got[dev]
			if !ok {
				return fmt.Errorf("fault for %s missing (have %d of %d)", dev, len(got), len(want))
			}
			if f.Count.String() != "1" {
				return fmt.Errorf("fault for %s counted %s times, want 1", dev, f.Count)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("%d faults, want %d", len(got), len(want))
		}
		return nil
	}
	eventually(t, 60*time.Second, "faults written while the collector was down arrive once", checkExactlyOnce)

	// 3. Restarting the agent re-reads nothing it already reported: its
	// kmsg cursor and spool survive, so counts stay at one.
	agent.stop()
	agent = start(t, "hwheal-agent", agentArgs...)
	last := prefix + "z"
	writeKmsg(t, ioErrorLine(last, 9999))
	want = append(want, last)
	eventually(t, 30*time.Second, "after an agent restart, new faults arrive and old ones are not doubled", checkExactlyOnce)

	// 3b. SIGKILL the agent right after it spooled a fault, before its
	// kmsg cursor (saved at most once a second) covers it: the restarted
	// agent reads the record again, and the collector must count it once
	// (it knows the record by boot id and kernel sequence).
	for i, dev := range []string{prefix + "q", prefix + "r"} {
		writeKmsg(t, ioErrorLine(dev, 7000+i))
		want = append(want, dev)
		time.Sleep(200 * time.Millisecond)
	}
	eventually(t, 20*time.Second, "faults before the agent is killed", checkExactlyOnce)
	agent.kill()
	agent = start(t, "hwheal-agent", agentArgs...)
	after := prefix + "s"
	writeKmsg(t, ioErrorLine(after, 7100))
	want = append(want, after)
	eventually(t, 30*time.Second, "after an agent SIGKILL, re-read records are not counted twice", checkExactlyOnce)

	// 4. SIGKILL the collector in the middle of a burst: some batches are
	// stored but never acknowledged, so the agent replays them and the
	// store must drop what it already holds.
	burst := prefix + "burst"
	var lines []string
	for i := range 300 {
		lines = append(lines, ioErrorLine(fmt.Sprintf("%s%c%c", burst, 'a'+i/26, 'a'+i%26), i))
	}
	writeKmsg(t, lines[:150]...)
	col.kill()
	writeKmsg(t, lines[150:]...)
	col = start(t, "hwheal-collector", collectorArgs...)
	for i := range 300 {
		want = append(want, fmt.Sprintf("%s%c%c", burst, 'a'+i/26, 'a'+i%26))
	}
	eventually(t, 60*time.Second, "a burst cut by SIGKILL arrives exactly once", checkExactlyOnce)

	// The node is faulty (critical faults open) and shows it.
	var n node
	if err := ctlJSON(t, addr, &struct{ Node *node }{&n}, "node", nodeName); err != nil {
		t.Fatal(err)
	}
	if n.Health != "NODE_HEALTH_FAULTY" {
		t.Fatalf("node health %q, want NODE_HEALTH_FAULTY", n.Health)
	}

	// A graceful stop of both ends cleanly.
	agent.stop()
	col.stop()
	if out := col.output(); !strings.Contains(out, "collector stopped") {
		t.Fatalf("collector did not log a clean stop:\n%s", tail(out, 20))
	}
}

// TestBinariesRefusePlaintextWithoutInsecure: until mutual TLS is in,
// plaintext must be asked for by name.
func TestBinariesRefusePlaintextWithoutInsecure(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		args []string
	}{
		{"hwheal-collector", []string{"--state-dir", t.TempDir(), "--listen", "127.0.0.1:0"}},
		{"hwheal-agent", []string{"--state-dir", t.TempDir(), "--collector", "127.0.0.1:1"}},
		{"hwhealctl", []string{"--collector", "127.0.0.1:1", "nodes"}},
	} {
		t.Run(tc.bin, func(t *testing.T) {
			p := start(t, tc.bin, tc.args...)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s kept running without --insecure", tc.bin)
			}
			if p.cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("%s exited 0 without --insecure", tc.bin)
			}
			if out := p.output(); !strings.Contains(out, "--insecure") {
				t.Fatalf("%s's error does not say how to proceed: %s", tc.bin, out)
			}
		})
	}
}
