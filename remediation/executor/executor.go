// Package executor owns the agent's side of remediation, the "do": the
// Executor seam and its implementations, a Runbook of operator-written
// commands (offline, migrate, online) and a Reboot. An executor runs what
// it is given and reports every attempt as an ActionStep; whether it may
// run at all (the allow-list, the reboot-loop guard, the at-most-once
// ledger) is the actuator's business (agent/actuate), not this package's.
//
// Commands run as argv, never through a shell unless the operator writes
// one, with a minimal PATH and an environment that names the action:
//
//	HWHEAL_ACTION_ID      the collector's action id
//	HWHEAL_ACTION         offline, reboot, migrate, online
//	HWHEAL_NODE           this node's name in the fleet
//	HWHEAL_REASON         why the action was asked for
//	HWHEAL_FAULT_CLASSES  the fault classes that led to it, comma-separated
//	HWHEAL_REQUESTED_BY   an operator, or "policy:<rule>"
//	HWHEAL_STEP           the step's name
//	HWHEAL_ATTEMPT        1 for the first try of a step
//
// Each command runs in a process group of its own that is killed when the
// step ends, times out or is cancelled: nothing a step started outlives it.
// Work meant to outlive a step must be started through systemd-run or the
// service manager.
package executor

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// Executor runs one action on this node.
//
// Run reports every attempt of every step through report, in order, as
// it finishes (report is called from Run's goroutine). It returns nil
// when the action did what it is for (for a reboot: the reboot was asked
// for), or an error that names what failed, wrapping ctx's error when the
// context ended it. With env.DryRun (or order.dry_run) it reports each
// step it would run with dry_run set and runs nothing.
type Executor interface {
	Run(ctx context.Context, order *hwhealv1.ActionOrder, env Env, report func(*hwhealv1.ActionStep)) error
}

// Env is what an executor is told besides the order.
type Env struct {
	// Node is this node's name (HWHEAL_NODE).
	Node string
	// DryRun: report what would run, run nothing. The actuator sets it
	// for an agent-wide dry run and for an order's dry_run.
	DryRun bool
}

// DefaultPath is the PATH commands get, and where a bare command name is
// looked up, when the executor names none. The agent's own PATH is not
// passed on: a step runs the same whatever shell started the agent.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// StepError is a step that failed after its retries; the runbook stopped
// there.
type StepError struct {
	// Index is the step's position, from 0.
	Index    int
	Name     string
	Attempts int
	// Err is the last attempt's failure; it wraps the context's error when
	// the context ended the step.
	Err error
}

func (e *StepError) Error() string {
	what := "failed"
	if e.Attempts > 1 {
		what = "failed after " + strconv.Itoa(e.Attempts) + " attempts"
	}
	return fmt.Sprintf("step %d %q %s: %v", e.Index, e.Name, what, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// environ is the environment of a command run for order.
func environ(order *hwhealv1.ActionOrder, env Env, path, step string, attempt int) []string {
	kv := func(k, v string) string {
		// A NUL cannot be in an environment string: exec refuses it.
		return k + "=" + strings.ReplaceAll(v, "\x00", "")
	}
	return []string{
		kv("PATH", path),
		kv("HWHEAL_ACTION_ID", order.GetId()),
		kv("HWHEAL_ACTION", action.TypeLabel(order.GetType())),
		kv("HWHEAL_NODE", env.Node),
		kv("HWHEAL_REASON", order.GetReason()),
		kv("HWHEAL_FAULT_CLASSES", strings.Join(order.GetFaultClasses(), ",")),
		kv("HWHEAL_REQUESTED_BY", order.GetRequestedBy()),
		kv("HWHEAL_STEP", step),
		kv("HWHEAL_ATTEMPT", strconv.Itoa(attempt)),
	}
}
