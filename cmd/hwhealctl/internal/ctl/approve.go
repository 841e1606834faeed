package ctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newApproveCmd(o *options) *cobra.Command {
	var reason, at string
	cmd := &cobra.Command{
		Use:   "approve ID [--reason TEXT] [--at TIME]",
		Short: "Approve an action awaiting approval (approver role), now or for a time inside its approval window",
		Long: `Approves an action awaiting approval. With --at it runs at that time rather
than now; the time must fall before the action's approval deadline. TIME is
RFC 3339 (2026-03-01T14:00:00+01:00), a duration from now (2h, 90m), or HH:MM
in local time (today, or tomorrow when that time has passed). A two-person
action needs a second approver who is not the requester.`,
		Example: `  hwhealctl approve a-7f3c
  hwhealctl approve a-7f3c --at 02:00 --reason "quiet hours"
  hwhealctl approve a-7f3c --at 2h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &hwhealv1.ApproveActionRequest{Id: args[0], Reason: reason}
			if at != "" {
				t, err := parseAt(at, o.clock(), o.zone())
				if err != nil {
					return err
				}
				req.At = timestamppb.New(t)
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			resp, err := c.ApproveAction(ctx, req)
			if err != nil {
				return rpcError(err)
			}
			a := resp.GetAction()
			if o.structured() {
				return o.write(a)
			}
			now := o.clock()
			switch {
			case a.GetState() == action.AwaitingApproval:
				fmt.Fprintf(o.stdout, "action %s: approval recorded (%s); it needs another approver who is not %s\n",
					a.GetId(), approvers(a), a.GetRequestedBy())
			case a.GetNotBefore() != nil && a.GetNotBefore().AsTime().After(now):
				fmt.Fprintf(o.stdout, "action %s approved: %s of %s runs at %s\n", a.GetId(), actionTypeName(a.GetType()), a.GetNode(),
					localTime(a.GetNotBefore().AsTime(), now, o.zone()))
			default:
				fmt.Fprintf(o.stdout, "action %s approved: %s of %s runs now, as the limits, windows and freezes allow\n", a.GetId(),
					actionTypeName(a.GetType()), a.GetNode())
			}
			if a.GetWaiting() != "" {
				fmt.Fprintf(o.stdout, "  waiting for: %s\n", a.GetWaiting())
			}
			fmt.Fprintf(o.stdout, "  follow:  hwhealctl action %s\n", a.GetId())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why (optional; kept with the approval and in the audit log)")
	f.StringVar(&at, "at", "", "run at TIME rather than now: RFC 3339, a duration from now (2h), or HH:MM local time")
	return cmd
}

// parseAt reads approve --at: an RFC 3339 time, a duration from now, or
// HH:MM in loc (today, or tomorrow once that time has passed). A time in
// the past is refused: "run at 09:00" meant the next 09:00.
func parseAt(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("--at %q is in the past", s)
		}
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--at %q: a duration from now must be positive", s)
		}
		return now.Add(d), nil
	}
	if hm, err := time.Parse("15:04", s); err == nil {
		n := now.In(loc)
		t := time.Date(n.Year(), n.Month(), n.Day(), hm.Hour(), hm.Minute(), 0, 0, loc)
		if !t.After(n) {
			t = time.Date(n.Year(), n.Month(), n.Day()+1, hm.Hour(), hm.Minute(), 0, 0, loc)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: use RFC 3339 (2026-03-01T14:00:00+01:00), a duration from now (2h) or HH:MM (local time, today or tomorrow)", s)
}
