package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func newPauseCmd(o *options) *cobra.Command {
	return newSwitchCmd(o, "pause", "Pause every automatic action until resume (admin role)",
		func(ctx context.Context, c hwhealv1.FleetServiceClient, reason string) (*hwhealv1.RemediationStatus, error) {
			resp, err := c.PauseRemediation(ctx, &hwhealv1.PauseRemediationRequest{Reason: reason})
			return resp.GetStatus(), err
		})
}

func newResumeCmd(o *options) *cobra.Command {
	return newSwitchCmd(o, "resume", "Resume automatic remediation after a pause or a tripped storm breaker (admin role)",
		func(ctx context.Context, c hwhealv1.FleetServiceClient, reason string) (*hwhealv1.RemediationStatus, error) {
			resp, err := c.ResumeRemediation(ctx, &hwhealv1.ResumeRemediationRequest{Reason: reason})
			return resp.GetStatus(), err
		})
}

// newSwitchCmd is pause and resume: a required reason, and the status
// after.
func newSwitchCmd(o *options, verb, short string, call func(ctx context.Context, c hwhealv1.FleetServiceClient, reason string) (*hwhealv1.RemediationStatus, error)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     verb + " --reason TEXT",
		Short:   short,
		Example: fmt.Sprintf("  hwhealctl %s --reason \"firmware rollout in rack r12\"", verb),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: say why, for the other operators and the audit log")
			}
			c, done, err := o.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := o.ctx(cmd.Context())
			defer cancel()
			st, err := call(ctx, c, reason)
			if err != nil {
				return rpcError(err)
			}
			if o.structured() {
				return o.write(st)
			}
			_, err = fmt.Fprintf(o.stdout, "remediation %s\n", pausedString(st))
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; kept in the status, its event and the audit log)")
	return cmd
}

// pausedString says whether remediation runs, and who said so.
func pausedString(st *hwhealv1.RemediationStatus) string {
	if st.GetPaused() {
		s := "PAUSED"
		if n := st.GetPausedBy(); n != nil {
			s += " by " + noteString(n)
		}
		return s
	}
	s := "running"
	if n := st.GetResumedBy(); n != nil {
		s += " (resumed by " + noteString(n) + ")"
	}
	return s
}
