package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInspectThisHost runs `hwheal-agent inspect -o json` on this machine,
// as an SRE does first on a new one: every source is listed, each either
// read or says why it could not, and the live kernel log and block layer
// are read for real.
func TestInspectThisHost(t *testing.T) {
	requireRoot(t)
	out, err := exec.Command(filepath.Join(binDir, "hwheal-agent"), "inspect", "-o", "json").Output()
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var doc struct {
		Sources []struct {
			Source      string   `json:"source"`
			Available   bool     `json:"available"`
			Unavailable string   `json:"unavailable"`
			Notes       []string `json:"notes"`
		} `json:"sources"`
		Inventory json.RawMessage `json:"inventory"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("inspect -o json does not parse: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, s := range doc.Sources {
		seen[s.Source] = true
		if !s.Available && s.Unavailable == "" {
			t.Errorf("%s is unavailable without a reason", s.Source)
		}
		if s.Source == "kmsg" && (!s.Available || len(s.Notes) == 0 || !strings.Contains(s.Notes[0], "records in the ring")) {
			t.Errorf("kmsg on a live kernel: %+v", s)
		}
	}
	for _, want := range []string{"kmsg", "diskstats", "netdev", "edac", "aer", "hwmon", "smart", "blockio", "ras", "netlink"} {
		if !seen[want] {
			t.Errorf("source %s not listed", want)
		}
	}
	if len(doc.Inventory) == 0 {
		t.Error("no inventory")
	}
}
