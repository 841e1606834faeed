package ctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestOutputYAML: every command that prints data prints the same data
// with -o yaml as with -o json, field for field.
func TestOutputYAML(t *testing.T) {
	node := &hwhealv1.Node{Name: "web-1", Labels: map[string]string{"rack": "r1"}, Health: hwhealv1.NodeHealth_NODE_HEALTH_FAULTY,
		ServiceState: hwhealv1.ServiceState_SERVICE_STATE_OFFLINE, OpenFaults: 1}
	fault := &hwhealv1.FaultRecord{Id: 7, Node: "web-1", FaultClass: "disk.media", Summary: "line one\nline two: \"quoted\"", Count: 3}
	f := &fakeFleet{fakeData: fakeData{
		pageSize: 2,
		nodes:    []*hwhealv1.Node{node, {Name: "web-2"}, {Name: "123"}},
		node:     &hwhealv1.GetNodeResponse{Node: node, OpenFaults: []*hwhealv1.FaultRecord{fault}},
		faults:   []*hwhealv1.FaultRecord{fault},
		events: []*hwhealv1.Event{
			{Id: 1, Type: hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED, Node: "web-1", Fault: fault},
			{Id: 2, Type: hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED, Node: "web-1", Action: finishedAction()},
		},
		actions: someActions(),
		reply:   finishedAction(),
		status:  fullStatus(),
		audit:   auditLog(3),
	}}
	e := startFake(t, f)
	commands := [][]string{
		{"nodes"}, {"node", "web-1"}, {"faults"}, {"fault", "7"},
		{"actions"}, {"action", "a-9"}, {"status"}, {"audit"}, {"audit", "verify"},
		{"remediate", "web-1", "--action", "offline", "--reason", "r"},
		{"approve", "a-9"}, {"deny", "a-9", "--reason", "r"}, {"cancel", "a-9", "--reason", "r"},
		{"pause", "--reason", "r"}, {"resume", "--reason", "r"},
		{"policy", "check", shippedPolicies[0]}, {"rules", "list"},
	}
	for _, args := range commands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			js := e.ctl(t, "root", append(args, "-o", "json")...)
			ym := e.ctl(t, "root", append(args, "-o", "yaml")...)
			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
				t.Fatalf("json: %v\n%s", err, js)
			}
			if err := yaml.Unmarshal([]byte(ym), &fromYAML); err != nil {
				t.Fatalf("yaml: %v\n%s", err, ym)
			}
			if !reflect.DeepEqual(fromJSON, normalize(t, fromYAML)) {
				t.Errorf("-o yaml differs from -o json:\n%s\n%s", ym, js)
			}
			if strings.HasPrefix(ym, "{") || strings.HasPrefix(ym, "[{") || strings.Contains(ym, "\n- {") || strings.Contains(ym, ": {\"") {
				t.Errorf("-o yaml is JSON in flow style:\n%s", ym)
			}
		})
	}

	t.Run("events stream", func(t *testing.T) {
		js := e.ctl(t, "root", "events", "-o", "json")
		ym := e.ctl(t, "root", "events", "-o", "yaml")
		jsLines := strings.Split(strings.TrimSpace(js), "\n")
		dec := yaml.NewDecoder(strings.NewReader(ym))
		for i, l := range jsLines {
			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(l), &fromJSON); err != nil {
				t.Fatal(err)
			}
			if err := dec.Decode(&fromYAML); err != nil {
				t.Fatalf("yaml document %d: %v\n%s", i, err, ym)
			}
			if !reflect.DeepEqual(fromJSON, normalize(t, fromYAML)) {
				t.Errorf("event %d: yaml %v, json %v", i, fromYAML, fromJSON)
			}
		}
		if n := strings.Count(ym, "---\n"); n != len(jsLines) {
			t.Errorf("%d YAML documents for %d events", n, len(jsLines))
		}
	})

	t.Run("readable", func(t *testing.T) {
		ym := e.ctl(t, "root", "fault", "7", "-o", "yaml")
		// uint64 stays a string, as in JSON; multi-line text is a block.
		for _, want := range []string{"id: \"7\"\n", "summary: |-\n  line one\n  line two: \"quoted\"\n"} {
			if !strings.Contains(ym, want) {
				t.Errorf("fault -o yaml lacks %q:\n%s", want, ym)
			}
		}
	})
}

// normalize makes a YAML-decoded value comparable with a JSON-decoded
// one: numbers become float64, maps map[string]any.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
