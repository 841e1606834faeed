package webhook

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestEncode(t *testing.T) {
	when := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	ev := &hwhealv1.Event{
		Id: 42, Time: timestamppb.New(when), Type: evAcked, Node: "node-7",
		Actor: "alice", Reason: "replacing the disk on Tuesday",
		Fault: &hwhealv1.FaultRecord{
			Id: 3, Node: "node-7", FaultClass: "disk.media", Severity: sevCritical,
			Part:       &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda", Serial: "ZA1"},
			State:      hwhealv1.FaultState_FAULT_STATE_OPEN,
			Count:      5,
			Summary:    "medium error <3> & more",
			ClearAfter: durationpb.New(24 * time.Hour),
			Acknowledged: &hwhealv1.FaultNote{
				Actor: "alice", Time: timestamppb.New(when), Reason: "replacing the disk on Tuesday",
			},
		},
	}
	b, err := Encode(ev, "urn:hwheal:eu-1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"summary":"medium error <3> & more"`)) {
		t.Errorf("data is HTML-escaped or missing the summary: %s", b)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil || !bytes.Equal(compact.Bytes(), b) {
		t.Errorf("envelope is not compact JSON (%v): %s", err, b)
	}
	// Every attribute as the CloudEvents JSON format names it.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"specversion":     `"1.0"`,
		"id":              `"42"`,
		"source":          `"urn:hwheal:eu-1"`,
		"type":            `"io.hwheal.fault.acknowledged"`,
		"subject":         `"node-7"`,
		"time":            `"2026-03-01T12:00:00.123456789Z"`,
		"datacontenttype": `"application/json"`,
	}
	for k, v := range want {
		if string(raw[k]) != v {
			t.Errorf("%s = %s, want %s", k, raw[k], v)
		}
	}
	if len(raw) != len(want)+1 {
		t.Errorf("attributes %v: want exactly %d and data", keys(raw), len(want))
	}
	// data is the event as protojson with proto field names.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw["data"], &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "time", "type", "node", "fault", "actor", "reason"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("data has no %q: %s", k, raw["data"])
		}
	}
	if string(fields["type"]) != `"EVENT_TYPE_FAULT_ACKNOWLEDGED"` {
		t.Errorf("data.type = %s", fields["type"])
	}
	var back hwhealv1.Event
	if err := protojson.Unmarshal(raw["data"], &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, ev) {
		t.Errorf("data does not round-trip:\n got %v\nwant %v", &back, ev)
	}
	// The same event encodes to the same bytes: one id, one body, on every
	// retry.
	again, _ := Encode(ev, "urn:hwheal:eu-1")
	if !bytes.Equal(again, b) {
		t.Error("Encode is not stable")
	}
}

func TestEncodeWithoutTimeOrNode(t *testing.T) {
	b, err := Encode(&hwhealv1.Event{Id: 1, Type: evConnected}, DefaultSourceURI)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["time"]; ok {
		t.Error("time present for an event without one")
	}
	if _, ok := raw["subject"]; ok {
		t.Error("subject present for an event without a node")
	}
	if _, err := Encode(&hwhealv1.Event{Id: 2}, DefaultSourceURI); err == nil {
		t.Error("an event of unknown type encoded")
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
