package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Reboot methods.
const (
	// RebootSystemctl runs `systemctl reboot`.
	RebootSystemctl = "systemctl"
	// RebootLogind calls org.freedesktop.login1.Manager.Reboot on the
	// system bus.
	RebootLogind = "logind"
	// RebootCommand runs an argv the operator gives.
	RebootCommand = "command"
)

// RebootMethods lists the methods, for help and error texts.
func RebootMethods() []string { return []string{RebootSystemctl, RebootLogind, RebootCommand} }

// DefaultRebootTimeout bounds the reboot request when Reboot.Timeout is
// zero.
const DefaultRebootTimeout = time.Minute

// Reboot asks the system to reboot. Run returns once the request is
// accepted: the reboot itself is confirmed by the next boot's id, which
// is not this executor's to see.
type Reboot struct {
	// Method is RebootSystemctl (the default), RebootLogind or
	// RebootCommand.
	Method string
	// Command is the argv of RebootCommand.
	Command []string
	// Path is the command's PATH (default DefaultPath).
	Path string
	// BusAddress is the D-Bus address for RebootLogind (default: the
	// system bus).
	BusAddress string
	// Timeout bounds the request (default DefaultRebootTimeout).
	Timeout time.Duration
}

// logindReboot is how a logind request is shown as a step's command.
var logindReboot = []string{"dbus", "org.freedesktop.login1.Manager.Reboot", "interactive=false"}

// Run implements Executor: it reports the request as one step named
// "reboot".
func (r *Reboot) Run(ctx context.Context, order *hwhealv1.ActionOrder, env Env, report func(*hwhealv1.ActionStep)) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRebootTimeout
	}
	switch r.Method {
	case "", RebootSystemctl, RebootCommand:
		argv := []string{"systemctl", "reboot"}
		if r.Method == RebootCommand {
			argv = r.Command
		}
		rb := Runbook{Steps: []Step{{Name: "reboot", Run: argv, Timeout: timeout}}, Path: r.Path}
		return rb.Run(ctx, order, env, report)
	case RebootLogind:
		st := &hwhealv1.ActionStep{Name: "reboot", Command: logindReboot, Attempt: 1, Started: timestamppb.Now(), ExitCode: -1}
		if env.DryRun || order.GetDryRun() {
			st.DryRun = true
			st.Duration = durationpb.New(0)
			report(st)
			return nil
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := logindRebootCall(cctx, r.BusAddress)
		cancel()
		st.Duration = durationpb.New(time.Since(start))
		if err != nil {
			st.Error = err.Error()
			report(st)
			return &StepError{Name: "reboot", Attempts: 1, Err: err}
		}
		st.ExitCode = 0
		report(st)
		return nil
	}
	return fmt.Errorf("reboot method %q is not one of %v", r.Method, RebootMethods())
}

// logindRebootCall asks logind for a reboot, without interactive
// authorisation (the agent runs as root). It is go-systemd's login1
// Reboot done by hand: that one drops the call's error, and a refused
// reboot must be reported, not taken for one under way.
func logindRebootCall(ctx context.Context, address string) error {
	var (
		conn *dbus.Conn
		err  error
	)
	if address == "" {
		conn, err = dbus.SystemBusPrivate(dbus.WithContext(ctx))
	} else {
		conn, err = dbus.Dial(address, dbus.WithContext(ctx))
	}
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()
	// EXTERNAL with the numeric uid, as go-systemd does: no user name
	// lookup.
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		return fmt.Errorf("authenticate to the system bus: %w", err)
	}
	if err := conn.Hello(); err != nil {
		return fmt.Errorf("system bus hello: %w", err)
	}
	call := conn.Object("org.freedesktop.login1", "/org/freedesktop/login1").
		CallWithContext(ctx, "org.freedesktop.login1.Manager.Reboot", 0, false)
	if call.Err != nil {
		var de dbus.Error
		if errors.As(call.Err, &de) {
			return fmt.Errorf("logind refused the reboot: %s: %s", de.Name, de.Error())
		}
		return fmt.Errorf("logind reboot: %w", call.Err)
	}
	return nil
}
