package ctl

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newRemediateCmd(o *options) *cobra.Command {
	var actionName, reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "remediate NODE --action reboot|offline|migrate|online --reason TEXT",
		Short: "Ask for an action on a node (operator role); the policy's manual rules say who must approve it",
		Long: `Asks the collector for an action on a node. The action is recorded before
anything else happens and moves through its states as the policy decides:
awaiting approval (see hwhealctl approve), approved, dispatched to the node's
agent when the limits, windows and freezes allow, then its result. --dry-run
makes the agent report what it would do and run nothing, whatever the policy
says.`,
		Example: `  hwhealctl remediate web-17 --action offline --reason "DIMM B2 replacement, ticket OPS-1234"
  hwhealctl remediate web-17 --action reboot --reason "kernel lockups" --dry-run`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, ok := action.ParseType(actionName)
			if !ok {
				return fmt.Errorf("--action %q: use %s", actionName, strings.Join(action.TypeNames(), ", "))
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: say why, for the approver and the audit log")
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			resp, err := c.RequestAction(ctx, &hwhealv1.RequestActionRequest{Node: args[0], Type: t, Reason: reason, DryRun: dryRun})
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(resp.GetAction())
			}
			a := resp.GetAction()
			fmt.Fprintf(o.stdout, "action %s: %s of %s requested by %s%s\n", a.GetId(), actionTypeName(a.GetType()), a.GetNode(), a.GetRequestedBy(), dryRunNote(a))
			writeActionNext(o.stdout, a, o.clock(), o.zone())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&actionName, "action", "", "what to do: "+strings.Join(action.TypeNames(), ", ")+" (required)")
	f.StringVar(&reason, "reason", "", "why (required; kept with the action and in the audit log)")
	f.BoolVar(&dryRun, "dry-run", false, "the agent reports what it would do and runs nothing")
	return cmd
}

func dryRunNote(a *hwhealv1.Action) string {
	if a.GetDryRun() {
		return " (dry run: nothing will run)"
	}
	return ""
}

// writeActionNext says where an action stands after a request or a
// decision, and what can be done about it next.
func writeActionNext(w io.Writer, a *hwhealv1.Action, now time.Time, loc *time.Location) {
	id := a.GetId()
	switch a.GetState() {
	case action.AwaitingApproval:
		fmt.Fprintf(w, "awaiting approval (%s)", approvalName(a.GetApproval()))
		if n := len(a.GetApprovals()); n > 0 {
			fmt.Fprintf(w, ", approved so far by %s", approvers(a))
		}
		if d := a.GetApprovalDeadline(); d != nil {
			fmt.Fprintf(w, " until %s, then %s", localTime(d.AsTime(), now, loc), expiryName(a.GetOnExpiry()))
		}
		fmt.Fprintf(w, "\n  approve: hwhealctl approve %s [--at TIME]\n  deny:    hwhealctl deny %s --reason TEXT\n", id, id)
	case action.Approved, action.Proposed:
		if nb := a.GetNotBefore(); nb != nil && nb.AsTime().After(now) {
			fmt.Fprintf(w, "%s: runs at %s\n", action.StateName(a.GetState()), localTime(nb.AsTime(), now, loc))
		} else {
			fmt.Fprintf(w, "%s: dispatched as soon as the limits, windows and freezes allow\n", action.StateName(a.GetState()))
		}
		if a.GetWaiting() != "" {
			fmt.Fprintf(w, "  waiting for: %s\n", a.GetWaiting())
		}
		fmt.Fprintf(w, "  cancel:  hwhealctl cancel %s --reason TEXT\n", id)
	default:
		fmt.Fprintf(w, "%s", action.StateName(a.GetState()))
		if a.GetResult() != "" {
			fmt.Fprintf(w, ": %s", a.GetResult())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  follow:  hwhealctl action %s\n", id)
}

func approvers(a *hwhealv1.Action) string {
	names := a.GetApprovedBy()
	if len(names) == 0 {
		for _, n := range a.GetApprovals() {
			names = append(names, n.GetActor())
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// localTime is t in the reader's zone, with how far from now it is.
func localTime(t, now time.Time, loc *time.Location) string {
	s := t.In(loc).Format(time.RFC3339)
	switch d := t.Sub(now).Round(time.Second); {
	case d > 0:
		return s + " (in " + d.String() + ")"
	case d < 0:
		return s + " (" + (-d).String() + " ago)"
	}
	return s + " (now)"
}
