package actuate

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m)
}

// sink is the agent's spool as the actuator sees it: it keeps every
// update, and counts syncs.
type sink struct {
	mu      sync.Mutex
	updates []*hwhealv1.ActionUpdate
	syncs   int
	// events, when set, gets "sync" appended at each Sync, so that a
	// test can order syncs against what commands write there.
	events string
	// onSync, when set, is called at each Sync (from Run's goroutine).
	onSync func()
	wake   chan struct{}
}

func newSink() *sink { return &sink{wake: make(chan struct{}, 1)} }

func (s *sink) report(u *hwhealv1.ActionUpdate) error {
	s.mu.Lock()
	s.updates = append(s.updates, u)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *sink) sync() error {
	s.mu.Lock()
	s.syncs++
	events, onSync := s.events, s.onSync
	s.mu.Unlock()
	if onSync != nil {
		onSync()
	}
	if events != "" {
		return appendLine(events, "sync")
	}
	return nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

// of returns the updates of one action id, in order.
func (s *sink) of(id string) []*hwhealv1.ActionUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*hwhealv1.ActionUpdate
	for _, u := range s.updates {
		if u.GetActionId() == id {
			out = append(out, u)
		}
	}
	return out
}

func isFinal(u *hwhealv1.ActionUpdate) bool {
	return u.GetOutcome() != hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING
}

// final waits for id's final update and returns it.
func (s *sink) final(t *testing.T, id string) *hwhealv1.ActionUpdate {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, u := range s.of(id) {
			if isFinal(u) {
				return u
			}
		}
		select {
		case <-s.wake:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no final update for %s; updates: %v", id, s.of(id))
		}
	}
}

// finals counts id's final updates.
func (s *sink) finals(id string) int {
	n := 0
	for _, u := range s.of(id) {
		if isFinal(u) {
			n++
		}
	}
	return n
}

// steps lists the steps reported for id, in order.
func (s *sink) steps(id string) []*hwhealv1.ActionStep {
	var out []*hwhealv1.ActionStep
	for _, u := range s.of(id) {
		out = append(out, u.GetSteps()...)
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// baseConfig allows offline, with a runbook of steps, on state dir dir.
func baseConfig(t *testing.T, dir string, s *sink, steps ...executor.Step) Config {
	return Config{
		StateDir: dir, Node: "node-1", BootID: "boot-a",
		Allow:     []hwhealv1.ActionType{action.Offline},
		Executors: map[hwhealv1.ActionType]executor.Executor{action.Offline: &executor.Runbook{Steps: steps}},
		Report:    s.report, Sync: s.sync, Logger: testLogger(t),
	}
}

// start builds an actuator and runs it until the returned stop is called
// (also at cleanup); stop closes it.
func start(t *testing.T, cfg Config) (*Actuator, func()) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
			if err := a.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

func offline(id string) *hwhealv1.ActionOrder {
	return &hwhealv1.ActionOrder{Id: id, Type: action.Offline, Reason: "planned maintenance",
		FaultClasses: []string{"disk.media"}, RequestedBy: "policy:disk-predicted", BootId: "boot-a"}
}

func reboot(id string, timeout time.Duration) *hwhealv1.ActionOrder {
	return &hwhealv1.ActionOrder{Id: id, Type: action.Reboot, Reason: "kernel.lockup",
		Timeout: durationpb.New(timeout), RequestedBy: "policy:lockup"}
}

func lines(t *testing.T, path string) []string {
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

// waitUntil polls cond until it holds, and fails the test naming what
// it waited for if it does not within timeout: a regression fails, it
// does not hang until go test's own timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	waitUntil(t, 10*time.Second, path+" to be written", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
}

func ledgerLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ledgerFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// ledgerFinished says whether dir's ledger records id's end. It does not
// fail the test: it is called from Run's goroutine too.
func ledgerFinished(dir, id string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ledgerFile))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"id":"`+id+`"`) && strings.Contains(l, `"event":"finished"`) {
			return true
		}
	}
	return false
}
