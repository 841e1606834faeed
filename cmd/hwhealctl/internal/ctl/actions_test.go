package ctl

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// someActions are five actions in different states, the way a listing
// returns them.
func someActions() []*hwhealv1.Action {
	ago := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(fakeNow.Add(-d)) }
	return []*hwhealv1.Action{
		{Id: "a-1", Node: "web-1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, State: hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL,
			RequestedBy: "alice", Created: ago(5 * time.Minute)},
		{Id: "a-2", Node: "web-2", Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE, State: hwhealv1.ActionState_ACTION_STATE_APPROVED,
			Rule: "memory-ce-storm", RequestedBy: "policy:memory-ce-storm", ApprovedBy: []string{"bob", "carol"}, Created: ago(3*time.Hour + 20*time.Minute),
			Waiting: "limit: 5 of 5 nodes out of service"},
		{Id: "a-3", Node: "db-1", Type: hwhealv1.ActionType_ACTION_TYPE_MIGRATE, State: hwhealv1.ActionState_ACTION_STATE_SUCCEEDED,
			Rule: "disk-media", RequestedBy: "policy:disk-media", Created: ago(50 * time.Hour), Result: "moved 3 volumes\nin 2 minutes"},
		{Id: "a-4", Node: "web-3", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT, State: hwhealv1.ActionState_ACTION_STATE_RUNNING,
			RequestedBy: "alice", Approvals: []*hwhealv1.ActionNote{{Actor: "bob"}}, Created: ago(40 * time.Second), DryRun: true},
		{Id: "a-5", Node: "web-4", Type: hwhealv1.ActionType_ACTION_TYPE_ONLINE, State: hwhealv1.ActionState_ACTION_STATE_DENIED,
			RequestedBy: "alice", Created: ago(10 * time.Minute)},
	}
}

func TestActions(t *testing.T) {
	f := &fakeFleet{fakeData: fakeData{pageSize: 2, actions: someActions()}}
	e := startFake(t, f)

	out := e.ctl(t, "vic", "actions")
	rows := table(t, out, "ID", "NODE", "ACTION", "STATE", "RULE", "REQUESTED", "BY", "APPROVALS", "AGE", "WAITING/RESULT")
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r, " "))
	}
	want := []string{
		"a-1 web-1 reboot awaiting_approval manual alice - 5m -",
		"a-2 web-2 offline approved memory-ce-storm policy:memory-ce-storm bob,carol 3h20m limit: 5 of 5 nodes out of service",
		"a-3 db-1 migrate succeeded disk-media policy:disk-media - 2d moved 3 volumes in 2 minutes",
		"a-4 web-3 reboot/dry-run running manual alice bob 40s -",
		"a-5 web-4 online denied manual alice - 10m -",
	}
	if !slices.Equal(got, want) {
		t.Errorf("actions:\n%s\nwant rows:\n%s", out, strings.Join(want, "\n"))
	}
	// Three pages of at most two, each asked for with the token before.
	calls := f.requests("ListActions")
	if len(calls) != 3 {
		t.Fatalf("%d ListActions calls, want 3 pages", len(calls))
	}
	for i, c := range calls {
		if tok := c.req.(*hwhealv1.ListActionsRequest).GetPageToken(); tok != []string{"", "2", "4"}[i] {
			t.Errorf("page %d asked with token %q", i, tok)
		}
		if c.user != "vic" {
			t.Errorf("page %d as %q", i, c.user)
		}
	}

	t.Run("filters", func(t *testing.T) {
		f.reset()
		e.ctl(t, "vic", "actions", "--node", "web-1", "--state", "awaiting_approval,Approved", "--state", "timed-out", "--rule", "disk-media")
		req := f.requests("ListActions")[0].req.(*hwhealv1.ListActionsRequest)
		want := &hwhealv1.ListActionsRequest{PageSize: 1000, Node: "web-1", Rule: "disk-media", States: []hwhealv1.ActionState{
			hwhealv1.ActionState_ACTION_STATE_AWAITING_APPROVAL, hwhealv1.ActionState_ACTION_STATE_APPROVED, hwhealv1.ActionState_ACTION_STATE_TIMED_OUT}}
		if !proto.Equal(req, want) {
			t.Errorf("request %v, want %v", req, want)
		}
	})

	t.Run("limit", func(t *testing.T) {
		f.reset()
		rows := table(t, e.ctl(t, "vic", "actions", "--limit", "3"), "ID", "NODE", "ACTION", "STATE", "RULE", "REQUESTED", "BY", "APPROVALS", "AGE", "WAITING/RESULT")
		if len(rows) != 3 {
			t.Errorf("--limit 3 listed %d", len(rows))
		}
		var sizes []uint32
		for _, c := range f.requests("ListActions") {
			sizes = append(sizes, c.req.(*hwhealv1.ListActionsRequest).GetPageSize())
		}
		if !slices.Equal(sizes, []uint32{3, 1}) {
			t.Errorf("page sizes asked %v, want [3 1]", sizes)
		}
	})

	t.Run("json", func(t *testing.T) {
		var list []map[string]any
		if err := json.Unmarshal([]byte(e.ctl(t, "vic", "actions", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 5 || list[1]["rule"] != "memory-ce-storm" || list[1]["waiting"] != "limit: 5 of 5 nodes out of service" {
			t.Errorf("-o json: %v", list)
		}
	})

	t.Run("bad state", func(t *testing.T) {
		f.reset()
		wantErr(t, e.ctlErr(t, "vic", "actions", "--state", "exploded"), `--state "exploded"`, "awaiting_approval", "refused")
		if len(f.requests("ListActions")) != 0 {
			t.Error("a request was sent")
		}
	})

	t.Run("no token", func(t *testing.T) {
		t.Setenv("HWHEAL_TOKEN", "")
		t.Setenv("HWHEAL_TOKEN_FILE", "")
		err := e.ctlErr(t, "", "actions")
		if err.Error() != "unauthenticated: no token: pass --token, HWHEAL_TOKEN or --token-file" {
			t.Errorf("error %q", err)
		}
	})
}

func TestAgeString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "0s",
		0:                               "0s",
		59 * time.Second:                "59s",
		time.Minute:                     "1m",
		59*time.Minute + 59*time.Second: "59m",
		time.Hour:                       "1h",
		25 * time.Hour:                  "1d",
		23*time.Hour + 5*time.Minute:    "23h5m",
		9 * 24 * time.Hour:              "9d",
	} {
		if got := ageString(d); got != want {
			t.Errorf("ageString(%v) = %q, want %q", d, got, want)
		}
	}
}
