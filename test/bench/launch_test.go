package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLaunchStopsTheWholeGroup starts a shell that leaves a grandchild
// which ignores SIGTERM; Stop must end both, the shell by SIGTERM.
func TestLaunchStopsTheWholeGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p, err := Launch("sh", "/bin/sh", []string{"-c", `trap '' TERM; sleep 600 & echo $! >` + pidFile + `; exec sleep 600`}, filepath.Join(dir, "log"))
	if err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-p.PID(), syscall.SIGKILL) })
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the shell did not start its child")
		}
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pgid, _ := syscall.Getpgid(child); pgid != p.PID() {
		t.Fatalf("child's process group %d, want %d", pgid, p.PID())
	}
	if exited, _ := p.Exited(); exited {
		t.Fatal("exited before Stop")
	}
	// The exec'd sleep inherited the ignored SIGTERM, so this is the
	// SIGKILL path.
	if err := p.Stop(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop = %v, want the killed error", err)
	}
	if exited, _ := p.Exited(); !exited {
		t.Error("not exited after Stop")
	}
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(child, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if st, err := (ProcFS{}).Stat(child); err == nil && st.State == 'Z' {
			break // killed, waiting for init to reap it
		}
		if time.Now().After(deadline) {
			t.Fatal("the grandchild outlived Stop")
		}
	}
}

func TestLaunchStopsOnTerm(t *testing.T) {
	dir := t.TempDir()
	p, err := Launch("sleep", "/bin/sleep", []string{"600"}, filepath.Join(dir, "log"))
	if err != nil {
		t.Skipf("no /bin/sleep: %v", err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop = %v, want a clean stop on SIGTERM", err)
	}
	if _, err := Launch("x", filepath.Join(dir, "missing"), nil, filepath.Join(dir, "log2")); err == nil {
		t.Error("Launch of a missing program succeeded")
	}
}
