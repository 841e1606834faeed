package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInspectFixtureTree probes every source on the fixture tree: the
// sources with fixtures read, the kernel log's faults come through the
// rules, a source whose files are absent says why, and inspect writes no
// state (the kmsg cursor stays absent).
func TestInspectFixtureTree(t *testing.T) {
	root := fixtureRoot(t)
	// No SMBIOS/thermal in this tree is fine; take diskstats away to see
	// a source that is unavailable and why.
	if err := os.Remove(filepath.Join(root, "proc", "diskstats")); err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(t.Context(), Config{Root: root, Node: "fx", Disable: []string{"netdev"}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, p := range in.Sources {
		byName[p.Source] = i
	}
	if _, ok := byName["netdev"]; ok {
		t.Error("disabled netdev was probed")
	}
	for _, name := range []string{"edac", "aer", "hwmon"} {
		p := in.Sources[byName[name]]
		if p.Unavailable != "" || len(p.Observations) == 0 {
			t.Errorf("%s: unavailable %q, %d readings", name, p.Unavailable, len(p.Observations))
		}
	}
	for _, live := range []string{"ras", "netlink"} {
		i, ok := byName[live]
		if !ok || !strings.Contains(in.Sources[i].Unavailable, "--root") {
			t.Errorf("%s on a fixture tree: want it listed as reading the running kernel only, got %+v", live, in.Sources)
		}
	}
	if p := in.Sources[byName["diskstats"]]; !strings.Contains(p.Unavailable, "diskstats") || len(p.Observations) != 0 {
		t.Errorf("diskstats without /proc/diskstats: %+v", p)
	}
	k := in.Sources[byName["kmsg"]]
	want := 0
	for _, l := range fixtureKmsg {
		if l.class != "" {
			want++
		}
	}
	if len(k.Faults) != want {
		t.Errorf("kmsg probe raised %d faults, want %d", len(k.Faults), want)
	}
	for _, f := range k.Faults {
		if f.GetTime() == nil {
			t.Errorf("fault %s has no time", f.GetFaultClass())
		}
	}
	if in.BootID != "5d1c1a59-8f0e-4b4e-9a43-0c3b4e2d7a11" {
		t.Errorf("boot id %q", in.BootID)
	}

	var js bytes.Buffer
	if err := in.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Node    string `json:"node"`
		Sources []struct {
			Source       string            `json:"source"`
			Available    bool              `json:"available"`
			Observations []json.RawMessage `json:"observations"`
			Faults       []struct {
				FaultClass string `json:"fault_class"`
			} `json:"faults"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("inspect JSON does not parse: %v\n%s", err, js.String())
	}
	if doc.Node != "fx" || len(doc.Sources) != len(in.Sources) || doc.Sources[0].Source != "kmsg" || len(doc.Sources[0].Faults) != want {
		t.Errorf("JSON document: %+v", doc)
	}

	var tb bytes.Buffer
	if err := in.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	for _, wantLine := range []string{"edac       ok", "diskstats  unavailable", "memory.ue", "FAULTS", "INVENTORY"} {
		if !strings.Contains(tb.String(), wantLine) {
			t.Errorf("table lacks %q:\n%s", wantLine, tb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(root, "kmsg.cursor")); err == nil {
		t.Error("inspect wrote a cursor")
	}
}

func TestSourceConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "unknown disabled source", cfg: Config{Disable: []string{"floppy"}}, want: `disable: unknown source "floppy"`},
		{name: "interval of the event-driven kmsg", cfg: Config{Intervals: map[string]time.Duration{"kmsg": time.Second}}, want: "not a periodic source"},
		{name: "interval of the event-driven netlink", cfg: Config{Intervals: map[string]time.Duration{"netlink": time.Second}}, want: "not a periodic source"},
		{name: "bad disk regexp", cfg: Config{DiskExclude: "("}, want: "disk-exclude"},
		{name: "negative interval", cfg: Config{Intervals: map[string]time.Duration{"edac": -time.Second}}, want: "negative"},
		{name: "fine", cfg: Config{Disable: []string{"kmsg", "aer"}, Intervals: map[string]time.Duration{"hwmon": time.Minute}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validateSources()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
