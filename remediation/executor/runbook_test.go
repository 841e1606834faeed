package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func testOrder(id string) *hwhealv1.ActionOrder {
	return &hwhealv1.ActionOrder{
		Id: id, Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE, Reason: "planned maintenance",
		FaultClasses: []string{"memory.ce_storm", "disk.media"}, RequestedBy: "policy:ce-storm",
	}
}

// recorder collects the steps an executor reports.
type recorder struct{ steps []*hwhealv1.ActionStep }

func (r *recorder) report(s *hwhealv1.ActionStep) { r.steps = append(r.steps, s) }

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestRunbookInOrder: the drain runbook's steps run in order, each once,
// and each is reported with its index, name, argv, exit code and output.
func TestRunbookInOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	rb := &Runbook{Steps: []Step{
		{Name: "lb-weight-zero", Run: sh(`echo "$HWHEAL_STEP" >> ` + log + `; echo weight 0`), Timeout: 5 * time.Second},
		{Name: "wait-drained", Run: sh(`echo "$HWHEAL_STEP" >> ` + log + `; echo drained >&2`), Timeout: 5 * time.Second},
		{Name: "stop-service", Run: []string{"sh", "-c", `echo "$HWHEAL_STEP" >> ` + log}, Timeout: 5 * time.Second},
	}}
	var rec recorder
	if err := rb.Run(t.Context(), testOrder("a1"), Env{Node: "n1"}, rec.report); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, log); !slices.Equal(got, []string{"lb-weight-zero", "wait-drained", "stop-service"}) {
		t.Fatalf("ran %v, want the three steps in order", got)
	}
	if len(rec.steps) != 3 {
		t.Fatalf("%d steps reported, want 3", len(rec.steps))
	}
	wantOut := []string{"weight 0\n", "drained\n", ""}
	for i, s := range rec.steps {
		if int(s.GetIndex()) != i || s.GetName() != rb.Steps[i].Name || !slices.Equal(s.GetCommand(), rb.Steps[i].Run) ||
			s.GetAttempt() != 1 || s.GetExitCode() != 0 || s.GetTimedOut() || s.GetDryRun() || s.GetError() != "" ||
			s.GetOutput() != wantOut[i] || s.GetStarted() == nil || s.GetDuration() == nil {
			t.Errorf("step %d reported as %v", i, s)
		}
	}
}

// TestRunbookStopsAtFailingStep: a step that keeps failing is tried
// 1+retries times, each attempt reported with its exit code and output,
// and the steps after it never run.
func TestRunbookStopsAtFailingStep(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	rb := &Runbook{Steps: []Step{
		{Name: "lb-weight-zero", Run: sh(`echo lb >> ` + log)},
		{Name: "wait-drained", Run: sh(`echo wait >> ` + log + `; echo "still 3 connections"; exit 3`), Retries: 2, RetryDelay: 50 * time.Millisecond},
		{Name: "stop-service", Run: sh(`echo stop >> ` + log)},
	}}
	var rec recorder
	start := time.Now()
	err := rb.Run(t.Context(), testOrder("a2"), Env{}, rec.report)
	var se *StepError
	if !errors.As(err, &se) || se.Index != 1 || se.Name != "wait-drained" || se.Attempts != 3 {
		t.Fatalf("err = %v, want step 1 wait-drained failed after 3 attempts", err)
	}
	if want := `step 1 "wait-drained" failed after 3 attempts: exit code 3`; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("took %s: the retry delay was not waited", d)
	}
	if got := readLines(t, log); !slices.Equal(got, []string{"lb", "wait", "wait", "wait"}) {
		t.Fatalf("ran %v, want lb then wait three times and never stop", got)
	}
	if len(rec.steps) != 4 {
		t.Fatalf("%d attempts reported, want 4", len(rec.steps))
	}
	for i, s := range rec.steps[1:] {
		if s.GetIndex() != 1 || s.GetAttempt() != uint32(i+1) || s.GetExitCode() != 3 || s.GetOutput() != "still 3 connections\n" {
			t.Errorf("attempt %d reported as %v", i+1, s)
		}
	}
}

// TestRunbookRetrySucceeds: a step that fails once and then works lets
// the runbook go on.
func TestRunbookRetrySucceeds(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "flag")
	rb := &Runbook{Steps: []Step{
		{Name: "flaky", Run: sh(`if [ -e ` + flag + ` ]; then exit 0; fi; touch ` + flag + `; exit 1`), Retries: 1},
		{Name: "after", Run: sh(`exit 0`)},
	}}
	var rec recorder
	if err := rb.Run(t.Context(), testOrder("a3"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rec.steps {
		got = append(got, s.GetName()+"#"+strconv.Itoa(int(s.GetAttempt()))+"="+strconv.Itoa(int(s.GetExitCode())))
	}
	if want := []string{"flaky#1=1", "flaky#2=0", "after#1=0"}; !slices.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d outlived its step", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStepTimeoutKillsProcessGroup: a step that runs past its timeout is
// killed with everything it started (a shell's background sleep
// included), reported as timed out with exit code -1, and retried.
func TestStepTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	rb := &Runbook{Steps: []Step{{
		Name:    "hang",
		Run:     sh(`sleep 1000 & echo $! >> ` + pids + `; echo $$ >> ` + pids + `; echo started; wait`),
		Timeout: time.Second, Retries: 1,
	}}}
	var rec recorder
	start := time.Now()
	err := rb.Run(t.Context(), testOrder("a4"), Env{}, rec.report)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("err = %v, want a step timeout", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("took %s: the timeout did not stop the step", d)
	}
	if len(rec.steps) != 2 {
		t.Fatalf("%d attempts reported, want 2", len(rec.steps))
	}
	for _, s := range rec.steps {
		if !s.GetTimedOut() || s.GetExitCode() != -1 || s.GetOutput() != "started\n" {
			t.Errorf("attempt reported as %v, want timed out, exit -1, its output", s)
		}
	}
	got := readLines(t, pids)
	if len(got) != 4 {
		t.Fatalf("pids %v, want a sleep and a shell per attempt", got)
	}
	for _, p := range got {
		pid, _ := strconv.Atoi(p)
		waitGone(t, pid)
	}
}

// TestCancelKillsProcessGroup: the order's context ending (the agent
// stopping, the order's timeout) kills the running step's group and is
// not retried.
func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	rb := &Runbook{Steps: []Step{{Name: "hang", Run: sh(`sleep 1000 & echo $! > ` + pids + `; wait`), Retries: 5}}}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	var rec recorder
	go func() { errc <- rb.Run(ctx, testOrder("a5"), Env{}, rec.report) }()
	pid := readPID(t, pids)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want it to wrap context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitGone(t, pid)
	if len(rec.steps) != 1 || rec.steps[0].GetTimedOut() || rec.steps[0].GetExitCode() != -1 {
		t.Fatalf("reported %v, want one killed attempt, not timed out", rec.steps)
	}
}

// TestLeftoversKilledAfterExit: a step that exits leaving a background
// process behind in its group does not leave it running.
func TestLeftoversKilledAfterExit(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	rb := &Runbook{Steps: []Step{{Name: "fork", Run: sh(`sleep 1000 >/dev/null 2>&1 & echo $! > ` + pids)}}}
	var rec recorder
	if err := rb.Run(t.Context(), testOrder("a6"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	waitGone(t, readPID(t, pids))
}

// TestEscapedChildDoesNotHang: a process that left the group (setsid)
// and holds the output pipe does not hold the step past pipeDrainWait.
func TestEscapedChildDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	rb := &Runbook{Steps: []Step{{Name: "escape", Run: sh(`setsid sh -c 'echo $$ > ` + pids + `; exec sleep 30' & while [ ! -s ` + pids + ` ]; do sleep 0.01; done; echo ok`)}}}
	var rec recorder
	start := time.Now()
	if err := rb.Run(t.Context(), testOrder("a7"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, pids)
	t.Cleanup(func() { killPID(pid) })
	if d := time.Since(start); d > pipeDrainWait+2*time.Second {
		t.Fatalf("step took %s: an escaped child held it", d)
	}
	if rec.steps[0].GetExitCode() != 0 || !strings.HasPrefix(rec.steps[0].GetOutput(), "ok") {
		t.Fatalf("reported %v", rec.steps[0])
	}
}

func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// TestEnvironment: a command gets the action's variables and the minimal
// PATH, and none of the agent's own environment.
func TestEnvironment(t *testing.T) {
	t.Setenv("HWHEAL_TEST_LEAK", "agent-secret")
	rb := &Runbook{Steps: []Step{{Name: "env", Run: []string{"env"}}}}
	var rec recorder
	o := testOrder("act-42")
	o.Reason = "ce storm\x00 on DIMM A1"
	if err := rb.Run(t.Context(), o, Env{Node: "node-7"}, rec.report); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(rec.steps[0].GetOutput()), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	want := map[string]string{
		"PATH":                 DefaultPath,
		"HWHEAL_ACTION_ID":     "act-42",
		"HWHEAL_ACTION":        "offline",
		"HWHEAL_NODE":          "node-7",
		"HWHEAL_REASON":        "ce storm on DIMM A1",
		"HWHEAL_FAULT_CLASSES": "memory.ce_storm,disk.media",
		"HWHEAL_REQUESTED_BY":  "policy:ce-storm",
		"HWHEAL_STEP":          "env",
		"HWHEAL_ATTEMPT":       "1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["HWHEAL_TEST_LEAK"]; ok {
		t.Error("the agent's environment leaked into the command")
	}
}

// TestPathLookup: a bare command name is found in the runbook's PATH, not
// the agent's.
func TestPathLookup(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lbctl"), []byte("#!/bin/sh\necho \"lbctl $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rb := &Runbook{Path: dir + ":/usr/bin:/bin", Steps: []Step{{Name: "lb", Run: []string{"lbctl", "weight", "0"}}}}
	var rec recorder
	if err := rb.Run(t.Context(), testOrder("a8"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	if rec.steps[0].GetOutput() != "lbctl weight 0\n" {
		t.Fatalf("output %q", rec.steps[0].GetOutput())
	}
	rb.Path = "/nonexistent"
	rec = recorder{}
	if err := rb.Run(t.Context(), testOrder("a8"), Env{}, rec.report); err == nil {
		t.Fatal("ran lbctl from a PATH that does not hold it")
	}
}

// TestCouldNotStart: a command that cannot start is reported with its
// error and exit code -1, tried like any failure, and fails the runbook.
func TestCouldNotStart(t *testing.T) {
	rb := &Runbook{Steps: []Step{{Name: "missing", Run: []string{"/nonexistent/lbctl", "weight", "0"}, Retries: 1}}}
	var rec recorder
	err := rb.Run(t.Context(), testOrder("a9"), Env{}, rec.report)
	if err == nil || !strings.Contains(err.Error(), "could not start") {
		t.Fatalf("err = %v, want could not start", err)
	}
	if len(rec.steps) != 2 {
		t.Fatalf("%d attempts, want 2", len(rec.steps))
	}
	for _, s := range rec.steps {
		if s.GetExitCode() != -1 || !strings.Contains(s.GetError(), "no such file") {
			t.Errorf("reported %v, want exit -1 and the start error", s)
		}
	}
}

// TestOutputTail: only the last 4 KiB of a chatty step is kept, as valid
// UTF-8 even where the cut falls inside a character.
func TestOutputTail(t *testing.T) {
	// 3-byte characters: 4096 is not a multiple of 3, so the cut splits one.
	rb := &Runbook{Steps: []Step{{Name: "chatty", Run: sh(`i=0; while [ $i -lt 3000 ]; do printf '€'; i=$((i+1)); done; echo; echo END`)}}}
	var rec recorder
	if err := rb.Run(t.Context(), testOrder("a10"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	out := rec.steps[0].GetOutput()
	if len(out) > OutputBytes || len(out) < OutputBytes-3 || !utf8.ValidString(out) || !strings.HasSuffix(out, "€\nEND\n") {
		t.Fatalf("output of %d bytes (valid %v), tail %q", len(out), utf8.ValidString(out), out[max(0, len(out)-20):])
	}
}

// TestDryRun: a dry run reports every step with dry_run and runs none.
func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	rb := &Runbook{Steps: []Step{
		{Name: "one", Run: sh(`touch ` + marker)},
		{Name: "two", Run: sh(`touch ` + marker)},
	}}
	for _, tc := range []struct {
		name  string
		env   Env
		order bool
	}{{name: "agent-wide", env: Env{DryRun: true}}, {name: "order", order: true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOrder("dry")
			o.DryRun = tc.order
			var rec recorder
			if err := rb.Run(t.Context(), o, tc.env, rec.report); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a dry run ran a step")
			}
			if len(rec.steps) != 2 {
				t.Fatalf("%d steps reported, want 2", len(rec.steps))
			}
			for i, s := range rec.steps {
				if !s.GetDryRun() || s.GetName() != rb.Steps[i].Name || !slices.Equal(s.GetCommand(), rb.Steps[i].Run) {
					t.Errorf("step %d reported as %v", i, s)
				}
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defghijklmnop", "q", strings.Repeat("x", 20), "yz"} {
		b.Write([]byte(s))
	}
	if got := b.String(); got != "xxxxxxyz" {
		t.Fatalf("tail %q", got)
	}
	b = &tailBuffer{max: 8}
	b.Write([]byte("ok\xff\xfe"))
	if got := b.String(); got != "ok?" {
		t.Fatalf("invalid UTF-8 kept as %q", got)
	}
}
