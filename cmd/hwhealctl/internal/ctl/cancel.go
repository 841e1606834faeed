package ctl

import (
	"context"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newCancelCmd(o *options) *cobra.Command {
	return newDecisionCmd(o, "cancel", "Cancel an action not yet dispatched (operator role)",
		func(ctx context.Context, c hwhealv1.FleetServiceClient, id, reason string) (*hwhealv1.Action, error) {
			resp, err := c.CancelAction(ctx, &hwhealv1.CancelActionRequest{Id: id, Reason: reason})
			return resp.GetAction(), err
		})
}
