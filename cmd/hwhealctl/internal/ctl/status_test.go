package ctl

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func fullStatus() *hwhealv1.RemediationStatus {
	return &hwhealv1.RemediationStatus{
		Paused:     true,
		PausedBy:   &hwhealv1.ActionNote{Actor: "breaker", Time: timestamppb.New(fakeNow), Reason: "disk.media opened on 7 nodes in 15m0s"},
		PolicyFile: "/etc/hwheal/policy.yaml", PolicySha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		DryRun: true, Nodes: 40, OutOfService: 3, MaxOutOfService: 4, Available: 35, MinAvailable: 36,
		AwaitingApproval: 2, InFlight: 1,
		Domains: []*hwhealv1.DomainUsage{
			{Label: "rack", Value: "r12", Nodes: 10, OutOfService: 2, Limit: 2},
			{Label: "zone", Value: "b", Nodes: 20, OutOfService: 1},
		},
	}
}

func TestStatus(t *testing.T) {
	f := &fakeFleet{fakeData: fakeData{status: fullStatus()}}
	e := startFake(t, f)
	out := e.ctl(t, "vic", "status")
	last[*hwhealv1.GetRemediationStatusRequest](t, f, "GetRemediationStatus")
	wantLines(t, out,
		"FIELD VALUE",
		"remediation PAUSED by breaker at 2026-03-01T12:00:00Z: disk.media opened on 7 nodes in 15m0s",
		"policy /etc/hwheal/policy.yaml (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08)",
		"dry run yes: agents report what they would do and run nothing",
		"out of service 3 of 40 nodes (limit 4)",
		"available 35 (floor 36)",
		"awaiting approval 2",
		"in flight 1",
		"Busiest failure domains:",
		"LABEL VALUE NODES OUT OF SERVICE LIMIT",
		"rack r12 10 2 2",
		"zone b 20 1 -",
	)

	t.Run("running without limits", func(t *testing.T) {
		f.update(func(d *fakeData) {
			d.status = &hwhealv1.RemediationStatus{PolicySha256: "abc", Nodes: 3, Available: 3}
		})
		out := e.ctl(t, "vic", "status")
		wantLines(t, out, "remediation running", "policy built-in default (sha256 abc)", "dry run no",
			"out of service 0 of 3 nodes (no limit)", "available 3 (no floor)")
		if strings.Contains(out, "domains") {
			t.Errorf("domains shown without any:\n%s", out)
		}
	})
}
