package executor

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func rebootOrder(id string) *hwhealv1.ActionOrder {
	return &hwhealv1.ActionOrder{Id: id, Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, Reason: "kernel.lockup"}
}

// TestRebootCommand: the command method runs the operator's argv once and
// reports it as the step "reboot"; a failing command fails the reboot.
func TestRebootCommand(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "reboots")
	r := &Reboot{Method: RebootCommand, Command: sh(`echo "$HWHEAL_ACTION_ID" >> ` + log)}
	var rec recorder
	if err := r.Run(t.Context(), rebootOrder("r1"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, log); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("reboot command ran as %v, want once for r1", got)
	}
	if len(rec.steps) != 1 || rec.steps[0].GetName() != "reboot" || rec.steps[0].GetExitCode() != 0 {
		t.Fatalf("reported %v", rec.steps)
	}

	r = &Reboot{Method: RebootCommand, Command: sh(`echo refused; exit 1`)}
	rec = recorder{}
	if err := r.Run(t.Context(), rebootOrder("r2"), Env{}, rec.report); err == nil || !strings.Contains(err.Error(), "exit code 1") {
		t.Fatalf("err = %v, want the command's failure", err)
	}
}

// TestRebootSystemctl: the systemctl method runs `systemctl reboot` found
// in the executor's PATH (a stand-in here: the test must not reboot the
// machine it runs on).
func TestRebootSystemctl(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Reboot{Method: RebootSystemctl, Path: dir}
	var rec recorder
	if err := r.Run(t.Context(), rebootOrder("r3"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if string(b) != "reboot\n" {
		t.Fatalf("systemctl called with %q, want reboot", b)
	}
	if !slices.Equal(rec.steps[0].GetCommand(), []string{"systemctl", "reboot"}) {
		t.Fatalf("step command %v", rec.steps[0].GetCommand())
	}
}

// TestRebootDryRun: every method only reports what it would do.
func TestRebootDryRun(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "rebooted")
	for _, r := range []*Reboot{
		{Method: RebootCommand, Command: sh(`touch ` + marker)},
		{Method: RebootSystemctl, Path: dir},
		{Method: RebootLogind, BusAddress: "unix:path=" + filepath.Join(dir, "no-bus")},
	} {
		t.Run(r.Method, func(t *testing.T) {
			var rec recorder
			if err := r.Run(t.Context(), rebootOrder("dry"), Env{DryRun: true}, rec.report); err != nil {
				t.Fatal(err)
			}
			if len(rec.steps) != 1 || !rec.steps[0].GetDryRun() || rec.steps[0].GetName() != "reboot" {
				t.Fatalf("reported %v", rec.steps)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a dry run rebooted")
			}
		})
	}
}

// fakeLogind answers org.freedesktop.login1.Manager.Reboot on a bus.
type fakeLogind struct {
	mu     sync.Mutex
	calls  []bool
	refuse bool
}

func (f *fakeLogind) Reboot(interactive bool) *dbus.Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, interactive)
	if f.refuse {
		return dbus.NewError("org.freedesktop.DBus.Error.AccessDenied", []any{"Access denied"})
	}
	return nil
}

// privateBus starts a dbus-daemon of the test's own and returns its
// address.
func privateBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon is not installed: the logind method is tested against a private bus")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	err = os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// serveLogind claims org.freedesktop.login1 on the bus at addr.
func serveLogind(t *testing.T, addr string, f *fakeLogind) {
	t.Helper()
	conn, err := dbus.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(f, "/org/freedesktop/login1", "org.freedesktop.login1.Manager"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
}

// TestRebootLogind: the logind method calls Manager.Reboot(false) over
// D-Bus (a private bus and a stand-in logind here), and a refusal is
// reported as the step's error, not taken for a reboot under way.
func TestRebootLogind(t *testing.T) {
	addr := privateBus(t)
	f := &fakeLogind{}
	serveLogind(t, addr, f)
	r := &Reboot{Method: RebootLogind, BusAddress: addr, Timeout: 5 * time.Second}

	var rec recorder
	if err := r.Run(t.Context(), rebootOrder("r4"), Env{}, rec.report); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	calls := slices.Clone(f.calls)
	f.refuse = true
	f.mu.Unlock()
	if !slices.Equal(calls, []bool{false}) {
		t.Fatalf("logind called %v, want one non-interactive Reboot", calls)
	}
	if len(rec.steps) != 1 || rec.steps[0].GetExitCode() != 0 || rec.steps[0].GetError() != "" {
		t.Fatalf("reported %v", rec.steps)
	}

	rec = recorder{}
	err := r.Run(t.Context(), rebootOrder("r5"), Env{}, rec.report)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("err = %v, want logind's refusal", err)
	}
	if len(rec.steps) != 1 || rec.steps[0].GetExitCode() != -1 || !strings.Contains(rec.steps[0].GetError(), "Access denied") {
		t.Fatalf("reported %v", rec.steps)
	}
}

// TestRebootLogindNoBus: no bus to talk to is a failed step.
func TestRebootLogindNoBus(t *testing.T) {
	r := &Reboot{Method: RebootLogind, BusAddress: "unix:path=" + filepath.Join(t.TempDir(), "none"), Timeout: time.Second}
	var rec recorder
	err := r.Run(t.Context(), rebootOrder("r6"), Env{}, rec.report)
	if err == nil || !strings.Contains(err.Error(), "connect to the system bus") {
		t.Fatalf("err = %v", err)
	}
	if len(rec.steps) != 1 || rec.steps[0].GetError() == "" {
		t.Fatalf("reported %v", rec.steps)
	}
}
