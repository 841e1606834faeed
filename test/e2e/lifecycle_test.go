package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cloudEvent is what a webhook receiver gets: the CloudEvents envelope
// with the hwheal event as data.
type cloudEvent struct {
	SpecVersion string `json:"specversion"`
	ID          string `json:"id"`
	Type        string `json:"type"`
	Subject     string `json:"subject"`
	Data        struct {
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
		Fault  *fault `json:"fault"`
	} `json:"data"`
}

// receiver is a webhook target in the test process.
type receiver struct {
	mu     sync.Mutex
	events []cloudEvent
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ce cloudEvent
	if req.Header.Get("Content-Type") != "application/cloudevents+json" || json.Unmarshal(body, &ce) != nil {
		http.Error(w, "not a structured CloudEvent", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.events = append(r.events, ce)
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// find returns the received events of a type about a subject.
func (r *receiver) find(typ, subject string) []cloudEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []cloudEvent
	for _, e := range r.events {
		if e.Type == typ && e.Subject == subject {
			out = append(out, e)
		}
	}
	return out
}

// TestFaultLifecycle drives a fault through its life on the real kernel
// log, a real collector and a real webhook receiver: it opens, clears by
// itself when its evidence is gone for the rule's clear time (set short
// from rules.d), reopens as the same fault when it comes back at once (with
// a longer clear time), is acknowledged and resolved by an operator; a
// shadow rule's fault is recorded but leaves the node healthy and pages
// nobody; a faulty node is still faulty after the collector is killed and
// restarted; every change reaches the webhook as a CloudEvent.
func TestFaultLifecycle(t *testing.T) {
	requireRoot(t)
	enableDevkmsg(t)

	rulesDir := t.TempDir()
	overrides := `rules:
  # Clear after 3 s of silence instead of a day, so the test sees it.
  - name: blk-io-error
    clear_after: 3s
  # A rule under trial: raised and recorded, never changes health.
  - name: buffer-io-error
    mode: shadow
`
	if err := os.WriteFile(filepath.Join(rulesDir, "10-e2e.yaml"), []byte(overrides), 0o644); err != nil {
		t.Fatal(err)
	}
	recv := &receiver{}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	cfgFile := filepath.Join(t.TempDir(), "collector.yaml")
	cfg := fmt.Sprintf(`webhooks:
  - name: e2e
    url: %s
    events: [fault.opened, fault.reopened, fault.resolved, fault.acknowledged, node.health_changed]
    start: beginning
    backoff_initial: 100ms
`, srv.URL)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	colState := t.TempDir()
	agentState := t.TempDir()
	resumeAfterHistory(t, agentState)
	nodeName := "e2e-" + randomID(t, 4)
	prefix := "sd" + randomLetters(t, 5)
	collectorArgs := []string{"--insecure", "--listen", addr, "--state-dir", colState, "--rules-dir", rulesDir,
		"--config", cfgFile, "--sweep-interval", "200ms", "--log-level", "debug"}
	col := start(t, "hwheal-collector", collectorArgs...)
	start(t, "hwheal-agent", "--insecure", "--collector", addr, "--node", nodeName, "--state-dir", agentState,
		"--disable", "smart,blockio,ras", "--log-level", "debug")

	health := func() string {
		var n node
		if err := ctlJSON(t, addr, &struct{ Node *node }{&n}, "node", nodeName); err != nil {
			return "error: " + err.Error()
		}
		return n.Health
	}
	faultOf := func(dev string, all bool) (fault, error) {
		args := []string{"faults", "--node", nodeName}
		if all {
			args = append(args, "--all")
		}
		var fs []fault
		if err := ctlJSON(t, addr, &fs, args...); err != nil {
			return fault{}, err
		}
		for _, f := range fs {
			if f.Part.Name == dev {
				return f, nil
			}
		}
		return fault{}, fmt.Errorf("no fault for %s", dev)
	}
	eventually(t, 30*time.Second, "node registers", func() error {
		if h := health(); h != "NODE_HEALTH_HEALTHY" {
			return fmt.Errorf("health %s", h)
		}
		return nil
	})

	// 1. Opens, and the node is faulty.
	dev := prefix + "a"
	writeKmsg(t, ioErrorLine(dev, 77))
	var opened fault
	eventually(t, 20*time.Second, "fault opens", func() error {
		f, err := faultOf(dev, false)
		if err != nil {
			return err
		}
		if f.State != "FAULT_STATE_OPEN" || f.ClearAfter != "3s" {
			return fmt.Errorf("fault %+v", f)
		}
		if h := health(); h != "NODE_HEALTH_FAULTY" {
			return fmt.Errorf("health %s with a critical fault open", h)
		}
		opened = f
		return nil
	})

	// 2. Clears by itself after 3 s without evidence; the node is healthy.
	eventually(t, 20*time.Second, "fault clears by itself", func() error {
		f, err := faultOf(dev, true)
		if err != nil {
			return err
		}
		if f.State != "FAULT_STATE_RESOLVED" {
			return fmt.Errorf("state %s", f.State)
		}
		if h := health(); h != "NODE_HEALTH_HEALTHY" {
			return fmt.Errorf("health %s after the only fault cleared", h)
		}
		return nil
	})

	// 3. Comes back within its clear time: the same fault reopens, held
	// open longer.
	writeKmsg(t, ioErrorLine(dev, 78))
	eventually(t, 20*time.Second, "fault reopens", func() error {
		f, err := faultOf(dev, false)
		if err != nil {
			return err
		}
		if f.ID != opened.ID || f.Reopened != 1 || f.ClearAfter != "6s" || f.Count.String() != "2" {
			return fmt.Errorf("fault %+v, want id %s reopened once, clear time 6s, count 2", f, opened.ID)
		}
		return nil
	})

	// 4. An operator acknowledges it, then resolves it by hand.
	if out, err := ctl(t, addr, "faults", "ack", opened.ID.String(), "--reason", "looking at it"); err != nil {
		t.Fatalf("faults ack: %v\n%s", err, out)
	}
	f, err := faultOf(dev, false)
	if err != nil || f.Acked == nil || f.Acked.Reason != "looking at it" || f.State != "FAULT_STATE_OPEN" {
		t.Fatalf("after ack: %+v, %v", f, err)
	}
	if out, err := ctl(t, addr, "faults", "resolve", opened.ID.String(), "--reason", "disk replaced"); err != nil {
		t.Fatalf("faults resolve: %v\n%s", err, out)
	}
	if _, err := ctl(t, addr, "faults", "resolve", opened.ID.String(), "--reason", "again"); err == nil || !strings.Contains(err.Error(), "failed_precondition") {
		t.Fatalf("resolving a resolved fault: err %v; want failed_precondition", err)
	}

	// 5. A shadow rule's fault is recorded and leaves the node healthy.
	shadowDev := prefix + "b"
	writeKmsg(t, fmt.Sprintf("<3>Buffer I/O error on dev %s, logical block 9, async page read\n", shadowDev))
	eventually(t, 20*time.Second, "shadow fault recorded", func() error {
		f, err := faultOf(shadowDev, false)
		if err != nil {
			return err
		}
		if f.Mode != "RULE_MODE_SHADOW" {
			return fmt.Errorf("mode %q", f.Mode)
		}
		return nil
	})
	if h := health(); h != "NODE_HEALTH_HEALTHY" {
		t.Fatalf("health %s with only a shadow fault open", h)
	}

	// 6. A critical fault open, the collector killed (SIGKILL: nothing
	// saved on the way out) and restarted: the node is still faulty, with
	// the same faults.
	badDev := prefix + "c"
	writeKmsg(t, fmt.Sprintf("<3>blk_update_request: critical medium error, dev %s, sector 4096 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0\n", badDev))
	eventually(t, 20*time.Second, "critical fault open", func() error {
		if _, err := faultOf(badDev, false); err != nil {
			return err
		}
		if h := health(); h != "NODE_HEALTH_FAULTY" {
			return fmt.Errorf("health %s", h)
		}
		return nil
	})
	col.kill()
	col = start(t, "hwheal-collector", collectorArgs...)
	eventually(t, 30*time.Second, "collector back", func() error {
		if h := health(); h != "NODE_HEALTH_FAULTY" {
			return fmt.Errorf("health %s after a restart with a critical fault open", h)
		}
		if _, err := faultOf(badDev, false); err != nil {
			return err
		}
		_, err := faultOf(shadowDev, false)
		return err
	})

	// 7. Every change reached the webhook, as CloudEvents.
	eventually(t, 20*time.Second, "webhook deliveries", func() error {
		for _, typ := range []string{"io.hwheal.fault.opened", "io.hwheal.fault.resolved", "io.hwheal.fault.reopened", "io.hwheal.fault.acknowledged", "io.hwheal.node.health_changed"} {
			if len(recv.find(typ, nodeName)) == 0 {
				return fmt.Errorf("no %s yet", typ)
			}
		}
		resolved := recv.find("io.hwheal.fault.resolved", nodeName)
		var byHand bool
		for _, e := range resolved {
			if e.Data.Reason == "disk replaced" && e.Data.Actor != "" {
				byHand = true
			}
		}
		if !byHand {
			return fmt.Errorf("no resolution by hand with its reason among %d", len(resolved))
		}
		return nil
	})
	// The shadow rule's fault paged nobody: a target has to ask for them.
	for _, e := range recv.find("io.hwheal.fault.opened", nodeName) {
		if e.Data.Fault != nil && e.Data.Fault.Part.Name == shadowDev {
			t.Errorf("a shadow fault reached a webhook that did not ask for them: %+v", e)
		}
	}
	ack := recv.find("io.hwheal.fault.acknowledged", nodeName)[0]
	if ack.SpecVersion != "1.0" || ack.ID == "" || ack.Data.Fault == nil || ack.Data.Fault.Part.Name != dev {
		t.Fatalf("acknowledged CloudEvent %+v", ack)
	}
}
