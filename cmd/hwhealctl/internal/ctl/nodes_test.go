package ctl

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestNodesServiceState: nodes and node show remediation's side of a
// node: its service state and the guard its agent announced.
func TestNodesServiceState(t *testing.T) {
	guarded := &hwhealv1.Node{Name: "web-1", Health: hwhealv1.NodeHealth_NODE_HEALTH_FAULTY, Connected: true,
		ServiceState: hwhealv1.ServiceState_SERVICE_STATE_DRAINING, ServiceChanged: timestamppb.New(fakeNow),
		Guard: &hwhealv1.ActionGuard{Allowed: []hwhealv1.ActionType{hwhealv1.ActionType_ACTION_TYPE_OFFLINE, hwhealv1.ActionType_ACTION_TYPE_REBOOT},
			DryRun: true, MaxReboots: 2, RebootWindow: durationpb.New(24 * time.Hour)}}
	f := &fakeFleet{fakeData: fakeData{
		nodes: []*hwhealv1.Node{guarded, {Name: "web-2", Health: hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY}},
		node:  &hwhealv1.GetNodeResponse{Node: guarded},
	}}
	e := startFake(t, f)

	rows := table(t, e.ctl(t, "vic", "nodes"), nodeHeader...)
	var got []string
	for _, r := range rows {
		got = append(got, r[0]+" "+r[2])
	}
	if want := []string{"web-1 draining", "web-2 in_service"}; !slices.Equal(got, want) {
		t.Errorf("nodes: %v, want %v", got, want)
	}

	f.reset()
	e.ctl(t, "vic", "nodes", "--service", "offline,Draining")
	want := &hwhealv1.ListNodesRequest{PageSize: 1000, ServiceStates: []hwhealv1.ServiceState{hwhealv1.ServiceState_SERVICE_STATE_OFFLINE, hwhealv1.ServiceState_SERVICE_STATE_DRAINING}}
	if req := last[*hwhealv1.ListNodesRequest](t, f, "ListNodes"); !proto.Equal(req, want) {
		t.Errorf("request %v, want %v", req, want)
	}
	wantErr(t, e.ctlErr(t, "vic", "nodes", "--service", "asleep"), `--service "asleep"`, "in_service, draining, offline")

	out := e.ctl(t, "vic", "node", "web-1")
	for _, want := range []string{
		"Service:        draining (since 2026-03-01T12:00:00Z)\n",
		"Guard:          allows offline,reboot; dry run yes; at most 2 reboots in 24h0m0s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("node lacks %q:\n%s", want, out)
		}
	}
	f.update(func(d *fakeData) {
		n := proto.Clone(guarded).(*hwhealv1.Node)
		n.Guard = &hwhealv1.ActionGuard{}
		d.node = &hwhealv1.GetNodeResponse{Node: n}
	})
	if out := e.ctl(t, "vic", "node", "web-1"); !strings.Contains(out, "Guard:          allows none; dry run no; no reboot limit\n") {
		t.Errorf("node with an empty guard:\n%s", out)
	}
}
