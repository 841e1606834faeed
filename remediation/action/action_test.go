package action

import (
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Every state is pending, in flight or final, exactly one of them, and
// only states that are not final move anywhere.
func TestStatesPartition(t *testing.T) {
	for v := range hwhealv1.ActionState_name {
		s := hwhealv1.ActionState(v)
		if s == hwhealv1.ActionState_ACTION_STATE_UNSPECIFIED {
			continue
		}
		n := 0
		for _, in := range []bool{Pending(s), InFlight(s), IsFinal(s)} {
			if in {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%v is in %d of pending, in flight and final; want exactly one", s, n)
		}
		if IsFinal(s) && len(next[s]) > 0 {
			t.Errorf("final state %v moves to %v", s, next[s])
		}
		if !IsFinal(s) && len(next[s]) == 0 {
			t.Errorf("state %v is not final but moves nowhere", s)
		}
	}
}

func TestCanMove(t *testing.T) {
	tests := []struct {
		from, to hwhealv1.ActionState
		want     bool
	}{
		{Proposed, AwaitingApproval, true},
		{AwaitingApproval, Approved, true},
		{AwaitingApproval, Dispatched, false}, // never past approval
		{Approved, Dispatched, true},
		{Approved, Running, false},
		{Dispatched, Refused, true},
		{Running, Refused, false}, // a guard refuses before it runs
		{Running, Succeeded, true},
		{Succeeded, Failed, false},
		{TimedOut, Succeeded, false}, // a late update does not change a final state
		{Dispatched, Cancelled, false},
	}
	for _, tt := range tests {
		if got := CanMove(tt.from, tt.to); got != tt.want {
			t.Errorf("CanMove(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestServiceAt(t *testing.T) {
	unset := hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED
	tests := []struct {
		name   string
		typ    hwhealv1.ActionType
		state  hwhealv1.ActionState
		dry    bool
		before hwhealv1.ServiceState
		want   hwhealv1.ServiceState
		ok     bool
	}{
		{"reboot in flight", Reboot, Dispatched, false, InService, Rebooting, true},
		{"reboot back", Reboot, Succeeded, false, InService, InService, true},
		{"reboot of an offline node stays offline", Reboot, Succeeded, false, Off, Off, true},
		{"offline draining", Offline, Running, false, InService, Draining, true},
		{"offline done", Offline, Succeeded, false, InService, Off, true},
		{"offline failed half way", Offline, Failed, false, InService, Draining, true},
		{"offline timed out", Offline, TimedOut, false, InService, Draining, true},
		{"offline refused", Offline, Refused, false, InService, InService, true},
		{"migrate back", Migrate, Succeeded, false, unset, InService, true},
		{"online back in service", Online, Succeeded, false, Off, InService, true},
		{"online in flight leaves it", Online, Running, false, Off, 0, false},
		{"online failed leaves it", Online, Failed, false, Off, 0, false},
		{"dry run never", Offline, Succeeded, true, InService, 0, false},
		{"approval never", Reboot, Approved, false, InService, 0, false},
		{"cancelled never", Offline, Cancelled, false, InService, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ServiceAt(tt.typ, tt.state, tt.dry, tt.before)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("ServiceAt = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestForOutcome(t *testing.T) {
	for o, want := range map[hwhealv1.ActionOutcome]hwhealv1.ActionState{
		hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING:   Running,
		hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED: Succeeded,
		hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED:    Failed,
		hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED:   Refused,
	} {
		if got, ok := ForOutcome(o); !ok || got != want {
			t.Errorf("ForOutcome(%v) = %v, %v", o, got, ok)
		}
	}
	for _, o := range []hwhealv1.ActionOutcome{hwhealv1.ActionOutcome_ACTION_OUTCOME_UNSPECIFIED, 99} {
		if _, ok := ForOutcome(o); ok {
			t.Errorf("ForOutcome(%v) is ok", o)
		}
	}
}

func TestTypeNames(t *testing.T) {
	for _, n := range TypeNames() {
		typ, ok := ParseType(n)
		if !ok || TypeName(typ) != n {
			t.Errorf("%q does not round-trip", n)
		}
	}
	if _, ok := ParseType("shutdown"); ok {
		t.Error("ParseType accepts shutdown")
	}
}

func TestNames(t *testing.T) {
	if got := StateName(AwaitingApproval); got != "awaiting_approval" {
		t.Errorf("StateName = %q", got)
	}
	if got := ServiceName(hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED); got != "in_service" {
		t.Errorf("ServiceName(UNSPECIFIED) = %q", got)
	}
	if got := ApprovalName(hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON); got != "two-person" {
		t.Errorf("ApprovalName = %q", got)
	}
	if got := ApprovalName(0); got != "" {
		t.Errorf("ApprovalName(UNSPECIFIED) = %q", got)
	}
	if got := TypeLabel(Reboot); got != "reboot" {
		t.Errorf("TypeLabel = %q", got)
	}
	if got := TypeLabel(99); got != "99" {
		t.Errorf("TypeLabel(99) = %q", got)
	}
}
