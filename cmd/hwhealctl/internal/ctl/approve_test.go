package ctl

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestParseAt(t *testing.T) {
	// 12:00 UTC is 13:00 in fakeZone.
	local := func(day, h, m int) time.Time { return time.Date(2026, 3, day, h, m, 0, 0, fakeZone) }
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "2026-03-01T14:00:00+01:00", want: local(1, 14, 0)},
		{in: "2026-03-05T00:00:00Z", want: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)},
		{in: "2h", want: fakeNow.Add(2 * time.Hour)},
		{in: " 90m ", want: fakeNow.Add(90 * time.Minute)},
		{in: "14:30", want: local(1, 14, 30)},
		// Past today: tomorrow.
		{in: "09:00", want: local(2, 9, 0)},
		{in: "13:00", want: local(2, 13, 0)},
		{in: "2026-03-01T11:00:00Z", err: "is in the past"},
		{in: "-1h", err: "must be positive"},
		{in: "0s", err: "must be positive"},
		{in: "25:00", err: "use RFC 3339"},
		{in: "tomorrow", err: "use RFC 3339"},
		{in: "", err: "use RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseAt(tt.in, fakeNow, fakeZone)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseAt(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("parseAt(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestApprove(t *testing.T) {
	f := &fakeFleet{}
	e := startFake(t, f)
	scheduled := func(at time.Time) {
		f.update(func(d *fakeData) {
			a := pendingAction()
			a.State, a.NotBefore = hwhealv1.ActionState_ACTION_STATE_APPROVED, timestamppb.New(at)
			d.reply = a
		})
	}

	t.Run("now", func(t *testing.T) {
		f.reset()
		f.update(func(d *fakeData) {
			a := pendingAction()
			a.State = hwhealv1.ActionState_ACTION_STATE_APPROVED
			d.reply = a
		})
		out := e.ctl(t, "bob", "approve", "a-1")
		req := last[*hwhealv1.ApproveActionRequest](t, f, "ApproveAction")
		if req.GetId() != "a-1" || req.GetReason() != "" || req.GetAt() != nil {
			t.Errorf("request %v", req)
		}
		wantLines(t, out, "action a-1 approved: reboot of web-1 runs now, as the limits, windows and freezes allow", "follow: hwhealctl action a-1")
	})

	t.Run("at a duration", func(t *testing.T) {
		f.reset()
		scheduled(fakeNow.Add(2 * time.Hour))
		out := e.ctl(t, "bob", "approve", "a-1", "--at", "2h", "--reason", "after the batch job")
		req := last[*hwhealv1.ApproveActionRequest](t, f, "ApproveAction")
		if !req.GetAt().AsTime().Equal(fakeNow.Add(2*time.Hour)) || req.GetReason() != "after the batch job" {
			t.Errorf("request %v", req)
		}
		wantLines(t, out, "action a-1 approved: reboot of web-1 runs at 2026-03-01T15:00:00+01:00 (in 2h0m0s)")
	})

	t.Run("at a clock time", func(t *testing.T) {
		f.reset()
		want := time.Date(2026, 3, 2, 2, 0, 0, 0, fakeZone)
		scheduled(want)
		out := e.ctl(t, "bob", "approve", "a-1", "--at", "02:00")
		if at := last[*hwhealv1.ApproveActionRequest](t, f, "ApproveAction").GetAt().AsTime(); !at.Equal(want) {
			t.Errorf("--at 02:00 sent %v, want %v", at, want)
		}
		wantLines(t, out, "action a-1 approved: reboot of web-1 runs at 2026-03-02T02:00:00+01:00 (in 13h0m0s)")
	})

	t.Run("two-person, first approval", func(t *testing.T) {
		f.update(func(d *fakeData) {
			a := pendingAction()
			a.Approvals = []*hwhealv1.ActionNote{{Actor: "bob", Time: timestamppb.New(fakeNow)}}
			d.reply = a
		})
		wantLines(t, e.ctl(t, "bob", "approve", "a-1"), "action a-1: approval recorded (bob); it needs another approver who is not alice")
	})

	t.Run("bad time", func(t *testing.T) {
		f.reset()
		wantErr(t, e.ctlErr(t, "bob", "approve", "a-1", "--at", "soon"), `--at "soon"`)
		if len(f.requests("ApproveAction")) != 0 {
			t.Error("a request was sent")
		}
	})

	t.Run("operator denied", func(t *testing.T) {
		err := e.ctlErr(t, "alice", "approve", "a-1")
		if err.Error() != "permission_denied: ApproveAction needs role approver; alice has operator" {
			t.Errorf("error %q", err)
		}
	})

	t.Run("server refusal", func(t *testing.T) {
		f.update(func(d *fakeData) {
			d.err = statusErr("FailedPrecondition", "the requester cannot approve their own two-person action")
		})
		defer f.update(func(d *fakeData) { d.err = nil })
		wantErr(t, e.ctlErr(t, "bob", "approve", "a-1"), "failed_precondition: the requester cannot approve their own two-person action")
	})
}
