package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newDenyCmd(o *options) *cobra.Command {
	return newDecisionCmd(o, "deny", "Deny an action awaiting approval (approver role): it does not run",
		func(ctx context.Context, c hwhealv1.FleetServiceClient, id, reason string) (*hwhealv1.Action, error) {
			resp, err := c.DenyAction(ctx, &hwhealv1.DenyActionRequest{Id: id, Reason: reason})
			return resp.GetAction(), err
		})
}

// newDecisionCmd is deny and cancel: an id and a required reason, and the
// action as it is after.
func newDecisionCmd(o *options, verb, short string, call func(ctx context.Context, c hwhealv1.FleetServiceClient, id, reason string) (*hwhealv1.Action, error)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     verb + " ID --reason TEXT",
		Short:   short,
		Example: fmt.Sprintf("  hwhealctl %s a-7f3c --reason \"the node is being replaced, ticket OPS-1234\"", verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: say why, for the requester and the audit log")
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			a, err := call(ctx, c, args[0], reason)
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(a)
			}
			fmt.Fprintf(o.stdout, "action %s: %s of %s is %s\n", a.GetId(), actionTypeName(a.GetType()), a.GetNode(), action.StateName(a.GetState()))
			if d := a.GetDecision(); d != nil {
				fmt.Fprintf(o.stdout, "  by %s\n", noteString(d))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; kept with the action and in the audit log)")
	return cmd
}
