package actuate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

const (
	running   = hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING
	succeeded = hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED
	failed    = hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED
	refused   = hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED
)

func drainSteps(log string) []executor.Step {
	return []executor.Step{
		{Name: "lb-weight-zero", Run: sh(`echo "$HWHEAL_STEP" >> ` + log + `; echo "weight of $HWHEAL_NODE set to 0"`), Timeout: 10 * time.Second, Retries: 2},
		{Name: "wait-drained", Run: sh(`echo "$HWHEAL_STEP" >> ` + log + `; echo "0 connections left"`), Timeout: 10 * time.Second},
		{Name: "remove-from-service", Run: sh(`echo "$HWHEAL_STEP" >> ` + log + `; echo "removed ($HWHEAL_ACTION_ID: $HWHEAL_REASON)"`), Timeout: 10 * time.Second},
	}
}

// TestDrainRunbook: an offline order runs the drain runbook's steps in
// order; the collector is told RUNNING, then each step with its exit code
// and output, then SUCCEEDED; the ledger holds its start and its end.
func TestDrainRunbook(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	log := filepath.Join(work, "log")
	s := newSink()
	a, stop := start(t, baseConfig(t, dir, s, drainSteps(log)...))
	a.Deliver(offline("act-1"))
	if f := s.final(t, "act-1"); f.GetOutcome() != succeeded || f.GetBootId() != "boot-a" || f.GetDryRun() {
		t.Fatalf("final update %v, want SUCCEEDED in boot-a", f)
	}
	if got := lines(t, log); !slices.Equal(got, []string{"lb-weight-zero", "wait-drained", "remove-from-service"}) {
		t.Fatalf("ran %v, want the drain steps in order", got)
	}
	us := s.of("act-1")
	if us[0].GetOutcome() != running || len(us[0].GetSteps()) != 0 {
		t.Fatalf("first update %v, want RUNNING before any step", us[0])
	}
	wantOut := []string{"weight of node-1 set to 0\n", "0 connections left\n", "removed (act-1: planned maintenance)\n"}
	steps := s.steps("act-1")
	if len(steps) != 3 {
		t.Fatalf("%d steps reported, want 3: %v", len(steps), steps)
	}
	for i, st := range steps {
		if int(st.GetIndex()) != i || st.GetExitCode() != 0 || st.GetOutput() != wantOut[i] || st.GetAttempt() != 1 {
			t.Errorf("step %d reported as %v", i, st)
		}
	}
	for _, u := range us[:len(us)-1] {
		if u.GetOutcome() != running {
			t.Fatalf("update %v before the final one is not RUNNING", u)
		}
	}
	stop() // the end is written to the ledger after the final update
	ll := ledgerLines(t, dir)
	if len(ll) != 2 || !strings.Contains(ll[0], `"event":"started"`) || !strings.Contains(ll[1], `"outcome":"succeeded"`) {
		t.Fatalf("ledger %v, want a start and an end", ll)
	}
	if c := a.Counts(); !slices.Equal(c, []Count{{Type: "offline", Outcome: "succeeded", N: 1}}) {
		t.Fatalf("counts %v", c)
	}
}

// TestFailingStepStopsRunbook: a step that still fails after its retries
// fails the action with a message naming it; the steps after it never
// run.
func TestFailingStepStopsRunbook(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	log := filepath.Join(work, "log")
	steps := drainSteps(log)
	steps[1].Run = sh(`echo "$HWHEAL_STEP" >> ` + log + `; echo "12 connections left"; exit 4`)
	steps[1].Retries, steps[1].RetryDelay = 1, 10*time.Millisecond
	s := newSink()
	a, _ := start(t, baseConfig(t, dir, s, steps...))
	a.Deliver(offline("act-2"))
	f := s.final(t, "act-2")
	if want := `step 1 "wait-drained" failed after 2 attempts: exit code 4`; f.GetOutcome() != failed || f.GetMessage() != want {
		t.Fatalf("final update %v, want FAILED %q", f, want)
	}
	if got := lines(t, log); !slices.Equal(got, []string{"lb-weight-zero", "wait-drained", "wait-drained"}) {
		t.Fatalf("ran %v", got)
	}
	st := s.steps("act-2")
	if len(st) != 3 || st[1].GetExitCode() != 4 || st[2].GetAttempt() != 2 || st[2].GetOutput() != "12 connections left\n" {
		t.Fatalf("steps %v", st)
	}
}

// TestNeverTwice: an order id runs once, whether it arrives twice at once,
// again after it finished, or again after the actuator restarted on the
// same state directory; the repeats report nothing.
func TestNeverTwice(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	runs := filepath.Join(work, "runs")
	s := newSink()
	cfg := baseConfig(t, dir, s, executor.Step{Name: "count", Run: sh(`echo "$HWHEAL_ACTION_ID" >> ` + runs + `; sleep 0.2`)})
	cfg.Allow = append(cfg.Allow, action.Online)
	cfg.Executors[action.Online] = &executor.Runbook{Steps: []executor.Step{{Name: "noop", Run: []string{"true"}}}}
	a, stop := start(t, cfg)
	a.Deliver(offline("act-3"))
	a.Deliver(offline("act-3")) // while queued or running
	s.final(t, "act-3")
	a.Deliver(offline("act-3")) // after it finished
	// Orders run one at a time, in order: once the marker ended, the
	// repeat was handled.
	a.Deliver(&hwhealv1.ActionOrder{Id: "marker-1", Type: action.Online})
	s.final(t, "marker-1")
	stop()

	a, _ = start(t, cfg)
	a.Deliver(offline("act-3"))
	a.Deliver(&hwhealv1.ActionOrder{Id: "marker-2", Type: action.Online})
	s.final(t, "marker-2")
	if got := lines(t, runs); !slices.Equal(got, []string{"act-3"}) {
		t.Fatalf("runs %v, want act-3 once", got)
	}
	if n := s.finals("act-3"); n != 1 {
		t.Fatalf("%d final updates for act-3, want 1", n)
	}
	if n := len(s.of("act-3")); n != 3 { // RUNNING, the step, SUCCEEDED
		t.Fatalf("%d updates for act-3, want 3: %v", n, s.of("act-3"))
	}
}

// TestGuardRefusesRebootLoop: with max 2 reboots in 24h, the third reboot
// the collector asks for is refused and nothing runs, also after a
// restart; once the window has passed a reboot runs again. The RUNNING
// update is synced before each reboot is asked for.
func TestGuardRefusesRebootLoop(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	events := filepath.Join(work, "events")
	s := newSink()
	s.events = events
	var clockMu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{
		StateDir: dir, Node: "node-1", BootID: "boot-a",
		Allow: []hwhealv1.ActionType{action.Reboot},
		Executors: map[hwhealv1.ActionType]executor.Executor{
			action.Reboot: &executor.Reboot{Method: executor.RebootCommand, Command: sh(`echo "reboot-$HWHEAL_ACTION_ID" >> ` + events)},
		},
		MaxReboots: 2, RebootWindow: 24 * time.Hour,
		Report: s.report, Sync: s.sync, Logger: testLogger(t),
		Now: func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now },
	}
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
	reboots := func() (out []string) {
		for _, l := range lines(t, events) {
			if strings.HasPrefix(l, "reboot-") {
				out = append(out, strings.TrimPrefix(l, "reboot-"))
			}
		}
		return out
	}

	a, stop := start(t, cfg)
	for _, id := range []string{"r1", "r2"} {
		a.Deliver(reboot(id, time.Second))
		// The node stays up (the command only writes a line): after the
		// order's timeout the reboot is reported as not having happened.
		f := s.final(t, id)
		if f.GetOutcome() != failed || !strings.Contains(f.GetMessage(), "still up") {
			t.Fatalf("%s: final %v", id, f)
		}
		if st := s.steps(id); len(st) != 1 || st[0].GetName() != "reboot" || st[0].GetExitCode() != 0 {
			t.Fatalf("%s: steps %v", id, st)
		}
		advance(time.Hour)
	}
	a.Deliver(reboot("r3", time.Second))
	f := s.final(t, "r3")
	if want := "local guard: 2 reboots started in the last 24h0m0s (max 2): refusing a reboot loop"; f.GetOutcome() != refused || f.GetMessage() != want {
		t.Fatalf("r3: final %v, want REFUSED %q", f, want)
	}
	if len(s.of("r3")) != 1 {
		t.Fatalf("r3: updates %v, want the refusal only", s.of("r3"))
	}
	stop()

	// Across a restart: the ledger remembers the reboots.
	a, stop = start(t, cfg)
	a.Deliver(reboot("r4", time.Second))
	if f := s.final(t, "r4"); f.GetOutcome() != refused {
		t.Fatalf("r4 after a restart: final %v, want REFUSED", f)
	}
	if got := reboots(); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("reboots asked for: %v, want r1 and r2 only", got)
	}
	// Each reboot was asked for after a sync that followed its RUNNING.
	ev := lines(t, events)
	for i, e := range ev {
		if strings.HasPrefix(e, "reboot-") && (i == 0 || ev[i-1] != "sync") {
			t.Fatalf("events %v: %s not preceded by a sync", ev, e)
		}
	}

	// 23 h after r1, r2 (started at +1h) is still in the window.
	advance(21 * time.Hour)
	a.Deliver(reboot("r5", time.Second))
	if f := s.final(t, "r5"); f.GetOutcome() != refused || !strings.Contains(f.GetMessage(), "2 reboots") {
		t.Fatalf("r5: final %v", f)
	}
	// Past r1's window one reboot is left.
	advance(90 * time.Minute)
	a.Deliver(reboot("r6", time.Second))
	if f := s.final(t, "r6"); f.GetOutcome() != failed || !strings.Contains(f.GetMessage(), "still up") {
		t.Fatalf("r6: final %v, want it run (and the node still up)", f)
	}
	stop()
	if got := reboots(); !slices.Equal(got, []string{"r1", "r2", "r6"}) {
		t.Fatalf("reboots asked for: %v", got)
	}
}

// TestGuardRefuses: an action type not in the allow-list and an order
// planned against another boot are refused with the reason, nothing runs,
// and a resend of the refused id reports nothing more. The refusal is
// synced before the ledger records it: once the ledger says finished, a
// resend reports nothing, so a refusal lost with the spool's unsynced
// tail would be lost for good.
func TestGuardRefuses(t *testing.T) {
	tests := []struct {
		name  string
		order *hwhealv1.ActionOrder
		want  string
	}{
		{name: "type not allowed", order: &hwhealv1.ActionOrder{Id: "m1", Type: action.Migrate},
			want: "local guard: migrate is not in this agent's allow-list"},
		{name: "reboot not allowed", order: reboot("rb1", time.Minute),
			want: "local guard: reboot is not in this agent's allow-list"},
		{name: "unknown type", order: &hwhealv1.ActionOrder{Id: "u1", Type: hwhealv1.ActionType(99)},
			want: "local guard: 99 is not in this agent's allow-list"},
		{name: "stale boot id", order: &hwhealv1.ActionOrder{Id: "o1", Type: action.Offline, BootId: "boot-z"},
			want: "the node rebooted since the action was planned (boot boot-z -> boot-a)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, work := t.TempDir(), t.TempDir()
			ran := filepath.Join(work, "ran")
			record := sh(`echo "$HWHEAL_ACTION_ID" >> ` + ran)
			s := newSink()
			cfg := baseConfig(t, dir, s, executor.Step{Name: "record", Run: record})
			cfg.Executors[action.Migrate] = &executor.Runbook{Steps: []executor.Step{{Name: "record", Run: record}}}
			cfg.Executors[action.Reboot] = &executor.Reboot{Method: executor.RebootCommand, Command: record}
			id := tt.order.GetId()
			// Written by Run's goroutine, read once stop has returned.
			var durableFirst, syncedAfterLedger bool
			s.onSync = func() {
				switch reported, inLedger := len(s.of(id)) == 1, ledgerFinished(dir, id); {
				case reported && !inLedger:
					durableFirst = true
				case inLedger:
					syncedAfterLedger = true
				}
			}
			a, stop := start(t, cfg)
			a.Deliver(tt.order)
			f := s.final(t, id)
			if f.GetOutcome() != refused || f.GetMessage() != tt.want {
				t.Fatalf("final %v, want REFUSED %q", f, tt.want)
			}
			stop()
			s.onSync = nil
			if !ledgerFinished(dir, id) {
				t.Fatal("the ledger does not record the refusal")
			}
			if !durableFirst {
				t.Fatalf("no sync between spooling the refusal and recording it in the ledger (a sync after it: %v)", syncedAfterLedger)
			}
			a, _ = start(t, cfg)
			a.Deliver(tt.order)
			a.Deliver(offline("marker"))
			s.final(t, "marker")
			if got := lines(t, ran); !slices.Equal(got, []string{"marker"}) {
				t.Fatalf("ran %v, want the marker only", got)
			}
			if n := len(s.of(tt.order.GetId())); n != 1 {
				t.Fatalf("%d updates for the refused order, want its one refusal", n)
			}
		})
	}
}

// TestRebootRecovery: a reboot asked for and followed by the agent's stop
// is confirmed at the next start by the changed boot id, once; one where
// the boot id did not change failed.
func TestRebootRecovery(t *testing.T) {
	tests := []struct {
		name, bootAfter string
		outcome         hwhealv1.ActionOutcome
		message         string
	}{
		{name: "rebooted", bootAfter: "boot-b", outcome: succeeded, message: "rebooted: boot id boot-a -> boot-b"},
		{name: "same boot", bootAfter: "boot-a", outcome: failed, message: "the agent restarted before the node rebooted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, work := t.TempDir(), t.TempDir()
			asked := filepath.Join(work, "asked")
			s := newSink()
			cfg := Config{
				StateDir: dir, Node: "node-1", BootID: "boot-a",
				Allow:     []hwhealv1.ActionType{action.Reboot},
				Executors: map[hwhealv1.ActionType]executor.Executor{action.Reboot: &executor.Reboot{Method: executor.RebootCommand, Command: sh(`echo x >> ` + asked)}},
				Report:    s.report, Sync: s.sync, Logger: testLogger(t),
			}
			a, stop := start(t, cfg)
			a.Deliver(reboot("r1", time.Hour))
			waitFile(t, asked)
			waitUntil(t, 10*time.Second, "the reboot step of r1 to be reported", func() bool { return len(s.steps("r1")) > 0 })
			stop() // what the reboot does to the agent
			if n := s.finals("r1"); n != 0 {
				t.Fatalf("%d final updates before the node came back", n)
			}

			cfg.BootID = tt.bootAfter
			_, stop = start(t, cfg)
			f := s.final(t, "r1")
			if f.GetOutcome() != tt.outcome || f.GetMessage() != tt.message || f.GetBootId() != tt.bootAfter {
				t.Fatalf("final %v, want %v %q", f, tt.outcome, tt.message)
			}
			stop()
			_, stop = start(t, cfg)
			stop()
			if n := s.finals("r1"); n != 1 {
				t.Fatalf("%d final updates, want 1", n)
			}
			if got := lines(t, asked); len(got) != 1 {
				t.Fatalf("reboot asked for %d times", len(got))
			}
		})
	}
}

// TestDryRun: an agent-wide dry run, and an order's dry_run, report the
// steps that would run with dry_run set and SUCCEEDED, and execute
// nothing; dry-run reboots do not count towards the reboot-loop guard.
func TestDryRun(t *testing.T) {
	for _, agentWide := range []bool{true, false} {
		t.Run("agent-wide="+strconv.FormatBool(agentWide), func(t *testing.T) {
			dir, work := t.TempDir(), t.TempDir()
			marker := filepath.Join(work, "ran")
			s := newSink()
			cfg := baseConfig(t, dir, s, drainSteps(marker)...)
			cfg.DryRun = agentWide
			cfg.Allow = append(cfg.Allow, action.Reboot)
			cfg.MaxReboots = 1
			cfg.Executors[action.Reboot] = &executor.Reboot{Method: executor.RebootCommand, Command: sh(`touch ` + marker)}
			a, _ := start(t, cfg)
			o := offline("d1")
			o.DryRun = !agentWide
			a.Deliver(o)
			f := s.final(t, "d1")
			if f.GetOutcome() != succeeded || !f.GetDryRun() || f.GetMessage() != "dry run: nothing was run" {
				t.Fatalf("final %v", f)
			}
			st := s.steps("d1")
			if len(st) != 3 {
				t.Fatalf("steps %v, want the three that would run", st)
			}
			for i, x := range st {
				if !x.GetDryRun() || x.GetName() != drainSteps("")[i].Name {
					t.Fatalf("step %v", x)
				}
			}
			for _, u := range s.of("d1") {
				if !u.GetDryRun() {
					t.Fatalf("update %v without dry_run", u)
				}
			}
			for _, id := range []string{"dr1", "dr2", "dr3"} {
				o := reboot(id, time.Minute)
				o.DryRun = !agentWide
				a.Deliver(o)
				if f := s.final(t, id); f.GetOutcome() != succeeded || !f.GetDryRun() {
					t.Fatalf("%s: final %v", id, f)
				}
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a dry run executed something")
			}
		})
	}
}

// TestDryRunWithoutRunbook: an agent-wide dry run may allow a type with
// no runbook; it says that nothing would run.
func TestDryRunWithoutRunbook(t *testing.T) {
	s := newSink()
	cfg := Config{StateDir: t.TempDir(), BootID: "boot-a", Allow: []hwhealv1.ActionType{action.Migrate}, DryRun: true,
		Report: s.report, Logger: testLogger(t)}
	a, _ := start(t, cfg)
	a.Deliver(&hwhealv1.ActionOrder{Id: "m1", Type: action.Migrate})
	if f := s.final(t, "m1"); f.GetOutcome() != succeeded || !f.GetDryRun() || !strings.Contains(f.GetMessage(), "no migrate executor") {
		t.Fatalf("final %v", f)
	}
	cfg.DryRun = false
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "no executor") {
		t.Fatalf("New without an executor for an allowed type: %v", err)
	}
}

// TestOrderTimeout: the order's timeout stops the runbook, kills the
// running step's process group, and fails the action naming the step.
func TestOrderTimeout(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	pidFile := filepath.Join(work, "pid")
	s := newSink()
	a, _ := start(t, baseConfig(t, dir, s, executor.Step{Name: "wait-drained", Run: sh(`sleep 1000 & echo $! > ` + pidFile + `; wait`), Timeout: time.Hour, Retries: 3}))
	o := offline("t1")
	o.Timeout = durationpb.New(2 * time.Second)
	a.Deliver(o)
	f := s.final(t, "t1")
	if f.GetOutcome() != failed || !strings.HasPrefix(f.GetMessage(), `timed out after 2s: step 0 "wait-drained" failed: killed`) {
		t.Fatalf("final %v", f)
	}
	if st := s.steps("t1"); len(st) != 1 || !st[0].GetTimedOut() || st[0].GetExitCode() != -1 {
		t.Fatalf("steps %v, want one timed-out attempt", st)
	}
	waitGone(t, pidFile)
}

// waitGone waits for the process whose pid is in pidFile to be gone.
func waitGone(t *testing.T, pidFile string) {
	t.Helper()
	pid, err := strconv.Atoi(lines(t, pidFile)[0])
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, fmt.Sprintf("process %d, started by the step, to be gone", pid), func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(b), ") Z ")
	})
}

// TestStopInterrupts: stopping the actuator mid-step kills the step and
// reports the action failed at once; the next start reports nothing more.
func TestStopInterrupts(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	pidFile := filepath.Join(work, "pid")
	s := newSink()
	cfg := baseConfig(t, dir, s, executor.Step{Name: "drain", Run: sh(`echo $$ > ` + pidFile + `; exec sleep 1000`)})
	a, stop := start(t, cfg)
	a.Deliver(offline("s1"))
	waitFile(t, pidFile)
	stop()
	f := s.final(t, "s1")
	if f.GetOutcome() != failed || !strings.HasPrefix(f.GetMessage(), "interrupted: the agent stopped; not run again") {
		t.Fatalf("final %v", f)
	}
	waitGone(t, pidFile)
	_, stop = start(t, cfg)
	stop()
	if n := s.finals("s1"); n != 1 {
		t.Fatalf("%d final updates, want 1", n)
	}
}

// TestDeliverNeverBlocks: Deliver returns at once while an action runs,
// and the queue is bounded.
func TestDeliverNeverBlocks(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	pidFile := filepath.Join(work, "pid")
	s := newSink()
	a, _ := start(t, baseConfig(t, dir, s, executor.Step{Name: "drain", Run: sh(`echo $$ > ` + pidFile + `; exec sleep 1000`)}))
	a.Deliver(offline("busy"))
	waitFile(t, pidFile)
	begin := time.Now()
	for i := range 2 * maxQueued {
		a.Deliver(offline("q" + strconv.Itoa(i)))
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("delivering %d orders took %s", 2*maxQueued, d)
	}
	a.mu.Lock()
	n := len(a.queue)
	a.mu.Unlock()
	if n != maxQueued {
		t.Fatalf("%d orders queued, want the bound %d", n, maxQueued)
	}
}

// TestLocked: one state directory, one actuator.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := newSink()
	start(t, baseConfig(t, dir, s))
	if _, err := New(baseConfig(t, dir, s)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second New: %v, want ErrLocked", err)
	}
}

func TestGuard(t *testing.T) {
	s := newSink()
	cfg := baseConfig(t, t.TempDir(), s)
	cfg.DryRun = true
	a, _ := start(t, cfg)
	g := a.Guard()
	if !slices.Equal(g.GetAllowed(), []hwhealv1.ActionType{action.Offline}) || !g.GetDryRun() ||
		g.GetMaxReboots() != DefaultMaxReboots || g.GetRebootWindow().AsDuration() != DefaultRebootWindow {
		t.Fatalf("guard %v", g)
	}
}
