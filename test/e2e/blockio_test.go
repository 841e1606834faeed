package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hwheal/hwheal/test/faultinject"
)

// agentMetric reads one unlabelled counter from the agent's /metrics.
func agentMetric(t *testing.T, addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in the agent's metrics", name)
}

// TestFailedBlockRequestsReportedOnce makes a disk fail for real: a loop
// device over a FUSE file that returns EIO at chosen sectors. Each failed
// read is seen twice on the node, by the agent's eBPF block source and in
// the kernel's log line; the agent reports each once, merged, with its
// sector, and the collector counts exactly the failed requests.
func TestFailedBlockRequestsReportedOnce(t *testing.T) {
	requireRoot(t)
	if err := faultinject.Requirements(); err != nil {
		t.Skipf("faulty disk unavailable: %v", err)
	}
	addr, metrics := freeAddr(t), freeAddr(t)
	nodeName := "e2e-blk-" + randomID(t, 4)
	start(t, "hwheal-collector", "--insecure", "--listen", addr, "--state-dir", t.TempDir())
	agent := start(t, "hwheal-agent", "--insecure", "--collector", addr, "--node", nodeName, "--state-dir", t.TempDir(),
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

	bad := []int64{8192, 16384, 24576, 32768} // sectors
	cfg := faultinject.FileConfig{Size: 64 << 20}
	for _, s := range bad {
		cfg.Bad = append(cfg.Bad, faultinject.Sectors(s, 8))
	}
	disk := faultinject.NewDisk(t, cfg)
	kmsg, err := faultinject.OpenKmsg()
	if err != nil {
		t.Fatal(err)
	}
	defer kmsg.Close()

	if _, err := disk.ReadAt(0, 4096); err != nil {
		t.Fatalf("a good sector fails: %v", err)
	}
	for _, s := range bad {
		if _, err := disk.ReadAt(s*512, 4096); !errors.Is(err, syscall.EIO) {
			t.Fatalf("read of bad sector %d: %v, want EIO", s, err)
		}
	}
	// The kernel rate-limits its I/O error lines (10 per 5 s for every
	// disk together), and other tests may fail requests at the same time:
	// count the lines it printed for ours, each of which must be merged.
	var printed int
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := kmsg.Read()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if strings.Contains(r.Message, "I/O error, dev "+disk.Loop.Name+", sector ") {
				printed++
			}
		}
		if printed == len(bad) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d failed reads, %d printed by the kernel", len(bad), printed)

	eventually(t, 20*time.Second, "one fault per failed request", func() error {
		var faults []fault
		if err := ctlJSON(t, addr, &faults, "faults", "--node", nodeName, "--class", "disk.io_error"); err != nil {
			return err
		}
		var ours []fault
		for _, f := range faults {
			if f.Part.Name == disk.Loop.Name {
				ours = append(ours, f)
			}
		}
		if len(ours) != 1 || ours[0].Count.String() != strconv.Itoa(len(bad)) {
			return fmt.Errorf("faults on %s: %+v, want one counted %d times", disk.Loop.Name, ours, len(bad))
		}
		merged, err := agentMetric(t, metrics, "hwheal_agent_faults_merged_total")
		if err != nil {
			return err
		}
		alone, err := agentMetric(t, metrics, "hwheal_agent_faults_merge_alone_total")
		if err != nil {
			return err
		}
		if int(merged) != printed || int(merged+alone) != len(bad) {
			return fmt.Errorf("merged %v, alone %v; want %d merged (the kernel's lines) of %d", merged, alone, printed, len(bad))
		}
		last := fmt.Sprintf("sector %d", bad[len(bad)-1])
		if printed == len(bad) && !strings.Contains(ours[0].Evidence.KernelLog.Message, last) {
			return fmt.Errorf("latest evidence %q, want the kernel's line of %s", ours[0].Evidence.KernelLog.Message, last)
		}
		return nil
	})
}
