package ingest

import (
	"testing"

	"google.golang.org/protobuf/proto"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// FuzzValidate feeds arbitrary bytes through the wire decoding and the
// validation every agent message meets: whatever an agent sends, ingest
// must answer with an error, never a panic, and what it accepts must be
// what the store relies on (increasing non-zero sequence numbers; action
// updates with an id, an outcome and bounded steps).
func FuzzValidate(f *testing.F) {
	seed := func(m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(hello("node-1", "stream"))
	seed(batch(faultReport(1, "sda"), faultReport(2, "sdb")))
	seed(batch(&hwhealv1.Report{Seq: 3, Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
		Source: "diskstats", Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda"},
		Samples: []*hwhealv1.Sample{{Name: "reads_completed", Value: 12}},
	}}}))
	seed(guardedHello("node-2", "stream"))
	seed(batch(&hwhealv1.Report{Seq: 4, Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: &hwhealv1.ActionUpdate{
		ActionId: "0f36b373b3e1ebf9", Outcome: hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED, Message: "ok",
		Steps: []*hwhealv1.ActionStep{{Name: "lb-weight-zero", Command: []string{"/bin/lbctl", "0"}, ExitCode: 0, Output: "done"}},
	}}}))
	f.Add([]byte{0x12, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m hwhealv1.ConnectRequest
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		if h := m.GetHello(); h != nil {
			if validateHello(h) == nil && (h.GetNode() == "" || h.GetStreamId() == "") {
				t.Fatalf("accepted hello without node or stream id: %v", h)
			}
		}
		if rb := m.GetReports(); rb != nil && validateBatch(rb, 1000) == nil {
			var prev uint64
			for _, r := range rb.GetReports() {
				// A report without a known item passes (a newer agent's
				// kind: stored as nothing, acknowledged).
				if r.GetSeq() <= prev {
					t.Fatalf("accepted a batch the store cannot trust: %v", rb)
				}
				prev = r.GetSeq()
				if u := r.GetActionUpdate(); u != nil && (u.GetActionId() == "" || len(u.GetSteps()) > action.MaxUpdateSteps ||
					u.GetOutcome() == hwhealv1.ActionOutcome_ACTION_OUTCOME_UNSPECIFIED) {
					t.Fatalf("accepted an action update the store cannot trust: %v", u)
				}
			}
		}
	})
}
