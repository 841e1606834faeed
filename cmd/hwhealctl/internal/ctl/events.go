package ctl

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newEventsCmd(o *options) *cobra.Command {
	var follow bool
	var after uint64
	var node, class string
	var types []string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print fleet events: recorded ones, then new ones with --follow",
		Example: `  hwhealctl events --follow
  hwhealctl events --after 1200 --type fault_opened -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &hwhealv1.WatchEventsRequest{Node: node, FaultClass: class, StopAtEnd: !follow}
			// A listing replays the recorded events; a follow starts with
			// new ones unless --after asks for the past too.
			if !follow || cmd.Flags().Changed("after") {
				req.AfterId = &after
			}
			for _, t := range types {
				v, ok := hwhealv1.EventType_value["EVENT_TYPE_"+strings.ToUpper(t)]
				if !ok || v == 0 {
					return fmt.Errorf("--type %q is not an event type", t)
				}
				req.Types = append(req.Types, hwhealv1.EventType(v))
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			// A follow has no deadline; a listing has the usual one.
			ctx := cmd.Context()
			if !follow {
				var cancel func()
				ctx, cancel = o.ctx(ctx)
				defer cancel()
			}
			stream, err := c.WatchEvents(ctx, req)
			if err != nil {
				return rpcError(err)
			}
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					if ctx.Err() != nil && follow {
						return nil
					}
					return rpcError(err)
				}
				if err := writeEvent(o, resp.GetEvent()); err != nil {
					return err
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	f.Uint64Var(&after, "after", 0, "start after this event id (with --follow: replay from there first)")
	f.StringVar(&node, "node", "", "only events of this node")
	f.StringVar(&class, "class", "", "only fault events of this class")
	f.StringSliceVar(&types, "type", nil, "only these event types (e.g. fault_opened,node_health_changed)")
	return cmd
}

func writeEvent(o *options, ev *hwhealv1.Event) error {
	if o.structured() {
		return o.writeItem(ev)
	}
	line := fmt.Sprintf("%d  %s  %-20s %s", ev.GetId(), timeString(ev.GetTime()), eventTypeName(ev.GetType()), ev.GetNode())
	switch ev.GetType() {
	case hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED:
		line += fmt.Sprintf("  %s -> %s", healthName(ev.GetOldHealth()), healthName(ev.GetNewHealth()))
	case hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED, hwhealv1.EventType_EVENT_TYPE_FAULT_UPDATED, hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED:
		f := ev.GetFault()
		line += fmt.Sprintf("  %s %s %s x%d  %s", f.GetFaultClass(), severityName(f.GetSeverity()), partString(f.GetPart()), f.GetCount(), f.GetSummary())
	case hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED:
		a := ev.GetAction()
		line += fmt.Sprintf("  %s %s %s", a.GetId(), actionTypeName(a.GetType()), action.StateName(a.GetState()))
	case hwhealv1.EventType_EVENT_TYPE_NODE_SERVICE_CHANGED:
		line += fmt.Sprintf("  %s -> %s", action.ServiceName(ev.GetOldService()), action.ServiceName(ev.GetNewService()))
	}
	if ev.GetActor() != "" {
		line += "  by " + ev.GetActor()
	}
	if ev.GetReason() != "" {
		line += ": " + ev.GetReason()
	}
	_, err := fmt.Fprintln(o.stdout, line)
	return err
}
