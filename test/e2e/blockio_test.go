package e2e

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hwheal/hwheal/test/bench"
	"github.com/hwheal/hwheal/test/faultinject"
)

// agentMetric reads one unlabelled counter from the agent's /metrics.
func agentMetric(t *testing.T, addr, name string) (float64, error) {
	m, _, err := bench.Fetch(t.Context(), nil, "http://"+addr+"/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("no %s in the agent's metrics", name)
	}
	return v, nil
}

// TestFailedBlockRequestsReportedOnce makes a disk fail for real: a loop
// device over a FUSE file that returns EIO at chosen sectors. Each failed
// read is seen twice on the node, by the agent's eBPF block source and in
// the kernel's log line; the agent reports each once, merged, with its
// sector.
func TestFailedBlockRequestsReportedOnce(t *testing.T) {
	requireRoot(t)
	if err := faultinject.Requirements(); err != nil {
		t.Skipf("faulty disk unavailable: %v", err)
	}
	// The disk first: NewDisk waits until no other test on the host has a
	// failing disk, so every failed request the agent sees from now on is
	// this test's.
	bad := []int64{8192, 16384, 24576, 32768} // sectors
	cfg := faultinject.FileConfig{Size: 64 << 20}
	for _, s := range bad {
		cfg.Bad = append(cfg.Bad, faultinject.Sectors(s, 8))
	}
	disk := faultinject.NewDisk(t, cfg)

	agentState := t.TempDir()
	resumeAfterHistory(t, agentState)
	kmsg, err := faultinject.OpenKmsg()
	if err != nil {
		t.Fatal(err)
	}
	defer kmsg.Close()

	addr, metrics := freeAddr(t), freeAddr(t)
	nodeName := "e2e-blk-" + randomID(t, 4)
	start(t, "hwheal-collector", "--insecure", "--listen", addr, "--state-dir", t.TempDir())
	agent := start(t, "hwheal-agent", "--insecure", "--collector", addr, "--node", nodeName, "--state-dir", agentState,
		"--metrics-listen", metrics, "--disable", "smart", "--log-level", "debug")
	eventually(t, 30*time.Second, "the agent traces block I/O", func() error {
		if out := agent.output(); !strings.Contains(out, "tracing block I/O") {
			if strings.Contains(out, "eBPF block I/O tracing unavailable") {
				t.Skipf("eBPF unavailable here: %s", tail(out, 3))
			}
			return errors.New("not yet")
		}
		return nil
	})
	merged0, err := agentMetric(t, metrics, "hwheal_agent_faults_merged_total")
	if err != nil {
		t.Fatal(err)
	}
	type loopRecord struct {
		Count    int64  `json:"count,string"`
		Rule     string `json:"rule"`
		Evidence struct {
			Captures map[string]string `json:"captures"`
		} `json:"evidence"`
		Part struct {
			Name string `json:"name"`
		} `json:"part"`
	}
	// loopFault is the node's open disk.io_error fault on this test's loop
	// device: one record that counts every report.
	loopFault := func() (loopRecord, error) {
		var faults []loopRecord
		if err := ctlJSON(t, addr, &faults, "faults", "--node", nodeName, "--class", "disk.io_error"); err != nil {
			return loopRecord{}, err
		}
		for _, f := range faults {
			if f.Part.Name == disk.Loop.Name {
				return f, nil
			}
		}
		return loopRecord{}, nil
	}
	before, err := loopFault()
	if err != nil {
		t.Fatal(err)
	}
	count0 := before.Count

	if _, err := disk.ReadAt(0, 4096); err != nil {
		t.Fatalf("a good sector fails: %v", err)
	}
	for _, s := range bad {
		if _, err := disk.ReadAt(s*512, 4096); !errors.Is(err, syscall.EIO) {
			t.Fatalf("read of bad sector %d: %v, want EIO", s, err)
		}
	}
	// The kernel rate-limits its I/O error lines (10 per 5 s for every
	// disk together): count the lines it printed for ours, each of which
	// must be merged with its eBPF twin.
	var printed int
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && printed < len(bad) {
		recs, err := kmsg.Read()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if strings.Contains(r.Message, "I/O error, dev "+disk.Loop.Name+", sector ") {
				printed++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d failed reads, %d printed by the kernel", len(bad), printed)

	last := strconv.FormatInt(bad[len(bad)-1], 10)
	eventually(t, 20*time.Second, "one fault report per failed request", func() error {
		f, err := loopFault()
		if err != nil {
			return err
		}
		if got := f.Count - count0; got != int64(len(bad)) {
			return fmt.Errorf("%d reports of failed requests on %s, want %d", got, disk.Loop.Name, len(bad))
		}
		if f.Evidence.Captures["sector"] != last {
			return fmt.Errorf("latest report %s with captures %v, want sector %s", f.Rule, f.Evidence.Captures, last)
		}
		merged, err := agentMetric(t, metrics, "hwheal_agent_faults_merged_total")
		if err != nil {
			return err
		}
		if int(merged-merged0) != printed {
			return fmt.Errorf("%v merged, want %d (one per line the kernel printed)", merged-merged0, printed)
		}
		return nil
	})
}
