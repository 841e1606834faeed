package ctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newActionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "action ID",
		Short: "Show one action: its state, who asked and approved, its evidence, schedule and steps with their output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			resp, err := c.GetAction(ctx, &hwhealv1.GetActionRequest{Id: args[0]})
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(resp.GetAction())
			}
			return writeActionDetail(o.stdout, resp.GetAction(), o.clock(), o.zone())
		},
	}
}

func writeActionDetail(w io.Writer, a *hwhealv1.Action, now time.Time, loc *time.Location) error {
	tw := newTable(w, "FIELD", "VALUE")
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	when := func(k string, ts *timestamppb.Timestamp) {
		if ts != nil {
			row(k, localTime(ts.AsTime(), now, loc))
		}
	}
	note := func(n *hwhealv1.ActionNote) string { return noteAt(n, localTime(n.GetTime().AsTime(), now, loc)) }
	row("id", a.GetId())
	row("node", a.GetNode())
	row("action", actionTypeName(a.GetType()))
	row("state", action.StateName(a.GetState()))
	row("dry run", yesNo(a.GetDryRun()))
	row("reason", orDash(a.GetReason()))
	row("requested by", orDash(a.GetRequestedBy()))
	when("created", a.GetCreated())
	when("updated", a.GetUpdated())
	if a.GetRule() != "" {
		row("rule", fmt.Sprintf("%s (ladder step %d, class %s)", a.GetRule(), a.GetLadderStep()+1, orDash(a.GetFaultClass())))
	} else {
		row("rule", "manual")
	}
	row("approval", approvalName(a.GetApproval()))
	for i, n := range a.GetApprovals() {
		row(fmt.Sprintf("approval %d", i+1), note(n))
	}
	if d := a.GetApprovalDeadline(); d != nil {
		row("approval deadline", localTime(d.AsTime(), now, loc)+", then "+expiryName(a.GetOnExpiry()))
	}
	if a.GetDecision() != nil {
		row("decision", note(a.GetDecision()))
	}
	when("not before", a.GetNotBefore())
	if a.GetWaiting() != "" {
		row("waiting for", a.GetWaiting())
	}
	when("dispatched", a.GetDispatched())
	when("finished", a.GetFinished())
	if a.GetTimeout() != nil {
		row("timeout", a.GetTimeout().AsDuration().String()+" from dispatch")
	}
	if a.GetPlannedBootId() != "" || a.GetPlannedService() != hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED {
		row("planned on", fmt.Sprintf("boot %s, %s", orDash(a.GetPlannedBootId()), action.ServiceName(a.GetPlannedService())))
	}
	if a.GetResult() != "" {
		row("result", oneLine(a.GetResult()))
	}
	if len(a.GetFaultIds()) > 0 {
		ids := make([]string, len(a.GetFaultIds()))
		for i, id := range a.GetFaultIds() {
			ids[i] = strconv.FormatUint(id, 10)
		}
		row("evidence", "faults "+strings.Join(ids, ", ")+" (hwhealctl fault ID)")
	} else {
		row("evidence", "-")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nSteps (%d):\n", len(a.GetSteps()))
	for _, s := range a.GetSteps() {
		writeStep(w, s, loc)
	}
	return nil
}

// writeStep prints one runbook step as the agent ran it, its output
// indented below it.
func writeStep(w io.Writer, s *hwhealv1.ActionStep, loc *time.Location) {
	name := s.GetName()
	if name == "" {
		name = "-"
	}
	line := fmt.Sprintf("  %d. %s  attempt %d", s.GetIndex()+1, name, s.GetAttempt())
	switch {
	case s.GetDryRun():
		line += "  dry run (not run)"
	case s.GetTimedOut():
		line += "  timed out"
	default:
		line += fmt.Sprintf("  exit %d", s.GetExitCode())
	}
	if s.GetDuration() != nil {
		line += "  " + s.GetDuration().AsDuration().Round(time.Millisecond).String()
	}
	if s.GetStarted() != nil {
		line += "  started " + s.GetStarted().AsTime().In(loc).Format(time.RFC3339)
	}
	fmt.Fprintln(w, line)
	if len(s.GetCommand()) > 0 {
		fmt.Fprintf(w, "     $ %s\n", strings.Join(s.GetCommand(), " "))
	}
	if s.GetError() != "" {
		fmt.Fprintf(w, "     error: %s\n", s.GetError())
	}
	if out := strings.TrimRight(s.GetOutput(), "\n"); out != "" {
		for _, l := range strings.Split(out, "\n") {
			fmt.Fprintf(w, "       %s\n", l)
		}
	}
}
