package ctl

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestPauseResume(t *testing.T) {
	f := &fakeFleet{}
	e := startFake(t, f)

	f.update(func(d *fakeData) {
		d.status = &hwhealv1.RemediationStatus{Paused: true, PausedBy: &hwhealv1.ActionNote{Actor: "root", Time: timestamppb.New(fakeNow), Reason: "firmware rollout"}}
	})
	out := e.ctl(t, "root", "pause", "--reason", "firmware rollout")
	if r := last[*hwhealv1.PauseRemediationRequest](t, f, "PauseRemediation"); r.GetReason() != "firmware rollout" {
		t.Errorf("request %v", r)
	}
	if out != "remediation PAUSED by root at 2026-03-01T12:00:00Z: firmware rollout\n" {
		t.Errorf("pause printed %q", out)
	}

	f.update(func(d *fakeData) {
		d.status = &hwhealv1.RemediationStatus{ResumedBy: &hwhealv1.ActionNote{Actor: "root", Time: timestamppb.New(fakeNow), Reason: "rollout done"}}
	})
	out = e.ctl(t, "root", "resume", "--reason", "rollout done")
	if r := last[*hwhealv1.ResumeRemediationRequest](t, f, "ResumeRemediation"); r.GetReason() != "rollout done" {
		t.Errorf("request %v", r)
	}
	if out != "remediation running (resumed by root at 2026-03-01T12:00:00Z: rollout done)\n" {
		t.Errorf("resume printed %q", out)
	}

	f.reset()
	for _, verb := range []string{"pause", "resume"} {
		wantErr(t, e.ctlErr(t, "root", verb), "--reason is required")
		wantErr(t, e.ctlErr(t, "root", verb, "now", "--reason", "r"), "unknown command")
	}
	if len(f.requests("PauseRemediation"))+len(f.requests("ResumeRemediation")) != 0 {
		t.Error("a request was sent without a reason")
	}
	// Approvers decide on actions; only admins switch remediation.
	if err := e.ctlErr(t, "bob", "pause", "--reason", "r"); err.Error() != "permission_denied: PauseRemediation needs role admin; bob has approver" {
		t.Errorf("error %q", err)
	}
	if err := e.ctlErr(t, "alice", "resume", "--reason", "r"); err.Error() != "permission_denied: ResumeRemediation needs role admin; alice has operator" {
		t.Errorf("error %q", err)
	}
}
