package ctl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newStatusCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show remediation: paused or not, the policy in force, nodes out of service against the limits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			resp, err := c.GetRemediationStatus(ctx, &hwhealv1.GetRemediationStatusRequest{})
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(resp.GetStatus())
			}
			return writeStatus(o.stdout, resp.GetStatus())
		},
	}
}

func writeStatus(w io.Writer, st *hwhealv1.RemediationStatus) error {
	tw := newTable(w, "FIELD", "VALUE")
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("remediation", pausedString(st))
	policy := orDash(st.GetPolicyFile())
	if st.GetPolicyFile() == "" && st.GetPolicySha256() != "" {
		policy = "built-in default"
	}
	if h := st.GetPolicySha256(); h != "" {
		policy += " (sha256 " + h + ")"
	}
	row("policy", policy)
	dry := "no"
	if st.GetDryRun() {
		dry = "yes: agents report what they would do and run nothing"
	}
	row("dry run", dry)
	limit := "no limit"
	if st.GetMaxOutOfService() > 0 {
		limit = fmt.Sprintf("limit %d", st.GetMaxOutOfService())
	}
	row("out of service", fmt.Sprintf("%d of %d nodes (%s)", st.GetOutOfService(), st.GetNodes(), limit))
	floor := "no floor"
	if st.GetMinAvailable() > 0 {
		floor = fmt.Sprintf("floor %d", st.GetMinAvailable())
	}
	row("available", fmt.Sprintf("%d (%s)", st.GetAvailable(), floor))
	row("awaiting approval", fmt.Sprint(st.GetAwaitingApproval()))
	row("in flight", fmt.Sprint(st.GetInFlight()))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.GetDomains()) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nBusiest failure domains:\n")
	tw = newTable(w, "LABEL", "VALUE", "NODES", "OUT OF SERVICE", "LIMIT")
	for _, d := range st.GetDomains() {
		lim := "-"
		if d.GetLimit() > 0 {
			lim = fmt.Sprint(d.GetLimit())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", d.GetLabel(), d.GetValue(), d.GetNodes(), d.GetOutOfService(), lim)
	}
	return tw.Flush()
}
