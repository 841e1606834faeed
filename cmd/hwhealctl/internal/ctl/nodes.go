package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func newNodesCmd(o *options) *cobra.Command {
	var health, service []string
	var labels map[string]string
	var class string
	var limit int
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List nodes with their health and service state",
		Example: `  hwhealctl nodes --health faulty,suspect
  hwhealctl nodes --service offline,draining
  hwhealctl nodes --label rack=r12 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &hwhealv1.ListNodesRequest{Labels: labels, FaultClass: class}
			for _, h := range health {
				v, ok := hwhealv1.NodeHealth_value["NODE_HEALTH_"+strings.ToUpper(strings.TrimSpace(h))]
				if !ok || v == 0 {
					return fmt.Errorf("--health %q: use healthy, suspect or faulty", h)
				}
				req.Health = append(req.Health, hwhealv1.NodeHealth(v))
			}
			for _, s := range service {
				v, ok := hwhealv1.ServiceState_value["SERVICE_STATE_"+strings.ToUpper(strings.TrimSpace(s))]
				if !ok || v == 0 {
					return fmt.Errorf("--service %q: use in_service, draining, offline, rebooting or migrating", s)
				}
				req.ServiceStates = append(req.ServiceStates, hwhealv1.ServiceState(v))
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			var nodes []*hwhealv1.Node
			err = paginate(cmd.Context(), o, limit, func(ctx context.Context, size uint32, token string) (string, int, error) {
				req.PageSize, req.PageToken = size, token
				resp, err := c.ListNodes(ctx, req)
				if err != nil {
					return "", 0, err
				}
				nodes = append(nodes, resp.GetNodes()...)
				return resp.GetNextPageToken(), len(resp.GetNodes()), nil
			})
			if err != nil {
				return err
			}
			if o.structured() {
				return writeList(o, nodes)
			}
			tw := newTable(o.stdout, "NAME", "HEALTH", "SERVICE", "CONNECTED", "OPEN FAULTS", "LAST SEEN", "LABELS")
			for _, n := range nodes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.GetName(), healthName(n.GetHealth()), action.ServiceName(n.GetServiceState()),
					yesNo(n.GetConnected()), n.GetOpenFaults(), timeString(n.GetLastSeen()), labelsString(n.GetLabels()))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&health, "health", nil, "only nodes in these states (healthy, suspect, faulty)")
	f.StringToStringVar(&labels, "label", nil, "only nodes with these labels (k=v, repeatable)")
	f.StringSliceVar(&service, "service", nil, "only nodes in these service states (in_service, draining, offline, rebooting, migrating)")
	f.StringVar(&class, "class", "", "only nodes with an open fault of this class")
	f.IntVar(&limit, "limit", 0, "at most this many nodes (0: all)")
	return cmd
}

func newNodeCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "node NAME",
		Short: "Show one node: health, service state, the agent's guard, labels, inventory, open faults and latest readings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			resp, err := c.GetNode(ctx, &hwhealv1.GetNodeRequest{Name: args[0]})
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(resp)
			}
			n := resp.GetNode()
			w := o.stdout
			fmt.Fprintf(w, "Name:           %s\n", n.GetName())
			fmt.Fprintf(w, "Health:         %s (since %s)\n", healthName(n.GetHealth()), timeString(n.GetHealthChanged()))
			fmt.Fprintf(w, "Service:        %s (since %s)\n", action.ServiceName(n.GetServiceState()), timeString(n.GetServiceChanged()))
			fmt.Fprintf(w, "Guard:          %s\n", guardString(n.GetGuard()))
			fmt.Fprintf(w, "Connected:      %s\n", yesNo(n.GetConnected()))
			fmt.Fprintf(w, "Labels:         %s\n", labelsString(n.GetLabels()))
			fmt.Fprintf(w, "Agent version:  %s\n", n.GetAgentVersion())
			fmt.Fprintf(w, "Boot id:        %s\n", n.GetBootId())
			fmt.Fprintf(w, "First seen:     %s\n", timeString(n.GetFirstSeen()))
			fmt.Fprintf(w, "Last seen:      %s\n", timeString(n.GetLastSeen()))
			if inv := n.GetInventory(); inv != nil {
				fmt.Fprintf(w, "System:         %s %s (serial %s, BIOS %s)\n", inv.GetSystemVendor(), inv.GetSystemProduct(), inv.GetSystemSerial(), inv.GetBiosVersion())
				fmt.Fprintf(w, "CPU:            %s, %d cores; memory %d MiB\n", inv.GetCpuModel(), inv.GetCpuCores(), inv.GetMemoryBytes()>>20)
				for _, d := range inv.GetDisks() {
					fmt.Fprintf(w, "Disk:           %s %s serial %s\n", d.GetName(), d.GetModel(), d.GetSerial())
				}
				for _, nic := range inv.GetNics() {
					if !nic.GetVirtual() {
						fmt.Fprintf(w, "NIC:            %s %s %s\n", nic.GetName(), nic.GetMac(), nic.GetPciAddress())
					}
				}
			}
			fmt.Fprintf(w, "\nOpen faults (%d):\n", len(resp.GetOpenFaults()))
			if err := writeFaultTable(w, resp.GetOpenFaults()); err != nil {
				return err
			}
			fmt.Fprintf(w, "\nLatest readings (%d):\n", len(resp.GetLatestObservations()))
			tw := newTable(w, "SOURCE", "PART", "TIME", "SAMPLES")
			for _, ob := range resp.GetLatestObservations() {
				var parts []string
				for _, s := range ob.GetSamples() {
					parts = append(parts, fmt.Sprintf("%s=%g", s.GetName(), s.GetValue()))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ob.GetSource(), partString(ob.GetPart()), timeString(ob.GetTime()), truncate(strings.Join(parts, " "), 120))
			}
			return tw.Flush()
		},
	}
}

// guardString says what the node's agent lets remediation do.
func guardString(g *hwhealv1.ActionGuard) string {
	if g == nil {
		return "none announced (the agent runs no actions)"
	}
	var allowed []string
	for _, t := range g.GetAllowed() {
		allowed = append(allowed, actionTypeName(t))
	}
	s := "allows none"
	if len(allowed) > 0 {
		s = "allows " + strings.Join(allowed, ",")
	}
	s += "; dry run " + yesNo(g.GetDryRun())
	if g.GetMaxReboots() > 0 {
		s += fmt.Sprintf("; at most %d reboots in %s", g.GetMaxReboots(), g.GetRebootWindow().AsDuration())
	} else {
		s += "; no reboot limit"
	}
	return s
}

// paginate calls page until the listing ends or limit items were fetched.
func paginate(parent context.Context, o *options, limit int, page func(ctx context.Context, size uint32, token string) (next string, got int, err error)) error {
	token, total := "", 0
	for {
		size := uint32(1000)
		if limit > 0 && limit-total < int(size) {
			size = uint32(limit - total)
		}
		ctx, cancel := o.ctx(parent)
		next, got, err := page(ctx, size, token)
		cancel()
		if err != nil {
			return rpcError(err)
		}
		total += got
		if next == "" || (limit > 0 && total >= limit) {
			return nil
		}
		token = next
	}
}
