package actuate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

// childEnv, set to a directory, makes the test binary run childMain: an
// actuator in a process of its own that the test can SIGKILL.
const childEnv = "HWHEAL_ACTUATE_CHILD"

const killedID = "act-killed"

// childMain runs an actuator on DIR/state whose offline runbook records
// each run in DIR/runs and then sleeps; it spools updates to
// DIR/updates.jsonl (fsynced, like the agent's spool). It delivers the
// offline order killedID, then an online order as a marker, and exits
// once the marker's final update is spooled: everything before it in the
// queue has been handled.
func childMain() int {
	dir := os.Getenv(childEnv)
	var mu sync.Mutex
	out, err := os.OpenFile(filepath.Join(dir, "updates.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer out.Close()
	marker := "marker-" + strconv.Itoa(os.Getpid())
	markerDone := make(chan struct{})
	report := func(u *hwhealv1.ActionUpdate) error {
		b, err := protojson.Marshal(u)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := out.Write(append(b, '\n')); err != nil {
			return err
		}
		if u.GetActionId() == marker && isFinal(u) {
			close(markerDone)
		}
		return nil
	}
	runs := filepath.Join(dir, "runs")
	a, err := New(Config{
		StateDir: filepath.Join(dir, "state"), Node: "node-1", BootID: "boot-a",
		Allow: []hwhealv1.ActionType{action.Offline, action.Online},
		Executors: map[hwhealv1.ActionType]executor.Executor{
			action.Offline: &executor.Runbook{Steps: []executor.Step{
				{Name: "drain", Run: sh(`echo run >> ` + runs + `; echo $$ > ` + filepath.Join(dir, "pid") + `; exec sleep 60`), Timeout: time.Minute},
			}},
			action.Online: &executor.Runbook{Steps: []executor.Step{{Name: "noop", Run: []string{"true"}}}},
		},
		Report: report, Sync: out.Sync,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go a.Run(ctx)
	a.Deliver(offline(killedID))
	a.Deliver(&hwhealv1.ActionOrder{Id: marker, Type: action.Online})
	select {
	case <-markerDone:
		return 0
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "marker never finished")
		return 3
	}
}

func startChild(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func readUpdates(t *testing.T, dir string) []*hwhealv1.ActionUpdate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "updates.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*hwhealv1.ActionUpdate
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		u := &hwhealv1.ActionUpdate{}
		if err := protojson.Unmarshal(sc.Bytes(), u); err != nil {
			t.Fatalf("update %q: %v", sc.Bytes(), err)
		}
		out = append(out, u)
	}
	return out
}

// TestKillMidStep: an actuator SIGKILLed while a step runs is restarted
// on the same state directory: it reports the action FAILED "interrupted"
// exactly once, and never runs the step again, neither then nor when the
// order is delivered again, nor at a third start.
func TestKillMidStep(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")

	first := startChild(t, dir)
	waitFile(t, filepath.Join(dir, "pid"))
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	// The step's process group is an orphan now (a real agent runs under
	// systemd, which kills its cgroup); clean it up.
	pid, err := strconv.Atoi(lines(t, filepath.Join(dir, "pid"))[0])
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	if got := lines(t, runs); len(got) != 1 {
		t.Fatalf("step ran %d times before the kill, want 1", len(got))
	}
	var before int
	for _, u := range readUpdates(t, dir) {
		if u.GetActionId() == killedID {
			before++
			if isFinal(u) {
				t.Fatalf("final update %v before the kill", u)
			}
		}
	}
	if before == 0 {
		t.Fatal("no RUNNING update before the kill")
	}

	for i := range 2 { // the restart, then one more
		c := startChild(t, dir)
		if err := c.Wait(); err != nil {
			t.Fatalf("start %d: %v", i+2, err)
		}
	}
	if got := lines(t, runs); len(got) != 1 {
		t.Fatalf("step ran %d times in all, want 1", len(got))
	}
	var finals []*hwhealv1.ActionUpdate
	for _, u := range readUpdates(t, dir) {
		if u.GetActionId() == killedID && isFinal(u) {
			finals = append(finals, u)
		}
	}
	if len(finals) != 1 {
		t.Fatalf("%d final updates for the killed action, want 1: %v", len(finals), finals)
	}
	if f := finals[0]; f.GetOutcome() != hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED ||
		f.GetMessage() != "interrupted by an agent restart; not run again" {
		t.Fatalf("final update %v", f)
	}
}
