package ctl

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func statusErr(code, msg string) error {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == code {
			return status.Error(c, msg)
		}
	}
	panic("no code " + code)
}

// TestDenyCancel: both take an id and a required reason, send them, and
// print the action's end with who ended it.
func TestDenyCancel(t *testing.T) {
	f := &fakeFleet{}
	e := startFake(t, f)
	for _, tt := range []struct {
		verb, user, method string
		state              hwhealv1.ActionState
		req                func(id, reason string) proto.Message
		lowUser, lowRole   string
		need               string
	}{
		{"deny", "bob", "DenyAction", hwhealv1.ActionState_ACTION_STATE_DENIED,
			func(id, reason string) proto.Message { return &hwhealv1.DenyActionRequest{Id: id, Reason: reason} }, "alice", "operator", "approver"},
		{"cancel", "alice", "CancelAction", hwhealv1.ActionState_ACTION_STATE_CANCELLED,
			func(id, reason string) proto.Message { return &hwhealv1.CancelActionRequest{Id: id, Reason: reason} }, "vic", "viewer", "operator"},
	} {
		t.Run(tt.verb, func(t *testing.T) {
			f.reset()
			f.update(func(d *fakeData) {
				a := pendingAction()
				a.State = tt.state
				a.Decision = &hwhealv1.ActionNote{Actor: tt.user, Time: timestamppb.New(fakeNow), Reason: "disk replaced instead"}
				d.reply = a
			})
			out := e.ctl(t, tt.user, tt.verb, "a-1", "--reason", "disk replaced instead")
			calls := f.requests(tt.method)
			if len(calls) != 1 || !proto.Equal(calls[0].req, tt.req("a-1", "disk replaced instead")) || calls[0].user != tt.user {
				t.Errorf("requests %v", calls)
			}
			wantLines(t, out, "action a-1: reboot of web-1 is "+action.StateName(tt.state),
				"by "+tt.user+" at 2026-03-01T12:00:00Z: disk replaced instead")

			f.reset()
			wantErr(t, e.ctlErr(t, tt.user, tt.verb, "a-1"), "--reason is required")
			wantErr(t, e.ctlErr(t, tt.user, tt.verb, "--reason", "r"), "accepts 1 arg")
			if len(f.requests(tt.method)) != 0 {
				t.Error("a request was sent without a reason")
			}
			err := e.ctlErr(t, tt.lowUser, tt.verb, "a-1", "--reason", "r")
			if want := "permission_denied: " + tt.method + " needs role " + tt.need + "; " + tt.lowUser + " has " + tt.lowRole; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}
