package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newActionsCmd(o *options) *cobra.Command {
	var node, rule string
	var states []string
	var limit int
	cmd := &cobra.Command{
		Use:   "actions",
		Short: "List remediation actions with their state, rule, requester and approvals",
		Example: `  hwhealctl actions --state awaiting_approval
  hwhealctl actions --node web-17 --limit 20
  hwhealctl actions --rule disk-media -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &hwhealv1.ListActionsRequest{Node: node, Rule: rule}
			for _, s := range states {
				st, err := parseActionState(s)
				if err != nil {
					return err
				}
				req.States = append(req.States, st)
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			var actions []*hwhealv1.Action
			err = paginate(cmd.Context(), o, limit, func(ctx context.Context, size uint32, token string) (string, int, error) {
				req.PageSize, req.PageToken = size, token
				resp, err := c.ListActions(ctx, req)
				if err != nil {
					return "", 0, err
				}
				actions = append(actions, resp.GetActions()...)
				return resp.GetNextPageToken(), len(resp.GetActions()), nil
			})
			if err != nil {
				return err
			}
			if o.structured() {
				return writeList(o, actions)
			}
			return writeActionTable(o.stdout, actions, o.clock())
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "only actions on this node")
	f.StringSliceVar(&states, "state", nil, "only actions in these states (e.g. awaiting_approval,approved,running)")
	f.StringVar(&rule, "rule", "", "only actions this policy rule proposed")
	f.IntVar(&limit, "limit", 0, "at most this many actions (0: all)")
	return cmd
}

// parseActionState reads a state as the table prints it
// (awaiting_approval; awaiting-approval and upper case are fine too).
func parseActionState(s string) (hwhealv1.ActionState, error) {
	name := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	v, ok := hwhealv1.ActionState_value["ACTION_STATE_"+name]
	if !ok || v == 0 {
		var names []string
		for i := int32(1); ; i++ {
			n, ok := hwhealv1.ActionState_name[i]
			if !ok {
				break
			}
			names = append(names, enumName(n, "ACTION_STATE_"))
		}
		return 0, fmt.Errorf("--state %q: use %s", s, strings.Join(names, ", "))
	}
	return hwhealv1.ActionState(v), nil
}

func writeActionTable(w io.Writer, actions []*hwhealv1.Action, now time.Time) error {
	tw := newTable(w, "ID", "NODE", "ACTION", "STATE", "RULE", "REQUESTED BY", "APPROVALS", "AGE", "WAITING/RESULT")
	for _, a := range actions {
		kind := actionTypeName(a.GetType())
		if a.GetDryRun() {
			kind += "/dry-run"
		}
		rule := a.GetRule()
		if rule == "" {
			rule = "manual"
		}
		age := "-"
		if a.GetCreated() != nil {
			age = ageString(now.Sub(a.GetCreated().AsTime()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetId(), a.GetNode(), kind, action.StateName(a.GetState()), rule,
			orDash(a.GetRequestedBy()), approvers(a), age, orDash(truncate(oneLine(waitingOrResult(a)), 80)))
	}
	return tw.Flush()
}

// waitingOrResult is what an action waits for, or how it ended.
func waitingOrResult(a *hwhealv1.Action) string {
	if a.GetWaiting() != "" {
		return a.GetWaiting()
	}
	return a.GetResult()
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
