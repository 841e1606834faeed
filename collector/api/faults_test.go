package api_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestFaultRPCs(t *testing.T) {
	e := newEnv(t, envOpts{})
	hello(t, e.store, "n1", nil)
	if _, err := e.store.Apply(t.Context(), []store.Batch{{Node: "n1", StreamID: "stream-n1", Received: at(1),
		Reports: []*hwhealv1.Report{faultReport(1, "disk.io_error", hwhealv1.Severity_SEVERITY_CRITICAL, disk("sda"), at(1))}}}); err != nil {
		t.Fatal(err)
	}
	faults := listFaults(t, e.client, &hwhealv1.ListFaultsRequest{})
	if len(faults) != 1 {
		t.Fatalf("%d faults", len(faults))
	}
	id := faults[0].GetId()
	sub := e.broker.Subscribe()
	defer sub.Close()
	as := func(who string) context.Context { return asUser(t.Context(), who) }

	// Refused: no caller, no reason, no id, an unknown fault. (A user
	// name too long to record is refused where tokens are read.)
	_, err := e.client.AcknowledgeFault(t.Context(), &hwhealv1.AcknowledgeFaultRequest{Id: id, Reason: "r"})
	wantCode(t, err, codes.Unauthenticated, "no authenticated caller")
	_, err = e.client.ResolveFault(as("bob"), &hwhealv1.ResolveFaultRequest{Id: id, Reason: "  "})
	wantCode(t, err, codes.InvalidArgument, "reason is required")
	_, err = e.client.AcknowledgeFault(as("bob"), &hwhealv1.AcknowledgeFaultRequest{Reason: "r"})
	wantCode(t, err, codes.InvalidArgument, "id is required")
	_, err = e.client.ResolveFault(as("bob"), &hwhealv1.ResolveFaultRequest{Id: 999, Reason: "r"})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.ResolveFault(as("bob"), &hwhealv1.ResolveFaultRequest{Id: id, Reason: strings.Repeat("x", 1025)})
	wantCode(t, err, codes.InvalidArgument, "at most 1024")

	ack, err := e.client.AcknowledgeFault(as("alice@ops"), &hwhealv1.AcknowledgeFaultRequest{Id: id, Reason: "looking"})
	if err != nil {
		t.Fatal(err)
	}
	if a := ack.GetFault().GetAcknowledged(); a.GetActor() != "alice@ops" || a.GetReason() != "looking" || ack.GetFault().GetState() != hwhealv1.FaultState_FAULT_STATE_OPEN {
		t.Errorf("acknowledged fault %v", ack.GetFault())
	}
	res, err := e.client.ResolveFault(as("alice@ops"), &hwhealv1.ResolveFaultRequest{Id: id, Reason: "replaced"})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.GetFault().GetResolvedBy(); res.GetFault().GetState() != hwhealv1.FaultState_FAULT_STATE_RESOLVED || r.GetActor() != "alice@ops" || r.GetReason() != "replaced" {
		t.Errorf("resolved fault %v", res.GetFault())
	}
	_, err = e.client.ResolveFault(as("alice@ops"), &hwhealv1.ResolveFaultRequest{Id: id, Reason: "again"})
	wantCode(t, err, codes.FailedPrecondition)
	got, err := e.client.GetFault(t.Context(), &hwhealv1.GetFaultRequest{Id: id})
	if err != nil || got.GetFault().GetResolvedBy().GetReason() != "replaced" {
		t.Fatalf("GetFault: %v, %v", got, err)
	}

	// The changes reached the event stream, in order, with who and why.
	var types []hwhealv1.EventType
	for len(types) < 3 {
		ev := <-sub.C()
		types = append(types, ev.GetType())
		if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED && (ev.GetActor() != "alice@ops" || ev.GetReason() != "replaced") {
			t.Errorf("resolved event %v", ev)
		}
	}
	want := []hwhealv1.EventType{hwhealv1.EventType_EVENT_TYPE_FAULT_ACKNOWLEDGED, hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED, hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
}
